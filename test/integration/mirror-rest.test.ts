// A mirror answers the REST calls a CI job near it makes, as the primary would: the links the primary hands out
// (repos/{id}/mirrors, mirrorServers) resolve on the mirror; projects, repositories, branches, tags and the default
// branch come in the primary's shapes with the mirror's own clone links; users are the primary's (Basic and Bearer,
// checked by delegated authentication) and see only what they may read, with the same "not found" for missing and
// unreadable; Bitbucket's mirror-side resources (mirrorRepos, upstreamServers, progress, syncSettings, farmNodes)
// answer with Bitbucket's shapes and permissions. Primary and mirror run as separate processes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { addSshKey, createProject, createRepo, createToken, createUser, grantRepo } from '../helpers/fixtures.js';
import { authorizeMirror, mirrorGet, waitForSameRefs, waitForState, type MirrorStatus } from '../helpers/mirror.js';
import { ADMIN, api, git, gitOk, makeWorkTree, sshKeyPair, startMirror, startServer, type Credentials, type SshKeyPair, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

let primary: TestServer;
let mirror: TestServer;
let alice: Credentials;
let bob: Credentials;
let aliceKey: SshKeyPair;
let aliceToken: string;
let ids: { app: number; secret: number; open: number; other: number };
let projectIds: { one: number; pub: number };

before(async () => {
  primary = await startServer();
  const one = await createProject(primary, 'ONE');
  const pub = await createProject(primary, 'PUB', { public: true });
  await createProject(primary, 'TWO');
  projectIds = { one: one.id, pub: pub.id };
  ids = {
    app: (await createRepo(primary, 'ONE', 'app')).id,
    secret: (await createRepo(primary, 'ONE', 'secret')).id,
    open: (await createRepo(primary, 'PUB', 'open')).id,
    other: (await createRepo(primary, 'TWO', 'other')).id,
  };
  alice = await createUser(primary, 'alice');
  bob = await createUser(primary, 'bob');
  await grantRepo(primary, 'ONE', 'app', 'alice', 'REPO_READ');
  await grantRepo(primary, 'TWO', 'other', 'alice', 'REPO_READ');
  aliceKey = await sshKeyPair('alice');
  await addSshKey(primary, 'alice', aliceKey.publicKey);
  aliceToken = await createToken(primary, alice, ['REPO_READ']);
  const work = await makeWorkTree([{ 'README.md': 'v1\n' }, { 'README.md': 'v2\n' }]);
  await gitOk(null, ['branch', 'feature/one', 'HEAD~1'], { cwd: work });
  await gitOk(null, ['branch', 'release'], { cwd: work });
  await gitOk(null, ['tag', 'light', 'HEAD~1'], { cwd: work });
  await gitOk(null, ['tag', '-a', '-m', 'version 1', 'v1'], { cwd: work });
  await gitOk(primary, ['push', primary.httpUrl('ONE', 'app'), 'main', 'feature/one', 'release', 'light', 'v1'], { creds: ADMIN, cwd: work });
  for (const [p, s] of [['ONE', 'secret'], ['PUB', 'open'], ['TWO', 'other']] as const) await gitOk(primary, ['push', primary.httpUrl(p, s), 'main'], { creds: ADMIN, cwd: work });
  mirror = await startMirror(primary);
  await authorizeMirror(primary, mirror, ['ONE', 'PUB']);
  await waitForState(mirror, 'SYNCHRONIZED');
  await waitForSameRefs(primary, mirror, 'ONE', 'app', ADMIN);
});

after(async () => {
  if (process.env.MF_TEST_DEBUG) process.stderr.write(`--- mirror output ---\n${mirror?.output().slice(-20000)}\n`);
  await mirror?.stop();
  await primary?.stop();
  removeTempDirs();
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** The keys of a JSON value, recursively, with array items merged: two values of one shape give the same set. */
function shape(value: unknown, prefix = ''): string[] {
  if (Array.isArray(value)) return [...new Set(value.flatMap((v) => shape(v, `${prefix}[]`)))].sort();
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => [`${prefix}.${k}`, ...shape(v, `${prefix}.${k}`)]).sort();
  return [];
}

/** Follows one link that points at the mirror, the way its client would, and asserts the mirror answers it. */
async function follow(href: string, creds: Credentials, key: SshKeyPair): Promise<void> {
  if (href.startsWith('ssh://')) {
    const r = await git(mirror, ['ls-remote', href], { sshKey: key });
    assert.equal(r.code, 0, `git ls-remote ${href}: ${r.stderr}`);
    return;
  }
  const url = new URL(href);
  assert.equal(`${url.protocol}//${url.host}`, new URL(mirror.baseUrl).origin, `${href} points at the mirror`);
  const path = href.endsWith('.git') ? `${url.pathname}/info/refs?service=git-upload-pack` : `${url.pathname}${url.search}`;
  const r = await api(mirror, 'GET', path, undefined, creds);
  assert.equal(r.status, 200, `GET ${href} on the mirror: ${r.status} ${r.text.slice(0, 300)}`);
  if (href.endsWith('.git')) {
    const clone = await git(mirror, ['ls-remote', href], { creds });
    assert.equal(clone.code, 0, `git ls-remote ${href}: ${clone.stderr}`);
  }
}

describe('every link the primary hands out resolves on the mirror', () => {
  it('repos/{id}/mirrors: links.self and every clone link answer 200 from the mirror', async () => {
    const r = await api(primary, 'GET', `/rest/mirroring/1.0/repos/${ids.app}/mirrors`, undefined, alice);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.values.length, 1, 'the mirror is listed');
    const links = r.body.values[0].links as { self: Array<{ href: string }>; clone: Array<{ href: string; name: string }> };
    assert.deepEqual(links.clone.map((c) => c.name).sort(), ['http', 'ssh']);
    for (const link of [...links.self, ...links.clone]) await follow(link.href, alice, aliceKey);
    const self = await api(mirror, 'GET', new URL(links.self[0]!.href).pathname, undefined, alice);
    assert.equal(self.body.slug, 'app');
    assert.equal(self.body.id, ids.app);
  });

  it('mirrorServers: the base URL and every link that points at the mirror answer', async () => {
    const r = await api(primary, 'GET', '/rest/mirroring/1.0/mirrorServers');
    assert.equal(r.status, 200, r.text);
    const server = r.body.values[0];
    assert.equal(server.baseUrl, mirror.baseUrl);
    const status = await mirrorGet<MirrorStatus>(mirror, '/status');
    assert.equal(status.status, 200);
    assert.equal(status.body.mirrorId, server.id, 'the base URL reaches this very mirror');
    const hrefs = JSON.stringify(server).match(/"href":"[^"]+"/g) ?? [];
    for (const href of hrefs.map((h) => h.slice(8, -1)).filter((h) => h.startsWith(mirror.baseUrl))) await follow(href, ADMIN, aliceKey);
    const one = await api(primary, 'GET', `/rest/mirroring/1.0/mirrorServers/${server.id}`);
    assert.equal(one.status, 200, one.text);
    assert.equal(one.body.baseUrl, mirror.baseUrl);
  });
});

describe('the read-only REST API on the mirror', () => {
  it('a repository has the primary\'s shape and values, with clone links on the mirror', async () => {
    const onPrimary = await api(primary, 'GET', '/rest/api/1.0/projects/ONE/repos/app', undefined, alice);
    const onMirror = await api(mirror, 'GET', '/rest/api/1.0/projects/ONE/repos/app', undefined, alice);
    assert.equal(onMirror.status, 200, onMirror.text);
    assert.deepEqual(shape(onMirror.body), shape(onPrimary.body));
    for (const field of ['id', 'slug', 'name', 'public', 'scmId', 'state', 'forkable', 'archived']) assert.deepEqual(onMirror.body[field], onPrimary.body[field], field);
    assert.equal(onMirror.body.project.key, 'ONE');
    assert.equal(onMirror.body.project.id, projectIds.one);
    const clone = Object.fromEntries(onMirror.body.links.clone.map((c: { name: string; href: string }) => [c.name, c.href]));
    assert.equal(clone.http, `${mirror.baseUrl}/scm/one/app.git`);
    assert.equal(clone.ssh, `ssh://${mirror.sshUser}@127.0.0.1:${mirror.sshPort}/one/app.git`);
  });

  it('branches (default, filterText, paging) and tags equal the primary\'s, read from the mirror\'s own repository', async () => {
    for (const path of [
      '/branches',
      '/branches?limit=1',
      '/branches?start=1&limit=1',
      '/branches?filterText=FEAT',
      '/branches?orderBy=ALPHABETICAL',
      '/branches?filterText=release&boostMatches=true',
      '/branches/default',
      '/default-branch',
      '/tags',
      '/tags?filterText=v',
    ]) {
      const url = `/rest/api/1.0/projects/ONE/repos/app${path}`;
      const want = await api(primary, 'GET', url, undefined, alice);
      const got = await api(mirror, 'GET', url, undefined, alice);
      assert.equal(got.status, 200, `${path}: ${got.text}`);
      assert.deepEqual(got.body, want.body, path);
    }
    const page = await api(mirror, 'GET', '/rest/api/1.0/projects/ONE/repos/app/branches?limit=1', undefined, alice);
    assert.equal(page.body.isLastPage, false);
    assert.equal(page.body.nextPageStart, 1);
    const main = (await api(mirror, 'GET', '/rest/api/1.0/projects/ONE/repos/app/branches', undefined, alice)).body.values.find((b: { displayId: string }) => b.displayId === 'main');
    assert.equal(main.isDefault, true);
    const tags = (await api(mirror, 'GET', '/rest/api/1.0/projects/ONE/repos/app/tags', undefined, alice)).body.values;
    assert.ok(tags.find((t: { displayId: string; hash: string | null }) => t.displayId === 'v1' && t.hash !== null), 'an annotated tag carries its tag object id');
    assert.ok(tags.find((t: { displayId: string; hash: string | null }) => t.displayId === 'light' && t.hash === null));
  });

  it('lists only what the caller may read: projects, repositories per project and across projects', async () => {
    const keys = async (creds: Credentials | null, headers: Record<string, string> = {}) =>
      (await api(mirror, 'GET', '/rest/api/1.0/projects', undefined, creds, headers)).body.values.map((p: { key: string }) => p.key);
    assert.deepEqual(await keys(alice), ['ONE', 'PUB'], 'alice sees ONE through the repository she may read, PUB because it is public; TWO is not on this mirror');
    assert.deepEqual(await keys(bob), ['PUB']);
    assert.deepEqual(await keys(null), ['PUB'], 'anonymous callers see public projects');
    assert.deepEqual(await keys(ADMIN), ['ONE', 'PUB']);
    const slugs = async (path: string, creds: Credentials | null) => (await api(mirror, 'GET', path, undefined, creds)).body.values.map((r: { slug: string }) => r.slug);
    assert.deepEqual(await slugs('/rest/api/1.0/projects/ONE/repos', alice), ['app']);
    assert.deepEqual(await slugs('/rest/api/1.0/projects/ONE/repos', ADMIN), ['app', 'secret']);
    assert.deepEqual(await slugs('/rest/api/1.0/repos', alice), ['app', 'open']);
    assert.deepEqual(await slugs('/rest/api/1.0/repos?projectkey=PUB', null), ['open']);
    assert.deepEqual(await slugs('/rest/api/1.0/repos?permission=REPO_WRITE', ADMIN), [], 'nobody writes through a mirror');
    const paged = await api(mirror, 'GET', '/rest/api/1.0/repos?limit=1', undefined, ADMIN);
    assert.deepEqual([paged.body.size, paged.body.isLastPage, paged.body.nextPageStart], [1, false, 1]);
  });

  it('answers missing and unreadable alike: 404 with the same message for users, 401 for anonymous callers', async () => {
    const missing = await api(mirror, 'GET', '/rest/api/1.0/projects/ONE/repos/nosuch', undefined, bob);
    const hidden = await api(mirror, 'GET', '/rest/api/1.0/projects/ONE/repos/secret', undefined, bob);
    assert.equal(missing.status, 404);
    assert.equal(hidden.status, 404);
    assert.equal(hidden.text.replace('secret', 'X'), missing.text.replace('nosuch', 'X'));
    const hiddenUpper = await api(mirror, 'GET', '/rest/api/1.0/projects/one/repos/SECRET', undefined, bob);
    const missingUpper = await api(mirror, 'GET', '/rest/api/1.0/projects/one/repos/NOSUCH', undefined, bob);
    assert.equal(hiddenUpper.text.replace('SECRET', 'X'), missingUpper.text.replace('NOSUCH', 'X'), 'the spelling of the name asked for tells nothing either');
    const project = await api(mirror, 'GET', '/rest/api/1.0/projects/ONE', undefined, bob);
    const noProject = await api(mirror, 'GET', '/rest/api/1.0/projects/NOPE', undefined, bob);
    assert.equal(project.status, 404);
    assert.equal(project.text.replace('ONE', 'X'), noProject.text.replace('NOPE', 'X'));
    assert.equal((await api(mirror, 'GET', '/rest/api/1.0/projects/ONE/repos/secret/branches', undefined, bob)).status, 404);
    assert.equal((await api(mirror, 'GET', '/rest/api/1.0/projects/TWO/repos/other', undefined, alice)).status, 404, 'a repository the mirror does not carry');
    for (const path of ['/rest/api/1.0/projects/ONE/repos/secret', '/rest/api/1.0/projects/ONE/repos/nosuch', '/rest/api/1.0/projects/ONE']) {
      const r = await api(mirror, 'GET', path, undefined, null);
      assert.equal(r.status, 401, path);
    }
    assert.equal((await api(mirror, 'GET', '/rest/api/1.0/projects/ONE/repos/app', undefined, alice)).status, 200);
    assert.equal((await api(mirror, 'GET', '/rest/api/1.0/projects/PUB/repos/open', undefined, null)).status, 200);
  });

  it('takes the primary\'s credentials: a token as Bearer or Basic; a wrong password gets 401', async () => {
    assert.equal((await api(mirror, 'GET', '/rest/api/1.0/projects/ONE/repos/app/branches', undefined, null, bearer(aliceToken))).status, 200);
    assert.equal((await api(mirror, 'GET', '/rest/api/1.0/projects/ONE/repos/app', undefined, { user: 'alice', secret: aliceToken })).status, 200);
    assert.equal((await api(mirror, 'GET', '/rest/api/1.0/projects/ONE/repos/secret', undefined, null, bearer(aliceToken))).status, 404);
    const wrong = await api(mirror, 'GET', '/rest/api/1.0/projects', undefined, { user: 'alice', secret: 'wrong' });
    assert.equal(wrong.status, 401);
    assert.deepEqual([wrong.body.errors[0].code, wrong.body.errors[0].exceptionName], ['BAD_CREDENTIALS', 'com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException']);
  });

  it('serves application-properties to anyone and refuses writes with the primary\'s URL', async () => {
    const props = await api(mirror, 'GET', '/rest/api/1.0/application-properties', undefined, null);
    assert.equal(props.status, 200, props.text);
    assert.deepEqual(Object.keys(props.body).sort(), ['buildDate', 'buildNumber', 'displayName', 'version']);
    assert.deepEqual(props.body, (await api(primary, 'GET', '/rest/api/1.0/application-properties', undefined, null)).body, 'the same build answers the same');
    assert.match(props.body.version, /^\d+\.\d+\.\d+/);
    const latest = await api(mirror, 'GET', '/rest/api/latest/application-properties', undefined, null);
    assert.deepEqual([latest.status, latest.body], [200, props.body], '/rest/api/latest is served on mirrors too');
    const write = await api(mirror, 'POST', '/rest/api/1.0/projects/ONE/repos', { name: 'nope' }, ADMIN);
    assert.equal(write.status, 405);
    assert.equal(write.body.errors[0].code, 'MIRROR_READ_ONLY');
    assert.ok(write.body.errors[0].message.includes(`${primary.baseUrl}/rest/api/1.0/projects/ONE/repos`), write.text);
  });
});

describe("Bitbucket's mirror-side resources", () => {
  it('mirrorRepos/{upstreamRepoId}: clone URLs on the mirror, push URLs on the primary, status', async () => {
    const r = await api(mirror, 'GET', `/rest/mirroring/1.0/mirrorRepos/${ids.app}`, undefined, alice);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(Object.keys(r.body).sort(), ['available', 'cloneUrls', 'lastUpdated', 'mirrorName', 'pushUrls', 'repositoryId', 'status']);
    assert.equal(r.body.available, true);
    assert.equal(r.body.status, 'AVAILABLE');
    assert.equal(r.body.repositoryId, String(ids.app));
    assert.equal(r.body.mirrorName, 'test mirror');
    assert.ok(!Number.isNaN(Date.parse(r.body.lastUpdated)));
    const clone = Object.fromEntries(r.body.cloneUrls.map((c: { name: string; href: string }) => [c.name, c.href]));
    assert.equal(clone.http, `${mirror.baseUrl}/scm/one/app.git`);
    for (const href of Object.values(clone) as string[]) await follow(href, alice, aliceKey);
    const push = Object.fromEntries(r.body.pushUrls.map((c: { name: string; href: string }) => [c.name, c.href]));
    assert.equal(push.http, `${primary.baseUrl}/scm/one/app.git`);
    assert.equal(push.ssh, `ssh://${primary.sshUser}@127.0.0.1:${primary.sshPort}/one/app.git`);
  });

  it('mirrorRepos/{upstreamRepoId}: ids walked without access answer alike and name no project or repository', async () => {
    const id = await api(mirror, 'GET', '/rest/mirroring/1.0/upstreamServers', undefined, null);
    const upstreamId = id.body.values[0].id as string;
    for (const base of ['/rest/mirroring/1.0/mirrorRepos', `/rest/mirroring/1.0/upstreamServers/${upstreamId}/repos`]) {
      const answers = new Set<string>();
      for (const repoId of [ids.app, ids.secret, ids.open, ids.other, 999_999]) {
        const r = await api(mirror, 'GET', `${base}/${repoId}`, undefined, bob);
        if (repoId === ids.open) {
          assert.equal(r.status, 200, 'a public repository');
          continue;
        }
        assert.equal(r.status, 404, `${base}/${repoId}`);
        assert.doesNotMatch(r.text, /ONE|TWO|app|secret|other/i, 'no name leaks');
        answers.add(r.text.replace(String(repoId), 'ID'));
      }
      assert.equal(answers.size, 1, 'one answer for every id');
    }
    assert.equal((await api(mirror, 'GET', `/rest/mirroring/1.0/mirrorRepos/${ids.secret}`, undefined, null)).status, 401);
  });

  it('mirrorRepos: a page of what the caller may read', async () => {
    const r = await api(mirror, 'GET', '/rest/mirroring/1.0/mirrorRepos', undefined, alice);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.values.map((v: { repositoryId: string }) => v.repositoryId), [String(ids.app), String(ids.open)]);
    assert.equal(r.body.isLastPage, true);
    const page = await api(mirror, 'GET', '/rest/mirroring/1.0/mirrorRepos?limit=1', undefined, ADMIN);
    assert.deepEqual([page.body.size, page.body.isLastPage, page.body.nextPageStart], [1, false, 1]);
  });

  it('upstreamServers, upstreamServer and upstreamServers/{id}: the primary, installed and connected', async () => {
    const list = await api(mirror, 'GET', '/rest/mirroring/1.0/upstreamServers', undefined, alice);
    assert.equal(list.status, 200, list.text);
    assert.equal(list.body.size, 1);
    const server = list.body.values[0];
    assert.equal(server.baseUrl, primary.baseUrl);
    assert.equal(server.state, 'INSTALLED');
    assert.equal(server.connection.state, 'CONNECTED');
    assert.match(server.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.deepEqual((await api(mirror, 'GET', `/rest/mirroring/1.0/upstreamServers/${server.id}`, undefined, alice)).body, server);
    assert.deepEqual((await api(mirror, 'GET', '/rest/mirroring/1.0/upstreamServer', undefined, null)).body, server);
    assert.equal((await api(mirror, 'GET', '/rest/mirroring/1.0/upstreamServers/00000000-0000-0000-0000-000000000000', undefined, alice)).status, 404);
  });

  it('progress: every repository synchronized, discovery done (also under upstreamServers/{id})', async () => {
    const want = { discovering: false, syncedRepos: 3, totalRepos: 3 };
    assert.deepEqual((await api(mirror, 'GET', '/rest/mirroring/1.0/progress', undefined, null)).body, want);
    const id = (await api(mirror, 'GET', '/rest/mirroring/1.0/upstreamServer', undefined, null)).body.id;
    assert.deepEqual((await api(mirror, 'GET', `/rest/mirroring/1.0/upstreamServers/${id}/progress`, undefined, null)).body, want);
  });

  it('syncSettings and farmNodes need a system administrator of the primary, logged in with a password', async () => {
    const settings = await api(mirror, 'GET', '/rest/mirroring/1.0/syncSettings');
    assert.equal(settings.status, 200, settings.text);
    assert.equal(settings.body.mode, 'SELECTED_PROJECTS');
    assert.deepEqual([...settings.body.projectIds].sort(), [String(projectIds.one), String(projectIds.pub)].sort());
    const id = (await api(mirror, 'GET', '/rest/mirroring/1.0/upstreamServer', undefined, null)).body.id;
    assert.deepEqual((await api(mirror, 'GET', `/rest/mirroring/1.0/upstreamServers/${id}/settings`)).body, settings.body);
    const nodes = await api(mirror, 'GET', '/rest/mirroring/1.0/farmNodes');
    assert.equal(nodes.status, 200, nodes.text);
    const status = (await mirrorGet<MirrorStatus & { nodeId: string }>(mirror, '/status')).body;
    assert.deepEqual(nodes.body.map((n: { id: string; local: boolean }) => [n.id, n.local]), [[status.nodeId, true]]);
    assert.deepEqual(Object.keys(nodes.body[0]).sort(), ['address', 'buildVersion', 'id', 'local', 'name']);
    const adminToken = await createToken(primary, ADMIN, ['REPO_READ'], 'admin token');
    for (const path of ['/rest/mirroring/1.0/syncSettings', '/rest/mirroring/1.0/farmNodes']) {
      assert.equal((await api(mirror, 'GET', path, undefined, alice)).status, 403, `${path} as a user`);
      assert.equal((await api(mirror, 'GET', path, undefined, null, bearer(adminToken))).status, 403, `${path} with an administrator's token`);
      assert.equal((await api(mirror, 'GET', path, undefined, null)).status, 401, `${path} anonymous`);
    }
    const put = await api(mirror, 'PUT', '/rest/mirroring/1.0/syncSettings', { mode: 'ALL_PROJECTS' });
    assert.equal(put.status, 405);
    assert.ok(put.body.errors[0].message.includes(`${primary.baseUrl}/rest/mirroring/1.0/mirrorServers/`), put.text);
  });
});

describe('delegated authentication on the mirror\'s REST API', () => {
  /** Asks until the answer is `status`; fails when that takes longer than a second after the change. */
  async function answersWithin(status: number, ask: () => Promise<{ status: number }>, what: string): Promise<void> {
    const t0 = Date.now();
    for (;;) {
      const r = await ask();
      if (r.status === status) return;
      assert.ok(Date.now() - t0 <= 1000, `${what}: still ${r.status} ${Date.now() - t0} ms after the change`);
    }
  }

  it('a removed permission stops REST reads on the mirror within a second, and a new grant works at once', async () => {
    const branches = () => api(mirror, 'GET', '/rest/api/1.0/projects/ONE/repos/app/branches', undefined, alice);
    const listed = async () => (await api(mirror, 'GET', '/rest/mirroring/1.0/mirrorRepos', undefined, alice)).body.values.map((v: { repositoryId: string }) => v.repositoryId);
    assert.equal((await branches()).status, 200);
    assert.deepEqual(await listed(), [String(ids.app), String(ids.open)]);
    const r = await api(primary, 'DELETE', '/rest/api/1.0/projects/ONE/repos/app/permissions/users?name=alice');
    assert.equal(r.status, 204, r.text);
    await answersWithin(404, branches, 'branches after the permission was removed');
    assert.deepEqual(await listed(), [String(ids.open)], 'listings follow');
    assert.deepEqual((await api(mirror, 'GET', '/rest/api/1.0/projects', undefined, alice)).body.values.map((p: { key: string }) => p.key), ['PUB']);
    await grantRepo(primary, 'ONE', 'app', 'alice', 'REPO_READ');
    await answersWithin(200, branches, 'branches after the grant');
  });

  it('a revoked token stops working on the mirror\'s REST API within a second', async () => {
    const created = await api(primary, 'PUT', '/rest/access-tokens/1.0/users/alice', { name: 'to revoke', permissions: ['REPO_READ'] }, alice);
    assert.equal(created.status, 200, created.text);
    const ask = () => api(mirror, 'GET', '/rest/api/1.0/projects/ONE/repos/app', undefined, null, bearer(created.body.token as string));
    assert.equal((await ask()).status, 200);
    assert.equal((await ask()).status, 200, 'answered from the cache');
    const revoked = await api(primary, 'DELETE', `/rest/access-tokens/1.0/users/alice/${created.body.id}`, undefined, alice);
    assert.equal(revoked.status, 204, revoked.text);
    await answersWithin(401, ask, 'revoked token');
  });
});
