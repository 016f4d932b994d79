// Git LFS through a mirror with Debian's git-lfs client: a clone from the mirror fetches each object from the
// primary once and serves it locally afterwards (the primary is asked once, however many clients ask at the same
// moment); a mirror that prefetches has the objects of a push before anyone asks, and reports those the primary
// cannot give it; SSH clones get their download authorization from the mirror; uploads and locks go to the primary with
// the user's own credentials, so the primary decides; a stranger learns nothing.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { addSshKey, createProject, createRepo, createUser, grantRepo } from '../helpers/fixtures.js';
import { metricValue, rawRequest } from '../helpers/http.js';
import { lfsGit, lfsGitOk, lfsUser, requireGitLfs, sha256File, writeRandomFile } from '../helpers/lfs.js';
import { authorizeMirror, mirrorGet, waitForSameRefs, waitForState } from '../helpers/mirror.js';
import { eventually, gitOk, sshKeyPair, startMirror, startServer, type Credentials, type SshKeyPair, type TestServer, sshExec } from '../helpers/server.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

let primary: TestServer;
let mirror: TestServer;
let alice: Credentials;
let bob: Credentials;
let carol: Credentials;
let aliceKey: SshKeyPair;
let repoId: number;
let oid: string;
let work: string;
const SIZE = 2 * 1024 * 1024;
const FETCH_ROUTE = '/rest/mirroring/1.0/mirror/lfs/objects/:repositoryId/:oid';

async function metrics(server: TestServer): Promise<string> {
  return (await rawRequest(server, 'GET', '/metrics')).text;
}

async function primaryFetches(): Promise<number> {
  return metricValue(await metrics(primary), 'mirrorfarm_http_requests_total', { route: FETCH_ROUTE, status: '200' });
}

async function pushLfsCommit(file: string, bytes: number): Promise<string> {
  const user = lfsUser(primary, alice);
  const id = writeRandomFile(join(work, file), bytes);
  await lfsGitOk(user, ['add', file], work);
  await lfsGitOk(user, ['commit', '-q', '-m', file], work);
  await lfsGitOk(user, ['push', '-q', primary.httpUrl('LFS', 'assets'), 'main'], work);
  await waitForSameRefs(primary, mirror, 'LFS', 'assets', alice);
  return id;
}

before(async () => {
  await requireGitLfs();
  primary = await startServer();
  await createProject(primary, 'LFS');
  repoId = (await createRepo(primary, 'LFS', 'assets')).id;
  alice = await createUser(primary, 'alice');
  bob = await createUser(primary, 'bob');
  carol = await createUser(primary, 'carol');
  await grantRepo(primary, 'LFS', 'assets', 'alice', 'REPO_WRITE');
  await grantRepo(primary, 'LFS', 'assets', 'bob', 'REPO_READ');
  aliceKey = await sshKeyPair('alice');
  await addSshKey(primary, 'alice', aliceKey.publicKey);
  const user = lfsUser(primary, alice);
  work = tempDir('mf-lfs-wt-');
  await lfsGitOk(user, ['init', '-q', work]);
  await lfsGitOk(user, ['lfs', 'track', '*.bin'], work);
  oid = writeRandomFile(join(work, 'model.bin'), SIZE);
  await lfsGitOk(user, ['add', '-A'], work);
  await lfsGitOk(user, ['commit', '-q', '-m', 'model'], work);
  await lfsGitOk(user, ['push', '-q', primary.httpUrl('LFS', 'assets'), 'main'], work);
  // Fetch-through is what this mirror shows; the prefetching one is started in its own test below.
  mirror = await startMirror(primary, { env: { MIRRORFARM_MIRROR_LFS_PREFETCH: 'false' } });
  await authorizeMirror(primary, mirror, 'ALL');
  await waitForState(mirror, 'SYNCHRONIZED');
  await waitForSameRefs(primary, mirror, 'LFS', 'assets', alice);
});

after(async () => {
  await mirror?.stop();
  await primary?.stop();
  removeTempDirs();
});

describe('Git LFS through a mirror', () => {
  it('clones from the mirror over HTTPS: the object is fetched from the primary once, then served from the mirror', async () => {
    const before = await primaryFetches();
    for (const who of [bob, alice]) {
      const dest = join(tempDir(), 'clone');
      await lfsGitOk(lfsUser(mirror, who), ['clone', '-q', mirror.httpUrl('LFS', 'assets'), dest]);
      assert.equal(sha256File(join(dest, 'model.bin')), oid);
    }
    assert.equal((await primaryFetches()) - before, 1, 'the primary was asked once for two clones');
    const text = await metrics(mirror);
    assert.equal(metricValue(text, 'mirrorfarm_lfs_bytes_total', { direction: 'in', source: 'primary' }), SIZE);
    assert.equal(metricValue(text, 'mirrorfarm_lfs_bytes_total', { direction: 'out', source: 'local' }), SIZE, 'the second clone came from the mirror\'s store');
    assert.ok(existsSync(join(mirror.home, 'lfs', String(repoId), oid.slice(0, 2), oid.slice(2, 4), oid)));
  });

  it('fetches an object many clients ask for at once from the primary once, and gives each the whole content', async () => {
    const second = await pushLfsCommit('second.bin', SIZE);
    const before = await primaryFetches();
    const answers = await Promise.all(
      Array.from({ length: 6 }, () => rawRequest(mirror, 'GET', `/scm/lfs/assets.git/info/lfs/objects/${second}`, { creds: bob })),
    );
    for (const a of answers) {
      assert.equal(a.status, 200, a.text.slice(0, 200));
      const { createHash } = await import('node:crypto');
      assert.equal(createHash('sha256').update(a.body).digest('hex'), second);
    }
    assert.equal((await primaryFetches()) - before, 1);
  });

  it('clones from the mirror over SSH, with the download authorization from the mirror\'s git-lfs-authenticate', async () => {
    const dest = join(tempDir(), 'clone');
    const clone = await lfsGit(lfsUser(mirror, undefined, aliceKey), ['clone', '-q', mirror.sshUrl('LFS', 'assets'), dest]);
    assert.equal(clone.code, 0, clone.stderr);
    assert.equal(sha256File(join(dest, 'model.bin')), oid);
    const auth = await sshExec(mirror, aliceKey, ['git-lfs-authenticate', 'lfs/assets.git', 'download']);
    assert.equal(JSON.parse(auth.stdout).href, `${mirror.baseUrl}/scm/lfs/assets.git/info/lfs`);
    const upload = await sshExec(mirror, aliceKey, ['git-lfs-authenticate', 'lfs/assets.git', 'upload']);
    assert.equal(upload.code, 0, upload.stderr);
    assert.equal(JSON.parse(upload.stdout).href, `${primary.baseUrl}/scm/lfs/assets.git/info/lfs`, 'uploads go to the primary');
  });

  it('pushes an LFS file over SSH through the mirror: the refs through the mirror, the object to the primary, both as the same user', async () => {
    const user = lfsUser(mirror, undefined, aliceKey);
    const dest = join(tempDir(), 'clone');
    await lfsGitOk(user, ['clone', '-q', mirror.sshUrl('LFS', 'assets'), dest]);
    const added = writeRandomFile(join(dest, 'over-ssh.bin'), 128 * 1024);
    await lfsGitOk(user, ['add', 'over-ssh.bin'], dest);
    await lfsGitOk(user, ['commit', '-q', '-m', 'over ssh through the mirror'], dest);
    const push = await lfsGit(user, ['push', 'origin', 'main'], dest);
    assert.equal(push.code, 0, push.stderr);
    assert.ok(existsSync(join(primary.home, 'lfs', String(repoId), added.slice(0, 2), added.slice(2, 4), added)), 'the object reached the primary');
    const head = (await lfsGitOk(user, ['rev-parse', 'HEAD'], dest)).trim();
    assert.equal((await lfsGitOk(user, ['ls-remote', mirror.sshUrl('LFS', 'assets'), 'refs/heads/main'])).split('\t')[0], head, 'the mirror serves the push');
    // The shared work tree catches up (it has no remote: git-lfs is told where the objects are).
    await lfsGitOk(lfsUser(primary, alice), ['-c', `lfs.url=${primary.httpUrl('LFS', 'assets')}/info/lfs`, 'pull', '-q', primary.httpUrl('LFS', 'assets'), 'main'], work);
  });

  it('sends uploads through the mirror to the primary with the user\'s credentials, where authorize() decides', async () => {
    const user = lfsUser(primary, alice);
    const third = writeRandomFile(join(work, 'third.bin'), 64 * 1024);
    await lfsGitOk(user, ['add', 'third.bin'], work);
    await lfsGitOk(user, ['commit', '-q', '-m', 'third'], work);
    const push = await lfsGit(user, ['lfs', 'push', mirror.httpUrl('LFS', 'assets'), 'main'], work);
    assert.equal(push.code, 0, push.stderr);
    assert.ok(existsSync(join(primary.home, 'lfs', String(repoId), third.slice(0, 2), third.slice(2, 4), third)), 'the object reached the primary');
    const refused = await rawRequest(mirror, 'POST', '/scm/lfs/assets.git/info/lfs/objects/batch', {
      creds: bob,
      body: JSON.stringify({ operation: 'upload', objects: [{ oid: 'd'.repeat(64), size: 1 }] }),
      headers: { 'content-type': 'application/vnd.git-lfs+json' },
    });
    assert.equal(refused.status, 403);
    assert.match(JSON.parse(refused.text).message, /You do not have permission to push to LFS\/assets/, 'the primary\'s own message');
  });

  it('takes and lists locks on the primary through the mirror', async () => {
    const user = lfsUser(mirror, alice);
    const dest = join(tempDir(), 'clone');
    await lfsGitOk(user, ['clone', '-q', mirror.httpUrl('LFS', 'assets'), dest]);
    const lock = await lfsGit(user, ['lfs', 'lock', 'model.bin'], dest);
    assert.equal(lock.code, 0, lock.stderr);
    const onPrimary = join(tempDir(), 'p');
    const bobUser = lfsUser(primary, bob);
    await lfsGitOk(bobUser, ['clone', '-q', primary.httpUrl('LFS', 'assets'), onPrimary]);
    assert.match(await lfsGitOk(bobUser, ['lfs', 'locks'], onPrimary), /model\.bin\s+alice/);
    assert.equal((await lfsGit(user, ['lfs', 'unlock', 'model.bin'], dest)).code, 0);
  });

  it('tells a stranger on the mirror exactly what the primary would: not found', async () => {
    const body = JSON.stringify({ operation: 'download', objects: [{ oid, size: SIZE }] });
    const headers = { 'content-type': 'application/vnd.git-lfs+json' };
    const onMirror = await rawRequest(mirror, 'POST', '/scm/lfs/assets.git/info/lfs/objects/batch', { creds: carol, body, headers });
    const onPrimary = await rawRequest(primary, 'POST', '/scm/lfs/assets.git/info/lfs/objects/batch', { creds: carol, body, headers });
    assert.equal(onMirror.status, 404);
    assert.equal(JSON.parse(onMirror.text).message, JSON.parse(onPrimary.text).message);
    const object = await rawRequest(mirror, 'GET', `/scm/lfs/assets.git/info/lfs/objects/${oid}`, { creds: carol });
    assert.equal(object.status, 404);
    // Uploads and locks are passed on only for what the caller may read on this mirror (regression: the mirror
    // forwarded Git LFS writes for any path).
    const upload = await rawRequest(mirror, 'POST', '/scm/lfs/assets.git/info/lfs/objects/batch', { creds: carol, body: JSON.stringify({ operation: 'upload', objects: [{ oid, size: SIZE }] }), headers });
    assert.equal(upload.status, 404);
    assert.equal(JSON.parse(upload.text).message, JSON.parse(onPrimary.text).message);
    const locks = await rawRequest(mirror, 'GET', '/scm/lfs/no-such.git/info/lfs/locks', { creds: alice });
    assert.equal(locks.status, 404);
  });

  it('prefetches the LFS objects of a push, so the first clone does not reach the primary, and reports what the primary lacks', async () => {
    const prefetching = await startMirror(primary);
    try {
      await authorizeMirror(primary, prefetching, 'ALL');
      await waitForState(prefetching, 'SYNCHRONIZED');
      const fresh = await pushLfsCommit('prefetched.bin', 256 * 1024);
      await waitForSameRefs(primary, prefetching, 'LFS', 'assets', alice);
      const path = (id: string) => join(prefetching.home, 'lfs', String(repoId), id.slice(0, 2), id.slice(2, 4), id);
      await eventually(async () => existsSync(path(fresh)) && existsSync(path(oid)), 'the prefetched objects on the mirror');
      const before = await primaryFetches();
      const dest = join(tempDir(), 'clone');
      await lfsGitOk(lfsUser(prefetching, bob), ['clone', '-q', prefetching.httpUrl('LFS', 'assets'), dest]);
      assert.equal(sha256File(join(dest, 'prefetched.bin')), fresh);
      assert.equal((await primaryFetches()) - before, 0, 'the clone was served from the mirror alone');

      // A pointer to an object nobody uploaded: pushed with plain git, no LFS filter.
      const orphan = 'e'.repeat(64);
      writeFileSync(join(work, 'orphan.bin'), `version https://git-lfs.github.com/spec/v1\noid sha256:${orphan}\nsize 12\n`);
      await gitOk(null, ['add', 'orphan.bin'], { cwd: work });
      await gitOk(null, ['commit', '-q', '-m', 'orphan pointer'], { cwd: work });
      await gitOk(primary, ['push', '-q', '--no-verify', primary.httpUrl('LFS', 'assets'), 'main'], { creds: alice, cwd: work });
      const status = await eventually(async () => {
        const s = (await mirrorGet<{ lfsMissing?: Array<{ repositoryId: number; missing: number; examples: Array<{ oid: string; error: string }> }> }>(prefetching, '/status')).body;
        return s.lfsMissing?.length ? s : undefined;
      }, 'the missing LFS object in /status');
      assert.equal(status.lfsMissing![0]!.repositoryId, repoId);
      assert.equal(status.lfsMissing![0]!.missing, 1);
      assert.equal(status.lfsMissing![0]!.examples[0]!.oid, orphan);
      assert.match(status.lfsMissing![0]!.examples[0]!.error, /does not exist in this repository/);
    } finally {
      await prefetching.stop();
    }
  });
});
