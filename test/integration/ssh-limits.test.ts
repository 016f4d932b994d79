// The SSH listener's defences, in process with small limits: unauthenticated connections are bounded in number
// and in time, authentication attempts per connection are bounded, host keys are created once, and close()
// ends idle connections. The git side is not involved (no user has a key here). Runs against the front end
// MF_SSH_FRONTEND names: the built-in server enforces the limits itself, sshd through MaxStartups,
// LoginGraceTime (whole seconds) and MaxAuthTries, and mirrorfarm counts what sshd logs.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import ssh2 from 'ssh2';
import { createLogger } from '../../src/obs/logger.js';
import { Metrics } from '../../src/obs/metrics.js';
import { userInfo } from 'node:os';
import type { SshFrontEnd, SshFrontEndOptions } from '../../src/transport/ssh/front-end.js';
import type { SshServerDeps } from '../../src/transport/ssh/ssh-server.js';
import { SshServer } from '../../src/transport/ssh/ssh-server.js';
import { OpenSshFrontEnd } from '../../src/transport/sshd/openssh-front-end.js';
import { SSH_FRONTEND, sshKeyPair } from '../helpers/server.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

const metrics = new Metrics();
const context: SshServerDeps = {
  log: createLogger(process.env.MF_TEST_LOG === '1' ? 'info' : 'silent'),
  metrics,
  git: undefined as unknown as SshServerDeps['git'], // no key is ever accepted, so git is never reached
  keys: { resolve: async () => undefined },
  exampleCloneUrl: () => undefined,
};

let server: SshFrontEnd;
let port: number;
const base = tempDir('mf-ssh-limits-');
const hostKeyDir = join(base, 'ssh');
const user = SSH_FRONTEND === 'openssh' ? userInfo().username : 'git';
let runs = 0;

function frontEnd(options: Omit<SshFrontEndOptions, 'runDir'>): SshFrontEnd {
  // Each front end its own run directory (sshd's configuration and control socket).
  const full = { ...options, user, runDir: join(base, `run-${++runs}`) };
  return SSH_FRONTEND === 'openssh' ? new OpenSshFrontEnd(context, full) : new SshServer(context, full);
}
const greeting = SSH_FRONTEND === 'openssh' ? /^SSH-2\.0-OpenSSH_/ : /^SSH-2\.0-mirrorfarm\r\n/;

before(async () => {
  server = frontEnd({ host: '127.0.0.1', port: 0, hostKeyDir, limits: { maxUnauthenticated: 2, loginGraceMs: 500, maxAuthFailures: 3 } });
  port = await server.listen();
});

after(async () => {
  await server.close(true);
  removeTempDirs();
});

/** A raw TCP connection; resolves with the first bytes the server sent (or '' when it closed first). */
async function rawConnection(): Promise<{ socket: Socket; greeting: Promise<string>; closed: Promise<void> }> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  const closed = once(socket, 'close').then(() => undefined);
  const greeting = new Promise<string>((resolve) => {
    socket.once('data', (c: Buffer) => resolve(c.toString('latin1')));
    socket.once('close', () => resolve(''));
  });
  await once(socket, 'connect');
  return { socket, greeting, closed };
}

/** sshd's refusals are counted from its log, a moment after the client saw them. */
async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 60 && !(await check()); i++) await sleep(50);
  assert.ok(await check(), what);
}

async function counted(outcome: string): Promise<number> {
  const metric = (await metrics.registry.getSingleMetric('mirrorfarm_ssh_connections_total')?.get())?.values ?? [];
  return metric.filter((v) => v.labels.outcome === outcome).reduce((sum, v) => sum + v.value, 0);
}

describe('SSH listener limits', () => {
  it('drops connections beyond the unauthenticated limit, and idle ones after the login grace time', async () => {
    const first = await rawConnection();
    const second = await rawConnection();
    assert.match(await first.greeting, greeting);
    assert.match(await second.greeting, greeting);
    const third = await rawConnection();
    // The built-in server drops it without a word; sshd says why before it hangs up.
    assert.equal(await third.greeting, SSH_FRONTEND === 'openssh' ? 'Exceeded MaxStartups\r\n' : '', 'the third unauthenticated connection is dropped');
    await waitFor(async () => (await counted('refused')) >= 1, 'the refusal is counted');

    // Neither of the first two says anything: both are closed when the grace time runs out.
    const started = Date.now();
    await Promise.all([first.closed, second.closed]);
    const waited = Date.now() - started;
    assert.ok(waited < 5000, `closed after ${waited} ms`);
    // sshd does not log a login timeout (it happens in a signal handler), so only the built-in server counts it.
    if (SSH_FRONTEND === 'builtin') await waitFor(async () => (await counted('login_timeout')) === 2, 'both closed by the login deadline');

    // Room again.
    const fourth = await rawConnection();
    assert.match(await fourth.greeting, greeting);
    fourth.socket.destroy();
  });

  it('ends a connection after too many refused keys', async () => {
    const pairs = await Promise.all([1, 2, 3, 4, 5].map((i) => sshKeyPair(`k${i}`)));
    const offered: number[] = [];
    const client = new ssh2.Client();
    const outcome = new Promise<string>((resolve) => {
      client.on('error', (err: Error) => resolve(err.message));
      client.on('close', () => resolve('closed'));
      client.on('ready', () => resolve('authenticated'));
    });
    let next = 0;
    client.connect({
      host: '127.0.0.1',
      port,
      username: user,
      hostVerifier: () => true,
      authHandler: (_methods, _partial, done) => {
        const pair = pairs[next];
        if (!pair) return done(false as unknown as ssh2.AuthenticationType);
        offered.push(++next);
        done({ type: 'publickey', username: user, key: readFileSync(pair.privateKey) } as unknown as ssh2.AuthenticationType);
      },
    });
    const result = await outcome;
    assert.notEqual(result, 'authenticated');
    // Three refused keys are the limit: the server hangs up (a fourth request may already be on its way).
    assert.ok(offered.length <= 4, `offered ${offered.length} keys`);
    await waitFor(async () => (await counted('too_many_auth_attempts')) >= 1, 'the connection is counted as making too many attempts');
    client.end();
  });

  it('creates its host keys once, privately, and publishes their public halves', async () => {
    const published = server.hostPublicKeys();
    assert.equal(published.length, 2);
    assert.match(published[0]!, /^ssh-ed25519 AAAA[\w+/=]+$/);
    assert.match(published[1]!, /^ecdsa-sha2-nistp256 AAAA[\w+/=]+$/);
    assert.equal(readFileSync(join(hostKeyDir, 'ssh_host_ed25519_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ').trim(), published[0]);

    const again = frontEnd({ host: '127.0.0.1', port: 0, hostKeyDir });
    const againPort = await again.listen();
    assert.deepEqual(again.hostPublicKeys(), published);
    // An idle, unauthenticated connection does not keep a graceful close waiting.
    const idle = connect({ host: '127.0.0.1', port: againPort });
    idle.on('error', () => {});
    await once(idle, 'connect');
    await sleep(50);
    const started = Date.now();
    await again.close();
    assert.ok(Date.now() - started < 2000, 'closed promptly');
  });
});
