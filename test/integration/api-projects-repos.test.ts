// The Bitbucket-shaped REST API for projects, repositories, branches, tags and the default branch, as a client
// sees it: status codes, JSON fields, paging, 401 vs 404 vs 403, the error shape, and that what the API
// creates, renames or deletes is what git over HTTPS then serves. Also: the OpenAPI document.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createProject, createRepo, createToken, createUser, grantProject, grantRepo } from '../helpers/fixtures.js';
import { ADMIN, api, git, gitOk, makeWorkTree, parseLsRemote, startServer, type ApiResponse, type Credentials, type TestServer } from '../helpers/server.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

// Response bodies are checked field by field with assert; a precise type per shape would add nothing.
 
type Json = any;

let server: TestServer;
// Tokens that cap nothing (PROJECT_ADMIN and REPO_ADMIN) act exactly as their users on projects and
// repositories, and skip the deliberately slow password hash, which keeps this file fast. Password logins are
// used where the test is about them and for sysadmin-only endpoints (tokens never carry system administration).
let admin: Credentials;
let alice: Credentials;
let bob: Credentials;

async function fullToken(owner: Credentials): Promise<Credentials> {
  return { user: owner.user, secret: await createToken(server, owner, ['PROJECT_ADMIN', 'REPO_ADMIN'], 'tests') };
}

before(async () => {
  server = await startServer();
  const [a, b] = await Promise.all([createUser(server, 'alice'), createUser(server, 'bob')]);
  [admin, alice, bob] = await Promise.all([fullToken(ADMIN), fullToken(a), fullToken(b)]);
});

/** The REST API as the admin's token unless told otherwise. */
function call(method: string, path: string, body?: unknown, creds: Credentials | null = admin, headers: Record<string, string> = {}) {
  return api(server, method, path, body, creds, headers);
}

after(async () => {
  await server?.stop();
  removeTempDirs();
});

function assertError(r: ApiResponse, status: number, code: string): void {
  assert.equal(r.status, status, r.text);
  assert.deepEqual(Object.keys(r.body), ['errors'], r.text);
  assert.equal(r.body.errors.length, 1);
  const [e] = r.body.errors;
  assert.equal(e.context, null);
  assert.equal(e.code, code);
  assert.equal(typeof e.exceptionName, 'string');
  assert.equal(typeof e.message, 'string');
  assert.ok(e.message.length > 10);
}

const keys = (r: ApiResponse) => r.body.values.map((p: { key: string }) => p.key);

describe('projects', () => {
  it('creates a project with Bitbucket JSON (201)', async () => {
    const r = await call('POST', '/rest/api/1.0/projects', { key: 'alpha', name: 'Alpha', description: 'First project' }, ADMIN);
    assert.equal(r.status, 201, r.text);
    assert.deepEqual(r.body, {
      key: 'ALPHA',
      id: r.body.id,
      name: 'Alpha',
      description: 'First project',
      public: false,
      type: 'NORMAL',
      links: { self: [{ href: `${server.baseUrl}/projects/ALPHA` }] },
    });
    assert.equal(typeof r.body.id, 'number');
  });

  it('answers 400, 409, 403 and 401 in the Bitbucket error shape', async () => {
    assertError(await call('POST', '/rest/api/1.0/projects', { key: '1bad', name: 'Bad' }, ADMIN), 400, 'INVALID_INPUT');
    assertError(await call('POST', '/rest/api/1.0/projects', { name: 'No key' }, ADMIN), 400, 'INVALID_INPUT');
    assertError(await call('POST', '/rest/api/1.0/projects', { key: 'ALPHA', name: 'Other' }, ADMIN), 409, 'CONFLICT');
    assertError(await call('POST', '/rest/api/1.0/projects', { key: 'NOPE' }, { user: 'alice', secret: 'alice-password-1' }), 403, 'FORBIDDEN');
    const anonymous = await call('POST', '/rest/api/1.0/projects', { key: 'NOPE' }, null);
    assertError(anonymous, 401, 'AUTHENTICATION_REQUIRED');
    assert.match(String(anonymous.headers['www-authenticate']), /^Basic /);
    assertError(await call('GET', '/rest/api/1.0/projects', undefined, { user: 'admin', secret: 'wrong-password' }), 401, 'BAD_CREDENTIALS');
    assertError(await call('GET', '/rest/api/1.0/no/such/thing'), 404, 'NOT_FOUND');
  });

  it('lists only what the caller can see, and pages', async () => {
    await createProject(server, 'PUB', { public: true });
    for (const key of ['P1', 'P2', 'P3']) await createProject(server, key);
    await grantProject(server, 'P2', 'alice', 'PROJECT_READ');

    assert.deepEqual(keys(await call('GET', '/rest/api/1.0/projects', undefined, null)), ['PUB']);
    assert.deepEqual(keys(await call('GET', '/rest/api/1.0/projects', undefined, alice)), ['P2', 'PUB']);
    const all = await call('GET', '/rest/api/1.0/projects');
    assert.deepEqual(keys(all), ['ALPHA', 'P1', 'P2', 'P3', 'PUB']);
    assert.deepEqual(
      { ...all.body, values: undefined },
      { size: 5, limit: 25, isLastPage: true, start: 0, values: undefined },
    );

    const first = await call('GET', '/rest/api/1.0/projects?limit=2');
    assert.deepEqual({ ...first.body, values: keys(first) }, { size: 2, limit: 2, isLastPage: false, start: 0, nextPageStart: 2, values: ['ALPHA', 'P1'] });
    const second = await call('GET', `/rest/api/1.0/projects?limit=2&start=${first.body.nextPageStart}`);
    assert.deepEqual({ ...second.body, values: keys(second) }, { size: 2, limit: 2, isLastPage: false, start: 2, nextPageStart: 4, values: ['P2', 'P3'] });
    const last = await call('GET', '/rest/api/1.0/projects?limit=2&start=4');
    assert.deepEqual({ ...last.body, values: keys(last) }, { size: 1, limit: 2, isLastPage: true, start: 4, values: ['PUB'] });
    assert.equal((await call('GET', '/rest/api/1.0/projects?limit=5000')).body.limit, 1000, 'limit is capped, not refused');
    assertError(await call('GET', '/rest/api/1.0/projects?limit=abc'), 400, 'INVALID_INPUT');
    assert.deepEqual(keys(await call('GET', '/rest/api/1.0/projects?name=alp')), ['ALPHA']);
    assert.deepEqual(keys(await call('GET', '/rest/api/1.0/projects?permission=PROJECT_READ', undefined, alice)), ['P2', 'PUB']);
    assert.deepEqual(keys(await call('GET', '/rest/api/1.0/projects?permission=PROJECT_ADMIN', undefined, alice)), []);
  });

  it('says 404 to users who cannot see a project, whether or not it exists, and 401 to anonymous callers', async () => {
    const hidden = await call('GET', '/rest/api/1.0/projects/P1', undefined, alice);
    const missing = await call('GET', '/rest/api/1.0/projects/NOPE', undefined, alice);
    assertError(hidden, 404, 'PROJECT_NOT_FOUND');
    assertError(missing, 404, 'PROJECT_NOT_FOUND');
    assert.equal(hidden.body.errors[0].message, missing.body.errors[0].message.replace('NOPE', 'P1'));
    assertError(await call('GET', '/rest/api/1.0/projects/P1', undefined, null), 401, 'AUTHENTICATION_REQUIRED');
    assertError(await call('GET', '/rest/api/1.0/projects/NOPE', undefined, null), 401, 'AUTHENTICATION_REQUIRED');
    assert.equal((await call('GET', '/rest/api/1.0/projects/pub', undefined, null)).body.key, 'PUB', 'keys are case-insensitive');
    assertError(await call('PUT', '/rest/api/1.0/projects/P2', { name: 'Mine' }, alice), 403, 'FORBIDDEN');
  });

  it('updates (200, or 201 when the key changes) and deletes only empty projects', async () => {
    let r = await call('PUT', '/rest/api/1.0/projects/P3', { name: 'Project Three', public: true });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual([r.body.key, r.body.name, r.body.public], ['P3', 'Project Three', true]);
    r = await call('PUT', '/rest/api/1.0/projects/P3', { key: 'P4' });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.key, 'P4');
    assertError(await call('GET', '/rest/api/1.0/projects/P3'), 404, 'PROJECT_NOT_FOUND');

    await createRepo(server, 'P4', 'inside');
    assertError(await call('DELETE', '/rest/api/1.0/projects/P4'), 409, 'CONFLICT');
    // Client libraries send Content-Type: application/json with an empty body on DELETE.
    assert.equal((await call('DELETE', '/rest/api/1.0/projects/P4/repos/inside', undefined, admin, { 'content-type': 'application/json' })).status, 202);
    r = await call('DELETE', '/rest/api/1.0/projects/P4');
    assert.equal(r.status, 204, r.text);
    assert.equal(r.text, '');
    assertError(await call('GET', '/rest/api/1.0/projects/P4'), 404, 'PROJECT_NOT_FOUND');
  });
});

describe('repositories', () => {
  let repo: Json;

  before(async () => {
    await createProject(server, 'REPO');
  });

  it('creates a repository whose clone href works for git over HTTPS', async () => {
    const r = await call('POST', '/rest/api/1.0/projects/REPO/repos', { name: 'My Service', scmId: 'git', forkable: true });
    assert.equal(r.status, 201, r.text);
    repo = r.body;
    const http = `${server.baseUrl}/scm/repo/my-service.git`;
    assert.deepEqual(repo, {
      slug: 'my-service',
      id: repo.id,
      name: 'My Service',
      hierarchyId: repo.hierarchyId,
      scmId: 'git',
      state: 'AVAILABLE',
      statusMessage: 'Available',
      forkable: false,
      project: (await call('GET', '/rest/api/1.0/projects/REPO')).body,
      public: false,
      archived: false,
      links: {
        clone: [
          { href: http, name: 'http' },
          { href: `ssh://${server.sshUser}@127.0.0.1:${server.sshPort}/repo/my-service.git`, name: 'ssh' },
        ],
        self: [{ href: `${server.baseUrl}/projects/REPO/repos/my-service/browse` }],
      },
    });
    assert.match(repo.hierarchyId, /^[0-9a-f]{20}$/);
    assert.deepEqual((await call('GET', '/rest/api/1.0/projects/REPO/repos/my-service')).body, repo);

    const work = await makeWorkTree([{ 'README.md': 'service\n' }]);
    await gitOk(server, ['push', http, 'main'], { creds: admin, cwd: work });
    const dest = join(tempDir(), 'clone');
    await gitOk(server, ['clone', http, dest], { creds: admin });
    assert.equal(readFileSync(join(dest, 'README.md'), 'utf8'), 'service\n');

    assertError(await call('POST', '/rest/api/1.0/projects/REPO/repos', { name: 'My Service' }), 409, 'CONFLICT');
    assertError(await call('POST', '/rest/api/1.0/projects/REPO/repos', { name: 'x', scmId: 'hg' }), 400, 'INVALID_INPUT');
    assertError(await call('POST', '/rest/api/1.0/projects/NOPE/repos', { name: 'x' }), 404, 'PROJECT_NOT_FOUND');
  });

  it('needs PROJECT_ADMIN to create, REPO_ADMIN to change or delete', async () => {
    await grantProject(server, 'REPO', 'bob', 'PROJECT_WRITE');
    assertError(await call('POST', '/rest/api/1.0/projects/REPO/repos', { name: 'bobs' }, bob), 403, 'FORBIDDEN');
    assertError(await call('PUT', '/rest/api/1.0/projects/REPO/repos/my-service', { name: 'x' }, bob), 403, 'FORBIDDEN');
    assertError(await call('DELETE', '/rest/api/1.0/projects/REPO/repos/my-service', undefined, bob), 403, 'FORBIDDEN');
    assertError(await call('PUT', '/rest/api/1.0/projects/REPO/repos/my-service', { name: 'x' }, alice), 404, 'REPOSITORY_NOT_FOUND');
    assertError(await call('DELETE', '/rest/api/1.0/projects/REPO/repos/my-service', undefined, null), 401, 'AUTHENTICATION_REQUIRED');
    await grantProject(server, 'REPO', 'bob', 'PROJECT_ADMIN');
    const r = await call('POST', '/rest/api/1.0/projects/REPO/repos', { name: 'bobs' }, bob);
    assert.equal(r.status, 201, r.text);
  });

  it('lists readable repositories, by project and globally, with filters and paging', async () => {
    await createRepo(server, 'REPO', 'Private Thing');
    await grantRepo(server, 'REPO', 'private-thing', 'alice', 'REPO_READ');
    const slugs = (r: ApiResponse) => r.body.values.map((v: { project: { key: string }; slug: string }) => `${v.project.key}/${v.slug}`);

    // alice can read one repository of a project she has no grant on: she sees it, and the project.
    assert.deepEqual(slugs(await call('GET', '/rest/api/1.0/repos', undefined, alice)), ['REPO/private-thing']);
    assert.deepEqual(slugs(await call('GET', '/rest/api/1.0/projects/REPO/repos', undefined, alice)), ['REPO/private-thing']);
    assert.equal((await call('GET', '/rest/api/1.0/projects/REPO', undefined, alice)).status, 200);
    assert.ok(keys(await call('GET', '/rest/api/1.0/projects', undefined, alice)).includes('REPO'));
    assert.deepEqual(slugs(await call('GET', '/rest/api/1.0/repos', undefined, null)), []);
    assertError(await call('GET', '/rest/api/1.0/projects/REPO/permissions/users', undefined, alice), 403, 'FORBIDDEN');
    assertError(await call('PUT', '/rest/api/1.0/projects/REPO', { name: 'Mine' }, alice), 403, 'FORBIDDEN');

    const mine = await call('GET', '/rest/api/1.0/projects/REPO/repos');
    assert.deepEqual(slugs(mine), ['REPO/bobs', 'REPO/my-service', 'REPO/private-thing']);
    const page = await call('GET', '/rest/api/1.0/projects/REPO/repos?limit=2&start=1');
    assert.deepEqual({ ...page.body, values: slugs(page) }, { size: 2, limit: 2, isLastPage: true, start: 1, values: ['REPO/my-service', 'REPO/private-thing'] });
    const first = await call('GET', '/rest/api/1.0/repos?limit=1');
    assert.deepEqual([first.body.isLastPage, first.body.nextPageStart, first.body.size], [false, 1, 1]);
    assert.deepEqual(slugs(await call('GET', '/rest/api/1.0/repos?name=THING')), ['REPO/private-thing']);
    assert.deepEqual(slugs(await call('GET', '/rest/api/1.0/repos?projectname=repo%20proj&name=serv')), ['REPO/my-service']);
    assert.deepEqual(slugs(await call('GET', '/rest/api/1.0/repos?name=%25')), [], 'LIKE wildcards are literal');
    assert.deepEqual(slugs(await call('GET', '/rest/api/1.0/repos?permission=REPO_ADMIN', undefined, bob)), ['REPO/bobs', 'REPO/my-service', 'REPO/private-thing']);
    assert.deepEqual(slugs(await call('GET', '/rest/api/1.0/repos?permission=REPO_WRITE', undefined, alice)), []);
  });

  it('renames: the slug follows the name, content stays, the old URL is gone', async () => {
    const r = await call('PUT', '/rest/api/1.0/projects/REPO/repos/my-service', { name: 'Renamed Service' });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual([r.body.id, r.body.slug, r.body.name, r.body.hierarchyId], [repo.id, 'renamed-service', 'Renamed Service', repo.hierarchyId]);
    const newUrl = r.body.links.clone[0].href;
    assert.equal(newUrl, `${server.baseUrl}/scm/repo/renamed-service.git`);
    const dest = join(tempDir(), 'clone');
    await gitOk(server, ['clone', newUrl, dest], { creds: admin });
    assert.equal(readFileSync(join(dest, 'README.md'), 'utf8'), 'service\n');

    const old = await git(server, ['ls-remote', repo.links.clone[0].href], { creds: admin });
    assert.notEqual(old.code, 0);
    assert.match(old.stderr, /not found|404/i);
    assertError(await call('GET', '/rest/api/1.0/projects/REPO/repos/my-service'), 404, 'REPOSITORY_NOT_FOUND');

    // Sending the whole object back with an unchanged name changes nothing.
    const same = await call('PUT', '/rest/api/1.0/projects/REPO/repos/renamed-service', { ...r.body });
    assert.equal(same.status, 201, same.text);
    assert.equal(same.body.slug, 'renamed-service');
  });

  it('publishes and moves a repository', async () => {
    let r = await call('PUT', '/rest/api/1.0/projects/REPO/repos/renamed-service', { public: true });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.public, true);
    assert.equal((await call('GET', '/rest/api/1.0/projects/REPO/repos/renamed-service', undefined, null)).status, 200);
    await gitOk(server, ['ls-remote', r.body.links.clone[0].href]);

    await createProject(server, 'MOVED');
    assertError(await call('PUT', '/rest/api/1.0/projects/REPO/repos/renamed-service', { project: { key: 'MOVED' } }, bob), 404, 'PROJECT_NOT_FOUND');
    r = await call('PUT', '/rest/api/1.0/projects/REPO/repos/renamed-service', { project: { key: 'MOVED' } });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual([r.body.project.key, r.body.slug, r.body.links.clone[0].href], ['MOVED', 'renamed-service', `${server.baseUrl}/scm/moved/renamed-service.git`]);
    assert.equal(parseLsRemote(await gitOk(server, ['ls-remote', r.body.links.clone[0].href])).size, 2, 'HEAD and main');
  });

  it('deletes with 202; the repository is gone for REST and git', async () => {
    const r = await call('DELETE', '/rest/api/1.0/projects/MOVED/repos/renamed-service');
    assert.equal(r.status, 202, r.text);
    assertError(await call('GET', '/rest/api/1.0/projects/MOVED/repos/renamed-service'), 404, 'REPOSITORY_NOT_FOUND');
    const ls = await git(server, ['ls-remote', `${server.baseUrl}/scm/moved/renamed-service.git`], { creds: admin });
    assert.notEqual(ls.code, 0);
  });
});

describe('branches, tags and the default branch', () => {
  const base = '/rest/api/1.0/projects/REFS/repos/code';
  let main: string;
  let url: string;

  before(async () => {
    await createProject(server, 'REFS');
    const repo = await createRepo(server, 'REFS', 'code');
    await grantRepo(server, 'REFS', 'code', 'alice', 'REPO_READ');
    url = (repo as Json).links.clone[0].href;
    const work = await makeWorkTree([{ 'a.txt': '1\n' }, { 'a.txt': '2\n' }]);
    await gitOk(server, ['push', url, 'main'], { creds: admin, cwd: work });
    main = (await gitOk(null, ['rev-parse', 'HEAD'], { cwd: work })).trim();
  });

  it('reports the configured default branch, even before it exists', async () => {
    await createRepo(server, 'REFS', 'empty', { defaultBranch: 'trunk' });
    assert.deepEqual((await call('GET', '/rest/api/1.0/projects/REFS/repos/empty/default-branch')).body, { id: 'refs/heads/trunk', displayId: 'trunk', type: 'BRANCH' });
    assertError(await call('GET', '/rest/api/1.0/projects/REFS/repos/empty/branches/default'), 404, 'NOT_FOUND');
  });

  it('creates, lists, filters and pages branches', async () => {
    let r = await call('POST', `${base}/branches`, { name: 'feature/one', startPoint: 'main' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { id: 'refs/heads/feature/one', displayId: 'feature/one', type: 'BRANCH', latestCommit: main, latestChangeset: main, isDefault: false });
    r = await call('POST', `/rest/branch-utils/1.0/projects/REFS/repos/code/branches`, { name: 'refs/heads/older', startPoint: `${main}~1` });
    assert.equal(r.status, 200, r.text);
    assertError(await call('POST', `${base}/branches`, { name: 'older', startPoint: 'main' }), 409, 'CONFLICT');
    assertError(await call('POST', `${base}/branches`, { name: 'bad..name', startPoint: 'main' }), 400, 'INVALID_INPUT');
    assertError(await call('POST', `${base}/branches`, { name: 'x', startPoint: 'no-such-thing' }), 400, 'INVALID_INPUT');
    assertError(await call('POST', `${base}/branches`, { name: 'x', startPoint: 'main' }, alice), 403, 'FORBIDDEN');

    const list = await call('GET', `${base}/branches?orderBy=ALPHABETICAL`, undefined, alice);
    assert.deepEqual(
      list.body.values.map((b: Json) => [b.displayId, b.isDefault]),
      [
        ['feature/one', false],
        ['main', true],
        ['older', false],
      ],
    );
    assert.deepEqual((await call('GET', `${base}/branches?filterText=FEAT`)).body.values.map((b: Json) => b.id), ['refs/heads/feature/one']);
    const page = await call('GET', `${base}/branches?orderBy=ALPHABETICAL&limit=2`);
    assert.deepEqual([page.body.size, page.body.isLastPage, page.body.nextPageStart], [2, false, 2]);
    assert.deepEqual(
      (await call('GET', `${base}/branches?filterText=main&boostMatches=true`)).body.values.map((b: Json) => b.displayId),
      ['main'],
    );
    const remote = parseLsRemote(await gitOk(server, ['ls-remote', url], { creds: admin }));
    assert.equal(remote.get('refs/heads/feature/one'), main);
  });

  it('changes the default branch (both forms) and refuses to delete it', async () => {
    assertError(await call('PUT', `${base}/default-branch`, { id: 'refs/heads/older' }, alice), 403, 'FORBIDDEN');
    let r = await call('PUT', `${base}/default-branch`, { id: 'refs/heads/older' });
    assert.equal(r.status, 204, r.text);
    assert.deepEqual((await call('GET', `${base}/default-branch`)).body, { id: 'refs/heads/older', displayId: 'older', type: 'BRANCH' });
    r = await call('PUT', `${base}/branches/default`, { id: 'main' });
    assert.equal(r.status, 204, r.text);
    assert.deepEqual((await call('GET', `${base}/branches/default`, undefined, alice)).body, {
      id: 'refs/heads/main',
      displayId: 'main',
      type: 'BRANCH',
      latestCommit: main,
      latestChangeset: main,
      isDefault: true,
    });
    assertError(await call('DELETE', `/rest/branch-utils/1.0/projects/REFS/repos/code/branches`, { name: 'main' }), 400, 'INVALID_INPUT');
  });

  it('deletes branches (dry run, end point check)', async () => {
    const utils = '/rest/branch-utils/1.0/projects/REFS/repos/code/branches';
    assert.equal((await call('DELETE', utils, { name: 'older', dryRun: true })).status, 204);
    assertError(await call('DELETE', utils, { name: 'older', endPoint: main }), 409, 'CONFLICT');
    assertError(await call('DELETE', utils, { name: 'older' }, alice), 403, 'FORBIDDEN');
    assert.equal((await call('DELETE', utils, { name: 'refs/heads/older' })).status, 204);
    assertError(await call('DELETE', utils, { name: 'older' }), 404, 'NOT_FOUND');
    const remote = parseLsRemote(await gitOk(server, ['ls-remote', url], { creds: admin }));
    assert.equal(remote.has('refs/heads/older'), false);
  });

  it('creates annotated and lightweight tags and deletes them', async () => {
    let r = await call('POST', `${base}/tags`, { name: 'v1.0', startPoint: 'main', message: 'Release 1.0' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual({ ...r.body, hash: undefined }, { id: 'refs/tags/v1.0', displayId: 'v1.0', type: 'TAG', latestCommit: main, latestChangeset: main, hash: undefined });
    assert.match(r.body.hash, /^[0-9a-f]{40}$/);
    assert.notEqual(r.body.hash, main);
    r = await call('POST', `/rest/git/1.0/projects/REFS/repos/code/tags`, { name: 'release/light', startPoint: main });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.hash, null);
    assertError(await call('POST', `${base}/tags`, { name: 'v1.0', startPoint: 'main' }), 409, 'CONFLICT');

    const tags = await call('GET', `${base}/tags?orderBy=ALPHABETICAL`, undefined, alice);
    assert.deepEqual(tags.body.values.map((t: Json) => t.displayId), ['release/light', 'v1.0']);

    const dest = join(tempDir(), 'clone');
    await gitOk(server, ['clone', '-q', url, dest], { creds: admin });
    const tagObject = await gitOk(null, ['cat-file', '-p', 'v1.0'], { cwd: dest });
    assert.match(tagObject, /^tagger Administrator <> \d+ \+0000$/m);
    assert.match(tagObject, /\n\nRelease 1\.0\n$/);

    assert.equal((await call('DELETE', `/rest/git/1.0/projects/REFS/repos/code/tags/release/light`)).status, 204);
    assert.equal((await call('DELETE', `/rest/git/1.0/projects/REFS/repos/code/tags/v1.0`)).status, 204);
    assertError(await call('DELETE', `/rest/git/1.0/projects/REFS/repos/code/tags/v1.0`), 404, 'NOT_FOUND');
    const remote = parseLsRemote(await gitOk(server, ['ls-remote', '--tags', url], { creds: admin }));
    assert.equal(remote.size, 0);
  });
});

describe('OpenAPI document', () => {
  it('lists the implemented paths and hides git routes', async () => {
    const r = await call('GET', '/rest/api/openapi.json', undefined, null);
    assert.equal(r.status, 200, r.text);
    assert.match(r.body.openapi, /^3\./);
    const paths = r.body.paths as Record<string, Record<string, unknown>>;
    const expected: Record<string, string[]> = {
      '/rest/api/1.0/projects': ['get', 'post'],
      '/rest/api/1.0/projects/{projectKey}': ['get', 'put', 'delete'],
      '/rest/api/1.0/projects/{projectKey}/repos': ['get', 'post'],
      '/rest/api/1.0/projects/{projectKey}/repos/{repositorySlug}': ['get', 'put', 'delete'],
      '/rest/api/1.0/repos': ['get'],
      '/rest/api/1.0/projects/{projectKey}/repos/{repositorySlug}/default-branch': ['get', 'put'],
      '/rest/api/1.0/projects/{projectKey}/repos/{repositorySlug}/branches/default': ['get', 'put'],
      '/rest/api/1.0/projects/{projectKey}/repos/{repositorySlug}/branches': ['get', 'post'],
      '/rest/branch-utils/1.0/projects/{projectKey}/repos/{repositorySlug}/branches': ['post', 'delete'],
      '/rest/api/1.0/projects/{projectKey}/repos/{repositorySlug}/tags': ['get', 'post'],
      '/rest/git/1.0/projects/{projectKey}/repos/{repositorySlug}/tags/{name}': ['delete'],
      '/rest/api/1.0/projects/{projectKey}/permissions/users': ['get', 'put', 'delete'],
      '/rest/api/1.0/projects/{projectKey}/repos/{repositorySlug}/permissions/users': ['get', 'put', 'delete'],
      '/rest/api/1.0/users': ['get'],
      '/rest/api/1.0/users/{userSlug}': ['get'],
      '/rest/api/1.0/users/credentials': ['put'],
      '/rest/api/1.0/admin/users': ['get', 'post', 'put', 'delete'],
      '/rest/api/1.0/admin/users/credentials': ['put'],
      '/rest/api/1.0/admin/permissions/users': ['get', 'put', 'delete'],
      '/rest/api/1.0/projects/{projectKey}/permissions/groups': ['get', 'put', 'delete'],
      '/rest/api/1.0/projects/{projectKey}/repos/{repositorySlug}/permissions/groups': ['get', 'put', 'delete'],
      '/rest/api/1.0/admin/groups': ['get', 'post', 'delete'],
      '/rest/api/1.0/admin/groups/add-user': ['post'],
      '/rest/api/1.0/admin/groups/add-users': ['post'],
      '/rest/api/1.0/admin/groups/remove-user': ['post'],
      '/rest/api/1.0/admin/groups/more-members': ['get'],
      '/rest/api/1.0/admin/groups/more-non-members': ['get'],
      '/rest/api/1.0/admin/users/add-group': ['post'],
      '/rest/api/1.0/admin/users/add-groups': ['post'],
      '/rest/api/1.0/admin/users/remove-group': ['post'],
      '/rest/api/1.0/admin/users/more-members': ['get'],
      '/rest/api/1.0/admin/users/more-non-members': ['get'],
      '/rest/api/1.0/admin/permissions/groups': ['get', 'put', 'delete'],
      '/rest/ssh/1.0/keys': ['get', 'post', 'delete'],
      '/rest/ssh/1.0/keys/{keyId}': ['get', 'delete'],
      '/rest/access-tokens/1.0/users/{userSlug}': ['get', 'put'],
      '/rest/access-tokens/1.0/users/{userSlug}/{tokenId}': ['get', 'post', 'delete'],
      '/rest/mirroring/1.0/events': ['get'],
    };
    for (const [path, methods] of Object.entries(expected)) {
      assert.ok(paths[path], `missing ${path}`);
      assert.deepEqual(Object.keys(paths[path]!).filter((m) => m !== 'parameters').sort(), [...methods].sort(), path);
    }
    assert.deepEqual(Object.keys(paths).filter((p) => !p.startsWith('/rest/')), [], 'no git or other routes');
    const create = paths['/rest/api/1.0/projects/{projectKey}/repos']!.post as Json;
    assert.ok(create.requestBody.content['application/json'].schema.properties.name);
    assert.ok(create.responses['201'].content['application/json'].schema.properties.links);
    assert.match((paths['/rest/mirroring/1.0/events']!.get as Json).description, /ref\.updated/);
  });
});
