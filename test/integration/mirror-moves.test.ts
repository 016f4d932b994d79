// A mirror follows a repository moved to another project and a project whose key changed: it serves the
// repository at its new URL at once (the same objects, never fetched again: the repository is stored by id) and
// answers "not found" at the old one. A mirror that carries only the old project drops a repository moved out of it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createProject, createRepo, createUser, grantProject } from '../helpers/fixtures.js';
import { authorizeMirror, waitForSameRefs } from '../helpers/mirror.js';
import { api, ADMIN, eventually, git, gitOk, makeWorkTree, startMirror, startServer, type Credentials, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

let primary: TestServer;
let all: TestServer;
let selected: TestServer;
let alice: Credentials;

before(async () => {
  primary = await startServer();
  await createProject(primary, 'SRC', { name: 'Source project' });
  await createProject(primary, 'DEST', { name: 'Destination project' });
  await createRepo(primary, 'SRC', 'app');
  alice = await createUser(primary, 'alice');
  for (const key of ['SRC', 'DEST']) await grantProject(primary, key, 'alice', 'PROJECT_READ');
  const work = await makeWorkTree([{ 'README.md': 'moving\n' }]);
  await gitOk(primary, ['push', primary.httpUrl('SRC', 'app'), 'main'], { creds: ADMIN, cwd: work });
  all = await startMirror(primary, { env: { MIRRORFARM_DISPLAY_NAME: 'all projects' } });
  await authorizeMirror(primary, all, 'ALL');
  selected = await startMirror(primary, { env: { MIRRORFARM_DISPLAY_NAME: 'source only' } });
  await authorizeMirror(primary, selected, ['SRC']);
  await waitForSameRefs(primary, all, 'SRC', 'app', alice, 30_000);
  await waitForSameRefs(primary, selected, 'SRC', 'app', alice, 30_000);
});

after(async () => {
  await all?.stop();
  await selected?.stop();
  await primary?.stop();
  removeTempDirs();
});

const lsRemote = (server: TestServer, project: string, slug: string) => git(server, ['ls-remote', server.httpUrl(project, slug)], { creds: alice });

describe('a mirror follows moves and key changes', () => {
  it('serves a repository moved to another project at its new URL, and not at the old one', async () => {
    const before = await gitOk(all, ['ls-remote', all.httpUrl('SRC', 'app')], { creds: alice });
    const r = await api(primary, 'PUT', '/rest/api/1.0/projects/SRC/repos/app', { project: { key: 'DEST' } });
    assert.equal(r.status, 201, r.text);
    const moved = await eventually(async () => {
      const ls = await lsRemote(all, 'DEST', 'app');
      return ls.code === 0 ? ls.stdout : undefined;
    }, 'the moved repository at its new URL on the mirror', 10_000, 100);
    assert.equal(moved, before, 'the same refs, at once');
    const old = await lsRemote(all, 'SRC', 'app');
    assert.notEqual(old.code, 0);
    assert.match(old.stderr, /not found|does not exist/i);
  });

  it('drops a repository moved out of the only project a mirror carries', async () => {
    await eventually(async () => (await lsRemote(selected, 'SRC', 'app')).code !== 0, 'gone from the mirror that carries only SRC', 10_000, 100);
    const moved = await lsRemote(selected, 'DEST', 'app');
    assert.notEqual(moved.code, 0);
    assert.match(moved.stderr, /not found|does not exist/i, 'not served under a project it does not carry');
  });

  it("serves a repository at its project's new key, and not at the old one", async () => {
    const before = await gitOk(all, ['ls-remote', all.httpUrl('DEST', 'app')], { creds: alice });
    const r = await api(primary, 'PUT', '/rest/api/1.0/projects/DEST', { key: 'FINAL' });
    assert.ok(r.status === 200 || r.status === 201, r.text);
    const renamed = await eventually(async () => {
      const ls = await lsRemote(all, 'FINAL', 'app');
      return ls.code === 0 ? ls.stdout : undefined;
    }, 'the repository under the new key on the mirror', 10_000, 100);
    assert.equal(renamed, before);
    const old = await lsRemote(all, 'DEST', 'app');
    assert.notEqual(old.code, 0);
    // A clone from the new URL has the primary's content.
    await waitForSameRefs(primary, all, 'FINAL', 'app', alice);
  });
});
