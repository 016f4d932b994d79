// Git LFS on a primary with Debian's git-lfs client: push and clone over HTTPS and over SSH (git-lfs-authenticate),
// the same authorize() as git (a reader cannot upload, a stranger sees nothing), a corrupt upload refused and
// nothing stored, tokens bound to their repository, limits, locks as `git lfs lock/locks/unlock` show them,
// objects that survive a rename and go with the repository.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { addSshKey, createProject, createRepo, createUser, grantRepo } from '../helpers/fixtures.js';
import { rawRequest } from '../helpers/http.js';
import { lfsGit, lfsGitOk, lfsUser, requireGitLfs, sha256File, writeRandomFile } from '../helpers/lfs.js';
import { api, sshKeyPair, startServer, type Credentials, type SshKeyPair, type TestServer, sshExec } from '../helpers/server.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

let primary: TestServer;
let alice: Credentials; // writes
let bob: Credentials; // reads
let carol: Credentials; // nothing
let dave: Credentials; // writes too
let aliceKey: SshKeyPair;
let repoId: number;
let oid: string;

const LFS_JSON = 'application/vnd.git-lfs+json';
const batchPath = (slug = 'assets') => `/scm/lfs/${slug}.git/info/lfs/objects/batch`;

function batch(creds: Credentials | null, operation: 'download' | 'upload', objects: Array<{ oid: string; size: number }>, slug = 'assets', auth?: string) {
  return rawRequest(primary, 'POST', batchPath(slug), {
    body: JSON.stringify({ operation, transfers: ['basic'], objects, hash_algo: 'sha256' }),
    headers: { 'content-type': LFS_JSON, accept: LFS_JSON, ...(auth ? { authorization: auth } : {}) },
    ...(creds ? { creds } : {}),
  });
}

before(async () => {
  await requireGitLfs();
  primary = await startServer({ env: { MIRRORFARM_LFS_MAX_OBJECT_BYTES: String(8 * 1024 * 1024) } });
  await createProject(primary, 'LFS');
  repoId = (await createRepo(primary, 'LFS', 'assets')).id;
  await createRepo(primary, 'LFS', 'other');
  alice = await createUser(primary, 'alice');
  bob = await createUser(primary, 'bob');
  carol = await createUser(primary, 'carol');
  dave = await createUser(primary, 'dave');
  for (const slug of ['assets', 'other']) await grantRepo(primary, 'LFS', slug, 'alice', 'REPO_WRITE');
  await grantRepo(primary, 'LFS', 'assets', 'bob', 'REPO_READ');
  await grantRepo(primary, 'LFS', 'assets', 'dave', 'REPO_WRITE');
  aliceKey = await sshKeyPair('alice');
  await addSshKey(primary, 'alice', aliceKey.publicKey);
});

after(async () => {
  await primary?.stop();
  removeTempDirs();
});

describe('Git LFS on the primary', () => {
  it('pushes an LFS file over HTTPS and stores it by oid under the home, verified', async () => {
    const user = lfsUser(primary, alice);
    const work = tempDir('mf-lfs-wt-');
    await lfsGitOk(user, ['init', '-q', work]);
    await lfsGitOk(user, ['lfs', 'track', '*.bin'], work);
    oid = writeRandomFile(join(work, 'model.bin'), 3 * 1024 * 1024);
    writeFileSync(join(work, 'README.md'), 'assets\n');
    await lfsGitOk(user, ['add', '-A'], work);
    await lfsGitOk(user, ['commit', '-q', '-m', 'model'], work);
    const pointer = await lfsGitOk(user, ['show', 'HEAD:model.bin'], work);
    assert.match(pointer, new RegExp(`oid sha256:${oid}`), 'git stores a pointer, not the content');
    const push = await lfsGit(user, ['push', primary.httpUrl('LFS', 'assets'), 'main'], work);
    assert.equal(push.code, 0, push.stderr);
    const stored = join(primary.home, 'lfs', String(repoId), oid.slice(0, 2), oid.slice(2, 4), oid);
    assert.equal(sha256File(stored), oid);
  });

  it('clones with the LFS content checked out for a reader over HTTPS', async () => {
    const user = lfsUser(primary, bob);
    const dest = join(tempDir(), 'clone');
    await lfsGitOk(user, ['clone', '-q', primary.httpUrl('LFS', 'assets'), dest]);
    assert.equal(sha256File(join(dest, 'model.bin')), oid, 'the smudge filter downloaded the real content');
    const files = await lfsGitOk(user, ['lfs', 'ls-files', '--long'], dest);
    assert.match(files, new RegExp(`^${oid} \\* model\\.bin`, 'm'));
  });

  it('clones and pushes over SSH, where git-lfs-authenticate hands out the HTTPS authorization', async () => {
    const user = lfsUser(primary, undefined, aliceKey);
    const dest = join(tempDir(), 'clone');
    const clone = await lfsGit(user, ['clone', '-q', primary.sshUrl('LFS', 'assets'), dest]);
    assert.equal(clone.code, 0, clone.stderr);
    assert.doesNotMatch(clone.stderr, /not supported|error/i, 'git-lfs falls back from git-lfs-transfer silently');
    assert.equal(sha256File(join(dest, 'model.bin')), oid);
    const second = writeRandomFile(join(dest, 'texture.bin'), 512 * 1024);
    await lfsGitOk(user, ['add', 'texture.bin'], dest);
    await lfsGitOk(user, ['commit', '-q', '-m', 'texture'], dest);
    const push = await lfsGit(user, ['push', 'origin', 'main'], dest);
    assert.equal(push.code, 0, push.stderr);
    const answer = await batch(bob, 'download', [{ oid: second, size: 512 * 1024 }]);
    assert.equal(answer.status, 200);
    assert.ok(JSON.parse(answer.text).objects[0].actions.download.href.endsWith(`/scm/lfs/assets.git/info/lfs/objects/${second}`));
  });

  it('answers git-lfs-authenticate with a short-lived href and header, and refuses it for a repository the key cannot read', async () => {
    const ok = await sshExec(primary, aliceKey, ['git-lfs-authenticate', 'lfs/assets.git', 'download']);
    assert.equal(ok.code, 0, ok.stderr);
    const answer = JSON.parse(ok.stdout) as { href: string; header: { Authorization: string }; expires_in: number };
    assert.equal(answer.href, `${primary.baseUrl}/scm/lfs/assets.git/info/lfs`);
    assert.match(answer.header.Authorization, /^Bearer lfs\./);
    assert.equal(answer.expires_in, 3600);
    const hidden = await sshExec(primary, aliceKey, ['git-lfs-authenticate', 'NOPE/secret.git', 'upload']);
    assert.equal(hidden.code, 1);
    assert.match(hidden.stderr, /Repository NOPE\/secret does not exist or you do not have permission to see it/);
    const bad = await sshExec(primary, aliceKey, ['git-lfs-authenticate', 'lfs/assets.git', 'delete']);
    assert.match(bad.stderr, /the operation is "download" or "upload"/);
  });

  it('authorizes like git: a reader may not upload, a stranger and an anonymous caller learn nothing', async () => {
    const upload = await batch(bob, 'upload', [{ oid: 'a'.repeat(64), size: 3 }]);
    assert.equal(upload.status, 403);
    assert.match(String(upload.headers['content-type']), /^application\/vnd\.git-lfs\+json/);
    assert.match(JSON.parse(upload.text).message, /You do not have permission to push to LFS\/assets/);
    const stranger = await batch(carol, 'download', [{ oid, size: 1 }]);
    assert.equal(stranger.status, 404);
    assert.match(JSON.parse(stranger.text).message, /does not exist or you do not have permission to see it/);
    const missing = await batch(carol, 'download', [{ oid, size: 1 }], 'no-such-repo');
    assert.equal(JSON.parse(missing.text).message.replace('no-such-repo', 'assets'), JSON.parse(stranger.text).message, 'missing and forbidden read the same');
    const anonymous = await batch(null, 'download', [{ oid, size: 1 }]);
    assert.equal(anonymous.status, 401);
    assert.match(String(anonymous.headers['lfs-authenticate']), /^Basic /);
  });

  it('lets a public repository be downloaded anonymously', async () => {
    await api(primary, 'PUT', '/rest/api/1.0/projects/LFS/repos/assets', { public: true });
    try {
      const answer = await batch(null, 'download', [{ oid, size: 3 * 1024 * 1024 }]);
      assert.equal(answer.status, 200, answer.text);
      const object = JSON.parse(answer.text).objects[0];
      assert.deepEqual(object.actions.download.header, {}, 'no token for an anonymous caller');
      const body = await rawRequest(primary, 'GET', new URL(object.actions.download.href).pathname);
      assert.equal(body.status, 200);
      assert.equal(body.body.length, 3 * 1024 * 1024);
    } finally {
      await api(primary, 'PUT', '/rest/api/1.0/projects/LFS/repos/assets', { public: false });
    }
  });

  it('refuses a corrupt upload and stores nothing (regression: lfs upload stored before hash check)', async () => {
    const content = Buffer.from('the real content\n');
    const { createHash } = await import('node:crypto');
    const realOid = createHash('sha256').update(content).digest('hex');
    const answer = await batch(alice, 'upload', [{ oid: realOid, size: content.length }]);
    const actions = JSON.parse(answer.text).objects[0].actions;
    const put = await rawRequest(primary, 'PUT', new URL(actions.upload.href).pathname, {
      body: Buffer.from('the fake content\n'),
      headers: { ...actions.upload.header, 'content-type': 'application/octet-stream' },
    });
    assert.equal(put.status, 400);
    assert.equal(JSON.parse(put.text).code, 'LFS_HASH_MISMATCH');
    assert.match(JSON.parse(put.text).message, /content is corrupt and was not stored/);
    const verify = await rawRequest(primary, 'POST', new URL(actions.verify.href).pathname, {
      body: JSON.stringify({ oid: realOid, size: content.length }),
      headers: { ...actions.verify.header, 'content-type': LFS_JSON },
    });
    assert.equal(verify.status, 404);
    const download = await batch(alice, 'download', [{ oid: realOid, size: content.length }]);
    assert.equal(JSON.parse(download.text).objects[0].error.code, 404);
    const good = await rawRequest(primary, 'PUT', new URL(actions.upload.href).pathname, { body: content, headers: { ...actions.upload.header, 'content-type': 'application/octet-stream' } });
    assert.equal(good.status, 200);
  });

  it('binds a batch token to its repository and its operation (regression: lfs token replayed on another repository)', async () => {
    const answer = await batch(alice, 'download', [{ oid, size: 1 }]);
    const header = JSON.parse(answer.text).objects[0].actions.download.header.Authorization as string;
    const elsewhere = await batch(null, 'download', [{ oid, size: 1 }], 'other', header);
    assert.equal(elsewhere.status, 404, 'alice may write LFS/other, but this token is for LFS/assets');
    const upgrade = await batch(null, 'upload', [{ oid: 'b'.repeat(64), size: 1 }], 'assets', header);
    assert.equal(upgrade.status, 403, 'a download token does not upload');
    const forged = await batch(null, 'download', [{ oid, size: 1 }], 'assets', `${header.slice(0, -4)}AAAA`);
    assert.equal(forged.status, 401);
    assert.equal(JSON.parse(forged.text).code, 'LFS_TOKEN_INVALID');
  });

  it('refuses an object over lfs.maxObjectBytes in the batch answer, before any upload', async () => {
    const answer = await batch(alice, 'upload', [{ oid: 'c'.repeat(64), size: 9 * 1024 * 1024 }]);
    assert.equal(answer.status, 200);
    const object = JSON.parse(answer.text).objects[0];
    assert.equal(object.error.code, 422);
    assert.match(object.error.message, /more than this server's limit of 8388608 bytes \(server setting lfs\.maxObjectBytes\)/);
  });

  it('locks files: git lfs lock, locks, and unlock by owner only unless forced by an admin', async () => {
    const url = primary.httpUrl('LFS', 'assets');
    const aliceUser = lfsUser(primary, alice);
    const aliceClone = join(tempDir(), 'a');
    await lfsGitOk(aliceUser, ['clone', '-q', url, aliceClone]);
    const lock = await lfsGit(aliceUser, ['lfs', 'lock', 'model.bin'], aliceClone);
    assert.equal(lock.code, 0, lock.stderr);
    assert.match(lock.stdout, /Locked model\.bin/);
    const again = await lfsGit(aliceUser, ['lfs', 'lock', 'model.bin'], aliceClone);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already locked by alice/);

    const daveUser = lfsUser(primary, dave);
    const daveClone = join(tempDir(), 'd');
    await lfsGitOk(daveUser, ['clone', '-q', url, daveClone]);
    const listed = await lfsGitOk(daveUser, ['lfs', 'locks'], daveClone);
    assert.match(listed, /^model\.bin\s+alice\s+ID:\d+/m);
    const steal = await lfsGit(daveUser, ['lfs', 'unlock', 'model.bin'], daveClone);
    assert.notEqual(steal.code, 0);
    const forced = await lfsGit(daveUser, ['lfs', 'unlock', '--force', 'model.bin'], daveClone);
    assert.notEqual(forced.code, 0, 'dave may write but is no repository admin');
    assert.match(forced.stderr, /You do not have permission to administer LFS\/assets/);

    const bobUser = lfsUser(primary, bob);
    const bobClone = join(tempDir(), 'b');
    await lfsGitOk(bobUser, ['clone', '-q', url, bobClone]);
    assert.match(await lfsGitOk(bobUser, ['lfs', 'locks'], bobClone), /model\.bin\s+alice/, 'a reader sees the locks');
    const bobLock = await lfsGit(bobUser, ['lfs', 'lock', 'README.md'], bobClone);
    assert.notEqual(bobLock.code, 0);

    const unlock = await lfsGit(aliceUser, ['lfs', 'unlock', 'model.bin'], aliceClone);
    assert.equal(unlock.code, 0, unlock.stderr);
    assert.equal((await lfsGitOk(daveUser, ['lfs', 'locks'], daveClone)).trim(), '');
  });

  it('keeps the objects through a rename and a move to another project, and removes them with the repository', async () => {
    const renamed = await api(primary, 'PUT', '/rest/api/1.0/projects/LFS/repos/assets', { name: 'art' });
    assert.equal(renamed.status, 201, renamed.text);
    const user = lfsUser(primary, bob);
    const dest = join(tempDir(), 'clone');
    await lfsGitOk(user, ['clone', '-q', primary.httpUrl('LFS', 'art'), dest]);
    assert.equal(sha256File(join(dest, 'model.bin')), oid);
    await createProject(primary, 'MOVED');
    const moved = await api(primary, 'PUT', '/rest/api/1.0/projects/LFS/repos/art', { project: { key: 'MOVED' } });
    assert.equal(moved.status, 201, moved.text);
    const afterMove = join(tempDir(), 'clone');
    await lfsGitOk(lfsUser(primary, { user: 'admin', secret: 'admin-password-1' }), ['clone', '-q', primary.httpUrl('MOVED', 'art'), afterMove]);
    assert.equal(sha256File(join(afterMove, 'model.bin')), oid, 'moved to another project, the objects came along');
    const dir = join(primary.home, 'lfs', String(repoId));
    assert.ok(existsSync(dir));
    const removed = await api(primary, 'DELETE', '/rest/api/1.0/projects/MOVED/repos/art');
    assert.equal(removed.status, 202, removed.text);
    for (let i = 0; i < 50 && existsSync(dir); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(!existsSync(dir), 'the repository\'s LFS objects are gone');
    assert.ok(readFileSync(join(primary.home, 'lfs-token.key'), 'utf8').length > 40);
  });
});
