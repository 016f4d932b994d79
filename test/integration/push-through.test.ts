// Pushes to a mirror pass on to the primary as the same user: the primary decides (a reader is refused with
// the primary's own words, a stranger learns nothing, the primary's rejections reach the client), and the push
// returns only once the mirror serves it, so a fetch from the mirror right after sees it (read-your-writes).
// A mirror configured read-only refuses pushes naming the primary; a push while the primary is down changes
// nothing and says why.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { addSshKey, createProject, createRepo, createUser, events, grantRepo } from '../helpers/fixtures.js';
import { authorizeMirror, waitForSameRefs, waitForState } from '../helpers/mirror.js';
import { ADMIN, git, gitOk, makeWorkTree, parseLsRemote, sshKeyPair, startMirror, startServer, type Credentials, type SshKeyPair, type TestServer, sshExec } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';
import { CLIENTS, clientEnv, credentialEnv, DEBIAN_PYTHON, requireDulwich, requirePygit2 } from '../helpers/clients.js';
import { run } from '../helpers/run.js';

let primary: TestServer;
let mirror: TestServer;
let alice: Credentials;
let bob: Credentials;
let carol: Credentials;
let aliceKey: SshKeyPair;
let work: string;

async function commit(file: string): Promise<string> {
  writeFileSync(join(work, file), `${file}\n`);
  await gitOk(null, ['add', file], { cwd: work });
  await gitOk(null, ['commit', '-q', '-m', file], { cwd: work });
  return (await gitOk(null, ['rev-parse', 'HEAD'], { cwd: work })).trim();
}

async function refsOf(server: TestServer, creds: Credentials = ADMIN): Promise<Map<string, string>> {
  return parseLsRemote(await gitOk(server, ['ls-remote', server.httpUrl('PT', 'app')], { creds }));
}

before(async () => {
  primary = await startServer();
  await createProject(primary, 'PT');
  await createRepo(primary, 'PT', 'app');
  alice = await createUser(primary, 'alice');
  bob = await createUser(primary, 'bob');
  carol = await createUser(primary, 'carol');
  await grantRepo(primary, 'PT', 'app', 'alice', 'REPO_WRITE');
  await grantRepo(primary, 'PT', 'app', 'bob', 'REPO_READ');
  aliceKey = await sshKeyPair('alice');
  await addSshKey(primary, 'alice', aliceKey.publicKey);
  work = await makeWorkTree();
  await gitOk(primary, ['push', '-q', primary.httpUrl('PT', 'app'), 'main'], { creds: ADMIN, cwd: work });
  mirror = await startMirror(primary);
  await authorizeMirror(primary, mirror, 'ALL');
  await waitForState(mirror, 'SYNCHRONIZED');
  await waitForSameRefs(primary, mirror, 'PT', 'app', alice);
});

after(async () => {
  await mirror?.stop();
  await primary?.stop();
  removeTempDirs();
});

describe('push through a mirror over HTTPS', () => {
  it('passes a push on to the primary and returns once the mirror serves it', async () => {
    const head = await commit('one.txt');
    const push = await git(mirror, ['push', mirror.httpUrl('PT', 'app'), 'main'], { creds: alice, cwd: work });
    assert.equal(push.code, 0, push.stderr);
    assert.equal((await refsOf(primary)).get('refs/heads/main'), head, 'the primary has it');
    assert.equal((await refsOf(mirror, alice)).get('refs/heads/main'), head, 'a fetch from the mirror right after the push sees it');
  });

  it('creates and deletes branches and tags through the mirror', async () => {
    const head = await commit('two.txt');
    await gitOk(mirror, ['push', '-q', mirror.httpUrl('PT', 'app'), `${head}:refs/heads/feature`, `${head}:refs/tags/v1`], { creds: alice, cwd: work });
    let refs = await refsOf(mirror, alice);
    assert.equal(refs.get('refs/heads/feature'), head);
    assert.equal(refs.get('refs/tags/v1'), head);
    await gitOk(mirror, ['push', '-q', mirror.httpUrl('PT', 'app'), ':refs/heads/feature', ':refs/tags/v1'], { creds: alice, cwd: work });
    refs = await refsOf(mirror, alice);
    assert.ok(!refs.has('refs/heads/feature') && !refs.has('refs/tags/v1'));
  });

  it('refuses a reader with the primary\'s words and a stranger with the same not-found as a clone', async () => {
    await commit('three.txt');
    const reader = await git(mirror, ['push', mirror.httpUrl('PT', 'app'), 'main'], { creds: bob, cwd: work });
    assert.notEqual(reader.code, 0);
    assert.match(reader.stderr, /You do not have permission to push to PT\/app/);
    const stranger = await git(mirror, ['push', mirror.httpUrl('PT', 'app'), 'main'], { creds: carol, cwd: work });
    const clone = await git(mirror, ['ls-remote', mirror.httpUrl('PT', 'app')], { creds: carol });
    assert.notEqual(stranger.code, 0);
    assert.match(stranger.stderr, /Repository PT\/app does not exist or you do not have permission to see it/);
    assert.match(clone.stderr, /Repository PT\/app does not exist or you do not have permission to see it/);
    const wrong = await git(mirror, ['push', mirror.httpUrl('PT', 'app'), 'main'], { creds: { user: 'alice', secret: 'wrong' }, cwd: work });
    assert.match(wrong.stderr, /Authentication failed|could not read Username/, "wrong credentials are refused on the mirror");
  });

  it('shows the primary\'s rejection of a ref to the client', async () => {
    const r = await git(mirror, ['push', mirror.httpUrl('PT', 'app'), ':refs/heads/main'], { creds: alice, cwd: work });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /remote rejected\] main \(deletion of the current branch prohibited\)/);
    assert.ok((await refsOf(mirror, alice)).has('refs/heads/main'));
  });
});

describe('push through a mirror over SSH', () => {
  it('passes the push on as the same user, with the mirror\'s signed assertion, and returns once the mirror serves it', async () => {
    const head = await commit('ssh.txt');
    const push = await git(mirror, ['push', mirror.sshUrl('PT', 'app'), 'main'], { sshKey: aliceKey, cwd: work });
    assert.equal(push.code, 0, push.stderr);
    assert.equal((await refsOf(primary)).get('refs/heads/main'), head);
    assert.equal((await refsOf(mirror, alice)).get('refs/heads/main'), head, 'read-your-writes');
    const change = (await events(primary)).filter((e) => e.type.startsWith('ref')).pop();
    assert.equal((change as { actor?: string; data?: { actor?: string } } | undefined)?.data?.actor ?? (change as { actor?: string } | undefined)?.actor, 'alice', `the primary recorded alice as the pusher: ${JSON.stringify(change)}`);
  });

  it('refuses a reader over SSH with the primary\'s words and shows the primary\'s ref rejections', async () => {
    const bobKey = await sshKeyPair('bob');
    await addSshKey(primary, 'bob', bobKey.publicKey);
    await commit('ssh-bob.txt');
    const reader = await git(mirror, ['push', mirror.sshUrl('PT', 'app'), 'main'], { sshKey: bobKey, cwd: work });
    assert.notEqual(reader.code, 0);
    assert.match(reader.stderr, /You do not have permission to push to PT\/app/);
    const rejected = await git(mirror, ['push', mirror.sshUrl('PT', 'app'), ':refs/heads/main'], { sshKey: aliceKey, cwd: work });
    assert.match(rejected.stderr, /remote rejected\] main \(deletion of the current branch prohibited\)/);
  });

  it('refuses a push assertion that is not a mirror\'s (regression: push assertion accepted from a user connection)', async () => {
    const r = await sshExec(primary, aliceKey, ["mirrorfarm-push 'pt/app.git'"], 'x.y.z\n');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Command "mirrorfarm-push" is for mirrors only/);
  });
});

describe('a mirror configured read-only (mirror.pushThrough: false)', () => {
  let readOnly: TestServer;
  before(async () => {
    readOnly = await startMirror(primary, { env: { MIRRORFARM_MIRROR_PUSH_THROUGH: 'false' } });
    await authorizeMirror(primary, readOnly, 'ALL');
    await waitForState(readOnly, 'SYNCHRONIZED');
    await waitForSameRefs(primary, readOnly, 'PT', 'app', alice);
  });
  after(async () => {
    await readOnly?.stop();
  });

  const refusal = () => new RegExp(`This is a read-only mirror\\. Push to the primary instead: ${primary.baseUrl.replace(/[.]/g, '\\.')}/scm/pt/app\\.git`);

  it('refuses git pushes over HTTPS and SSH naming the primary, and changes nothing', async () => {
    const before = await refsOf(readOnly, alice);
    await commit('refused.txt');
    for (const [url, options] of [
      [readOnly.httpUrl('PT', 'app'), { creds: alice }],
      [readOnly.sshUrl('PT', 'app'), { sshKey: aliceKey }],
    ] as const) {
      const r = await git(readOnly, ['push', url, 'main'], { ...options, cwd: work });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /remote error: /);
      assert.match(r.stderr, refusal());
    }
    assert.deepEqual(await refsOf(readOnly, alice), before);
  });

  it('says so to libgit2 and Dulwich too, not as a bare 403', async () => {
    await requirePygit2();
    await requireDulwich();
    const env = clientEnv({ ...credentialEnv(alice), MF_CA_FILE: primary.ca.caCert });
    for (const script of ['pygit2_push.py', 'dulwich_push.py']) {
      // libgit2 1.5 matches the certificate's DNS names only, not its IP address entry: use "localhost".
      const r = await run(DEBIAN_PYTHON, [join(CLIENTS, script), readOnly.httpUrl('PT', 'app').replace('//127.0.0.1:', '//localhost:'), work], { env });
      assert.equal(r.code, 1, `${script}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, refusal(), script);
    }
  });
});

describe('a push through the mirror while the primary is down', () => {
  it('fails with a clear error over HTTPS and SSH and changes nothing', async () => {
    const before = await refsOf(mirror, alice);
    await commit('while-down.txt');
    await primary.stop();
    const https = await git(mirror, ['push', mirror.httpUrl('PT', 'app'), 'main'], { creds: alice, cwd: work });
    assert.notEqual(https.code, 0);
    assert.match(https.stderr, /Pushes go to the primary, which cannot be reached from this mirror right now .*Nothing was changed/);
    const ssh = await git(mirror, ['push', mirror.sshUrl('PT', 'app'), 'main'], { sshKey: aliceKey, cwd: work });
    assert.notEqual(ssh.code, 0);
    assert.match(ssh.stderr, /pushes go to the primary, whose SSH server cannot be reached from this mirror right now; nothing was changed/);
    assert.deepEqual(await refsOf(mirror, alice), before, 'the mirror serves what it served');
  });
});
