// Users, SSH keys and personal access tokens through the REST API: the user directory, sysadmin user
// administration and SYS_ADMIN, password changes, keys that work over SSH, and tokens that work over HTTPS only
// within their permissions, never show up again after creation, and stop working when revoked or expired.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { createProject, createRepo, createToken, createUser, grantRepo, tokenSecret } from '../helpers/fixtures.js';
import { run } from '../helpers/run.js';
import { ADMIN, api, git, gitOk, makeWorkTree, sshKeyPair, startServer, type ApiResponse, type Credentials, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

// Response bodies are checked field by field with assert; a precise type per shape would add nothing.
 
type Json = any;

let server: TestServer;
let alice: Credentials;
let bob: Credentials;

function assertError(r: ApiResponse, status: number, code: string): void {
  assert.equal(r.status, status, r.text);
  assert.equal(r.body?.errors?.[0]?.code, code, r.text);
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

before(async () => {
  server = await startServer();
  [alice, bob] = await Promise.all([createUser(server, 'alice'), createUser(server, 'bob')]);
  await createProject(server, 'KT');
  await createRepo(server, 'KT', 'code');
  await grantRepo(server, 'KT', 'code', 'alice', 'REPO_WRITE');
  const work = await makeWorkTree();
  await gitOk(server, ['push', server.httpUrl('KT', 'code'), 'main'], { creds: ADMIN, cwd: work });
});

after(async () => {
  await server?.stop();
  removeTempDirs();
});

describe('users', () => {
  it('lets any logged-in user browse users, with filter and paging', async () => {
    assertError(await api(server, 'GET', '/rest/api/1.0/users', undefined, null), 401, 'AUTHENTICATION_REQUIRED');
    const all = await api(server, 'GET', '/rest/api/1.0/users', undefined, alice);
    assert.deepEqual(all.body.values.map((u: Json) => u.name), ['admin', 'alice', 'bob']);
    const a = all.body.values[1];
    assert.deepEqual(a, {
      name: 'alice',
      emailAddress: 'alice@example.com',
      id: a.id,
      displayName: 'alice',
      active: true,
      slug: 'alice',
      type: 'NORMAL',
      links: { self: [{ href: `${server.baseUrl}/users/alice` }] },
    });
    assert.deepEqual((await api(server, 'GET', '/rest/api/1.0/users?filter=EXAMPLE.COM&limit=1', undefined, alice)).body, {
      size: 1,
      limit: 1,
      isLastPage: false,
      start: 0,
      nextPageStart: 1,
      values: [a],
    });
    assert.deepEqual((await api(server, 'GET', '/rest/api/1.0/users/alice', undefined, bob)).body, a);
    assertError(await api(server, 'GET', '/rest/api/1.0/users/nobody', undefined, bob), 404, 'USER_NOT_FOUND');
  });

  it('creates users from query parameters (Bitbucket) or a JSON body, sysadmins only', async () => {
    const q = new URLSearchParams({ name: 'Carol', password: 'carol-secret-1', displayName: 'Carol C', emailAddress: 'carol@example.com' });
    let r = await api(server, 'POST', `/rest/api/1.0/admin/users?${q}`);
    assert.equal(r.status, 204, r.text);
    assert.doesNotMatch(server.output(), /carol-secret-1/, 'the password in the query is not logged');
    r = await api(server, 'POST', '/rest/api/1.0/admin/users', { name: 'dan', password: 'dan-secret-12', displayName: 'Dan', emailAddress: 'dan@example.com' });
    assert.equal(r.status, 204, r.text);
    assert.equal((await api(server, 'GET', '/rest/api/1.0/users/carol', undefined, { user: 'carol', secret: 'carol-secret-1' })).body.displayName, 'Carol C');
    assert.equal((await api(server, 'GET', '/rest/api/1.0/users/dan', undefined, { user: 'dan', secret: 'dan-secret-12' })).status, 200);

    assertError(await api(server, 'POST', `/rest/api/1.0/admin/users?${q}`), 409, 'CONFLICT');
    assertError(await api(server, 'POST', '/rest/api/1.0/admin/users', { name: 'eve' }), 400, 'INVALID_INPUT');
    assertError(await api(server, 'POST', '/rest/api/1.0/admin/users', { name: 'eve', password: 'short' }), 400, 'INVALID_INPUT');
    assertError(await api(server, 'POST', '/rest/api/1.0/admin/users', { name: 'eve', password: 'eve-secret-1', emailAddress: 'not an address' }), 400, 'INVALID_INPUT');
    assertError(await api(server, 'POST', '/rest/api/1.0/admin/users', { name: 'eve', password: 'eve-secret-1' }, alice), 403, 'FORBIDDEN');
    assertError(await api(server, 'GET', '/rest/api/1.0/admin/users', undefined, alice), 403, 'FORBIDDEN');
  });

  it('updates details and lists users for administrators', async () => {
    const r = await api(server, 'PUT', '/rest/api/1.0/admin/users', { name: 'dan', displayName: 'Daniel', email: 'daniel@example.com' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual([r.body.name, r.body.displayName, r.body.emailAddress, r.body.directoryName, r.body.deletable], ['dan', 'Daniel', 'daniel@example.com', 'mirrorfarm', true]);
    const list = await api(server, 'GET', '/rest/api/1.0/admin/users?filter=dan');
    assert.deepEqual(list.body.values.map((u: Json) => [u.name, u.displayName]), [['dan', 'Daniel']]);
    assertError(await api(server, 'PUT', '/rest/api/1.0/admin/users', { name: 'nobody', displayName: 'X' }), 404, 'USER_NOT_FOUND');
  });

  it('sets passwords: by an administrator, and by users themselves with their current one', async () => {
    let r = await api(server, 'PUT', '/rest/api/1.0/admin/users/credentials', { name: 'dan', password: 'dan-new-pass-1', passwordConfirm: 'dan-new-pass-2' });
    assertError(r, 400, 'INVALID_INPUT');
    r = await api(server, 'PUT', '/rest/api/1.0/admin/users/credentials', { name: 'dan', password: 'dan-new-pass-1', passwordConfirm: 'dan-new-pass-1' });
    assert.equal(r.status, 204, r.text);
    assertError(await api(server, 'GET', '/rest/api/1.0/users', undefined, { user: 'dan', secret: 'dan-secret-12' }), 401, 'BAD_CREDENTIALS');
    const dan = { user: 'dan', secret: 'dan-new-pass-1' };
    assertError(await api(server, 'PUT', '/rest/api/1.0/users/credentials', { password: 'dan-third-1', passwordConfirm: 'dan-third-1', oldPassword: 'wrong' }, dan), 400, 'INVALID_INPUT');
    r = await api(server, 'PUT', '/rest/api/1.0/users/credentials', { password: 'dan-third-1', passwordConfirm: 'dan-third-1', oldPassword: 'dan-new-pass-1' }, dan);
    assert.equal(r.status, 204, r.text);
    assert.equal((await api(server, 'GET', '/rest/api/1.0/users', undefined, { user: 'dan', secret: 'dan-third-1' })).status, 200);
  });

  it('grants and revokes SYS_ADMIN; nobody revokes their own or deletes themselves', async () => {
    assertError(await api(server, 'PUT', '/rest/api/1.0/admin/permissions/users?name=bob&permission=ADMIN'), 400, 'INVALID_INPUT');
    assert.equal((await api(server, 'PUT', '/rest/api/1.0/admin/permissions/users?name=bob&permission=SYS_ADMIN')).status, 204);
    const admins = await api(server, 'GET', '/rest/api/1.0/admin/permissions/users');
    assert.deepEqual(admins.body.values.map((g: Json) => [g.user.name, g.permission]), [
      ['admin', 'SYS_ADMIN'],
      ['bob', 'SYS_ADMIN'],
    ]);
    assert.equal((await api(server, 'POST', '/rest/api/1.0/projects', { key: 'BOBS' }, bob)).status, 201, 'bob is a sysadmin now');
    assertError(await api(server, 'DELETE', '/rest/api/1.0/admin/permissions/users?name=bob', undefined, bob), 409, 'CONFLICT');
    assert.equal((await api(server, 'DELETE', '/rest/api/1.0/admin/permissions/users?name=bob')).status, 204);
    assertError(await api(server, 'POST', '/rest/api/1.0/projects', { key: 'BOBS2' }, bob), 403, 'FORBIDDEN');

    assertError(await api(server, 'DELETE', '/rest/api/1.0/admin/users?name=admin'), 409, 'CONFLICT');
    const r = await api(server, 'DELETE', '/rest/api/1.0/admin/users?name=carol');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.name, 'carol');
    assertError(await api(server, 'GET', '/rest/api/1.0/users', undefined, { user: 'carol', secret: 'carol-secret-1' }), 401, 'BAD_CREDENTIALS');
    assertError(await api(server, 'DELETE', '/rest/api/1.0/admin/users?name=carol'), 404, 'USER_NOT_FOUND');
  });
});

describe('SSH keys', () => {
  it('adds a key that then works for git over SSH, and removes it', async () => {
    const key = await sshKeyPair('alice@laptop');
    const r = await api(server, 'POST', '/rest/ssh/1.0/keys', { text: key.publicKey }, alice);
    assert.equal(r.status, 201, r.text);
    const fingerprint = (await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${key.privateKey}.pub`])).stdout.split(' ')[1];
    assert.deepEqual(r.body, {
      id: r.body.id,
      text: key.publicKey.split(' ').slice(0, 2).join(' '),
      label: 'alice@laptop',
      algorithmType: 'ED25519',
      bitLength: 256,
      fingerprint,
      createdDate: r.body.createdDate,
    });
    await gitOk(server, ['ls-remote', server.sshUrl('KT', 'code')], { sshKey: key });

    const list = await api(server, 'GET', '/rest/ssh/1.0/keys', undefined, alice);
    assert.deepEqual(list.body.values, [r.body]);
    assert.deepEqual((await api(server, 'GET', '/rest/ssh/1.0/keys?user=alice')).body.values, [r.body], 'admins see anyone\'s keys');
    assertError(await api(server, 'POST', '/rest/ssh/1.0/keys', { text: key.publicKey }, bob), 409, 'CONFLICT');
    assertError(await api(server, 'GET', '/rest/ssh/1.0/keys?user=alice', undefined, bob), 403, 'FORBIDDEN');
    assertError(await api(server, 'DELETE', `/rest/ssh/1.0/keys/${r.body.id}`, undefined, bob), 404, 'NOT_FOUND');
    assertError(await api(server, 'POST', '/rest/ssh/1.0/keys', { text: 'ssh-ed25519 not-a-key' }, alice), 400, 'INVALID_INPUT');

    assert.equal((await api(server, 'DELETE', `/rest/ssh/1.0/keys/${r.body.id}`, undefined, alice)).status, 204);
    assert.notEqual((await git(server, ['ls-remote', server.sshUrl('KT', 'code')], { sshKey: key })).code, 0);
  });

  it('lets administrators manage keys of others, with RSA sizes reported', async () => {
    const dir = (await sshKeyPair()).privateKey.replace(/id_ed25519$/, '');
    const rsa = join(dir, 'id_rsa');
    await run('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-N', '', '-C', 'bob-rsa', '-f', rsa]);
    const text = (await run('cat', [`${rsa}.pub`])).stdout.trim();
    const r = await api(server, 'POST', '/rest/ssh/1.0/keys?user=bob', { text, label: 'Bob laptop' });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual([r.body.algorithmType, r.body.bitLength, r.body.label], ['RSA', 2048, 'Bob laptop']);
    const other = await sshKeyPair();
    await api(server, 'POST', '/rest/ssh/1.0/keys?user=bob', { text: other.publicKey });
    assert.equal((await api(server, 'GET', '/rest/ssh/1.0/keys?user=bob&limit=1')).body.isLastPage, false);
    assert.equal((await api(server, 'DELETE', '/rest/ssh/1.0/keys?user=bob')).status, 204);
    assert.deepEqual((await api(server, 'GET', '/rest/ssh/1.0/keys', undefined, bob)).body.values, []);
  });
});

describe('access tokens', () => {
  let token: string;
  let tokenId: string;

  it('creates a token, shown once, with Bitbucket JSON', async () => {
    const r = await api(server, 'PUT', '/rest/access-tokens/1.0/users/alice', { name: 'ci', permissions: ['REPO_READ'], expiryDays: 30 }, alice);
    assert.equal(r.status, 200, r.text);
    token = r.body.token;
    tokenId = r.body.id;
    assert.match(token, /^mft_\d+_[A-Za-z0-9_-]{43}$/);
    assert.equal(typeof tokenId, 'string');
    assert.deepEqual(Object.keys(r.body).sort(), ['createdDate', 'expiryDate', 'expiryDays', 'id', 'name', 'permissions', 'token', 'user']);
    assert.deepEqual([r.body.name, r.body.permissions, r.body.expiryDays, r.body.user.name], ['ci', ['REPO_READ'], 30, 'alice']);
    assert.equal(r.body.expiryDate - r.body.createdDate, 30 * 86_400_000);
  });

  it('never shows the token or its hash again', async () => {
    const list = await api(server, 'GET', '/rest/access-tokens/1.0/users/alice', undefined, alice);
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.body.values.map((t: Json) => [t.id, t.name]), [[tokenId, 'ci']]);
    const one = await api(server, 'GET', `/rest/access-tokens/1.0/users/alice/${tokenId}`);
    for (const text of [list.text, one.text]) {
      assert.ok(!text.includes(tokenSecret(token)), 'no secret');
      assert.doesNotMatch(text, /"token"|hash|[0-9a-f]{64}/);
    }
    assert.deepEqual(one.body, list.body.values[0]);
  });

  it('works over HTTPS (Basic and Bearer) within its permissions only', async () => {
    const asToken = { user: 'alice', secret: token };
    await gitOk(server, ['ls-remote', server.httpUrl('KT', 'code')], { creds: asToken });
    const work = await makeWorkTree([{ 'x.txt': 'x\n' }]);
    const push = await git(server, ['push', server.httpUrl('KT', 'code'), 'main:refs/heads/from-token'], { creds: asToken, cwd: work });
    assert.notEqual(push.code, 0, 'REPO_READ cannot push although alice can');
    await gitOk(server, ['push', server.httpUrl('KT', 'code'), 'main:refs/heads/from-alice'], { creds: alice, cwd: work });
    assert.equal((await api(server, 'GET', '/rest/api/1.0/projects/KT/repos/code', undefined, null, bearer(token))).status, 200);
    assertError(await api(server, 'POST', '/rest/api/1.0/projects/KT/repos/code/branches', { name: 'b', startPoint: 'main' }, asToken), 403, 'FORBIDDEN');
    assertError(await api(server, 'GET', '/rest/api/1.0/projects/KT/repos/code', undefined, { user: 'bob', secret: token }), 401, 'BAD_CREDENTIALS');
  });

  it('cannot manage credentials, and never carries system administration', async () => {
    const asToken = { user: 'alice', secret: token };
    assertError(await api(server, 'PUT', '/rest/access-tokens/1.0/users/alice', { name: 'more', permissions: ['REPO_ADMIN'] }, asToken), 403, 'FORBIDDEN');
    const key = await sshKeyPair();
    assertError(await api(server, 'POST', '/rest/ssh/1.0/keys', { text: key.publicKey }, asToken), 403, 'FORBIDDEN');
    assertError(await api(server, 'PUT', '/rest/api/1.0/users/credentials', { password: 'x-password-1', passwordConfirm: 'x-password-1', oldPassword: 'alice-password-1' }, asToken), 403, 'FORBIDDEN');
    const adminToken = await createToken(server, ADMIN, ['PROJECT_ADMIN', 'REPO_ADMIN']);
    assertError(await api(server, 'GET', '/rest/api/1.0/admin/users', undefined, null, bearer(adminToken)), 403, 'FORBIDDEN');
    assertError(await api(server, 'POST', '/rest/api/1.0/projects', { key: 'TOK' }, null, bearer(adminToken)), 403, 'FORBIDDEN');
  });

  it('is managed by its user or an administrator only', async () => {
    assertError(await api(server, 'GET', '/rest/access-tokens/1.0/users/alice', undefined, bob), 403, 'FORBIDDEN');
    assertError(await api(server, 'PUT', '/rest/access-tokens/1.0/users/alice', { name: 'x', permissions: ['REPO_READ'] }, bob), 403, 'FORBIDDEN');
    assertError(await api(server, 'GET', '/rest/access-tokens/1.0/users/alice', undefined, null), 401, 'AUTHENTICATION_REQUIRED');
    const forBob = await api(server, 'PUT', '/rest/access-tokens/1.0/users/bob', { name: 'made by admin', permissions: ['PROJECT_READ'] });
    assert.equal(forBob.status, 200, forBob.text);
    assertError(await api(server, 'GET', '/rest/access-tokens/1.0/users/nobody'), 404, 'USER_NOT_FOUND');
    assertError(await api(server, 'GET', `/rest/access-tokens/1.0/users/bob/${tokenId}`), 404, 'NOT_FOUND');
    assertError(await api(server, 'PUT', '/rest/access-tokens/1.0/users/alice', { name: 'x', permissions: [] }, alice), 400, 'INVALID_INPUT');
    assertError(await api(server, 'PUT', '/rest/access-tokens/1.0/users/alice', { name: 'x', permissions: ['SUPERUSER'] }, alice), 400, 'INVALID_INPUT');
    assertError(await api(server, 'PUT', '/rest/access-tokens/1.0/users/alice', { name: 'x', permissions: ['REPO_READ'], expiryDays: 0 }, alice), 400, 'INVALID_INPUT');
  });

  it('updates name and permissions in place', async () => {
    const r = await api(server, 'POST', `/rest/access-tokens/1.0/users/alice/${tokenId}`, { name: 'ci-write', permissions: ['REPO_WRITE'] }, alice);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual([r.body.id, r.body.name, r.body.permissions], [tokenId, 'ci-write', ['REPO_WRITE']]);
    const work = await makeWorkTree([{ 'y.txt': 'y\n' }]);
    await gitOk(server, ['push', server.httpUrl('KT', 'code'), 'main:refs/heads/from-token'], { creds: { user: 'alice', secret: token }, cwd: work });
  });

  it('refuses an expired token', async () => {
    const r = await api(server, 'PUT', '/rest/access-tokens/1.0/users/alice', { name: 'short', permissions: ['REPO_READ'], expiryDays: 1 }, alice);
    // A day cannot pass in a test: move the expiry into the past in the server's database instead.
    const db = new Database(join(server.home, 'mirrorfarm.db'));
    try {
      db.pragma('busy_timeout = 5000');
      db.prepare('update access_tokens set expires_at = ? where id = ?').run(Date.now() - 1000, Number(r.body.id));
    } finally {
      db.close();
    }
    assertError(await api(server, 'GET', '/rest/api/1.0/projects/KT/repos/code', undefined, null, bearer(r.body.token)), 401, 'BAD_CREDENTIALS');
    assert.notEqual((await git(server, ['ls-remote', server.httpUrl('KT', 'code')], { creds: { user: 'alice', secret: r.body.token } })).code, 0);
  });

  it('refuses a revoked token at once', async () => {
    assert.equal((await api(server, 'DELETE', `/rest/access-tokens/1.0/users/alice/${tokenId}`, undefined, alice)).status, 204);
    assertError(await api(server, 'GET', '/rest/api/1.0/projects/KT/repos/code', undefined, null, bearer(token)), 401, 'BAD_CREDENTIALS');
    const ls = await git(server, ['ls-remote', server.httpUrl('KT', 'code')], { creds: { user: 'alice', secret: token } });
    assert.notEqual(ls.code, 0);
    assertError(await api(server, 'DELETE', `/rest/access-tokens/1.0/users/alice/${tokenId}`, undefined, alice), 404, 'NOT_FOUND');
  });
});
