// The farm balancer's nginx configuration and how a missing nginx or stream module is reported.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { findNginx, nginxConfig, type BalancerOptions } from '../../src/farm/balancer.js';
import { tempDir } from '../helpers/tmp.js';

const options: BalancerOptions = {
  dir: '/srv/balancer',
  host: '127.0.0.1',
  httpsPort: 7991,
  sshPort: 7998,
  tlsCert: '/etc/tls.crt',
  tlsKey: '/etc/tls.key',
  caFile: '/etc/ca.crt',
};

/** A stand-in nginx whose `nginx -V` prints the given build options (on stderr, as nginx does). */
function fakeNginx(configureArguments: string): string {
  const dir = tempDir('mf-fake-nginx-');
  const binary = join(dir, 'sbin', 'nginx');
  mkdirSync(join(dir, 'sbin'));
  writeFileSync(binary, `#!/bin/sh\necho "nginx version: nginx/1.22.1" >&2\necho "configure arguments: ${configureArguments}" >&2\n`);
  chmodSync(binary, 0o755);
  return binary;
}

describe('farm balancer (nginx)', () => {
  it('balances HTTPS per request and SSH per connection over the ready nodes, streaming with no body limit', () => {
    const conf = nginxConfig({ streamModule: '/usr/lib/nginx/modules/ngx_stream_module.so' }, options, [{ httpPort: 8000, sshPort: 8001 }, { httpPort: 8002, sshPort: 8003 }]);
    assert.match(conf, /^load_module \/usr\/lib\/nginx\/modules\/ngx_stream_module\.so;$/m);
    assert.match(conf, /upstream farm_https \{\n {4}server 127\.0\.0\.1:8000;\n {4}server 127\.0\.0\.1:8002;\n {2}\}/);
    assert.match(conf, /upstream farm_ssh \{\n {4}server 127\.0\.0\.1:8001;\n {4}server 127\.0\.0\.1:8003;\n {2}\}/);
    assert.match(conf, /listen 127\.0\.0\.1:7991 ssl;/);
    assert.match(conf, /listen 127\.0\.0\.1:7998;\n {4}proxy_pass farm_ssh;/);
    // No stickiness of any kind.
    assert.doesNotMatch(conf, /ip_hash|hash |sticky|least_conn/);
    // Streaming both ways, no limit, long timeouts.
    for (const directive of ['client_max_body_size 0;', 'proxy_request_buffering off;', 'proxy_buffering off;', 'proxy_read_timeout 3600s;', 'proxy_timeout 3600s;']) assert.ok(conf.includes(directive), directive);
    // TLS to the nodes, checked.
    assert.match(conf, /proxy_ssl_verify on;\n {6}proxy_ssl_trusted_certificate \/etc\/ca\.crt;/);
    // A POST that reached a node is never sent to another one.
    assert.match(conf, /proxy_next_upstream error timeout;/);
    assert.doesNotMatch(conf, /non_idempotent/);
  });

  it('refuses traffic while no node is ready, and needs no load_module when stream is built in', () => {
    const conf = nginxConfig({ streamModule: undefined }, options, []);
    assert.doesNotMatch(conf, /load_module/);
    assert.match(conf, /upstream farm_https \{\n {4}server 127\.0\.0\.1:9 down;\n/);
    assert.match(conf, /upstream farm_ssh \{\n {4}server 127\.0\.0\.1:9 down;\n/);
  });

  it('names the Debian packages when nginx or its stream module is missing', async () => {
    await assert.rejects(findNginx('/nonexistent/sbin/nginx'), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'BALANCER_NGINX_MISSING');
      assert.match(err.message, /\/nonexistent\/sbin\/nginx is missing/);
      assert.match(err.message, /apt-get install nginx libnginx-mod-stream/);
      return true;
    });
    const noStream = fakeNginx('--prefix=/usr/share/nginx --modules-path=/nonexistent/modules --with-http_ssl_module');
    await assert.rejects(findNginx(noStream), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'BALANCER_STREAM_MISSING');
      assert.match(err.message, /apt-get install libnginx-mod-stream/);
      assert.match(err.message, /\/nonexistent\/modules\/ngx_stream_module\.so/);
      return true;
    });
    const dynamicButAbsent = fakeNginx('--modules-path=/nonexistent/modules --with-stream=dynamic');
    await assert.rejects(findNginx(dynamicButAbsent), { code: 'BALANCER_STREAM_MISSING' });
    const builtIn = fakeNginx('--with-http_ssl_module --with-stream --with-stream_ssl_module');
    assert.deepEqual(await findNginx(builtIn), { binary: builtIn, streamModule: undefined, version: 'nginx/1.22.1' });
  });
});
