// The OpenSSH front end's own parts (ssh.frontend: openssh), whatever MF_SSH_FRONTEND says: the privilege
// boundary between sshd and the server (the keys command, the session script's control socket), the files it
// writes, its errors at start, and sshd being restarted when it dies. The SSH suites themselves run against
// this front end with MF_SSH_FRONTEND=openssh.
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import ssh2 from 'ssh2';
import { fingerprintOf } from '../../src/domain/users.js';
import { Frame, frame, FrameReader } from '../../src/transport/sshd/frames.js';
import { childrenOf } from '../../src/transport/sshd/processes.js';
import { addSshKey, createProject, createRepo, createUser, grantRepo } from '../helpers/fixtures.js';
import { run } from '../helpers/run.js';
import { eventually, git, ROOT, sshKeyPair, startServer, type SshKeyPair, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

const OPENSSH = { MIRRORFARM_SSH_FRONTEND: 'openssh', MIRRORFARM_SSH_USER: userInfo().username };
let server: TestServer;
let alice: SshKeyPair;
let carol: SshKeyPair;

before(async () => {
  server = await startServer({ env: OPENSSH });
  [alice, carol] = await Promise.all([sshKeyPair('alice'), sshKeyPair('carol')]);
  await createProject(server, 'PROJ');
  await createRepo(server, 'PROJ', 'repo');
  for (const name of ['alice', 'carol']) await createUser(server, name);
  await grantRepo(server, 'PROJ', 'repo', 'alice', 'REPO_WRITE');
  await addSshKey(server, 'alice', alice.publicKey);
  await addSshKey(server, 'carol', carol.publicKey);
});

after(async () => {
  await server?.stop();
  removeTempDirs();
});

const socketPath = () => join(server.home, 'run', 'sshd.sock');
const blobOf = (publicKey: string) => Buffer.from(publicKey.split(' ')[1]!, 'base64');

/** One exchange with the control socket as a session script would have it: the frames the server sends back. */
function control(type: number, payload: unknown): Promise<Array<{ type: number; text: string }>> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath());
    const reader = new FrameReader();
    const frames: Array<{ type: number; text: string }> = [];
    socket.on('connect', () => socket.write(frame(type, JSON.stringify(payload))));
    socket.on('data', (c: Buffer) => frames.push(...reader.push(c).map((f) => ({ type: f.type, text: f.payload.toString('utf8') }))));
    socket.on('error', reject);
    socket.on('close', () => resolve(frames));
  });
}

describe('OpenSSH front end', () => {
  it('keeps its socket, configuration and host key copies owner-only', () => {
    assert.equal(statSync(socketPath()).mode & 0o777, 0o600, 'the control socket is 0600');
    const dir = join(server.home, 'run', 'sshd');
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    const config = readFileSync(join(dir, 'sshd_config'), 'utf8');
    assert.equal(statSync(join(dir, 'sshd_config')).mode & 0o777, 0o600);
    for (const line of ['AuthorizedKeysFile none', 'ExposeAuthInfo yes', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'PermitTTY no', 'DisableForwarding yes', 'AcceptEnv GIT_PROTOCOL', 'SetEnv SHLVL=1', `AllowUsers ${userInfo().username}`]) {
      assert.ok(config.split('\n').includes(line), `sshd_config has "${line}"`);
    }
    for (const file of config.split('\n').filter((l) => l.startsWith('HostKey ')).map((l) => l.slice(8))) assert.equal(statSync(file).mode & 0o777, 0o600, file);
  });

  it('the keys command prints one restricted line with the forced command for a registered key, nothing for others', async () => {
    const keysCommand = join(ROOT, 'bin', 'mirrorfarm-sshd-keys');
    const [type, key] = alice.publicKey.split(' ') as [string, string];
    const known = await run(keysCommand, [socketPath(), type, key], { env: { PATH: '/usr/bin:/bin' } });
    assert.equal(known.code, 0, known.stderr);
    const fingerprint = fingerprintOf(blobOf(alice.publicKey));
    assert.equal(known.stdout, `restrict,command="${join(ROOT, 'bin', 'mirrorfarm-sshd-session')} ${socketPath()} ${fingerprint}" ${type} ${key}\n`);
    const stranger = await sshKeyPair('stranger');
    const unknown = await run(keysCommand, [socketPath(), ...(stranger.publicKey.split(' ').slice(0, 2) as [string, string])], { env: { PATH: '/usr/bin:/bin' } });
    assert.equal(unknown.code, 0);
    assert.equal(unknown.stdout, '', 'no line: sshd refuses the key');
    // What is not a key type and a base64 blob never reaches the server.
    const odd = await run(keysCommand, [socketPath(), 'ssh-ed25519"', key], { env: { PATH: '/usr/bin:/bin' } });
    assert.equal(odd.stdout, '');
  });

  it('forged session regression: a session whose fingerprint does not match the key sshd verified is refused', async () => {
    const aliceFingerprint = fingerprintOf(blobOf(alice.publicKey));
    const carolAuth = `publickey ${carol.publicKey.split(' ').slice(0, 2).join(' ')}\n`;
    const cases: Array<[string, Record<string, unknown>]> = [
      ["carol's verified key with alice's fingerprint", { fingerprint: aliceFingerprint, userAuth: carolAuth }],
      ['no $SSH_USER_AUTH at all', { fingerprint: aliceFingerprint }],
      ['two keys in $SSH_USER_AUTH', { fingerprint: aliceFingerprint, userAuth: `publickey ${alice.publicKey.split(' ').slice(0, 2).join(' ')}\n${carolAuth}` }],
      ['a password instead of a key', { fingerprint: aliceFingerprint, userAuth: 'password\n' }],
    ];
    for (const [what, hello] of cases) {
      const frames = await control(Frame.HELLO, { ...hello, command: "git-receive-pack '/proj/repo.git'", ppid: process.pid });
      assert.deepEqual(frames.map((f) => f.type), [Frame.STDERR, Frame.EXIT], what);
      assert.match(frames[0]!.text, /session refused: the key sshd verified does not match this session/, what);
      assert.equal(frames[1]!.text, '1', what);
    }
    assert.match(server.output(), /SSH session refused: the verified key does not match the forced command/);
    assert.doesNotMatch(server.output(), /"user":"alice"[^\n]*"service":"receive-pack"/, 'nothing ran as alice');
  });

  it('key-confusion regression: a key offered but not proven never reaches the forced command', async () => {
    // An agent that lists alice's public key but cannot sign with it: sshd's keys command is asked (the
    // "acceptable?" query) and answers with alice's line, but without a signature there is no session.
    const alicePublic = ssh2.utils.parseKey(alice.publicKey) as ssh2.ParsedKey;
    class HalfAgent extends ssh2.BaseAgent<ssh2.ParsedKey> {
      override getIdentities(cb: ssh2.IdentityCallback<ssh2.ParsedKey>): void {
        cb(undefined, [alicePublic]);
      }
      override sign(_key: ssh2.ParsedKey, _data: Buffer, options: ssh2.SigningRequestOptions | ssh2.SignCallback, cb?: ssh2.SignCallback): void {
        (typeof options === 'function' ? options : cb)!(new Error('no private key for this identity'));
      }
    }
    const before = server.output().length;
    const outcome = await new Promise<string>((resolve) => {
      const client = new ssh2.Client();
      client.on('error', (err: Error & { level?: string }) => err.level !== 'agent' && resolve(err.message));
      client.on('ready', () => {
        client.end();
        resolve('authenticated');
      });
      client.connect({ host: '127.0.0.1', port: server.sshPort, username: server.sshUser, agent: new HalfAgent(), hostVerifier: () => true, readyTimeout: 10_000 });
    });
    assert.match(outcome, /All configured authentication methods failed/);
    const log = server.output().slice(before);
    assert.doesNotMatch(log, /Accepted publickey/, 'sshd accepted nothing');
    assert.doesNotMatch(log, /SSH (git operation|exec|shell)/, 'no session reached the server');
  });

  it('restarts sshd when it dies, on the same port', async () => {
    const watchdog = childrenOf(server.process.pid!).find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('sshd_config'))!;
    const sshd = childrenOf(watchdog).find((pid) => readFileSync(`/proc/${pid}/stat`, 'utf8').includes('(sshd)'));
    assert.ok(sshd, 'sshd runs as a child of the watchdog');
    process.kill(sshd, 'SIGKILL');
    await eventually(async () => /sshd exited; restarting it/.test(server.output()), 'the restart');
    await eventually(async () => (await git(server, ['ls-remote', server.sshUrl('PROJ', 'repo')], { sshKey: alice })).code === 0, 'SSH serving again', 20_000, 200);
  });
});

describe('OpenSSH front end start-up errors', () => {
  it('names the package when sshd is missing (SSHD_NOT_FOUND)', async () => {
    await assert.rejects(startServer({ env: { ...OPENSSH, MIRRORFARM_SSH_SSHD_PATH: '/nonexistent/sshd' } }), (err: Error) => {
      assert.match(err.message, /SSHD_NOT_FOUND: ssh\.frontend is openssh but \/nonexistent\/sshd cannot be run: install OpenSSH's server \(Debian\/Ubuntu: apt-get install openssh-server\)/);
      return true;
    });
  });

  it('refuses an ssh.user other than the account it runs as (SSH_USER_MISMATCH)', async () => {
    const other = userInfo().username === 'git' ? 'gitlab' : 'git';
    await assert.rejects(startServer({ env: { ...OPENSSH, MIRRORFARM_SSH_USER: other } }), (err: Error) => {
      assert.match(err.message, new RegExp(`SSH_USER_MISMATCH: ssh\\.user is "${other}" but mirrorfarm runs as "${userInfo().username}"`));
      assert.match(err.message, new RegExp(`Set ssh\\.user: ${userInfo().username}`));
      return true;
    });
  });
});
