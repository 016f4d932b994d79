// The event log is exact: every ref change (push over HTTPS, REST) and every repository, project, permission,
// key and token change appears once, with dense sequence numbers and correct old/new ids, across restarts.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { addSshKey, createProject, createRepo, createToken, createUser, events, grantRepo, lastEventId, tokenSecret, type LoggedEvent } from '../helpers/fixtures.js';
import { ADMIN, api, gitOk, makeWorkTree, sshKeyPair, startServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

const ZERO = '0'.repeat(40);
let server: TestServer;

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.stop();
  removeTempDirs();
});

const rev = async (cwd: string, what = 'HEAD') => (await gitOk(null, ['rev-parse', what], { cwd })).trim();
const pick = (e: LoggedEvent, ...keys: string[]) => Object.fromEntries(keys.map((k) => [k, e[k]]));

describe('event log', () => {
  let repoId: number;
  let projectId: number;
  let work: string;
  const url = () => server.httpUrl('LOG', 'app');

  it('starts with the bootstrap admin and records project and repository creation', async () => {
    const initial = await events(server);
    assert.deepEqual(
      initial.map((e) => [e.id, e.type]),
      [[1, 'user.created']],
    );
    const project = await createProject(server, 'LOG');
    projectId = project.id;
    const repo = await createRepo(server, 'LOG', 'app');
    repoId = repo.id;
    const [p, r] = await events(server, 1);
    assert.deepEqual(pick(p!, 'id', 'type', 'projectId', 'key'), { id: 2, type: 'project.created', projectId, key: 'LOG' });
    assert.deepEqual(pick(r!, 'id', 'type', 'projectId', 'repositoryId', 'slug', 'defaultBranch'), {
      id: 3,
      type: 'repository.created',
      projectId,
      repositoryId: repoId,
      slug: 'app',
      defaultBranch: 'refs/heads/main',
    });
  });

  it('records a push with exact old and new ids, one event per ref, in ref order', async () => {
    work = await makeWorkTree([{ 'a.txt': '1\n' }, { 'a.txt': '2\n' }]);
    await gitOk(null, ['branch', 'feature', 'HEAD~1'], { cwd: work });
    await gitOk(null, ['tag', '-a', '-m', 'v1', 'v1'], { cwd: work });
    const from = await lastEventId(server);
    await gitOk(server, ['push', url(), 'main', 'feature', 'v1'], { creds: ADMIN, cwd: work });
    const got = await events(server, from);
    assert.deepEqual(
      got.map((e) => [e.id, e.type, e.refId, e.fromHash, e.toHash, e.changeType, e.repositoryId, e.actor, e.via]),
      [
        [from + 1, 'ref.updated', 'refs/heads/feature', ZERO, await rev(work, 'feature'), 'ADD', repoId, 'admin', 'http'],
        [from + 2, 'ref.updated', 'refs/heads/main', ZERO, await rev(work, 'main'), 'ADD', repoId, 'admin', 'http'],
        [from + 3, 'ref.updated', 'refs/tags/v1', ZERO, await rev(work, 'refs/tags/v1'), 'ADD', repoId, 'admin', 'http'],
      ],
    );
  });

  it('records force pushes and deletions with the values they replaced', async () => {
    const oldMain = await rev(work, 'main');
    const oldFeature = await rev(work, 'feature');
    await gitOk(null, ['commit', '-q', '--amend', '-m', 'rewritten'], { cwd: work });
    const newMain = await rev(work);
    const from = await lastEventId(server);
    await gitOk(server, ['push', '--force', url(), 'main', ':feature'], { creds: ADMIN, cwd: work });
    const got = await events(server, from);
    assert.deepEqual(
      got.map((e) => [e.type, e.refId, e.fromHash, e.toHash, e.changeType]),
      [
        ['ref.updated', 'refs/heads/feature', oldFeature, ZERO, 'DELETE'],
        ['ref.updated', 'refs/heads/main', oldMain, newMain, 'UPDATE'],
      ],
    );
  });

  it('logs nothing for a push that changes nothing', async () => {
    const from = await lastEventId(server);
    await gitOk(server, ['push', url(), 'main'], { creds: ADMIN, cwd: work });
    assert.deepEqual(await events(server, from), []);
  });

  it('records concurrent pushes to one repository exactly once each', async () => {
    const from = await lastEventId(server);
    const branches = Array.from({ length: 8 }, (_, i) => `parallel-${i}`);
    await Promise.all(branches.map((b) => gitOk(server, ['push', url(), `main:refs/heads/${b}`], { creds: ADMIN, cwd: work })));
    const got = await events(server, from);
    assert.deepEqual(got.map((e) => e.refId).sort(), branches.map((b) => `refs/heads/${b}`).sort());
    assert.deepEqual(got.map((e) => e.id), branches.map((_, i) => from + 1 + i), 'dense, no duplicates');
    assert.ok(got.every((e) => e.fromHash === ZERO && e.changeType === 'ADD'));
  });

  it('records REST ref operations, default branch, rename, permissions, keys and tokens without secrets', async () => {
    const from = await lastEventId(server);
    const main = await rev(work, 'main');
    let r = await api(server, 'POST', '/rest/api/1.0/projects/LOG/repos/app/branches', { name: 'rest-branch', startPoint: 'main' });
    assert.ok(r.status >= 200 && r.status < 300, r.text);
    r = await api(server, 'PUT', '/rest/api/1.0/projects/LOG/repos/app/default-branch', { id: 'refs/heads/rest-branch' });
    assert.ok(r.status < 300, r.text);
    r = await api(server, 'PUT', '/rest/api/1.0/projects/LOG/repos/app', { name: 'App Two' });
    assert.equal(r.status, 201, r.text); // Bitbucket answers a repository update with 201
    const bob = await createUser(server, 'bob');
    await grantRepo(server, 'LOG', 'app-two', 'bob', 'REPO_WRITE');
    const key = await sshKeyPair();
    await addSshKey(server, 'bob', key.publicKey);
    const token = await createToken(server, bob, ['REPO_READ']);
    const got = await events(server, from);
    assert.deepEqual(
      got.map((e) => e.type),
      ['ref.updated', 'repository.head_changed', 'repository.updated', 'user.created', 'permission.changed', 'ssh_key.added', 'access_token.created'],
    );
    assert.deepEqual(pick(got[0]!, 'refId', 'fromHash', 'toHash', 'changeType', 'via'), { refId: 'refs/heads/rest-branch', fromHash: ZERO, toHash: main, changeType: 'ADD', via: 'rest' });
    assert.deepEqual(pick(got[1]!, 'from', 'to'), { from: 'refs/heads/main', to: 'refs/heads/rest-branch' });
    assert.deepEqual(pick(got[2]!, 'slug', 'previousSlug', 'name', 'repositoryId'), { slug: 'app-two', previousSlug: 'app', name: 'App Two', repositoryId: repoId });
    assert.deepEqual(pick(got[4]!, 'user', 'permission', 'scope', 'repositoryId'), { user: 'bob', permission: 'REPO_WRITE', scope: 'repository', repositoryId: repoId });
    const text = JSON.stringify(got);
    assert.ok(!text.includes(token), 'no token in any event');
    assert.ok(!text.includes(tokenSecret(token)), 'no token secret in any event');
    assert.ok(!text.includes('bob-password-1'), 'no password in any event');
    assert.doesNotMatch(text, /password_hash|secret_hash|scrypt\$/);
  });

  it('records repository deletion, survives a restart, and continues the numbering', async () => {
    const before = await events(server);
    let r = await api(server, 'DELETE', '/rest/api/1.0/projects/LOG/repos/app-two');
    assert.ok(r.status === 202 || r.status === 204, r.text);
    const deleted = (await events(server, before.at(-1)!.id))[0]!;
    assert.deepEqual(pick(deleted, 'type', 'repositoryId', 'slug'), { type: 'repository.deleted', repositoryId: repoId, slug: 'app-two' });

    server = await server.restart();
    const afterRestart = await events(server);
    assert.deepEqual(afterRestart.slice(0, before.length), before, 'identical after restart');
    assert.deepEqual(afterRestart.map((e) => e.id), afterRestart.map((_, i) => i + 1), 'dense from 1');

    const repo = await createRepo(server, 'LOG', 'again');
    const w = await makeWorkTree();
    await gitOk(server, ['push', server.httpUrl('LOG', 'again'), 'main'], { creds: ADMIN, cwd: w });
    const tail = await events(server, afterRestart.at(-1)!.id);
    assert.deepEqual(
      tail.map((e) => [e.id, e.type, e.repositoryId]),
      [
        [afterRestart.length + 1, 'repository.created', repo.id],
        [afterRestart.length + 2, 'ref.updated', repo.id],
      ],
    );
    r = await api(server, 'GET', '/rest/mirroring/1.0/events?after=0', undefined, null);
    assert.equal(r.status, 401, 'anonymous callers cannot read the log');
  });
});
