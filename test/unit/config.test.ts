import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError, envName, loadConfig } from '../../src/config/load.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

after(removeTempDirs);

describe('configuration', () => {
  it('has working defaults', () => {
    const config = loadConfig({ env: {} });
    assert.equal(config.mode, 'primary');
    assert.equal(config.http.port, 7990);
    assert.equal(config.ssh.port, 7999);
    assert.equal(config.git.defaultBranch, 'main');
    assert.match(config.home, /^\//, 'home is made absolute');
  });

  it('maps key paths to MIRRORFARM_ variables', () => {
    assert.equal(envName(['http', 'tls', 'cert']), 'MIRRORFARM_HTTP_TLS_CERT');
    assert.equal(envName(['baseUrl']), 'MIRRORFARM_BASE_URL');
    assert.equal(envName(['admin', 'password']), 'MIRRORFARM_ADMIN_PASSWORD');
  });

  it('layers file, then environment, and coerces types', () => {
    const dir = tempDir();
    const file = join(dir, 'mirrorfarm.yaml');
    writeFileSync(file, 'home: /srv/mf\nhttp:\n  port: 8443\nssh:\n  enabled: false\n');
    const config = loadConfig({ file, env: { MIRRORFARM_HTTP_PORT: '9000', MIRRORFARM_BASE_URL: 'https://git.example.com/' } });
    assert.equal(config.home, '/srv/mf');
    assert.equal(config.http.port, 9000);
    assert.equal(config.ssh.enabled, false);
    assert.equal(config.baseUrl, 'https://git.example.com', 'trailing slash removed');
  });

  it('names the bad key and its variable', () => {
    assert.throws(() => loadConfig({ env: { MIRRORFARM_HTTP_PORT: '70000' } }), (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /"http\.port"/);
      assert.match(err.message, /MIRRORFARM_HTTP_PORT/);
      return true;
    });
    assert.throws(() => loadConfig({ env: { MIRRORFARM_HTTP_PORT: 'eighty' } }), /MIRRORFARM_HTTP_PORT="eighty" is not a number/);
    assert.throws(() => loadConfig({ env: { MIRRORFARM_MODE: 'replica' } }), /"mode"/);
  });

  it('refuses unknown keys in the file, naming them', () => {
    const dir = tempDir();
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'http:\n  prot: 80\n');
    assert.throws(() => loadConfig({ file, env: {} }), /"http\.prot"|"http"/);
  });

  it('requires TLS cert and key together', () => {
    assert.throws(() => loadConfig({ env: { MIRRORFARM_HTTP_TLS_CERT: '/x.crt' } }), /set both cert and key/);
  });

  it('reports an unreadable file', () => {
    assert.throws(() => loadConfig({ file: '/nonexistent/mirrorfarm.yaml', env: {} }), /cannot read config file/);
  });
});
