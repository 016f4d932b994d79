// Groups through the REST API, as Bitbucket has them: create, list (paged, filtered), delete; membership from
// the group's and from the user's side; project and repository permissions of groups and what they let members
// do over REST and git (the highest of own and group grants wins); SYS_ADMIN through a group; the events each
// change leaves; and who may do any of it (sysadmins only; nobody takes their own access away).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createProject, createRepo, createToken, createUser, events, grantRepo, lastEventId } from '../helpers/fixtures.js';
import { ADMIN, api, git, gitOk, makeWorkTree, startServer, type ApiResponse, type Credentials, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

type Json = any;

let server: TestServer;
// Uncapped tokens behave as their users on projects and repositories and keep this file fast (a password login
// costs a deliberately slow hash per request); password logins are used where system administration is tested.
const users: Record<string, Credentials> = {};
let work: string;

function assertError(r: ApiResponse, status: number, code: string): void {
  assert.equal(r.status, status, r.text);
  assert.equal(r.body?.errors?.[0]?.code, code, r.text);
}

const as = (who: string | null) => (who === null ? null : who === 'admin' ? ADMIN : users[who]!);
const call = (method: string, path: string, who: string | null = 'admin', body?: unknown) => api(server, method, path, body, as(who));
const q = (params: Record<string, string | string[]>) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const one of Array.isArray(v) ? v : [v]) s.append(k, one);
  return s.toString();
};
const GROUPS = '/rest/api/1.0/admin/groups';
const projectGroups = (key: string) => `/rest/api/1.0/projects/${key}/permissions/groups`;
const repoGroups = (key: string, slug: string) => `/rest/api/1.0/projects/${key}/repos/${slug}/permissions/groups`;
const url = (slug: string) => server.httpUrl('TEAM', slug);
const names = (r: ApiResponse) => r.body.values.map((v: Json) => v.name);

async function createGroup(name: string): Promise<void> {
  const r = await call('POST', `${GROUPS}?${q({ name })}`);
  assert.equal(r.status, 200, r.text);
}

async function addUsers(group: string, members: string[]): Promise<void> {
  const r = await call('POST', `${GROUPS}/add-users`, 'admin', { group, users: members });
  assert.equal(r.status, 204, r.text);
}

before(async () => {
  server = await startServer();
  const people = await Promise.all(['alice', 'bob', 'carol', 'dave', 'erin'].map((n) => createUser(server, n)));
  for (const person of people) users[person.user] = { user: person.user, secret: await createToken(server, person, ['PROJECT_ADMIN', 'REPO_ADMIN'], 'tests') };
  await createProject(server, 'TEAM');
  await Promise.all([createRepo(server, 'TEAM', 'app'), createRepo(server, 'TEAM', 'infra')]);
  work = await makeWorkTree([{ 'f.txt': 'x\n' }]);
  await gitOk(server, ['push', url('app'), 'main'], { creds: ADMIN, cwd: work });
  await gitOk(server, ['push', url('infra'), 'main'], { creds: ADMIN, cwd: work });
});

after(async () => {
  await server?.stop();
  removeTempDirs();
});

describe('group administration', () => {
  it('creates groups, keeps their case, and refuses a name taken in any case', async () => {
    const r = await call('POST', `${GROUPS}?name=Developers`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { name: 'Developers', deletable: true });
    assertError(await call('POST', `${GROUPS}?name=developers`), 409, 'CONFLICT');
    assertError(await call('POST', `${GROUPS}?${q({ name: '  ' })}`), 400, 'INVALID_INPUT');
    assertError(await call('POST', `${GROUPS}?${q({ name: 'a,b' })}`), 400, 'INVALID_INPUT');
    assertError(await call('POST', GROUPS), 400, 'INVALID_INPUT');
    for (const name of ['ops', 'qa', 'release-managers']) await createGroup(name);
  });

  it('lists groups ordered by name, paged and filtered', async () => {
    assert.deepEqual(names(await call('GET', GROUPS)), ['Developers', 'ops', 'qa', 'release-managers']);
    const page = await call('GET', `${GROUPS}?limit=2`);
    assert.deepEqual([names(page), page.body.size, page.body.isLastPage, page.body.nextPageStart], [['Developers', 'ops'], 2, false, 2]);
    const rest = await call('GET', `${GROUPS}?limit=2&start=2`);
    assert.deepEqual([names(rest), rest.body.isLastPage, rest.body.nextPageStart], [['qa', 'release-managers'], true, undefined]);
    assert.deepEqual(names(await call('GET', `${GROUPS}?filter=VELOP`)), ['Developers']);
    assert.deepEqual(names(await call('GET', `${GROUPS}?filter=${encodeURIComponent('%')}`)), [], 'LIKE wildcards are taken literally');
  });

  it('adds and removes members from the group\'s side, and lists members and non-members', async () => {
    let r = await call('POST', `${GROUPS}/add-user`, 'admin', { context: 'developers', itemName: 'alice' });
    assert.equal(r.status, 204, r.text);
    await addUsers('Developers', ['bob', 'CAROL', 'alice']);
    r = await call('GET', `${GROUPS}/more-members?context=Developers`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(names(r), ['alice', 'bob', 'carol']);
    assert.deepEqual(Object.keys(r.body.values[0]).sort(), ['active', 'deletable', 'directoryName', 'displayName', 'emailAddress', 'id', 'links', 'mutableDetails', 'mutableGroups', 'name', 'slug', 'type']);
    assert.equal(r.body.values[0].mutableGroups, true, 'memberships can be changed here');
    const page = await call('GET', `${GROUPS}/more-members?context=developers&limit=2&start=1`);
    assert.deepEqual([names(page), page.body.isLastPage], [['bob', 'carol'], true]);
    assert.deepEqual(names(await call('GET', `${GROUPS}/more-members?context=developers&filter=CAR`)), ['carol']);
    assert.deepEqual(names(await call('GET', `${GROUPS}/more-non-members?context=developers`)), ['admin', 'dave', 'erin']);
    assert.deepEqual(names(await call('GET', `${GROUPS}/more-non-members?context=developers&filter=er`)), ['erin']);

    r = await call('POST', `${GROUPS}/remove-user`, 'admin', { context: 'developers', itemName: 'carol' });
    assert.equal(r.status, 204, r.text);
    assert.deepEqual(names(await call('GET', `${GROUPS}/more-members?context=developers`)), ['alice', 'bob']);
    r = await call('POST', `${GROUPS}/remove-user`, 'admin', { context: 'developers', itemName: 'carol' });
    assert.equal(r.status, 204, 'removing a non-member is no error');
  });

  it('adds and removes memberships from the user\'s side', async () => {
    let r = await call('POST', '/rest/api/1.0/admin/users/add-groups', 'admin', { user: 'dave', groups: ['ops', 'QA'] });
    assert.equal(r.status, 204, r.text);
    r = await call('POST', '/rest/api/1.0/admin/users/add-group', 'admin', { context: 'dave', itemName: 'release-managers' });
    assert.equal(r.status, 204, r.text);
    assert.deepEqual(names(await call('GET', '/rest/api/1.0/admin/users/more-members?context=dave')), ['ops', 'qa', 'release-managers']);
    assert.deepEqual(await call('GET', '/rest/api/1.0/admin/users/more-members?context=dave&filter=QA').then((x) => x.body.values), [{ name: 'qa', deletable: true }]);
    r = await call('POST', '/rest/api/1.0/admin/users/remove-group', 'admin', { context: 'dave', itemName: 'release-managers' });
    assert.equal(r.status, 204, r.text);
    assert.deepEqual(names(await call('GET', '/rest/api/1.0/admin/users/more-non-members?context=dave')), ['Developers', 'release-managers']);
  });

  it('names the missing group or user, and changes nothing then', async () => {
    const noGroup = await call('GET', `${GROUPS}/more-members?context=nobody`);
    assertError(noGroup, 404, 'GROUP_NOT_FOUND');
    assert.equal(noGroup.body.errors[0].exceptionName, 'com.atlassian.bitbucket.user.NoSuchGroupException', "Bitbucket's class for a missing group");
    assertError(await call('POST', `${GROUPS}/add-user`, 'admin', { context: 'nobody', itemName: 'alice' }), 404, 'GROUP_NOT_FOUND');
    assertError(await call('POST', `${GROUPS}/add-users`, 'admin', { group: 'qa', users: ['erin', 'nobody'] }), 404, 'USER_NOT_FOUND');
    assert.deepEqual(names(await call('GET', `${GROUPS}/more-members?context=qa`)), ['dave'], 'erin was not added either');
    assertError(await call('POST', '/rest/api/1.0/admin/users/add-groups', 'admin', { user: 'erin', groups: ['qa', 'nobody'] }), 404, 'GROUP_NOT_FOUND');
    assert.deepEqual(names(await call('GET', '/rest/api/1.0/admin/users/more-members?context=erin')), []);
    assertError(await call('DELETE', `${GROUPS}?name=nobody`), 404, 'GROUP_NOT_FOUND');
    const missing = await call('DELETE', `${GROUPS}?name=nobody`);
    assert.match(missing.body.errors[0].message, /Group nobody does not exist/);
  });

  it('refuses everybody but sysadmins: 401 anonymous, 403 other users and sysadmin tokens', async () => {
    const adminToken = { user: 'admin', secret: await createToken(server, ADMIN, ['PROJECT_ADMIN', 'REPO_ADMIN'], 'admin token') };
    const attempts: Array<[string, string, unknown?]> = [
      ['GET', GROUPS],
      ['POST', `${GROUPS}?name=mine`],
      ['DELETE', `${GROUPS}?name=qa`],
      ['POST', `${GROUPS}/add-user`, { context: 'qa', itemName: 'alice' }],
      ['POST', `${GROUPS}/add-users`, { group: 'qa', users: ['alice'] }],
      ['POST', `${GROUPS}/remove-user`, { context: 'qa', itemName: 'dave' }],
      ['GET', `${GROUPS}/more-members?context=qa`],
      ['GET', `${GROUPS}/more-non-members?context=qa`],
      ['POST', '/rest/api/1.0/admin/users/add-groups', { user: 'alice', groups: ['qa'] }],
      ['POST', '/rest/api/1.0/admin/users/remove-group', { context: 'dave', itemName: 'qa' }],
      ['GET', '/rest/api/1.0/admin/users/more-members?context=dave'],
      ['GET', '/rest/api/1.0/admin/permissions/groups'],
      ['PUT', '/rest/api/1.0/admin/permissions/groups?name=qa&permission=SYS_ADMIN'],
      ['DELETE', '/rest/api/1.0/admin/permissions/groups?name=qa'],
    ];
    for (const [method, path, body] of attempts) {
      assertError(await api(server, method, path, body, null), 401, 'AUTHENTICATION_REQUIRED');
      assertError(await api(server, method, path, body, users.alice), 403, 'FORBIDDEN');
      assertError(await api(server, method, path, body, { user: 'alice', secret: 'alice-password-1' }), 403, 'FORBIDDEN');
      assertError(await api(server, method, path, body, adminToken), 403, 'FORBIDDEN');
    }
    assert.deepEqual(names(await call('GET', `${GROUPS}/more-members?context=qa`)), ['dave'], 'nothing changed');
    assert.deepEqual(names(await call('GET', GROUPS)), ['Developers', 'ops', 'qa', 'release-managers']);
  });
});

describe('group permissions on projects and repositories', () => {
  it('grants a repository permission to a group: its members read, others still get 404', async () => {
    // Developers: alice, bob.
    const r = await call('PUT', `${repoGroups('TEAM', 'app')}?name=developers&permission=REPO_READ`);
    assert.equal(r.status, 204, r.text);
    const listed = await call('GET', repoGroups('TEAM', 'app'));
    assert.deepEqual(listed.body.values, [{ group: { name: 'Developers' }, permission: 'REPO_READ' }]);
    assert.equal((await call('GET', '/rest/api/1.0/projects/TEAM/repos/app', 'alice')).status, 200);
    await gitOk(server, ['ls-remote', url('app')], { creds: users.bob });
    assertError(await call('GET', '/rest/api/1.0/projects/TEAM/repos/app', 'carol'), 404, 'REPOSITORY_NOT_FOUND');
    assertError(await call('GET', '/rest/api/1.0/projects/TEAM/repos/infra', 'alice'), 404, 'REPOSITORY_NOT_FOUND');
    assert.deepEqual((await call('GET', '/rest/api/1.0/repos', 'alice')).body.values.map((v: Json) => v.slug), ['app'], 'listed where a member can read');
    const push = await git(server, ['push', url('app'), 'main:refs/heads/alice'], { creds: users.alice, cwd: work });
    assert.notEqual(push.code, 0);
    assert.match(push.stderr, /You do not have permission to push/);
  });

  it('the highest of own and group grants wins, whichever is higher', async () => {
    await grantRepo(server, 'TEAM', 'app', 'alice', 'REPO_WRITE');
    await gitOk(server, ['push', url('app'), 'main:refs/heads/alice'], { creds: users.alice, cwd: work });
    // A group grant above a user's own one raises it.
    await call('PUT', `${repoGroups('TEAM', 'app')}?name=developers&permission=REPO_ADMIN`);
    assert.equal((await call('GET', '/rest/api/1.0/projects/TEAM/repos/app/permissions/users', 'bob')).status, 200, 'bob administers through the group');
    await call('PUT', `${repoGroups('TEAM', 'app')}?name=developers&permission=REPO_READ`);
    assertError(await call('GET', '/rest/api/1.0/projects/TEAM/repos/app/permissions/users', 'bob'), 403, 'FORBIDDEN');
    await gitOk(server, ['push', url('app'), 'main:refs/heads/alice-2'], { creds: users.alice, cwd: work });
  });

  it('a project grant to a group reaches every repository of the project', async () => {
    await addUsers('ops', ['erin']);
    const r = await call('PUT', `${projectGroups('team')}?${q({ name: ['ops', 'qa'], permission: 'PROJECT_WRITE' })}`);
    assert.equal(r.status, 204, r.text);
    assert.deepEqual(
      (await call('GET', projectGroups('TEAM'))).body.values.map((g: Json) => [g.group.name, g.permission]),
      [
        ['ops', 'PROJECT_WRITE'],
        ['qa', 'PROJECT_WRITE'],
      ],
    );
    assert.deepEqual((await call('GET', `${projectGroups('TEAM')}?filter=Q`)).body.values.map((g: Json) => g.group.name), ['qa']);
    const page = await call('GET', `${projectGroups('TEAM')}?limit=1`);
    assert.deepEqual([page.body.size, page.body.isLastPage, page.body.nextPageStart], [1, false, 1]);
    await gitOk(server, ['push', url('infra'), 'main:refs/heads/erin'], { creds: users.erin, cwd: work });
    assert.deepEqual((await call('GET', '/rest/api/1.0/projects/TEAM/repos', 'dave')).body.values.map((v: Json) => v.slug), ['app', 'infra']);
    // Project grants are listed on the project, not on its repositories.
    assert.deepEqual((await call('GET', repoGroups('TEAM', 'infra'))).body.values, []);
  });

  it('validates group names and permissions before changing anything', async () => {
    assertError(await call('PUT', `${repoGroups('TEAM', 'infra')}?name=qa&permission=PROJECT_READ`), 400, 'INVALID_INPUT');
    assertError(await call('PUT', `${projectGroups('TEAM')}?name=qa&permission=REPO_READ`), 400, 'INVALID_INPUT');
    assertError(await call('PUT', `${repoGroups('TEAM', 'infra')}?${q({ name: ['qa', 'nobody'], permission: 'REPO_ADMIN' })}`), 404, 'GROUP_NOT_FOUND');
    assert.deepEqual((await call('GET', repoGroups('TEAM', 'infra'))).body.values, [], 'qa was not granted either');
    assertError(await call('DELETE', `${projectGroups('TEAM')}?name=nobody`), 404, 'GROUP_NOT_FOUND');
  });

  it('only administrators of the project or repository manage group grants, with the answers user grants get', async () => {
    // dave (qa: PROJECT_WRITE) sees the project but does not administer it; carol sees nothing.
    assertError(await call('GET', projectGroups('TEAM'), 'dave'), 403, 'FORBIDDEN');
    assertError(await call('PUT', `${repoGroups('TEAM', 'app')}?name=qa&permission=REPO_ADMIN`, 'dave'), 403, 'FORBIDDEN');
    assertError(await call('GET', projectGroups('TEAM'), 'carol'), 404, 'PROJECT_NOT_FOUND');
    assertError(await call('GET', repoGroups('TEAM', 'app'), 'carol'), 404, 'REPOSITORY_NOT_FOUND');
    assertError(await call('GET', projectGroups('TEAM'), null), 401, 'AUTHENTICATION_REQUIRED');
  });

  it('does not let a member lower their own access through their group, unless another grant keeps it', async () => {
    await createGroup('leads');
    await addUsers('leads', ['carol']);
    await call('PUT', `${projectGroups('TEAM')}?name=leads&permission=PROJECT_ADMIN`);
    assert.equal((await call('GET', projectGroups('TEAM'), 'carol')).status, 200, 'carol administers through leads');
    assertError(await call('PUT', `${projectGroups('TEAM')}?name=leads&permission=PROJECT_READ`, 'carol'), 403, 'FORBIDDEN');
    assertError(await call('DELETE', `${projectGroups('TEAM')}?name=leads`, 'carol'), 409, 'CONFLICT');
    assert.deepEqual((await call('GET', `${projectGroups('TEAM')}?filter=leads`)).body.values, [{ group: { name: 'leads' }, permission: 'PROJECT_ADMIN' }], 'unchanged');
    // With a grant of her own that keeps her an administrator, the group's grant may go.
    assert.equal((await call('PUT', `/rest/api/1.0/projects/TEAM/permissions/users?name=carol&permission=PROJECT_ADMIN`, 'carol')).status, 204);
    assert.equal((await call('DELETE', `${projectGroups('TEAM')}?name=leads`, 'carol')).status, 204, 'her own grant keeps her admin');
    assert.equal((await call('DELETE', '/rest/api/1.0/projects/TEAM/permissions/users?name=carol')).status, 204);
    assertError(await call('GET', '/rest/api/1.0/projects/TEAM/repos/app', 'carol'), 404, 'REPOSITORY_NOT_FOUND');
  });

  it('removing a member takes their access away at once, over REST and git', async () => {
    await gitOk(server, ['ls-remote', url('infra')], { creds: users.erin });
    const r = await call('POST', `${GROUPS}/remove-user`, 'admin', { context: 'ops', itemName: 'erin' });
    assert.equal(r.status, 204, r.text);
    assertError(await call('GET', '/rest/api/1.0/projects/TEAM/repos/infra', 'erin'), 404, 'REPOSITORY_NOT_FOUND');
    const clone = await git(server, ['ls-remote', url('infra')], { creds: { user: 'erin', secret: 'erin-password-1' } });
    assert.notEqual(clone.code, 0);
    assert.match(clone.stderr, /does not exist or you do not have permission to see it/);
  });
});

describe('deleting a group', () => {
  it('removes its memberships and grants, and logs each of them', async () => {
    const from = await lastEventId(server);
    await createGroup('temp');
    await addUsers('temp', ['erin']);
    await call('PUT', `${repoGroups('TEAM', 'infra')}?name=temp&permission=REPO_WRITE`);
    await call('PUT', `${projectGroups('TEAM')}?name=temp&permission=PROJECT_READ`);
    await gitOk(server, ['push', url('infra'), 'main:refs/heads/temp'], { creds: users.erin, cwd: work });

    const r = await call('DELETE', `${GROUPS}?name=TEMP`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { name: 'temp', deletable: true });
    assertError(await call('GET', '/rest/api/1.0/projects/TEAM/repos/infra', 'erin'), 404, 'REPOSITORY_NOT_FOUND');
    assert.ok(!names(await call('GET', GROUPS)).includes('temp'));
    assertError(await call('GET', `${GROUPS}/more-members?context=temp`), 404, 'GROUP_NOT_FOUND');
    // A new group of the same name starts empty, with no grants.
    await createGroup('temp');
    assert.deepEqual(names(await call('GET', `${GROUPS}/more-members?context=temp`)), []);
    assert.deepEqual((await call('GET', `${repoGroups('TEAM', 'infra')}?filter=temp`)).body.values, []);

    const logged = (await events(server, from)).filter((e) => e.type.startsWith('group.') || e.type === 'permission.changed');
    const strip = ({ id: _id, createdDate: _c, groupId: _g, projectId: _p, repositoryId: _r, ...rest }: Json) => rest;
    assert.deepEqual(logged.map(strip), [
      { type: 'group.created', group: 'temp' },
      { type: 'group.user_added', group: 'temp', userId: logged[1]!.userId, user: 'erin' },
      { type: 'permission.changed', scope: 'repository', projectKey: 'TEAM', slug: 'infra', group: 'temp', permission: 'REPO_WRITE' },
      { type: 'permission.changed', scope: 'project', projectKey: 'TEAM', group: 'temp', permission: 'PROJECT_READ' },
      { type: 'permission.changed', scope: 'repository', projectKey: 'TEAM', slug: 'infra', group: 'temp', permission: null },
      { type: 'permission.changed', scope: 'project', projectKey: 'TEAM', group: 'temp', permission: null },
      { type: 'group.deleted', group: 'temp' },
      { type: 'group.created', group: 'temp' },
    ]);
    const grant = logged[2]!;
    assert.equal(typeof grant.projectId, 'number');
    assert.equal(typeof grant.repositoryId, 'number');
    assert.equal(logged[3]!.repositoryId, null);
  });

  it('goes with deleted users: their memberships end', async () => {
    await createUser(server, 'frank');
    await addUsers('qa', ['frank']);
    assert.equal((await call('DELETE', '/rest/api/1.0/admin/users?name=frank')).status, 200);
    assert.deepEqual(names(await call('GET', `${GROUPS}/more-members?context=qa`)), ['dave']);
  });
});

describe('SYS_ADMIN through a group', () => {
  const bobPassword = { user: 'bob', secret: 'bob-password-1' };

  it('makes every member a system administrator, and revoking it ends that', async () => {
    assertError(await api(server, 'GET', '/rest/api/1.0/admin/users', undefined, bobPassword), 403, 'FORBIDDEN');
    await createGroup('admins');
    await addUsers('admins', ['bob']);
    let r = await call('PUT', '/rest/api/1.0/admin/permissions/groups?name=admins&permission=SYS_ADMIN');
    assert.equal(r.status, 204, r.text);
    assert.deepEqual((await call('GET', '/rest/api/1.0/admin/permissions/groups')).body.values, [{ group: { name: 'admins' }, permission: 'SYS_ADMIN' }]);
    assert.equal((await api(server, 'GET', '/rest/api/1.0/admin/users', undefined, bobPassword)).status, 200, 'bob is a sysadmin now');
    await gitOk(server, ['ls-remote', url('infra')], { creds: bobPassword });
    assertError(await call('PUT', '/rest/api/1.0/admin/permissions/groups?name=admins&permission=ADMIN'), 400, 'INVALID_INPUT');

    r = await call('DELETE', '/rest/api/1.0/admin/permissions/groups?name=admins');
    assert.equal(r.status, 204, r.text);
    assert.deepEqual((await call('GET', '/rest/api/1.0/admin/permissions/groups')).body.values, []);
    assertError(await api(server, 'GET', '/rest/api/1.0/admin/users', undefined, bobPassword), 403, 'FORBIDDEN');
  });

  it('does not let a sysadmin take their own SYS_ADMIN away through the group (409)', async () => {
    await call('PUT', '/rest/api/1.0/admin/permissions/groups?name=admins&permission=SYS_ADMIN');
    const attempts: Array<[string, string, unknown?]> = [
      ['POST', `${GROUPS}/remove-user`, { context: 'admins', itemName: 'bob' }],
      ['POST', '/rest/api/1.0/admin/users/remove-group', { context: 'bob', itemName: 'admins' }],
      ['DELETE', '/rest/api/1.0/admin/permissions/groups?name=admins'],
      ['DELETE', `${GROUPS}?name=admins`],
    ];
    for (const [method, path, body] of attempts) {
      const r = await api(server, method, path, body, bobPassword);
      assertError(r, 409, 'CONFLICT');
      assert.match(r.body.errors[0].message, /your own SYS_ADMIN/);
    }
    assert.deepEqual(names(await call('GET', `${GROUPS}/more-members?context=admins`)), ['bob'], 'nothing changed');
    // Another sysadmin can; and bob's own flag would keep him one.
    const r = await call('POST', `${GROUPS}/remove-user`, 'admin', { context: 'admins', itemName: 'bob' });
    assert.equal(r.status, 204, r.text);
    assertError(await api(server, 'GET', '/rest/api/1.0/admin/users', undefined, bobPassword), 403, 'FORBIDDEN');
  });
});
