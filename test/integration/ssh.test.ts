// Git over SSH with the real OpenSSH and git clients (and ssh2's client where a misbehaving client is needed):
// clone, fetch and push in protocol v0 and v2, refusals and their messages, the key-confusion regression,
// shell and exec hardening, host key persistence, and a client killed mid-push.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import ssh2 from 'ssh2';
import { addSshKey, createProject, createRepo, createUser, grantRepo } from '../helpers/fixtures.js';
import { run, type RunResult } from '../helpers/run.js';
import { api, git, gitOk, makeWorkTree, parseLsRemote, SSH_FRONTEND, sshCommand, sshKeyPair, startServer, type SshKeyPair, type TestServer } from '../helpers/server.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

let server: TestServer;
/** alice may write PROJ/repo, bob may read it, carol has no access; admin is a sysadmin. */
const keys = {} as Record<'admin' | 'alice' | 'bob' | 'carol' | 'stranger', SshKeyPair>;

before(async () => {
  server = await startServer();
  const pairs = await Promise.all(['admin', 'alice', 'bob', 'carol', 'stranger'].map((name) => sshKeyPair(name)));
  [keys.admin, keys.alice, keys.bob, keys.carol, keys.stranger] = pairs as [SshKeyPair, SshKeyPair, SshKeyPair, SshKeyPair, SshKeyPair];
  await createProject(server, 'PROJ');
  await createRepo(server, 'PROJ', 'repo');
  for (const name of ['alice', 'bob', 'carol'] as const) await createUser(server, name);
  await grantRepo(server, 'PROJ', 'repo', 'alice', 'REPO_WRITE');
  await grantRepo(server, 'PROJ', 'repo', 'bob', 'REPO_READ');
  for (const name of ['admin', 'alice', 'bob', 'carol'] as const) await addSshKey(server, name, keys[name].publicKey);
});

after(async () => {
  await server?.stop();
  removeTempDirs();
});

const url = (slug = 'repo', project = 'proj') => server.sshUrl(project, slug);

/** OpenSSH against the server: `ssh [OPTIONS] -p PORT git@127.0.0.1 [COMMAND]`. */
function ssh(key: SshKeyPair, command: string[], options: { user?: string; input?: string; logLevel?: string; flags?: string[] } = {}): Promise<RunResult> {
  // OpenSSH takes the first value given for an option, so a LogLevel of our own goes before the helper's.
  const base = [...(options.logLevel ? ['-o', `LogLevel=${options.logLevel}`] : []), ...sshCommand(key).split(' ').slice(1)];
  const args = [...base, ...(options.flags ?? []), '-p', String(server.sshPort), `${options.user ?? server.sshUser}@127.0.0.1`, ...command];
  return run('ssh', args, { input: options.input ?? '', timeoutMs: 30_000 });
}

async function refsOnServer(slug = 'repo'): Promise<Map<string, string>> {
  return parseLsRemote(await gitOk(server, ['ls-remote', url(slug)], { sshKey: keys.admin }));
}

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const r = await api(server, 'GET', '/metrics', undefined, null);
  let total = 0;
  for (const line of r.text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/** ssh2's client, connected and authenticated as git (signing refusals of an agent are not errors). */
function sshClient(auth: Partial<ssh2.ConnectConfig>): Promise<ssh2.Client> {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    client.on('error', (err: Error & { level?: string }) => {
      if (err.level !== 'agent') reject(err);
    });
    client.on('ready', () => resolve(client));
    client.connect({ host: '127.0.0.1', port: server.sshPort, username: server.sshUser, hostVerifier: () => true, readyTimeout: 10_000, ...auth });
  });
}

/** Runs a command (or a shell, for null) on an ssh2 connection. */
function execOn(client: ssh2.Client, command: string | null, input = ''): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const onChannel = (err: Error | undefined, channel: ssh2.ClientChannel) => {
      if (err) return reject(err);
      let stdout = '';
      let stderr = '';
      channel.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
      channel.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
      channel.on('close', (code: number | null) => resolve({ stdout, stderr, code }));
      channel.end(input);
    };
    if (command) client.exec(command, onChannel);
    else client.shell(false, onChannel);
  });
}

describe('git over SSH', () => {
  it('pushes, clones and fetches with protocol v0 and v2', async () => {
    const work = await makeWorkTree([{ 'README.md': 'hello\n' }, { 'b.txt': 'b\n' }]);
    await gitOk(server, ['push', url(), 'main'], { cwd: work, sshKey: keys.alice });

    for (const protocol of [0, 2] as const) {
      const dest = join(tempDir(), 'clone');
      // Project key in upper case and no ".git": both are accepted.
      const r = await git(server, ['clone', server.sshUrl('PROJ', 'repo').replace(/\.git$/, ''), dest], { sshKey: keys.bob, protocol, env: { GIT_TRACE_PACKET: '1' } });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(readFileSync(join(dest, 'README.md'), 'utf8'), 'hello\n');
      if (protocol === 2) assert.match(r.stderr, /clone< version 2/);
      else assert.doesNotMatch(r.stderr, /< version 2/);

      // A new commit arrives with fetch.
      writeFileSync(join(work, `v${protocol}.txt`), `${protocol}\n`);
      await gitOk(null, ['add', '-A'], { cwd: work });
      await gitOk(null, ['commit', '-q', '-m', `for v${protocol}`], { cwd: work });
      await gitOk(server, ['push', url(), 'main'], { cwd: work, sshKey: keys.alice });
      const head = (await gitOk(null, ['rev-parse', 'HEAD'], { cwd: work })).trim();
      await gitOk(server, ['fetch', 'origin'], { cwd: dest, sshKey: keys.bob, protocol });
      assert.equal((await gitOk(null, ['rev-parse', 'origin/main'], { cwd: dest })).trim(), head);
    }

    const v2 = await git(server, ['-c', 'protocol.version=2', 'ls-remote', url()], { sshKey: keys.bob, env: { GIT_TRACE_PACKET: '1' } });
    assert.equal(v2.code, 0, v2.stderr);
    assert.match(v2.stderr, /ls-remote< version 2/);
    assert.match(v2.stderr, /ls-remote> command=ls-refs/);
  });

  it('force pushes, pushes tags and deletes branches', async () => {
    const work = await makeWorkTree([{ 'f.txt': 'feature\n' }]);
    await gitOk(server, ['push', '--force', url(), 'main:refs/heads/feature'], { cwd: work, sshKey: keys.alice });
    writeFileSync(join(work, 'f.txt'), 'rewritten\n');
    await gitOk(null, ['commit', '-qa', '--amend', '-m', 'rewritten'], { cwd: work });
    const rewritten = (await gitOk(null, ['rev-parse', 'HEAD'], { cwd: work })).trim();
    const refused = await git(server, ['push', url(), 'HEAD:refs/heads/feature'], { cwd: work, sshKey: keys.alice });
    assert.notEqual(refused.code, 0, 'a non-fast-forward push without --force is rejected');
    await gitOk(server, ['push', '--force', url(), 'HEAD:refs/heads/feature'], { cwd: work, sshKey: keys.alice });
    let refs = await refsOnServer();
    assert.equal(refs.get('refs/heads/feature'), rewritten);

    await gitOk(null, ['tag', 'light'], { cwd: work });
    await gitOk(null, ['tag', '-a', '-m', 'release', 'v1.0'], { cwd: work });
    await gitOk(server, ['push', url(), '--tags'], { cwd: work, sshKey: keys.alice });
    refs = await refsOnServer();
    assert.equal(refs.get('refs/tags/light'), rewritten);
    assert.equal(refs.get('refs/tags/v1.0^{}'), rewritten);

    await gitOk(server, ['push', url(), '--delete', 'feature', 'refs/tags/light'], { cwd: work, sshKey: keys.alice });
    refs = await refsOnServer();
    assert.ok(!refs.has('refs/heads/feature'));
    assert.ok(!refs.has('refs/tags/light'));
    assert.ok(refs.has('refs/tags/v1.0'));
  });

  it('tells a user about unknown repositories and missing permissions, and changes nothing', async () => {
    const notFound = /mirrorfarm: Repository PROJ\/nope does not exist or you do not have permission to see it\./;
    const unknown = await git(server, ['clone', url('nope'), join(tempDir(), 'c')], { sshKey: keys.bob });
    assert.equal(unknown.code, 128);
    assert.match(unknown.stderr, notFound);

    // Without read permission the repository looks exactly like a missing one.
    const hidden = await git(server, ['clone', url(), join(tempDir(), 'c')], { sshKey: keys.carol });
    assert.equal(hidden.code, 128);
    assert.match(hidden.stderr, /mirrorfarm: Repository PROJ\/repo does not exist or you do not have permission to see it\./);

    // The SSH exit status of a refused command is 1.
    const raw = await ssh(keys.bob, ["git-upload-pack '/proj/nope.git'"]);
    assert.equal(raw.code, 1);
    assert.match(raw.stderr, notFound);

    // Read access does not allow pushing; the refs stay as they were.
    const before = await refsOnServer();
    const work = join(tempDir(), 'bob');
    await gitOk(server, ['clone', '-q', url(), work], { sshKey: keys.bob });
    writeFileSync(join(work, 'bob.txt'), 'bob\n');
    await gitOk(null, ['add', '-A'], { cwd: work });
    await gitOk(null, ['commit', '-q', '-m', 'bob'], { cwd: work });
    const push = await git(server, ['push', 'origin', 'main', 'main:refs/heads/bob'], { cwd: work, sshKey: keys.bob });
    assert.equal(push.code, 128);
    assert.match(push.stderr, /mirrorfarm: You do not have permission to push to PROJ\/repo\./);
    assert.deepEqual(await refsOnServer(), before);
  });

  it('accepts RSA (with SHA-2 signatures) and ECDSA user keys', async () => {
    for (const [type, bits] of [['rsa', '2048'], ['ecdsa', '256']] as const) {
      const privateKey = join(tempDir('mf-key-'), `id_${type}`);
      const made = await run('ssh-keygen', ['-q', '-t', type, '-b', bits, '-N', '', '-C', type, '-f', privateKey]);
      assert.equal(made.code, 0, made.stderr);
      const pair = { privateKey, publicKey: readFileSync(`${privateKey}.pub`, 'utf8').trim() };
      await createUser(server, `user-${type}`);
      await grantRepo(server, 'PROJ', 'repo', `user-${type}`, 'REPO_READ');
      await addSshKey(server, `user-${type}`, pair.publicKey);
      const r = await git(server, ['ls-remote', url()], { sshKey: pair });
      assert.equal(r.code, 0, `${type}: ${r.stderr}`);
      assert.match(r.stdout, /refs\/heads\/main/);
    }
  });

  it('refuses an unregistered key and counts the failure', async () => {
    const failures = await metric('mirrorfarm_authentications_total', { outcome: 'failure' });
    const r = await ssh(keys.stranger, ["git-upload-pack '/proj/repo.git'"]);
    assert.equal(r.code, 255);
    assert.match(r.stderr, /Permission denied \(publickey\)/);
    const clone = await git(server, ['clone', url(), join(tempDir(), 'c')], { sshKey: keys.stranger });
    assert.equal(clone.code, 128);
    // Counted when the server sees the connection close, which may be a moment after the client exited.
    for (let i = 0; i < 40 && (await metric('mirrorfarm_authentications_total', { outcome: 'failure' })) < failures + 2; i++) await sleep(50);
    assert.equal(await metric('mirrorfarm_authentications_total', { outcome: 'failure' }), failures + 2, 'each refused login counts once');
    assert.ok((await metric('mirrorfarm_authentications_total', { outcome: 'success' })) > 0, 'successful authentications are counted');
  });

  it('refuses user names other than the configured one (with a message from the built-in server)', async () => {
    const r = await ssh(keys.alice, ['true'], { user: 'alice', logLevel: 'INFO' });
    assert.equal(r.code, 255);
    // sshd has no way to say why; the built-in server sends an authentication banner.
    if (SSH_FRONTEND === 'builtin') assert.match(r.stderr, /log in as "git", not "alice"/);
    assert.match(r.stderr, /Permission denied/);
  });

  it('key-confusion regression: an unsigned offer of another user\'s key binds nothing', async () => {
    // The attacker holds carol's private key and only the public half of alice's (a writer). The agent lists
    // alice's key first; the server says it is acceptable, the agent cannot sign with it, and the client goes on
    // with carol's key. The session must be carol's.
    const alicePublic = ssh2.utils.parseKey(keys.alice.publicKey) as ssh2.ParsedKey;
    const carol = ssh2.utils.parseKey(readFileSync(keys.carol.privateKey)) as ssh2.ParsedKey;
    const offered: string[] = [];
    class HalfAgent extends ssh2.BaseAgent<ssh2.ParsedKey> {
      constructor(private readonly lying = false) {
        super();
      }
      override getIdentities(cb: ssh2.IdentityCallback<ssh2.ParsedKey>): void {
        cb(undefined, this.lying ? [alicePublic] : [alicePublic, carol]);
      }
      override sign(pubKey: ssh2.ParsedKey, data: Buffer, options: ssh2.SigningRequestOptions | ssh2.SignCallback, cb?: ssh2.SignCallback): void {
        const done = (typeof options === 'function' ? options : cb)!;
        offered.push(pubKey.getPublicSSH().equals(alicePublic.getPublicSSH()) ? 'alice' : 'carol');
        // Honest half-agent: cannot sign for alice. Lying agent: answers for alice's key with carol's signature.
        if (pubKey.getPublicSSH().equals(alicePublic.getPublicSSH()) && !this.lying) return done(new Error('no private key for this identity'));
        done(undefined, carol.sign(data) as Buffer);
      }
    }

    const session = async (agent: ssh2.BaseAgent, command: string | null) => {
      const client = await sshClient({ agent });
      try {
        return await execOn(client, command);
      } finally {
        client.end();
      }
    };

    const shell = await session(new HalfAgent(), null);
    assert.deepEqual(offered, ['alice', 'carol'], 'alice\'s key was offered first and could not sign');
    assert.match(shell.stderr, /^Hi carol! You've successfully authenticated/);
    assert.equal(shell.code, 1);
    const push = await session(new HalfAgent(), "git-receive-pack '/proj/repo.git'");
    assert.match(push.stderr, /Repository PROJ\/repo does not exist or you do not have permission to see it/, 'carol, not alice');
    assert.equal(push.code, 1);

    // A signature made with another key over an offer of alice's key does not verify: no session at all.
    await assert.rejects(session(new HalfAgent(true), null), /All configured authentication methods failed/);
  });

  it('cuts off a connection at once when its key is removed', async () => {
    await createUser(server, 'dave');
    await grantRepo(server, 'PROJ', 'repo', 'dave', 'REPO_READ');
    const dave = await sshKeyPair('dave');
    const key = (await addSshKey(server, 'dave', dave.publicKey)) as { id: number };
    // One long-lived connection with several sessions, as a multiplexing client (or a mirror) keeps it.
    const client = await sshClient({ privateKey: readFileSync(dave.privateKey) });
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    for (let i = 0; i < 2; i++) {
      const r = await execOn(client, "git-upload-pack '/proj/repo.git'", '0000');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /refs\/heads\/main/);
    }
    const removed = await api(server, 'DELETE', `/rest/ssh/1.0/keys/${key.id}`);
    assert.equal(removed.status, 204, removed.text);
    await Promise.race([closed, sleep(5000).then(() => assert.fail('the connection stayed open after its key was removed'))]);
  });

  it('negotiates curve25519 and an AEAD cipher with OpenSSH, AES-GCM when asked first', async () => {
    // OpenSSH's default order puts chacha20-poly1305 first (algorithms.ts says why CTR is offered at all).
    const r = await ssh(keys.bob, ["git-upload-pack '/proj/repo.git'"], { input: '0000', logLevel: 'DEBUG1' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /kex: algorithm: curve25519-sha256/);
    assert.match(r.stderr, /kex: host key algorithm: ssh-ed25519/);
    assert.match(r.stderr, /kex: server->client cipher: chacha20-poly1305@openssh\.com MAC: <implicit> compression: none/);
    const gcm = await ssh(keys.bob, ["git-upload-pack '/proj/repo.git'"], { input: '0000', logLevel: 'DEBUG1', flags: ['-o', 'Ciphers=aes128-gcm@openssh.com,chacha20-poly1305@openssh.com'] });
    assert.equal(gcm.code, 0, gcm.stderr);
    assert.match(gcm.stderr, /kex: server->client cipher: aes128-gcm@openssh\.com MAC: <implicit> compression: none/);
    // Only the built-in server sees the key exchange; sshd does not report it (README, SSH front ends).
    if (SSH_FRONTEND === 'builtin') assert.ok((await metric('mirrorfarm_ssh_handshakes_total', { cipher: 'aes128-gcm@openssh.com', mac: 'implicit' })) >= 1, 'the handshake metric counts the negotiated cipher');
  });

  it('answers a shell with a friendly message and exit status 1', async () => {
    const r = await ssh(keys.alice, [], { flags: ['-T'] });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Hi alice! You've successfully authenticated, but mirrorfarm does not provide shell access\./);
    assert.ok(r.stderr.includes(`git clone ssh://${server.sshUser}@127.0.0.1:${server.sshPort}/PROJ/repo.git`), r.stderr);
    const sftp = await ssh(keys.alice, ['sftp'], { flags: ['-s'] });
    assert.equal(sftp.code, 255);
    assert.match(sftp.stderr, /subsystem request failed/);
  });

  it('refuses malformed and unsupported commands with a clear message', async () => {
    const cases: Array<[string, RegExp]> = [
      ["git-upload-pack '--help'", /Invalid repository path "--help": it looks like an option/],
      ['git-upload-pack --upload-pack=touch', /Invalid repository path "--upload-pack=touch": it looks like an option/],
      ['ls', /Command "ls" is not supported: mirrorfarm serves only git clone, fetch and push over SSH/],
      ["git-upload-pack '/proj/../repo.git'", /"\." and "\.\." are not allowed/],
      ["git-receive-pack '/proj/repo.git'; touch /tmp/x", /Invalid repository path/],
      ["git-upload-pack '~alice/repo.git'", /personal repositories \(~user\) are not supported/],
      ["git-upload-pack 'a/b/c.git'", /expected exactly PROJECT\/repo/],
      ['git-upload-pack', /a repository path is missing/],
      [`git-upload-pack '${'a'.repeat(2000)}'`, /longer than 1024 characters/],
    ];
    for (const [command, message] of cases) {
      const r = await ssh(keys.alice, [command]);
      assert.equal(r.code, 1, `${command}: ${r.stderr}`);
      assert.match(r.stderr, message, command);
      assert.match(r.stderr, /^mirrorfarm: /, command);
    }
    // The accepted spellings: "git upload-pack", double quotes, no quotes, no leading slash.
    for (const command of ['git upload-pack "/proj/repo.git"', 'git-upload-pack proj/repo', "git-upload-pack 'PROJ/repo.git'"]) {
      const r = await ssh(keys.bob, [command], { input: '0000' });
      assert.equal(r.code, 0, `${command}: ${r.stderr}`);
      assert.match(r.stdout, /refs\/heads\/main/, command);
    }
  });

  it('keeps the repository unchanged when the client is killed mid-push', async () => {
    const before = await refsOnServer();
    const work = await makeWorkTree([{ 'big.bin': randomBytes(3 << 20).toString('base64') }]);
    const marker = join(tempDir(), 'sent');
    // The ssh client gets the first 64 KiB of the push and then nothing: the server is left mid-pack.
    const stall = `{ head -c 65536; touch ${marker}; sleep 60; } | ${sshCommand(keys.alice)}`;
    const home = tempDir('mf-git-home-');
    const child = spawn('git', ['push', url(), 'main:refs/heads/big'], {
      cwd: work,
      detached: true, // its own process group: git, the shell, head, sleep and ssh die together
      stdio: 'ignore',
      // GIT_SSH_VARIANT: git would otherwise probe the unknown command (with -G) to learn what it is.
      env: { PATH: process.env.PATH, HOME: home, GIT_CONFIG_NOSYSTEM: '1', LC_ALL: 'C', GIT_SSH_COMMAND: stall, GIT_SSH_VARIANT: 'ssh' },
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      for (let i = 0; i < 200 && !existsSync(marker); i++) await sleep(50);
      assert.ok(existsSync(marker), 'the push started');
      for (let i = 0; i < 100 && (await metric('mirrorfarm_git_operations_active', { transport: 'ssh', service: 'receive-pack' })) === 0; i++) await sleep(50);
      assert.equal(await metric('mirrorfarm_git_operations_active', { transport: 'ssh', service: 'receive-pack' }), 1, 'receive-pack is running');
    } finally {
      process.kill(-child.pid!, 'SIGKILL');
      await exited;
    }
    // The server notices, kills receive-pack, and nothing changed.
    for (let i = 0; i < 200 && (await metric('mirrorfarm_git_operations_active', { transport: 'ssh', service: 'receive-pack' })) > 0; i++) await sleep(50);
    assert.equal(await metric('mirrorfarm_git_operations_active', { transport: 'ssh', service: 'receive-pack' }), 0);
    assert.deepEqual(await refsOnServer(), before);
    // And the server is fine.
    await gitOk(server, ['clone', '-q', url(), join(tempDir(), 'after')], { sshKey: keys.bob });
  });

  it('survives a client that closes its channel mid-clone and keeps serving the same connection', async () => {
    // A multiplexing client (OpenSSH ControlMaster, as mirrors use) closes one channel when its git dies, and
    // keeps the connection for the next one.
    await createRepo(server, 'PROJ', 'big');
    const work = await makeWorkTree([{ 'big.txt': randomBytes(4 << 20).toString('base64') }]);
    await gitOk(server, ['push', url('big'), 'main'], { cwd: work, sshKey: keys.admin });
    const head = (await gitOk(null, ['rev-parse', 'HEAD'], { cwd: work })).trim();
    const client = await sshClient({ privateKey: readFileSync(keys.admin.privateKey) });
    try {
      const pkt = (line: string) => `${(line.length + 4).toString(16).padStart(4, '0')}${line}`;
      await new Promise<void>((resolve, reject) => {
        client.exec("git-upload-pack '/proj/big.git'", (err, channel) => {
          if (err) return reject(err);
          let seen = 0;
          let asked = false;
          let closing = false;
          channel.on('data', (c: Buffer) => {
            seen += c.length;
            if (!asked && c.includes('0000')) {
              asked = true;
              channel.write(`${pkt(`want ${head}\n`)}0000${pkt('done\n')}`);
            } else if (asked && seen > 64 * 1024 && !closing) {
              closing = true;
              channel.close();
              resolve();
            }
          });
        });
      });
      for (let i = 0; i < 100 && (await metric('mirrorfarm_git_operations_active', { transport: 'ssh', service: 'upload-pack' })) > 0; i++) await sleep(50);
      assert.equal(await metric('mirrorfarm_git_operations_active', { transport: 'ssh', service: 'upload-pack' }), 0, 'git was stopped');
      const again = await execOn(client, "git-upload-pack '/proj/big.git'", '0000');
      assert.equal(again.code, 0, again.stderr);
      assert.ok(again.stdout.includes(head));
    } finally {
      client.end();
    }
    assert.equal(server.process.exitCode, null, `the server is still running:\n${server.output().slice(-3000)}`);
  });

  it('keeps its host keys across a restart, in private files', async () => {
    const scan = async () => {
      const r = await run('ssh-keyscan', ['-p', String(server.sshPort), '-t', 'ed25519,ecdsa', '127.0.0.1']);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout
        .split('\n')
        .filter((l) => l && !l.startsWith('#'))
        .map((l) => l.split(' ').slice(1).join(' '))
        .sort();
    };
    const first = await scan();
    assert.equal(first.length, 2, 'an ed25519 and an ECDSA host key');
    assert.ok(first.some((k) => k.startsWith('ssh-ed25519 ')));
    const dir = join(server.home, 'ssh');
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(join(dir, 'ssh_host_ed25519_key')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'ssh_host_ecdsa_key')).mode & 0o777, 0o600);

    server = await server.restart();
    assert.deepEqual(await scan(), first);
    // Clients that pinned the key keep working.
    await gitOk(server, ['ls-remote', url()], { sshKey: keys.bob });
  });
});
