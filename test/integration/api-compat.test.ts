// Bitbucket compatibility as existing scripts and clients meet it: the `latest` version alias on every REST
// root, application-properties, Bitbucket's exception names in error bodies, the OpenAPI document's servers and
// operationIds, and a published Bitbucket Server client from npm (bitbucket-server-nodejs) run in its own
// process through /rest/api/latest with a Bearer token, against the primary and against a mirror.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createProject, createRepo, createToken, createUser, grantProject } from '../helpers/fixtures.js';
import { run } from '../helpers/run.js';
import { authorizeMirror, waitForState } from '../helpers/mirror.js';
import { ADMIN, api, gitOk, makeWorkTree, ROOT, startMirror, startServer, type ApiResponse, type Credentials, type TestServer } from '../helpers/server.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

let server: TestServer;
let mirror: TestServer | undefined;
let alice: Credentials;
let aliceToken: string;
let mainCommit: string;

const PACKAGE_VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

before(async () => {
  server = await startServer();
  alice = await createUser(server, 'alice');
  await createProject(server, 'COMPAT');
  await createRepo(server, 'COMPAT', 'tools');
  await createRepo(server, 'COMPAT', 'docs');
  await createProject(server, 'PUB', { public: true });
  await createRepo(server, 'PUB', 'open');
  await createProject(server, 'SECRET');
  await createRepo(server, 'SECRET', 'hidden');
  await grantProject(server, 'COMPAT', 'alice', 'PROJECT_READ');
  const tree = await makeWorkTree([{ 'README.md': 'tools\n' }]);
  await gitOk(null, ['branch', 'feature'], { cwd: tree });
  await gitOk(null, ['tag', 'v1.0'], { cwd: tree });
  await gitOk(server, ['push', '-q', server.httpUrl('compat', 'tools'), 'main', 'feature', 'v1.0'], { cwd: tree, creds: ADMIN });
  mainCommit = (await gitOk(null, ['rev-parse', 'main'], { cwd: tree })).trim();
  aliceToken = await createToken(server, alice, ['PROJECT_READ'], 'script');
});

after(async () => {
  await mirror?.stop();
  await server?.stop();
  removeTempDirs();
});

const strip = (r: ApiResponse) => r.body;

function assertError(r: ApiResponse, status: number, exceptionName: string, code: string): void {
  assert.equal(r.status, status, r.text);
  assert.equal(r.body?.errors?.length, 1, r.text);
  const [e] = r.body.errors;
  assert.equal(e.context, null);
  assert.equal(e.exceptionName, exceptionName, r.text);
  assert.equal(e.code, code, r.text);
  assert.equal(typeof e.message, 'string');
}

describe('latest is an alias of 1.0 on every REST root', () => {
  it('/rest/api/latest answers exactly what /rest/api/1.0 answers, query string included', async () => {
    for (const path of ['/projects', '/projects/COMPAT', '/projects/COMPAT/repos/tools', '/repos?limit=1', '/projects/COMPAT/repos/tools/branches?filterText=feat', '/users/alice']) {
      const [latest, v1] = await Promise.all([api(server, 'GET', `/rest/api/latest${path}`), api(server, 'GET', `/rest/api/1.0${path}`)]);
      assert.equal(latest.status, 200, `${path}: ${latest.text}`);
      assert.deepEqual(strip(latest), strip(v1), path);
    }
    const page = await api(server, 'GET', '/rest/api/latest/repos?limit=1');
    assert.equal(page.body.limit, 1);
    assert.equal(page.body.values.length, 1);
    assert.equal(page.body.isLastPage, false);
    const branches = await api(server, 'GET', '/rest/api/latest/projects/COMPAT/repos/tools/branches?filterText=feat');
    assert.deepEqual(branches.body.values.map((b: { displayId: string }) => b.displayId), ['feature']);
  });

  it('creates a project through POST /rest/api/latest/projects, with links as 1.0 gives them', async () => {
    const r = await api(server, 'POST', '/rest/api/latest/projects', { key: 'LATE', name: 'Created via latest' });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.key, 'LATE');
    assert.deepEqual(r.body.links, { self: [{ href: `${server.baseUrl}/projects/LATE` }] });
    const v1 = await api(server, 'GET', '/rest/api/1.0/projects/LATE');
    assert.deepEqual(v1.body, r.body);
    const repo = await api(server, 'POST', '/rest/api/latest/projects/LATE/repos', { name: 'New Repo' });
    assert.equal(repo.status, 201, repo.text);
    assert.equal(repo.body.links.clone.find((l: { name: string }) => l.name === 'http').href, `${server.baseUrl}/scm/late/new-repo.git`);
    assert.equal((await api(server, 'DELETE', '/rest/api/latest/projects/LATE/repos/new-repo')).status, 202);
    assert.equal((await api(server, 'DELETE', '/rest/api/latest/projects/LATE')).status, 204);
    assert.equal((await api(server, 'GET', '/rest/api/1.0/projects/LATE')).status, 404);
  });

  it('serves /rest/ssh/latest and /rest/access-tokens/latest', async () => {
    const keys = await api(server, 'GET', '/rest/ssh/latest/keys?user=alice');
    assert.equal(keys.status, 200, keys.text);
    assert.deepEqual(keys.body, (await api(server, 'GET', '/rest/ssh/1.0/keys?user=alice')).body);
    const created = await api(server, 'PUT', '/rest/access-tokens/latest/users/alice', { name: 'via latest', permissions: ['REPO_READ'] }, alice);
    assert.equal(created.status, 200, created.text);
    assert.equal(typeof created.body.token, 'string');
    const listed = await api(server, 'GET', '/rest/access-tokens/latest/users/alice', undefined, alice);
    assert.ok(listed.body.values.some((t: { name: string }) => t.name === 'via latest'), listed.text);
  });

  it('serves /rest/branch-utils/latest and /rest/git/latest (writes)', async () => {
    const branch = await api(server, 'POST', '/rest/branch-utils/latest/projects/COMPAT/repos/tools/branches', { name: 'from-latest', startPoint: 'main' });
    assert.equal(branch.status, 200, branch.text);
    assert.equal(branch.body.latestCommit, mainCommit);
    const deleted = await api(server, 'DELETE', '/rest/branch-utils/latest/projects/COMPAT/repos/tools/branches', { name: 'from-latest' });
    assert.equal(deleted.status, 204, deleted.text);
    const tag = await api(server, 'POST', '/rest/api/latest/projects/COMPAT/repos/tools/tags', { name: 'tmp-tag', startPoint: 'main' });
    assert.equal(tag.status, 200, tag.text);
    const untag = await api(server, 'DELETE', '/rest/git/latest/projects/COMPAT/repos/tools/tags/tmp-tag');
    assert.equal(untag.status, 204, untag.text);
    const tags = await api(server, 'GET', '/rest/api/1.0/projects/COMPAT/repos/tools/tags');
    assert.deepEqual(tags.body.values.map((t: { displayId: string }) => t.displayId), ['v1.0']);
  });

  it('serves /rest/mirroring/latest', async () => {
    const [latest, v1] = await Promise.all([api(server, 'GET', '/rest/mirroring/latest/mirrorServers'), api(server, 'GET', '/rest/mirroring/1.0/mirrorServers')]);
    assert.equal(latest.status, 200, latest.text);
    assert.deepEqual(latest.body, v1.body);
    const events = await api(server, 'GET', '/rest/mirroring/latest/events?after=0&limit=2');
    assert.equal(events.status, 200, events.text);
    assert.equal(events.body.values.length, 2);
    assert.equal(events.body.limit, 2);
    const discovery = await api(server, 'GET', '/rest/mirroring/latest/primary', undefined, null);
    assert.equal(discovery.status, 200, discovery.text);
  });

  it('keeps the path the client sent in 404 messages, and rewrites only a whole "latest" segment', async () => {
    const missing = await api(server, 'GET', '/rest/api/latest/no-such-thing');
    assert.equal(missing.status, 404);
    assert.match(missing.body.errors[0].message, /GET \/rest\/api\/latest\/no-such-thing/);
    assert.equal((await api(server, 'GET', '/rest/api/latestx/projects')).status, 404);
    assert.equal((await api(server, 'GET', '/rest/api/x/latest/projects')).status, 404);
    assert.equal((await api(server, 'GET', '/rest/api/1.0/latest/projects')).status, 404);
  });

  it('redacts secrets in logged /rest/api/latest URLs as in 1.0 ones', async () => {
    const secret = 'Latest-Secret-Password-42';
    const q = new URLSearchParams({ name: 'logged', password: secret, displayName: 'Logged', emailAddress: 'logged@example.com' });
    const r = await api(server, 'POST', `/rest/api/latest/admin/users?${q}`);
    assert.equal(r.status, 204, r.text);
    const bad = await api(server, 'POST', `/rest/api/latest/admin/users?${q}`);
    assert.equal(bad.status, 409, bad.text);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const output = server.output();
    assert.ok(!output.includes(secret), 'the password never reaches the log');
    assert.match(output, /"url":"\/rest\/api\/latest\/admin\/users\?name=logged&password=\[redacted\]/);
  });
});

describe('application-properties', () => {
  it('answers anonymous callers in Bitbucket\'s shape, under 1.0 and latest', async () => {
    for (const path of ['/rest/api/1.0/application-properties', '/rest/api/latest/application-properties']) {
      const r = await api(server, 'GET', path, undefined, null);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(Object.keys(r.body).sort(), ['buildDate', 'buildNumber', 'displayName', 'version']);
      assert.equal(r.body.version, PACKAGE_VERSION);
      assert.equal(r.body.displayName, 'mirrorfarm');
      const [major = 0, minor = 0, patch = 0] = PACKAGE_VERSION.split('.').map(Number);
      assert.equal(r.body.buildNumber, String(major * 1_000_000 + minor * 1_000 + patch));
      assert.match(r.body.buildDate, /^\d{13}$/);
      assert.ok(Number(r.body.buildDate) <= Date.now());
    }
    const withToken = await api(server, 'GET', '/rest/api/1.0/application-properties', undefined, null, { authorization: `Bearer ${aliceToken}` });
    assert.equal(withToken.status, 200, withToken.text);
  });

  it('still refuses wrong credentials, as every REST route does', async () => {
    const r = await api(server, 'GET', '/rest/api/1.0/application-properties', undefined, { user: 'alice', secret: 'wrong' });
    assertError(r, 401, 'com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException', 'BAD_CREDENTIALS');
  });
});

describe('OpenAPI document', () => {
  it('names this server, says that latest is an alias, and gives every operation a unique operationId', async () => {
    const r = await api(server, 'GET', '/rest/api/openapi.json', undefined, null);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.servers.map((s: { url: string }) => s.url), [server.baseUrl]);
    assert.match(r.body.info.description, /`latest` is an alias of the current version/);
    assert.match(r.body.info.description, /exceptionName/);
    const ids: string[] = [];
    for (const [path, item] of Object.entries(r.body.paths as Record<string, Record<string, { operationId?: string }>>)) {
      for (const [method, operation] of Object.entries(item)) {
        assert.equal(typeof operation.operationId, 'string', `${method.toUpperCase()} ${path} has an operationId`);
        ids.push(operation.operationId!);
      }
    }
    assert.ok(ids.length > 40, `${ids.length} operations`);
    assert.equal(new Set(ids).size, ids.length, `duplicates: ${ids.filter((id, i) => ids.indexOf(id) !== i).join(', ')}`);
    assert.equal(r.body.paths['/rest/api/1.0/projects'].get.operationId, 'getApiProjects');
    assert.equal(r.body.paths['/rest/api/1.0/projects/{projectKey}/repos/{repositorySlug}'].delete.operationId, 'deleteApiProjectsByProjectKeyReposByRepositorySlug');
    assert.equal(r.body.paths['/rest/api/1.0/application-properties'].get.operationId, 'getApiApplicationProperties');
    assert.match(JSON.stringify(r.body.paths), /NoSuchProjectException/, 'the error schema explains exceptionName');
    // Fetched again, the document is the same (operationIds are stable).
    const again = await api(server, 'GET', '/rest/api/openapi.json', undefined, null);
    assert.deepEqual(again.body, r.body);
  });
});

describe("Bitbucket's exception names in error bodies", () => {
  it('names NoSuchProjectException, NoSuchRepositoryException and NoSuchUserException, keeping mirrorfarm\'s code', async () => {
    assertError(await api(server, 'GET', '/rest/api/1.0/projects/NOPE', undefined, alice), 404, 'com.atlassian.bitbucket.project.NoSuchProjectException', 'PROJECT_NOT_FOUND');
    assertError(await api(server, 'GET', '/rest/api/1.0/projects/COMPAT/repos/nope', undefined, alice), 404, 'com.atlassian.bitbucket.repository.NoSuchRepositoryException', 'REPOSITORY_NOT_FOUND');
    assertError(await api(server, 'GET', '/rest/api/latest/users/nobody', undefined, alice), 404, 'com.atlassian.bitbucket.user.NoSuchUserException', 'USER_NOT_FOUND');
  });

  it('answers a hidden repository exactly as a missing one, exception name included', async () => {
    const hidden = await api(server, 'GET', '/rest/api/1.0/projects/SECRET/repos/hidden', undefined, alice);
    const missing = await api(server, 'GET', '/rest/api/1.0/projects/SECRET/repos/absent', undefined, alice);
    assertError(hidden, 404, 'com.atlassian.bitbucket.repository.NoSuchRepositoryException', 'REPOSITORY_NOT_FOUND');
    assert.deepEqual(hidden.body.errors[0].exceptionName, missing.body.errors[0].exceptionName);
    assert.equal(hidden.body.errors[0].message.replace('hidden', 'X'), missing.body.errors[0].message.replace('absent', 'X'));
  });

  it('names the authentication and authorisation exceptions', async () => {
    assertError(await api(server, 'GET', '/rest/api/1.0/projects/COMPAT', undefined, null), 401, 'com.atlassian.bitbucket.AuthorisationException', 'AUTHENTICATION_REQUIRED');
    assertError(await api(server, 'GET', '/rest/api/1.0/projects', undefined, { user: 'alice', secret: 'wrong' }), 401, 'com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException', 'BAD_CREDENTIALS');
    assertError(await api(server, 'POST', '/rest/api/1.0/projects', { key: 'NOPE' }, alice), 403, 'com.atlassian.bitbucket.AuthorisationException', 'FORBIDDEN');
  });

  it('names validation, integrity and ref exceptions', async () => {
    assertError(await api(server, 'POST', '/rest/api/1.0/projects', { key: '1bad' }), 400, 'com.atlassian.bitbucket.validation.ArgumentValidationException', 'INVALID_INPUT');
    assertError(await api(server, 'POST', '/rest/api/1.0/projects', { name: 'no key' }), 400, 'com.atlassian.bitbucket.validation.ArgumentValidationException', 'INVALID_INPUT');
    assertError(await api(server, 'DELETE', '/rest/api/1.0/projects/COMPAT'), 409, 'com.atlassian.bitbucket.IntegrityException', 'CONFLICT');
    const branches = '/rest/branch-utils/1.0/projects/COMPAT/repos/tools/branches';
    assertError(await api(server, 'POST', branches, { name: 'feature', startPoint: 'main' }), 409, 'com.atlassian.bitbucket.repository.DuplicateRefException', 'CONFLICT');
    assertError(await api(server, 'DELETE', branches, { name: 'no-such-branch' }), 404, 'com.atlassian.bitbucket.repository.NoSuchBranchException', 'NOT_FOUND');
    assertError(await api(server, 'DELETE', '/rest/git/1.0/projects/COMPAT/repos/tools/tags/no-such-tag'), 404, 'com.atlassian.bitbucket.repository.NoSuchTagException', 'NOT_FOUND');
    assertError(await api(server, 'GET', '/rest/api/1.0/projects/COMPAT/repos/docs/branches/default'), 404, 'com.atlassian.bitbucket.repository.NoSuchBranchException', 'NOT_FOUND');
  });

  it("falls back to mirrorfarm's code where Bitbucket names no class", async () => {
    assertError(await api(server, 'POST', '/rest/api/1.0/projects', { key: 'PUB', name: 'again' }), 409, 'CONFLICT', 'CONFLICT');
    assertError(await api(server, 'GET', '/rest/api/1.0/nothing-here'), 404, 'NOT_FOUND', 'NOT_FOUND');
  });
});

describe('bitbucket-server-nodejs (npm) through /rest/api/latest with a Bearer token', () => {
  async function clientSees(target: TestServer) {
    const home = tempDir('mf-bbclient-home-');
    const r = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'test/clients/bitbucket-server-nodejs.ts')], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: home,
        NODE_EXTRA_CA_CERTS: target.ca.caCert,
        MF_BASE_URL: target.baseUrl,
        MF_TOKEN: aliceToken,
        MF_PROJECT: 'COMPAT',
        MF_REPO: 'tools',
        MF_HIDDEN_PROJECT: 'SECRET',
        MF_HIDDEN_REPO: 'hidden',
      },
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 0, `client failed:\n${r.stderr}\n${r.stdout}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!);
  }

  function assertSeesWhatTheTokenMay(seen: Record<string, unknown> & { branches: Array<{ name: string }>; allRepos: string[] }): void {
    assert.deepEqual(seen.projects, ['COMPAT', 'PUB']);
    assert.deepEqual(seen.repos, ['docs', 'tools']);
    assert.deepEqual(seen.allRepos.sort(), ['COMPAT/docs', 'COMPAT/tools', 'PUB/open']);
    assert.deepEqual(seen.cloneLinks, ['http', 'ssh']);
    assert.deepEqual(
      seen.branches.sort((a, b) => a.name.localeCompare(b.name)),
      [
        { name: 'feature', isDefault: false, commit: mainCommit },
        { name: 'main', isDefault: true, commit: mainCommit },
      ],
    );
    assert.deepEqual(seen.tags, ['v1.0']);
    assert.deepEqual(seen.anonymousProjects, ['PUB']);
    assert.deepEqual(seen.hiddenRepo, { status: 404, exceptionName: 'com.atlassian.bitbucket.repository.NoSuchRepositoryException', code: 'REPOSITORY_NOT_FOUND' });
    assert.deepEqual(seen.missingProject, { status: 404, exceptionName: 'com.atlassian.bitbucket.project.NoSuchProjectException', code: 'PROJECT_NOT_FOUND' });
  }

  it('on the primary: lists the projects, repositories, branches and tags the token may see, and nothing else', async () => {
    assertSeesWhatTheTokenMay(await clientSees(server));
  });

  it('on a mirror carrying every project: the same answers, from the mirror', async () => {
    mirror = await startMirror(server);
    await authorizeMirror(server, mirror, 'ALL');
    await waitForState(mirror, 'SYNCHRONIZED', 30_000);
    assertSeesWhatTheTokenMay(await clientSees(mirror));
  });
});
