// A mirror's security boundaries, with real processes, git, OpenSSH and TLS: preflight refuses every upstream it
// cannot trust with one coded message that names the fix (and keeps retrying without crashing); the mirror's
// key fetches only the projects it carries and never pushes; a deleted mirror loses SSH access and closes its
// sessions within a second and stops serving; and while the primary is down, users verified before keep
// working for the grace period, anybody else is told the primary cannot be reached.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import * as x509 from '@peculiar/x509';
import { writeDevCa } from '../../src/tls/dev-ca.js';
import { addSshKey, createProject, createRepo, createUser, grantProject } from '../helpers/fixtures.js';
import { authorizeMirror, mirrorGet, refusedWithin, waitForSameRefs, waitForState, type MirrorStatus } from '../helpers/mirror.js';
import { run } from '../helpers/run.js';
import {
  ADMIN,
  api,
  eventually,
  freePort,
  git,
  gitOk,
  makeWorkTree,
  parseLsRemote,
  ROOT,
  sshCommand,
  sshKeyPair,
  startMirror,
  startServer,
  testCa,
  type Credentials,
  type SshKeyPair,
  type TestServer,
} from '../helpers/server.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

let primary: TestServer;
/** Carries ONE; its key is tested against the primary's SSH server, then it is deleted. */
let keyMirror: TestServer;
/** Carries ONE with a 1 s credential cache and a 60 s grace period; outlives its primary at the end. */
let graceMirror: TestServer;
/** The same with no grace period. */
let gracelessMirror: TestServer;
let keyMirrorId: string;
let alice: Credentials;
let bob: Credentials;
let aliceKey: SshKeyPair;
let bobKey: SshKeyPair;
let work: string;
/** Mirror starts, so that an `after` stops every one of them even when a `before` failed half-way. */
const mirrorStarts: Array<Promise<TestServer>> = [];
const tracked = (starting: Promise<TestServer>, list = mirrorStarts) => {
  list.push(starting);
  starting.catch(() => {}); // reported where it is awaited
  return starting;
};
async function stopMirrors(list = mirrorStarts): Promise<void> {
  const settled = await Promise.allSettled(list);
  await Promise.all(settled.map((s) => (s.status === 'fulfilled' ? s.value.stop() : undefined)));
}

before(async () => {
  primary = await startServer();
  const mirrors = Promise.all([
    tracked(startMirror(primary)),
    tracked(startMirror(primary, { env: { MIRRORFARM_MIRROR_AUTH_CACHE_SECONDS: '1', MIRRORFARM_MIRROR_AUTH_GRACE_SECONDS: '60' } })),
    tracked(startMirror(primary, { env: { MIRRORFARM_MIRROR_AUTH_CACHE_SECONDS: '1', MIRRORFARM_MIRROR_AUTH_GRACE_SECONDS: '0' } })),
  ]);
  mirrors.catch(() => {}); // awaited below, after the fixtures
  await createProject(primary, 'ONE');
  await createProject(primary, 'TWO');
  await createRepo(primary, 'ONE', 'app');
  await createRepo(primary, 'ONE', 'pub', { public: true });
  await createRepo(primary, 'TWO', 'secret');
  alice = await createUser(primary, 'alice');
  bob = await createUser(primary, 'bob');
  for (const user of ['alice', 'bob']) {
    await grantProject(primary, 'ONE', user, 'PROJECT_READ');
    await grantProject(primary, 'TWO', user, 'PROJECT_READ');
  }
  aliceKey = await sshKeyPair('alice');
  await addSshKey(primary, 'alice', aliceKey.publicKey);
  bobKey = await sshKeyPair('bob');
  await addSshKey(primary, 'bob', bobKey.publicKey);
  work = await makeWorkTree([{ 'README.md': 'secure\n' }]);
  for (const [p, s] of [['ONE', 'app'], ['ONE', 'pub'], ['TWO', 'secret']]) await gitOk(primary, ['push', primary.httpUrl(p!, s!), 'main'], { creds: ADMIN, cwd: work });
  [keyMirror, graceMirror, gracelessMirror] = await mirrors;
  const ids = await Promise.all([keyMirror, graceMirror, gracelessMirror].map((m) => authorizeMirror(primary, m, ['ONE'])));
  keyMirrorId = ids[0]!;
  await Promise.all([keyMirror, graceMirror, gracelessMirror].map((m) => waitForState(m, 'SYNCHRONIZED')));
});

after(async () => {
  if (process.env.MF_TEST_DEBUG) {
    process.stderr.write(`--- key mirror ---\n${keyMirror?.output().slice(-10000)}\n--- grace mirror ---\n${graceMirror?.output().slice(-10000)}\n`);
  }
  await stopMirrors();
  await primary?.stop();
  removeTempDirs();
});

// --- certificates and stand-in upstreams -------------------------------------------------------------------

x509.cryptoProvider.set(webcrypto);

/** A server certificate signed by the test CA (the one every mirror trusts), valid when and for what we say. */
async function issueCert(hosts: Array<{ type: 'dns' | 'ip'; value: string }>, notBefore: Date, notAfter: Date): Promise<{ cert: string; key: string }> {
  const ca = await testCa();
  const caCert = new x509.X509Certificate(readFileSync(ca.caCert, 'utf8'));
  const caKeyDer = createPrivateKey(readFileSync(join(dirname(ca.caCert), 'ca.key'), 'utf8')).export({ type: 'pkcs8', format: 'der' });
  const alg = { name: 'ECDSA', namedCurve: 'P-256' };
  const caKey = await webcrypto.subtle.importKey('pkcs8', caKeyDer, alg, false, ['sign']);
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: `01${randomBytes(15).toString('hex')}`,
    subject: [{ CN: [hosts[0]!.value] }],
    issuer: caCert.subjectName,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, false),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(hosts),
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
    ],
  });
  const key = createPrivateKey({ key: Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string;
  return { cert: cert.toString('pem'), key };
}

interface StandIn {
  url: string;
  server: HttpsServer;
  /** TCP connections plus requests: grows with every attempt, whether TLS fails or keep-alive is reused. */
  attempts(): number;
}

/** An HTTPS server presenting `cert` and answering 404 to everything (it is not a mirrorfarm primary). */
async function standIn(cert: { cert: string; key: string }): Promise<StandIn> {
  let attempts = 0;
  const server = createHttpsServer(cert, (_req, res) => {
    attempts++;
    res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>Not Found</h1>');
  });
  server.on('connection', () => attempts++);
  server.on('tlsClientError', () => {}); // the mirror hanging up on a certificate is what we expect
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, server, attempts: () => attempts };
}

// --- preflight ---------------------------------------------------------------------------------------------

describe('preflight refuses what it cannot trust, with one coded message naming the fix', () => {
  const CASES = {
    untrusted: { code: 'MIRROR_UPSTREAM_CERT_UNTRUSTED', fix: /not trusted.*add your private CA to trust\.caFile \(MIRRORFARM_TRUST_CA_FILE\)/ },
    expired: { code: 'MIRROR_UPSTREAM_CERT_EXPIRED', fix: /is expired: renew it/ },
    hostname: { code: 'MIRROR_UPSTREAM_CERT_HOSTNAME', fix: /does not cover its host name: issue it for 127\.0\.0\.1, or correct mirror\.upstreamUrl/ },
    notMirrorfarm: { code: 'MIRROR_UPSTREAM_NOT_MIRRORFARM', fix: /is not a mirrorfarm primary \(HTTP 404 from \/rest\/mirroring\/1\.0\/primary\): check mirror\.upstreamUrl/ },
    wrongServer: { code: 'MIRROR_BASE_URL_WRONG_SERVER', fix: /answers, but not from this mirror.*point baseUrl \(and the load balancer or DNS behind it\) at this mirror/ },
  } as const;
  type Case = keyof typeof CASES;
  const standIns = {} as Record<Exclude<Case, 'wrongServer'>, StandIn>;
  const mirrors = {} as Record<Case, TestServer>;
  const preflightStarts: Array<Promise<TestServer>> = [];

  before(async () => {
    const ca = await testCa();
    const otherCa = await writeDevCa({ outDir: join(tempDir('mf-other-ca-'), 'ca'), hosts: ['localhost', '127.0.0.1'] });
    const day = 24 * 3600 * 1000;
    const now = Date.now();
    const local = [{ type: 'ip' as const, value: '127.0.0.1' }, { type: 'dns' as const, value: 'localhost' }];
    const [untrusted, expired, hostname, notMirrorfarm] = await Promise.all([
      standIn({ cert: readFileSync(otherCa.tlsCert, 'utf8'), key: readFileSync(otherCa.tlsKey, 'utf8') }),
      issueCert(local, new Date(now - 30 * day), new Date(now - day)).then(standIn),
      issueCert([{ type: 'dns', value: 'wrong.example' }], new Date(now - day), new Date(now + 30 * day)).then(standIn),
      standIn({ cert: readFileSync(ca.tlsCert, 'utf8'), key: readFileSync(ca.tlsKey, 'utf8') }),
    ]);
    Object.assign(standIns, { untrusted, expired, hostname, notMirrorfarm });
    const started = await Promise.all([
      ...(['untrusted', 'expired', 'hostname', 'notMirrorfarm'] as const).map((c) => tracked(startMirror(primary, { env: { MIRRORFARM_MIRROR_UPSTREAM_URL: standIns[c].url } }), preflightStarts)),
      // The base URL answers over valid HTTPS, but it is the primary, not this mirror.
      tracked(startMirror(primary, { env: { MIRRORFARM_BASE_URL: primary.baseUrl } }), preflightStarts),
    ]);
    (['untrusted', 'expired', 'hostname', 'notMirrorfarm', 'wrongServer'] as const).forEach((c, i) => (mirrors[c] = started[i]!));
  });

  after(async () => {
    await stopMirrors(preflightStarts);
    await Promise.all(Object.values(standIns).map((s) => new Promise((resolve) => s.server.close(resolve))));
  });

  it('refuses an http:// upstream at startup: the process exits with MIRROR_UPSTREAM_NOT_HTTPS', async () => {
    const home = join(tempDir('mf-http-upstream-'), 'home');
    const r = await run(process.execPath, [join(ROOT, 'dist/cli/main.js'), 'serve'], {
      env: {
        PATH: process.env.PATH,
        MIRRORFARM_HOME: home,
        MIRRORFARM_MODE: 'mirror',
        MIRRORFARM_MIRROR_UPSTREAM_URL: primary.baseUrl.replace(/^https:/, 'http:'),
        MIRRORFARM_BASE_URL: `https://127.0.0.1:${await freePort()}`,
        MIRRORFARM_HTTP_HOST: '127.0.0.1',
        MIRRORFARM_HTTP_PORT: '0',
        MIRRORFARM_SSH_PORT: '0',
      },
      timeoutMs: 15_000,
    });
    assert.notEqual(r.code, 0, `exits non-zero:\n${r.stdout}${r.stderr}`);
    assert.notEqual(r.code, null, 'exits by itself, not killed');
    assert.match(r.stderr, /MIRROR_UPSTREAM_NOT_HTTPS/);
    assert.match(r.stderr, /MIRRORFARM_MIRROR_UPSTREAM_URL.*only over HTTPS/);
  });

  for (const [name, expected] of Object.entries(CASES)) {
    it(`${expected.code}: ERROR in /status with the fix, and not ready`, async () => {
      const mirror = mirrors[name as Case];
      const status = await eventually(async () => {
        const { body } = await mirrorGet(mirror, '/status');
        return body.error ? body : undefined;
      }, `${name}: an error in /status`);
      assert.equal(status.state, 'ERROR');
      assert.equal(status.error?.code, expected.code, JSON.stringify(status.error));
      assert.match(status.error!.message, expected.fix);
      const ready = await mirrorGet<{ ready: boolean; state: string }>(mirror, '/ready');
      assert.equal(ready.status, 503);
      assert.deepEqual(ready.body, { ready: false, state: 'ERROR' });
    });
  }

  it('keeps retrying with backoff, still ERROR, without crashing, and logs each problem once', async () => {
    const seen = Object.fromEntries(Object.entries(standIns).map(([k, s]) => [k, s.attempts()]));
    // Attempts are 1 s, 2 s, 4 s ... apart: within ~3 s every stand-in is tried again.
    await eventually(async () => Object.entries(standIns).every(([k, s]) => s.attempts() > seen[k]!), 'another attempt at every upstream', 20_000, 100);
    for (const [name, expected] of Object.entries(CASES)) {
      const mirror = mirrors[name as Case];
      assert.equal(mirror.process.exitCode, null, `${name}: still running`);
      const { body } = await mirrorGet<MirrorStatus>(mirror, '/status');
      assert.equal(body.state, 'ERROR', name);
      assert.equal(body.error?.code, expected.code, name);
      const logged = mirror.output().split('\n').filter((l) => l.includes('mirror cannot proceed'));
      assert.equal(logged.length, 1, `${name}: logged once, not per retry:\n${logged.join('\n')}`);
    }
    // Nothing was registered on the primary by any of them.
    const requests = await api(primary, 'GET', '/rest/mirroring/1.0/requests');
    for (const mirror of Object.values(mirrors)) assert.ok(!requests.text.includes((await mirrorGet(mirror, '/status')).body.mirrorId));
  });
});

// --- the mirror's key on the primary -----------------------------------------------------------------------

const mirrorKey = (): SshKeyPair => ({ privateKey: join(keyMirror.home, 'mirror', 'id_ed25519'), publicKey: '' });

/** A hand-made SSH session to the primary: `ssh git@primary COMMAND` with the given key. */
function sshExec(key: SshKeyPair, command: string, extra: string[] = []) {
  const options = sshCommand(key).split(' ').slice(1);
  return run('ssh', ['-F', '/dev/null', ...options, ...extra, '-p', String(primary.sshPort), `${primary.sshUser}@127.0.0.1`, command], { timeoutMs: 20_000 });
}

describe("the mirror's key on the primary: read-only, and only the projects it carries", () => {
  it('cannot read a repository of a project the mirror does not carry', async () => {
    const r = await sshExec(mirrorKey(), "git-upload-pack '/two/secret.git'");
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /Repository TWO\/secret does not exist or you do not have permission to see it/);
    assert.equal(r.stdout, '', 'not a byte of the repository');
    const ls = await git(primary, ['ls-remote', primary.sshUrl('TWO', 'secret')], { sshKey: mirrorKey() });
    assert.notEqual(ls.code, 0);
    assert.match(ls.stderr, /does not exist or you do not have permission to see it/);
    assert.equal(ls.stdout, '');
  });

  it('can never push, not even to a repository it carries', async () => {
    const before = await gitOk(primary, ['ls-remote', primary.httpUrl('ONE', 'app')], { creds: ADMIN });
    const r = await sshExec(mirrorKey(), "git-receive-pack '/one/app.git'");
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /You do not have permission to push to ONE\/app/);
    await gitOk(null, ['commit', '-q', '--allow-empty', '-m', 'from the mirror key'], { cwd: work });
    const push = await git(primary, ['push', primary.sshUrl('ONE', 'app'), 'HEAD:refs/heads/main', 'HEAD:refs/heads/sneaky'], { sshKey: mirrorKey(), cwd: work });
    assert.notEqual(push.code, 0);
    assert.match(push.stderr, /You do not have permission to push to ONE\/app/);
    assert.equal(await gitOk(primary, ['ls-remote', primary.httpUrl('ONE', 'app')], { creds: ADMIN }), before, 'nothing changed');
  });

  it('reads the repositories it carries', async () => {
    const want = parseLsRemote(await gitOk(primary, ['ls-remote', primary.httpUrl('ONE', 'app')], { creds: ADMIN }));
    const got = parseLsRemote(await gitOk(primary, ['ls-remote', primary.sshUrl('ONE', 'app')], { sshKey: mirrorKey() }));
    assert.deepEqual(got, want);
    const raw = await sshExec(mirrorKey(), "git-upload-pack '/one/app.git'");
    assert.match(raw.stdout, new RegExp(`${want.get('refs/heads/main')} refs/heads/main`), 'the hand-made session gets the ref advertisement');
  });
});

// --- deletion ----------------------------------------------------------------------------------------------

describe('a deleted mirror loses access within a second', () => {
  let master: ChildProcess | undefined;
  after(() => {
    if (master && master.exitCode === null && master.signalCode === null) master.kill('SIGKILL');
  });

  it('refuses its key, closes its open SSH connection, and the mirror stops serving with a clear message', async () => {
    // A multiplexed connection held open with the mirror key, as a mirror node keeps one for its fetches.
    const control = join(tempDir('mf-ctl-'), 'ctl');
    const options = sshCommand(mirrorKey()).split(' ').slice(1);
    master = spawn('ssh', ['-F', '/dev/null', ...options, '-M', '-N', '-S', control, '-o', 'ControlPersist=no', '-p', String(primary.sshPort), `${primary.sshUser}@127.0.0.1`], { stdio: 'ignore' });
    const masterExited = new Promise<number>((resolve) => master!.once('exit', () => resolve(Date.now())));
    await eventually(async () => (await run('ssh', ['-F', '/dev/null', '-S', control, '-O', 'check', `${primary.sshUser}@127.0.0.1`])).code === 0, 'the SSH master connection', 10_000, 100);
    const viaMaster = await git(primary, ['ls-remote', primary.sshUrl('ONE', 'app')], { env: { GIT_SSH_COMMAND: `${sshCommand(mirrorKey())} -S ${control}` } });
    assert.equal(viaMaster.code, 0, viaMaster.stderr);

    const r = await api(primary, 'DELETE', `/rest/mirroring/1.0/mirrorServers/${keyMirrorId}`);
    assert.equal(r.status, 204, r.text);
    const t0 = Date.now();
    const refused = await refusedWithin(1000, () => git(primary, ['ls-remote', primary.sshUrl('ONE', 'app')], { sshKey: mirrorKey() }), 'the deleted mirror\'s key');
    assert.ok(refused.ms <= 1000, `key refused ${refused.ms} ms after the deletion`);
    assert.match(refused.stderr, /Permission denied \(publickey\)/);
    const raw = await sshExec(mirrorKey(), "git-upload-pack '/one/app.git'");
    assert.equal(raw.code, 255);
    assert.equal(raw.stdout, '');

    const closedAt = await Promise.race([masterExited, sleep(3000).then(() => undefined)]);
    assert.ok(closedAt !== undefined, 'the primary closed the open SSH connection');
    assert.ok(closedAt - t0 <= 1000, `connection closed ${closedAt - t0} ms after the deletion`);

    const status = await waitForState(keyMirror, 'REMOVED', 5000);
    assert.ok(Date.now() - t0 < 1500, `REMOVED after ${Date.now() - t0} ms`);
    assert.equal(status.error, undefined);
    assert.equal((await mirrorGet(keyMirror, '/ready')).status, 503);
    assert.equal(keyMirror.process.exitCode, null, 'the mirror process keeps running and says why it serves nothing');

    const removed = new RegExp(`This mirror was removed from its primary and serves nothing: clone from the primary, ${primary.baseUrl.replace(/[.]/g, '\\.')}`);
    for (const [what, url, options] of [
      ['alice over HTTPS', keyMirror.httpUrl('ONE', 'app'), { creds: alice }],
      ['anonymous, public repository', keyMirror.httpUrl('ONE', 'pub'), {}],
      ['alice over SSH', keyMirror.sshUrl('ONE', 'app'), { sshKey: aliceKey }],
    ] as const) {
      const clone = await git(keyMirror, ['clone', url, join(tempDir(), 'clone')], options);
      assert.notEqual(clone.code, 0, `${what}: refused`);
      assert.match(clone.stderr, removed, what);
    }
    assert.doesNotMatch(keyMirror.output(), /SSH authentication failed unexpectedly/);
  });
});

// --- grace period ------------------------------------------------------------------------------------------

describe('while the primary is down', () => {
  it('users verified before keep cloning for the grace period; others are told the primary cannot be reached', async () => {
    await waitForSameRefs(primary, graceMirror, 'ONE', 'app', alice);
    await waitForSameRefs(primary, gracelessMirror, 'ONE', 'app', alice);
    const want = await gitOk(primary, ['ls-remote', primary.httpUrl('ONE', 'app')], { creds: ADMIN });
    await gitOk(graceMirror, ['clone', '-q', graceMirror.httpUrl('ONE', 'app'), join(tempDir(), 'first')], { creds: alice });
    await gitOk(graceMirror, ['ls-remote', graceMirror.sshUrl('ONE', 'app')], { sshKey: aliceKey });
    await gitOk(gracelessMirror, ['ls-remote', gracelessMirror.httpUrl('ONE', 'app')], { creds: alice });

    await primary.stop();
    await sleep(1500); // past the 1 s credential cache: every answer now needs the primary
    assert.notEqual(primary.process.exitCode, null, 'the primary is down');

    const dest = join(tempDir(), 'during-outage');
    await gitOk(graceMirror, ['clone', '-q', graceMirror.httpUrl('ONE', 'app'), dest], { creds: alice });
    assert.equal(readFileSync(join(dest, 'README.md'), 'utf8'), 'secure\n');
    assert.equal(await gitOk(graceMirror, ['ls-remote', graceMirror.httpUrl('ONE', 'app')], { creds: alice }), want);
    assert.equal(await gitOk(graceMirror, ['ls-remote', graceMirror.sshUrl('ONE', 'app')], { sshKey: aliceKey }), want);

    const stranger = await git(graceMirror, ['ls-remote', graceMirror.httpUrl('ONE', 'app')], { creds: bob });
    assert.notEqual(stranger.code, 0);
    assert.match(stranger.stderr, /The primary server cannot be reached to verify your credentials right now/);
    assert.match(stranger.stderr, /503/);
    const strangerSsh = await git(graceMirror, ['ls-remote', graceMirror.sshUrl('ONE', 'app')], { sshKey: bobKey });
    assert.notEqual(strangerSsh.code, 0);
    assert.match(strangerSsh.stderr, /The primary server cannot be reached to verify your credentials right now/);
    assert.equal(strangerSsh.stdout, '');

    const anonymous = join(tempDir(), 'anonymous');
    await gitOk(graceMirror, ['clone', '-q', graceMirror.httpUrl('ONE', 'pub'), anonymous]);
    assert.equal(readFileSync(join(anonymous, 'README.md'), 'utf8'), 'secure\n');
    assert.equal(graceMirror.process.exitCode, null);

    // Without a grace period, alice is refused as well, with the same message.
    const noGrace = await git(gracelessMirror, ['ls-remote', gracelessMirror.httpUrl('ONE', 'app')], { creds: alice });
    assert.notEqual(noGrace.code, 0);
    assert.match(noGrace.stderr, /The primary server cannot be reached to verify your credentials right now/);
  });
});
