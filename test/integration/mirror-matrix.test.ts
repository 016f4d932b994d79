// The mirror's permission matrix equals the primary's. The same users, grants, keys and tokens as
// permission-matrix.test.ts (test/helpers/matrix.ts), but every git command goes to a mirror node running as
// its own process, authenticating through the primary: reads must get exactly the primary's answers (refs,
// 401, 404, key refused), pushes are always refused by this mirror, configured read-only
// (mirror.pushThrough: false; push-through-matrix.test.ts holds pushes passed on to the primary to the primary's
// answers). Then the delegated-auth cache: a read-only token works, a
// revoked token, a removed permission, a removed SSH key, a user removed from a group and a deleted group stop
// working within a second (the mirror drops its cached answers on the primary's events).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createToken, grantRepo } from '../helpers/fixtures.js';
import { addToGroup, cellBranch, cellName, check, clientFor, MATRIX_GROUPS, MATRIX_PROJECT, mirrorCells, removeFromGroup, setUpMatrix, type MatrixFixture, type MatrixRepo } from '../helpers/matrix.js';
import { authorizeMirror, refusedWithin, waitForSameRefs, waitForState } from '../helpers/mirror.js';
import { ADMIN, api, git, gitOk, parseLsRemote, startMirror, startServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

let primary: TestServer;
let mirror: TestServer;
let starting: Promise<TestServer> | undefined;
let fixture: MatrixFixture;
const primaryRefs = new Map<MatrixRepo, Map<string, string>>();

before(async () => {
  primary = await startServer();
  starting = startMirror(primary, { env: { MIRRORFARM_MIRROR_PUSH_THROUGH: 'false' } });
  starting.catch(() => {}); // reported by the await below, or stopped in `after` when the fixtures failed first
  fixture = await setUpMatrix(primary);
  mirror = await starting;
  await authorizeMirror(primary, mirror, [MATRIX_PROJECT]);
  await waitForState(mirror, 'SYNCHRONIZED');
  for (const repo of ['private', 'public'] as const) primaryRefs.set(repo, await waitForSameRefs(primary, mirror, MATRIX_PROJECT, repo, ADMIN));
});

after(async () => {
  if (process.env.MF_TEST_DEBUG) process.stderr.write(`--- mirror output ---\n${mirror?.output().slice(-20000)}\n`);
  await (await starting?.catch(() => undefined))?.stop();
  await primary?.stop();
  removeTempDirs();
});

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('mirror permission matrix', () => {
  for (const cell of mirrorCells()) {
    const name = cellName(cell);
    it(name, async () => {
      const { url, options } = clientFor(mirror, fixture, cell);
      const read = await git(mirror, ['ls-remote', '--symref', url], options);
      check(cell.read, read, `${name} (ls-remote)`);
      if (cell.read === 'ok') assert.deepEqual(parseLsRemote(read.stdout), primaryRefs.get(cell.repo), 'the mirror shows exactly the primary\'s refs');
      assert.doesNotMatch(read.stderr, /read-only mirror|primary server cannot/, 'refusals of reads are the primary\'s answers');

      const branch = cellBranch(cell);
      const push = await git(mirror, ['push', url, `main:${branch}`], { ...options, cwd: fixture.work });
      check(cell.write, push, `${name} (push)`);
      if (cell.write === 'read-only') {
        // The message names the repository on the primary, so the user knows where to push instead.
        assert.match(push.stderr, new RegExp(escape(`${primary.baseUrl}/scm/${MATRIX_PROJECT.toLowerCase()}/${cell.repo}.git`)));
      }
      const mirrorAfter = parseLsRemote(await gitOk(mirror, ['ls-remote', '--symref', mirror.httpUrl(MATRIX_PROJECT, cell.repo)], { creds: ADMIN }));
      assert.deepEqual(mirrorAfter, primaryRefs.get(cell.repo), 'a refused push changes nothing on the mirror');
    });
  }

  it('changed nothing on the primary either', async () => {
    for (const repo of ['private', 'public'] as const) {
      const now = parseLsRemote(await gitOk(primary, ['ls-remote', '--symref', primary.httpUrl(MATRIX_PROJECT, repo)], { creds: ADMIN }));
      assert.deepEqual(now, primaryRefs.get(repo));
    }
  });

  it('a REPO_READ token reads from the mirror, and a token never works for another user', async () => {
    const writer = fixture.people.write;
    const readOnly = await createToken(primary, writer.creds, ['REPO_READ'], 'read only');
    const creds = { user: writer.creds.user, secret: readOnly };
    const url = mirror.httpUrl(MATRIX_PROJECT, 'private');
    const r = await git(mirror, ['ls-remote', '--symref', url], { creds });
    check('ok', r, 'read-only token on the mirror');
    assert.deepEqual(parseLsRemote(r.stdout), primaryRefs.get('private'));
    check('read-only', await git(mirror, ['push', url, 'main:refs/heads/token-push'], { creds, cwd: fixture.work }), 'read-only token push');
    // As a Bearer token too.
    const bearer = await git(mirror, ['-c', `http.extraHeader=Authorization: Bearer ${readOnly}`, 'ls-remote', url]);
    check('ok', bearer, 'read-only token as Bearer on the mirror');
    const wrongUser = { user: fixture.people.read.creds.user, secret: writer.token };
    check('login', await git(mirror, ['ls-remote', url], { creds: wrongUser }), 'token presented for another user');
  });

  it('a revoked token stops working on the mirror within a second', async () => {
    const reader = fixture.people.read;
    const created = await api(primary, 'PUT', `/rest/access-tokens/1.0/users/${reader.creds.user}`, { name: 'to revoke', permissions: ['REPO_READ'] }, reader.creds);
    assert.equal(created.status, 200, created.text);
    const creds = { user: reader.creds.user, secret: created.body.token as string };
    const url = mirror.httpUrl(MATRIX_PROJECT, 'private');
    // Twice: the second answer comes from the mirror's cache.
    check('ok', await git(mirror, ['ls-remote', url], { creds }), 'token before revocation');
    check('ok', await git(mirror, ['ls-remote', url], { creds }), 'token before revocation (cached)');
    const revoked = await api(primary, 'DELETE', `/rest/access-tokens/1.0/users/${reader.creds.user}/${created.body.id}`, undefined, reader.creds);
    assert.equal(revoked.status, 204, revoked.text);
    const refused = await refusedWithin(1000, () => git(mirror, ['ls-remote', url], { creds }), 'revoked token');
    assert.ok(refused.ms <= 1000, `refused ${refused.ms} ms after the revocation`);
    check('login', { code: 1, stderr: refused.stderr }, 'revoked token');
    // The owner's password still works.
    check('ok', await git(mirror, ['ls-remote', url], { creds: reader.creds }), 'password after the token was revoked');
  });

  it('a removed SSH key stops working on the mirror within a second', async () => {
    const admin = fixture.people.admin;
    const url = mirror.sshUrl(MATRIX_PROJECT, 'private');
    check('ok', await git(mirror, ['ls-remote', url], { sshKey: admin.key }), 'key before removal');
    const keys = await api(primary, 'GET', `/rest/ssh/1.0/keys?user=${admin.creds.user}`);
    assert.equal(keys.status, 200, keys.text);
    const key = (keys.body.values as Array<{ id: number; text: string }>).find((k) => k.text.startsWith(admin.key.publicKey.split(' ').slice(0, 2).join(' ')));
    assert.ok(key, `the key is listed: ${keys.text}`);
    const removed = await api(primary, 'DELETE', `/rest/ssh/1.0/keys/${key.id}`);
    assert.equal(removed.status, 204, removed.text);
    const refused = await refusedWithin(1000, () => git(mirror, ['ls-remote', url], { sshKey: admin.key }), 'removed key');
    assert.ok(refused.ms <= 1000, `refused ${refused.ms} ms after the removal`);
    check('key-refused', { code: 1, stderr: refused.stderr }, 'removed key');
  });

  it('a removed permission stops working on the mirror within a second, over HTTP and SSH', async () => {
    const reader = fixture.people.read;
    const http = () => git(mirror, ['ls-remote', mirror.httpUrl(MATRIX_PROJECT, 'private')], { creds: reader.creds });
    const ssh = () => git(mirror, ['ls-remote', mirror.sshUrl(MATRIX_PROJECT, 'private')], { sshKey: reader.key });
    check('ok', await http(), 'password before the permission was removed');
    check('ok', await ssh(), 'key before the permission was removed');
    const r = await api(primary, 'DELETE', `/rest/api/1.0/projects/${MATRIX_PROJECT}/repos/private/permissions/users?name=${reader.creds.user}`);
    assert.equal(r.status, 204, r.text);
    const t0 = Date.now();
    const viaHttp = await refusedWithin(1000, http, 'password after the permission was removed');
    const viaSsh = await refusedWithin(Math.max(0, 1000 - (Date.now() - t0)), ssh, 'key after the permission was removed');
    assert.ok(viaHttp.ms <= 1000, `HTTP refused ${viaHttp.ms} ms after the change`);
    check('not-found', { code: 1, stderr: viaHttp.stderr }, 'password after the permission was removed');
    check('not-found', { code: 1, stderr: viaSsh.stderr }, 'key after the permission was removed');
    // The public repository stays readable, and a new grant works again at once.
    check('ok', await git(mirror, ['ls-remote', mirror.httpUrl(MATRIX_PROJECT, 'public')], { creds: reader.creds }), 'public repository');
    await grantRepo(primary, MATRIX_PROJECT, 'private', reader.creds.user, 'REPO_READ');
    const back = Date.now();
    for (;;) {
      const again = await http();
      if (again.code === 0) break;
      assert.ok(Date.now() - back < 1000, `the new grant is honoured within a second:\n${again.stderr}`);
    }
  });

  /** Polls until `attempt` succeeds, failing when that takes longer than `withinMs`. */
  async function allowedWithin(withinMs: number, attempt: () => Promise<{ code: number | null; stderr: string }>, what: string): Promise<void> {
    const t0 = Date.now();
    for (;;) {
      const r = await attempt();
      if (r.code === 0) return;
      assert.ok(Date.now() - t0 <= withinMs, `${what}: still refused ${Date.now() - t0} ms after the change:\n${r.stderr}`);
    }
  }

  it('removing a user from a group takes their mirror access away within a second, over HTTP and SSH', async () => {
    const member = fixture.groupPeople.read;
    const group = MATRIX_GROUPS.read.name;
    const http = () => git(mirror, ['ls-remote', mirror.httpUrl(MATRIX_PROJECT, 'private')], { creds: member.creds });
    const ssh = () => git(mirror, ['ls-remote', mirror.sshUrl(MATRIX_PROJECT, 'private')], { sshKey: member.key });
    // Twice each: the second answers come from the mirror's cache.
    for (const attempt of [http, ssh, http, ssh]) check('ok', await attempt(), 'a member of the group before the removal');
    await removeFromGroup(primary, group, member.creds.user);
    const t0 = Date.now();
    const viaHttp = await refusedWithin(1000, http, 'password after leaving the group');
    const viaSsh = await refusedWithin(Math.max(0, 1000 - (Date.now() - t0)), ssh, 'key after leaving the group');
    assert.ok(viaHttp.ms <= 1000, `HTTP refused ${viaHttp.ms} ms after the change`);
    check('not-found', { code: 1, stderr: viaHttp.stderr }, 'password after leaving the group');
    check('not-found', { code: 1, stderr: viaSsh.stderr }, 'key after leaving the group');
    // Back in the group, the cached refusal is dropped as promptly.
    await addToGroup(primary, group, member.creds.user);
    await allowedWithin(1000, http, 'password after rejoining the group');
    await allowedWithin(1000, ssh, 'key after rejoining the group');
  });

  it('a new group grant opens the mirror, and deleting the group closes it, within a second', async () => {
    const outsider = fixture.people.none;
    const http = () => git(mirror, ['ls-remote', mirror.httpUrl(MATRIX_PROJECT, 'private')], { creds: outsider.creds });
    let r = await api(primary, 'POST', '/rest/api/1.0/admin/groups?name=mirror-visitors');
    assert.equal(r.status, 200, r.text);
    r = await api(primary, 'PUT', `/rest/api/1.0/projects/${MATRIX_PROJECT}/repos/private/permissions/groups?name=mirror-visitors&permission=REPO_READ`);
    assert.equal(r.status, 204, r.text);
    // Not a member yet: refused, and the refusal is what the mirror caches.
    check('not-found', await http(), 'before joining the group');
    check('not-found', await http(), 'before joining the group (cached)');
    await addToGroup(primary, 'mirror-visitors', outsider.creds.user);
    await allowedWithin(1000, http, 'after joining a group with REPO_READ');
    check('ok', await http(), 'after joining (cached)');
    r = await api(primary, 'DELETE', '/rest/api/1.0/admin/groups?name=mirror-visitors');
    assert.equal(r.status, 200, r.text);
    const refused = await refusedWithin(1000, http, 'after the group was deleted');
    assert.ok(refused.ms <= 1000, `refused ${refused.ms} ms after the deletion`);
    check('not-found', { code: 1, stderr: refused.stderr }, 'after the group was deleted');
  });
});
