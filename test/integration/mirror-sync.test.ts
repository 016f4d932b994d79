// One mirror node against a primary, as separate processes, with real git, ssh and TLS: registration and
// authorization, then every kind of change on the primary showing up on the mirror, resumption after
// restarts, snapshots repairing what the stream cannot, and deletion cutting the mirror off.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createProject, createRepo, createUser, grantProject } from '../helpers/fixtures.js';
import { authorizeMirror, mirrorGet, waitForSameRefs, waitForState } from '../helpers/mirror.js';
import { ADMIN, api, eventually, git, gitOk, makeWorkTree, parseLsRemote, startMirror, startServer, type Credentials, type TestServer } from '../helpers/server.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';
import { run } from '../helpers/run.js';

let primary: TestServer;
let mirror: TestServer;
let alice: Credentials;
let work: string;
let mirrorId: string;

before(async () => {
  primary = await startServer({ env: { MIRRORFARM_EVENTS_MAX_EVENTS: '60' } });
  await createProject(primary, 'ONE');
  await createProject(primary, 'TWO');
  await createRepo(primary, 'ONE', 'app');
  await createRepo(primary, 'ONE', 'lib');
  await createRepo(primary, 'TWO', 'other');
  alice = await createUser(primary, 'alice');
  await grantProject(primary, 'ONE', 'alice', 'PROJECT_WRITE');
  await grantProject(primary, 'TWO', 'alice', 'PROJECT_WRITE');
  work = await makeWorkTree([{ 'README.md': 'v1\n' }]);
  for (const [p, s] of [['ONE', 'app'], ['ONE', 'lib'], ['TWO', 'other']]) await gitOk(primary, ['push', primary.httpUrl(p!, s!), 'main'], { creds: ADMIN, cwd: work });
  mirror = await startMirror(primary, { env: { MIRRORFARM_MIRROR_SNAPSHOT_INTERVAL_SECONDS: '5' } });
});

after(async () => {
  if (process.env.MF_TEST_DEBUG) process.stderr.write(`--- mirror output ---\n${mirror?.output().slice(-20000)}\n`);
  await mirror?.stop();
  await primary?.stop();
  removeTempDirs();
});

const push = (args: string[], cwd = work) => gitOk(primary, ['push', ...args], { creds: alice, cwd });

describe('mirror setup and sync', () => {
  it('starts PENDING, links to the primary, and is not ready', async () => {
    const status = await waitForState(mirror, 'PENDING');
    assert.match(status.mirrorId, /^[0-9A-F]{4}(-[0-9A-F]{4}){3}$/);
    assert.equal(status.links.primary, `${primary.baseUrl}/admin/mirrors/${status.mirrorId}`);
    assert.equal((await mirrorGet(mirror, '/ready')).status, 503);
    const requests = await api(primary, 'GET', '/rest/mirroring/1.0/requests');
    assert.equal(requests.status, 200, requests.text);
    assert.ok(JSON.stringify(requests.body).includes(status.mirrorId), 'the primary lists the request');
    const r = await git(mirror, ['ls-remote', mirror.httpUrl('ONE', 'app')], { creds: alice });
    assert.notEqual(r.code, 0, 'nothing is served before authorization');
  });

  it('after authorization with selected projects, serves them over HTTPS and SSH', async () => {
    mirrorId = await authorizeMirror(primary, mirror, ['ONE']);
    await waitForState(mirror, 'SYNCHRONIZED');
    assert.equal((await mirrorGet(mirror, '/ready')).status, 200);
    const status = (await mirrorGet(mirror, '/status')).body;
    assert.deepEqual(status.progress, { synced: 2, total: 2 });
    const dest = join(tempDir(), 'clone');
    await gitOk(mirror, ['clone', mirror.httpUrl('ONE', 'app'), dest], { creds: alice });
    assert.equal(readFileSync(join(dest, 'README.md'), 'utf8'), 'v1\n');
    const unselected = await git(mirror, ['ls-remote', mirror.httpUrl('TWO', 'other')], { creds: alice });
    assert.notEqual(unselected.code, 0);
    assert.match(unselected.stderr, /does not exist or you do not have permission/);
  });

  it('shows a push within a second, and force pushes, tags, deletes and HEAD changes', async () => {
    await gitOk(null, ['commit', '-q', '--allow-empty', '-m', 'second'], { cwd: work });
    await push([primary.httpUrl('ONE', 'app'), 'main', 'main:refs/heads/feature']);
    const t0 = Date.now();
    await waitForSameRefs(primary, mirror, 'ONE', 'app', alice);
    assert.ok(Date.now() - t0 < 3000, `visible on the mirror after ${Date.now() - t0} ms`);

    await gitOk(null, ['commit', '-q', '--amend', '--allow-empty', '-m', 'rewritten'], { cwd: work });
    await gitOk(null, ['tag', '-a', '-m', 'v1', 'v1'], { cwd: work });
    await push(['--force', primary.httpUrl('ONE', 'app'), 'main', 'v1', ':feature']);
    await push([primary.httpUrl('ONE', 'app'), 'main:refs/heads/release']);
    const d = await api(primary, 'PUT', '/rest/api/1.0/projects/ONE/repos/app/default-branch', { id: 'refs/heads/release' });
    assert.ok(d.status < 300, d.text);
    const refs = await waitForSameRefs(primary, mirror, 'ONE', 'app', alice);
    assert.ok(!refs.has('refs/heads/feature'));
    assert.ok(refs.has('refs/tags/v1^{}'));
    const head = await gitOk(mirror, ['ls-remote', '--symref', mirror.httpUrl('ONE', 'app'), 'HEAD'], { creds: alice });
    assert.match(head, /^ref: refs\/heads\/release\tHEAD/m);
  });

  it('follows renames and deletions', async () => {
    let r = await api(primary, 'PUT', '/rest/api/1.0/projects/ONE/repos/lib', { name: 'Library' });
    assert.ok(r.status < 300, r.text);
    await eventually(async () => (await git(mirror, ['ls-remote', mirror.httpUrl('ONE', 'library')], { creds: alice })).code === 0, 'renamed repository on the mirror');
    const old = await git(mirror, ['ls-remote', mirror.httpUrl('ONE', 'lib')], { creds: alice });
    assert.match(old.stderr, /does not exist/);
    r = await api(primary, 'DELETE', '/rest/api/1.0/projects/ONE/repos/library');
    assert.ok(r.status < 300, r.text);
    await eventually(async () => /does not exist/.test((await git(mirror, ['ls-remote', mirror.httpUrl('ONE', 'library')], { creds: alice })).stderr), 'deleted repository gone');
  });

  it('adds and removes projects when the selection changes', async () => {
    let r = await api(primary, 'POST', `/rest/mirroring/1.0/mirrorServers/${mirrorId}/projects/TWO`);
    assert.ok(r.status < 300, r.text);
    await waitForSameRefs(primary, mirror, 'TWO', 'other', alice);
    r = await api(primary, 'DELETE', `/rest/mirroring/1.0/mirrorServers/${mirrorId}/projects/ONE`);
    assert.ok(r.status < 300, r.text);
    await eventually(async () => /does not exist/.test((await git(mirror, ['ls-remote', mirror.httpUrl('ONE', 'app')], { creds: alice })).stderr), 'project ONE gone from the mirror');
    r = await api(primary, 'POST', `/rest/mirroring/1.0/mirrorServers/${mirrorId}/projects/ONE`);
    assert.ok(r.status < 300, r.text);
    await waitForSameRefs(primary, mirror, 'ONE', 'app', alice);
  });

  it('resumes from its cursor after a restart, and catches up on 50 pushes made while it was down', async () => {
    await mirror.stop();
    for (let i = 0; i < 50; i++) {
      await gitOk(null, ['commit', '-q', '--allow-empty', '-m', `offline ${i}`], { cwd: work });
      await push([primary.httpUrl('TWO', 'other'), `HEAD:refs/heads/offline-${i % 5}`]);
    }
    mirror = await mirror.restart();
    await waitForSameRefs(primary, mirror, 'TWO', 'other', alice, 30_000);
    await waitForState(mirror, 'SYNCHRONIZED');
  });

  it('runs a full snapshot when its cursor fell out of the primary\'s retention', async () => {
    await mirror.stop();
    // 80 ref events at once, past the primary's limit of 60 retained events; the restart prunes.
    const many = Array.from({ length: 80 }, (_, i) => `HEAD:refs/heads/bulk-${i}`);
    await push([primary.httpUrl('ONE', 'app'), ...many]);
    primary = await primary.restart();
    mirror = await startMirror(primary, { home: mirror.home, env: { MIRRORFARM_MIRROR_SNAPSHOT_INTERVAL_SECONDS: '300' } });
    const refs = await waitForSameRefs(primary, mirror, 'ONE', 'app', alice, 30_000);
    assert.ok(refs.has('refs/heads/bulk-79'));
  });

  it('repairs a repository changed behind its back at the next snapshot', async () => {
    await mirror.stop();
    mirror = await startMirror(primary, { home: mirror.home, env: { MIRRORFARM_MIRROR_SNAPSHOT_INTERVAL_SECONDS: '5' } });
    await waitForState(mirror, 'SYNCHRONIZED');
    const repoId = ((await api(primary, 'GET', '/rest/api/1.0/projects/TWO/repos/other')).body as { id: number }).id;
    const gitDir = join(mirror.home, 'repos', `${repoId}.git`);
    const env = { ...process.env, GIT_DIR: gitDir };
    const main = (await run('git', ['rev-parse', 'refs/heads/main'], { env })).stdout.trim();
    await run('git', ['update-ref', 'refs/heads/main', `${main}~1`], { env });
    await run('git', ['update-ref', 'refs/heads/intruder', main], { env });
    const tampered = parseLsRemote(await gitOk(mirror, ['ls-remote', mirror.httpUrl('TWO', 'other')], { creds: alice }));
    assert.ok(tampered.has('refs/heads/intruder'));
    await waitForSameRefs(primary, mirror, 'TWO', 'other', alice, 20_000);
  });

  it('is cut off at once when deleted on the primary', async () => {
    const r = await api(primary, 'DELETE', `/rest/mirroring/1.0/mirrorServers/${mirrorId}`);
    assert.ok(r.status < 300, r.text);
    const t0 = Date.now();
    await waitForState(mirror, 'REMOVED', 5000);
    assert.ok(Date.now() - t0 < 1500, `REMOVED after ${Date.now() - t0} ms`);
    const clone = await git(mirror, ['ls-remote', mirror.httpUrl('ONE', 'app')], { creds: alice });
    assert.notEqual(clone.code, 0);
    assert.match(clone.stderr, /removed from its primary/);
    assert.equal((await mirrorGet(mirror, '/ready')).status, 503);
  });
});
