// Tests for the development CA: certificates it writes must pass real TLS verification in Node,
// OpenSSL, curl and git (GnuTLS), and re-running it must not disturb a CA clients already trust.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, unlink } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';

import { writeDevCa, type DevCaFiles } from '../../src/tls/dev-ca.js';

// Async on purpose: the servers these tools talk to live in this process, so a sync spawn would
// block the event loop they need to answer on.
const execFileAsync = promisify(execFile);

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<RunResult> {
  try {
    const { stdout, stderr } = await execFileAsync(cmd, args, { env, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function onPath(cmd: string): Promise<boolean> {
  return (await run('which', [cmd], process.env)).code === 0;
}

// The ambient environment may point TLS tools at other trust stores or proxies; tests must only
// pass because of the CA under test.
function hermeticEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) {
    if (/proxy|^GIT_|^SSL_CERT_|^CURL_CA_BUNDLE$/i.test(key)) delete env[key];
  }
  return {
    ...env,
    HOME: home,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
  };
}

function listen(server: tls.Server | https.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function close(server: tls.Server | https.Server): Promise<void> {
  if (server instanceof https.Server) server.closeAllConnections();
  return new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
}

async function startTlsServer(files: DevCaFiles): Promise<{ server: tls.Server; port: number }> {
  const server = tls.createServer(
    { cert: await readFile(files.tlsCert), key: await readFile(files.tlsKey) },
    (socket) => {
      // Clients hang up abruptly once they have their verdict; that is not a failure here.
      socket.on('error', () => undefined);
      socket.end();
    },
  );
  const port = await listen(server);
  return { server, port };
}

type ConnectResult = { ok: true; authorized: boolean } | { ok: false; code: string; message: string };

function connect(port: number, options: tls.ConnectionOptions): Promise<ConnectResult> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...options });
    socket.once('secureConnect', () => {
      const authorized = socket.authorized;
      socket.destroy();
      resolve({ ok: true, authorized });
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      socket.destroy();
      resolve({ ok: false, code: err.code ?? '', message: err.message });
    });
  });
}

async function snapshot(dir: string): Promise<Record<string, Buffer>> {
  const out: Record<string, Buffer> = {};
  for (const name of ['ca.crt', 'ca.key', 'tls.crt', 'tls.key']) out[name] = await readFile(path.join(dir, name));
  return out;
}

async function mode(file: string): Promise<number> {
  return (await stat(file)).mode & 0o777;
}

describe('writeDevCa', () => {
  let root: string;
  let outDir: string;
  let files: DevCaFiles;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'mirrorfarm-dev-ca-'));
    outDir = path.join(root, 'tls');
    env = hermeticEnv(root);
    files = await writeDevCa({ outDir, hosts: ['localhost', '127.0.0.1'] });
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('returns absolute paths inside outDir and protects private material', async () => {
    assert.deepEqual(files, {
      caCert: path.join(outDir, 'ca.crt'),
      tlsCert: path.join(outDir, 'tls.crt'),
      tlsKey: path.join(outDir, 'tls.key'),
    });
    assert.ok(path.isAbsolute(files.caCert));
    assert.equal(await mode(outDir), 0o700);
    assert.equal(await mode(path.join(outDir, 'ca.key')), 0o600);
    assert.equal(await mode(files.tlsKey), 0o600);
    assert.match(await readFile(path.join(outDir, 'ca.key'), 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/);
    assert.match(await readFile(files.tlsKey, 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/);
    const leafPem = await readFile(files.tlsCert, 'utf8');
    assert.equal(leafPem.match(/-----BEGIN CERTIFICATE-----/g)?.length, 1);
  });

  it('node:tls clients that trust ca.crt accept the server by name and by IP', async () => {
    const { server, port } = await startTlsServer(files);
    try {
      const ca = await readFile(files.caCert);
      assert.deepEqual(await connect(port, { ca, servername: 'localhost' }), { ok: true, authorized: true });
      // No servername: Node checks the connected IP against the certificate's IP SANs.
      assert.deepEqual(await connect(port, { ca }), { ok: true, authorized: true });
    } finally {
      await close(server);
    }
  });

  it('node:tls rejects a wrong name and a client that does not trust the CA', async () => {
    const { server, port } = await startTlsServer(files);
    try {
      const ca = await readFile(files.caCert);
      const wrongName = await connect(port, { ca, servername: 'wrong.example' });
      assert.equal(wrongName.ok, false);
      assert.equal(!wrongName.ok && wrongName.code, 'ERR_TLS_CERT_ALTNAME_INVALID');

      const untrusted = await connect(port, { servername: 'localhost' });
      assert.equal(untrusted.ok, false);
      assert.ok(
        !untrusted.ok &&
          ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY'].includes(untrusted.code),
        `unexpected error: ${untrusted.ok ? 'none' : untrusted.code}`,
      );
    } finally {
      await close(server);
    }
  });

  it('openssl verifies the chain and sees the expected extensions', async () => {
    const verify = await run('/usr/bin/openssl', ['verify', '-CAfile', files.caCert, files.tlsCert], env);
    assert.equal(verify.code, 0, verify.stderr);
    assert.equal(verify.stdout.trim(), `${files.tlsCert}: OK`);

    const leaf = await run('/usr/bin/openssl', ['x509', '-noout', '-text', '-in', files.tlsCert], env);
    assert.equal(leaf.code, 0, leaf.stderr);
    assert.match(leaf.stdout, /DNS:localhost, IP Address:127\.0\.0\.1/);
    assert.match(leaf.stdout, /Subject: CN ?= ?localhost/);
    assert.match(leaf.stdout, /Issuer: CN ?= ?mirrorfarm development CA/);
    assert.match(leaf.stdout, /Public-Key: \(256 bit\)[\s\S]*NIST CURVE: P-256/);
    assert.match(leaf.stdout, /Key Usage: critical\s+Digital Signature\s/);
    assert.match(leaf.stdout, /Extended Key Usage:\s+TLS Web Server Authentication/);
    assert.match(leaf.stdout, /Basic Constraints:\s+CA:FALSE/);
    assert.match(leaf.stdout, /Authority Key Identifier/);
    assert.doesNotMatch(leaf.stdout, /Serial Number:\s*\(Negative\)|Serial Number: -/);

    const ca = await run('/usr/bin/openssl', ['x509', '-noout', '-text', '-in', files.caCert], env);
    assert.equal(ca.code, 0, ca.stderr);
    assert.match(ca.stdout, /Basic Constraints: critical\s+CA:TRUE/);
    assert.match(ca.stdout, /Key Usage: critical\s+Certificate Sign, CRL Sign/);
    assert.match(ca.stdout, /Subject Key Identifier/);

    const caKey = await run('/usr/bin/openssl', ['pkey', '-noout', '-in', path.join(outDir, 'ca.key')], env);
    assert.equal(caKey.code, 0, caKey.stderr);
  });

  it('curl trusting ca.crt talks to a node https server', async (t) => {
    if (!(await onPath('curl'))) {
      t.skip('curl is not on PATH');
      return;
    }
    const server = https.createServer(
      { cert: await readFile(files.tlsCert), key: await readFile(files.tlsKey) },
      (_req, res) => res.end('mirrorfarm-ok'),
    );
    const port = await listen(server);
    try {
      const ok = await run('curl', ['--silent', '--show-error', '--noproxy', '*', '--cacert', files.caCert, `https://localhost:${port}/`], env);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, 'mirrorfarm-ok');

      // Control: the success above must come from ca.crt, not from some ambient trust store.
      const untrusted = await run('curl', ['--silent', '--show-error', '--noproxy', '*', `https://localhost:${port}/`], env);
      assert.equal(untrusted.code, 60, untrusted.stderr);
    } finally {
      await close(server);
    }
  });

  it("git's GnuTLS-backed https transport accepts the certificate", async (t) => {
    if (!(await onPath('git'))) {
      t.skip('git is not on PATH');
      return;
    }
    // A 404 from a plain https server is enough: git only reports "not found" after the TLS
    // handshake, including certificate verification, has succeeded.
    const server = https.createServer(
      { cert: await readFile(files.tlsCert), key: await readFile(files.tlsKey) },
      (_req, res) => {
        res.statusCode = 404;
        res.end();
      },
    );
    const port = await listen(server);
    const url = `https://localhost:${port}/nothing.git`;
    try {
      const trusted = await run('git', ['-c', `http.sslCAInfo=${files.caCert}`, 'ls-remote', url], env);
      assert.notEqual(trusted.code, 0);
      assert.match(trusted.stderr, /not found/i);
      assert.doesNotMatch(trusted.stderr, /certificate|SSL|TLS/i);

      const untrusted = await run('git', ['ls-remote', url], env);
      assert.notEqual(untrusted.code, 0);
      assert.match(untrusted.stderr, /certificate/i);
    } finally {
      await close(server);
    }
  });

  it('re-running with the same hosts leaves every file byte-identical', async () => {
    const before = await snapshot(outDir);
    const again = await writeDevCa({ outDir, hosts: ['localhost', '127.0.0.1'] });
    assert.deepEqual(again, files);
    assert.deepEqual(await snapshot(outDir), before);
    // Host order and spelling are not a reason to re-issue.
    await writeDevCa({ outDir, hosts: ['127.0.0.1', 'LOCALHOST'] });
    assert.deepEqual(await snapshot(outDir), before);
  });

  it('a new host keeps the CA and re-issues the server certificate to cover it', async () => {
    const before = await snapshot(outDir);
    await writeDevCa({ outDir, hosts: ['localhost', '127.0.0.1', 'mirror.test', '::1'] });
    const afterAdd = await snapshot(outDir);
    assert.deepEqual(afterAdd['ca.crt'], before['ca.crt']);
    assert.deepEqual(afterAdd['ca.key'], before['ca.key']);
    assert.notDeepEqual(afterAdd['tls.crt'], before['tls.crt']);
    assert.notDeepEqual(afterAdd['tls.key'], before['tls.key']);
    assert.equal(await mode(files.tlsKey), 0o600);

    const text = await run('/usr/bin/openssl', ['x509', '-noout', '-text', '-in', files.tlsCert], env);
    assert.match(text.stdout, /DNS:localhost, IP Address:127\.0\.0\.1, DNS:mirror\.test, IP Address:0:0:0:0:0:0:0:1/);
    const verify = await run('/usr/bin/openssl', ['verify', '-CAfile', files.caCert, files.tlsCert], env);
    assert.equal(verify.code, 0, verify.stderr);

    const { server, port } = await startTlsServer(files);
    try {
      const ca = await readFile(files.caCert);
      assert.deepEqual(await connect(port, { ca, servername: 'mirror.test' }), { ok: true, authorized: true });
    } finally {
      await close(server);
    }
  });

  it('reuses the existing CA when only the server certificate is missing', async () => {
    const before = await snapshot(outDir);
    await unlink(files.tlsCert);
    await writeDevCa({ outDir, hosts: ['localhost'] });
    const now = await snapshot(outDir);
    assert.deepEqual(now['ca.crt'], before['ca.crt']);
    const verify = await run('/usr/bin/openssl', ['verify', '-CAfile', files.caCert, files.tlsCert], env);
    assert.equal(verify.code, 0, verify.stderr);
  });

  it('re-issues a server certificate that expires within 30 days', async () => {
    const dir = path.join(root, 'short');
    await writeDevCa({ outDir: dir, hosts: ['localhost'], days: 10 });
    const short = await snapshot(dir);
    await writeDevCa({ outDir: dir, hosts: ['localhost'] });
    const renewed = await snapshot(dir);
    assert.deepEqual(renewed['ca.crt'], short['ca.crt']);
    assert.notDeepEqual(renewed['tls.crt'], short['tls.crt']);
    // Now valid for the default 825 days, so a further run is a no-op.
    await writeDevCa({ outDir: dir, hosts: ['localhost'] });
    assert.deepEqual(await snapshot(dir), renewed);
  });
});
