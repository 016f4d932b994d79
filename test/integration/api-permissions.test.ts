// Project and repository permissions through the REST API, and what they let users do over REST and git:
// who gets 401, 404 or 403, grants and revokes at both scopes, paging and filters, the rule that nobody lowers
// their own access, and public projects and repositories for anonymous callers.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createProject, createRepo, createToken, createUser } from '../helpers/fixtures.js';
import { ADMIN, api, git, gitOk, makeWorkTree, startServer, type ApiResponse, type Credentials, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

// Response bodies are checked field by field with assert; a precise type per shape would add nothing.
 
type Json = any;

let server: TestServer;
// Uncapped tokens behave as their users on projects and repositories and keep this file fast (a password
// login costs a deliberately slow hash per request); password logins are used where they matter.
const users: Record<string, Credentials> = {};
let admin: Credentials;
let work: string;

function assertError(r: ApiResponse, status: number, code: string): void {
  assert.equal(r.status, status, r.text);
  assert.equal(r.body?.errors?.[0]?.code, code, r.text);
  assert.equal(r.body.errors[0].context, null);
}

const as = (who: string | null) => (who === null ? null : who === 'admin' ? admin : users[who]!);
const call = (method: string, path: string, who: string | null = 'admin', body?: unknown) => api(server, method, path, body, as(who));
const projectPerms = '/rest/api/1.0/projects/PERM/permissions/users';
const repoPerms = (slug: string) => `/rest/api/1.0/projects/PERM/repos/${slug}/permissions/users`;
const url = (slug: string) => server.httpUrl('PERM', slug);

async function fullToken(owner: Credentials): Promise<Credentials> {
  return { user: owner.user, secret: await createToken(server, owner, ['PROJECT_ADMIN', 'REPO_ADMIN'], 'tests') };
}

before(async () => {
  server = await startServer();
  const people = await Promise.all(['alice', 'bob', 'carol', 'dave'].map((n) => createUser(server, n)));
  const tokens = await Promise.all([ADMIN, ...people].map(fullToken));
  admin = tokens[0]!;
  for (const t of tokens.slice(1)) users[t.user] = t;
  await createProject(server, 'PERM');
  await Promise.all([createRepo(server, 'PERM', 'one'), createRepo(server, 'PERM', 'two')]);
  work = await makeWorkTree([{ 'f.txt': 'x\n' }]);
  await gitOk(server, ['push', url('one'), 'main'], { creds: admin, cwd: work });
});

after(async () => {
  await server?.stop();
  removeTempDirs();
});

describe('repository permissions', () => {
  it('hides a private repository: 401 for anonymous callers, 404 for users without access', async () => {
    assertError(await call('GET', '/rest/api/1.0/projects/PERM/repos/one', null), 401, 'AUTHENTICATION_REQUIRED');
    const hidden = await call('GET', '/rest/api/1.0/projects/PERM/repos/one', 'alice');
    const missing = await call('GET', '/rest/api/1.0/projects/PERM/repos/nothing', 'alice');
    assertError(hidden, 404, 'REPOSITORY_NOT_FOUND');
    assertError(missing, 404, 'REPOSITORY_NOT_FOUND');
    assert.equal(hidden.body.errors[0].message.replace('one', 'X'), missing.body.errors[0].message.replace('nothing', 'X'), 'no hint that it exists');
    assertError(await call('GET', repoPerms('one'), 'alice'), 404, 'REPOSITORY_NOT_FOUND');
    const clone = await git(server, ['ls-remote', url('one')], { creds: users.alice });
    assert.notEqual(clone.code, 0);
  });

  it('grants REPO_READ: read over REST and git, 403 for writing and administering', async () => {
    const r = await call('PUT', `${repoPerms('one')}?name=alice&permission=REPO_READ`);
    assert.equal(r.status, 204, r.text);
    assert.equal((await call('GET', '/rest/api/1.0/projects/PERM/repos/one', 'alice')).status, 200);
    assertError(await call('GET', '/rest/api/1.0/projects/PERM/repos/two', 'alice'), 404, 'REPOSITORY_NOT_FOUND');
    await gitOk(server, ['ls-remote', url('one')], { creds: users.alice });
    const push = await git(server, ['push', url('one'), 'main:refs/heads/alice'], { creds: users.alice, cwd: work });
    assert.notEqual(push.code, 0);
    assert.match(push.stderr, /permission|403/i);
    assertError(await call('PUT', '/rest/api/1.0/projects/PERM/repos/one', 'alice', { name: 'x' }), 403, 'FORBIDDEN');
    assertError(await call('GET', repoPerms('one'), 'alice'), 403, 'FORBIDDEN');
    assertError(await call('POST', '/rest/api/1.0/projects/PERM/repos/one/branches', 'alice', { name: 'b', startPoint: 'main' }), 403, 'FORBIDDEN');
  });

  it('grants several users at once, lists them paged and filtered, and upgrades in place', async () => {
    let r = await call('PUT', `${repoPerms('one')}?name=bob&name=carol&permission=REPO_WRITE`);
    assert.equal(r.status, 204, r.text);
    r = await call('GET', repoPerms('one'));
    assert.deepEqual(
      r.body.values.map((g: Json) => [g.user.name, g.permission]),
      [
        ['alice', 'REPO_READ'],
        ['bob', 'REPO_WRITE'],
        ['carol', 'REPO_WRITE'],
      ],
    );
    assert.deepEqual(Object.keys(r.body.values[0].user).sort(), ['active', 'displayName', 'emailAddress', 'id', 'links', 'name', 'slug', 'type']);
    const page = await call('GET', `${repoPerms('one')}?limit=2`);
    assert.deepEqual([page.body.size, page.body.isLastPage, page.body.nextPageStart], [2, false, 2]);
    const rest = await call('GET', `${repoPerms('one')}?limit=2&start=2`);
    assert.deepEqual([rest.body.values[0].user.name, rest.body.isLastPage, rest.body.nextPageStart], ['carol', true, undefined]);
    assert.deepEqual((await call('GET', `${repoPerms('one')}?filter=CAR`)).body.values.map((g: Json) => g.user.name), ['carol']);

    await gitOk(server, ['push', url('one'), 'main:refs/heads/bob'], { creds: users.bob, cwd: work });
    await call('PUT', `${repoPerms('one')}?name=bob&permission=REPO_ADMIN`);
    assert.deepEqual((await call('GET', `${repoPerms('one')}?filter=bob`)).body.values.map((g: Json) => g.permission), ['REPO_ADMIN'], 'replaced, not added');
    assert.equal((await call('GET', repoPerms('one'), 'bob')).status, 200, 'a repository admin manages its permissions');
    // bob sees the project through its repository, so he is refused rather than told it does not exist.
    assertError(await call('GET', projectPerms, 'bob'), 403, 'FORBIDDEN');
    assertError(await call('GET', projectPerms, 'dave'), 404, 'PROJECT_NOT_FOUND');
  });

  it('validates names and permissions before changing anything', async () => {
    assertError(await call('PUT', `${repoPerms('one')}?name=dave&permission=PROJECT_WRITE`), 400, 'INVALID_INPUT');
    assertError(await call('PUT', `${repoPerms('one')}?name=dave&permission=REPO_SUPER`), 400, 'INVALID_INPUT');
    assertError(await call('PUT', `${repoPerms('one')}?permission=REPO_READ`), 400, 'INVALID_INPUT');
    assertError(await call('PUT', `${repoPerms('one')}?name=dave&name=nobody&permission=REPO_READ`), 404, 'USER_NOT_FOUND');
    assert.deepEqual((await call('GET', `${repoPerms('one')}?filter=dave`)).body.values, [], 'dave was not granted either');
  });

  it('revokes: access ends at once', async () => {
    assert.equal((await call('DELETE', `${repoPerms('one')}?name=alice`)).status, 204);
    assertError(await call('GET', '/rest/api/1.0/projects/PERM/repos/one', 'alice'), 404, 'REPOSITORY_NOT_FOUND');
    assert.notEqual((await git(server, ['ls-remote', url('one')], { creds: users.alice })).code, 0);
  });
});

describe('project permissions', () => {
  it('PROJECT_WRITE reaches every repository of the project but administers nothing', async () => {
    const r = await call('PUT', `${projectPerms}?name=dave&permission=PROJECT_WRITE`);
    assert.equal(r.status, 204, r.text);
    assert.deepEqual((await call('GET', projectPerms)).body.values.map((g: Json) => [g.user.name, g.permission]), [['dave', 'PROJECT_WRITE']]);
    await gitOk(server, ['push', url('two'), 'main'], { creds: users.dave, cwd: work });
    assert.deepEqual((await call('GET', '/rest/api/1.0/projects/PERM/repos', 'dave')).body.values.map((v: Json) => v.slug), ['one', 'two']);
    assertError(await call('POST', '/rest/api/1.0/projects/PERM/repos', 'dave', { name: 'three' }), 403, 'FORBIDDEN');
    assertError(await call('GET', projectPerms, 'dave'), 403, 'FORBIDDEN');
    assertError(await call('PUT', `${repoPerms('two')}?name=alice&permission=REPO_READ`, 'dave'), 403, 'FORBIDDEN');
    assertError(await call('PUT', `${projectPerms}?name=dave&permission=REPO_WRITE`), 400, 'INVALID_INPUT');
  });

  it('PROJECT_ADMIN manages the project, its repositories and their permissions', async () => {
    await call('PUT', `${projectPerms}?name=carol&permission=PROJECT_ADMIN`);
    const created = await call('POST', '/rest/api/1.0/projects/PERM/repos', 'carol', { name: 'three' });
    assert.equal(created.status, 201, created.text);
    assert.equal((await call('PUT', `${repoPerms('three')}?name=alice&permission=REPO_READ`, 'carol')).status, 204);
    assert.equal((await call('GET', '/rest/api/1.0/projects/PERM/repos/three', 'alice')).status, 200);
    assert.equal((await call('PUT', '/rest/api/1.0/projects/PERM', 'carol', { description: 'Carol runs this' })).status, 200);
  });

  it('does not let anyone lower their own access (403 on PUT, 409 on DELETE)', async () => {
    assertError(await call('PUT', `${projectPerms}?name=carol&permission=PROJECT_READ`, 'carol'), 403, 'FORBIDDEN');
    assertError(await call('DELETE', `${projectPerms}?name=carol`, 'carol'), 409, 'CONFLICT');
    // A repository grant below a project grant lowers nothing, so it is allowed.
    assert.equal((await call('PUT', `${repoPerms('three')}?name=carol&permission=REPO_READ`, 'carol')).status, 204);
    assert.equal((await call('DELETE', `${repoPerms('three')}?name=carol`, 'carol')).status, 204);
    // Another administrator can.
    assert.equal((await call('DELETE', `${projectPerms}?name=carol`)).status, 204);
    assertError(await call('GET', '/rest/api/1.0/projects/PERM/repos/three', 'carol'), 404, 'REPOSITORY_NOT_FOUND');
  });

  it('checks permissions for password logins the same way', async () => {
    const dave = { user: 'dave', secret: 'dave-password-1' };
    assert.equal((await api(server, 'GET', '/rest/api/1.0/projects/PERM/repos/one', undefined, dave)).status, 200);
    assertError(await api(server, 'GET', projectPerms, undefined, dave), 403, 'FORBIDDEN');
    assertError(await api(server, 'GET', projectPerms, undefined, { user: 'dave', secret: 'wrong-password' }), 401, 'BAD_CREDENTIALS');
  });
});

describe('public projects and repositories', () => {
  it('lets anonymous callers read a public repository and nothing else', async () => {
    await call('PUT', '/rest/api/1.0/projects/PERM/repos/two', 'admin', { public: true });
    assert.equal((await call('GET', '/rest/api/1.0/projects/PERM/repos/two', null)).status, 200);
    assert.deepEqual((await call('GET', '/rest/api/1.0/repos', null)).body.values.map((v: Json) => v.slug), ['two']);
    await gitOk(server, ['ls-remote', url('two')]);
    assertError(await call('GET', '/rest/api/1.0/projects/PERM/repos/one', null), 401, 'AUTHENTICATION_REQUIRED');
    assertError(await call('PUT', '/rest/api/1.0/projects/PERM/repos/two', null, { name: 'x' }), 401, 'AUTHENTICATION_REQUIRED');
    assertError(await call('PUT', '/rest/api/1.0/projects/PERM/repos/two', 'alice', { name: 'x' }), 403, 'FORBIDDEN');
    const push = await git(server, ['push', url('two'), 'main:refs/heads/anon'], { cwd: work });
    assert.notEqual(push.code, 0);
  });

  it('a public project opens all its repositories for reading', async () => {
    await call('PUT', '/rest/api/1.0/projects/PERM', 'admin', { public: true });
    assert.deepEqual((await call('GET', '/rest/api/1.0/projects/PERM/repos', null)).body.values.map((v: Json) => v.slug), ['one', 'three', 'two']);
    await gitOk(server, ['ls-remote', url('one')]);
    assertError(await call('GET', projectPerms, null), 401, 'AUTHENTICATION_REQUIRED');
    assertError(await call('GET', projectPerms, 'alice'), 403, 'FORBIDDEN');
  });
});
