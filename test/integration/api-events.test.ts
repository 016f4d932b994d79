// The event log as /rest/mirroring/1.0/events shows it: the exact events each REST operation produces (type,
// ids, fields), dense sequence numbers, cursor paging with nextAfter / isLastPage / firstAvailable, access for
// sysadmins only, and no secret in any event.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { events, lastEventId, type LoggedEvent } from '../helpers/fixtures.js';
import { ADMIN, ADMIN_PASSWORD, api, gitOk, makeWorkTree, sshKeyPair, startServer, type ApiResponse, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

// Response bodies are checked field by field with assert; a precise type per shape would add nothing.
 
type Json = any;

const ZERO = '0'.repeat(40);
let server: TestServer;
const secrets: string[] = [ADMIN_PASSWORD];

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.stop();
  removeTempDirs();
});

async function ok(r: Promise<ApiResponse>): Promise<Json> {
  const res = await r;
  assert.ok(res.status >= 200 && res.status < 300, `HTTP ${res.status}: ${res.text}`);
  return res.body;
}

/** Runs an operation and returns the events it produced, without their timestamps (checked separately). */
async function producedBy(operation: () => Promise<unknown>): Promise<Array<Record<string, unknown>>> {
  const from = await lastEventId(server);
  const before = Date.now();
  await operation();
  const got = await events(server, from);
  return got.map(({ createdDate, ...rest }) => {
    assert.ok(typeof createdDate === 'number' && createdDate >= before - 5000 && createdDate <= Date.now() + 5000, `createdDate ${String(createdDate)}`);
    return rest;
  });
}

describe('events produced by REST operations', () => {
  let projectId: number;
  let repoId: number;
  let userId: number;
  let main: string;

  it('starts with the bootstrap sysadmin', async () => {
    const all = await events(server);
    assert.deepEqual(
      all.map(({ createdDate: _, ...e }) => e),
      [{ id: 1, type: 'user.created', projectId: null, repositoryId: null, userId: 1, name: 'admin', sysadmin: true }],
    );
  });

  it('projects: created, updated', async () => {
    let project: Json;
    assert.deepEqual(
      await producedBy(async () => (project = await ok(api(server, 'POST', '/rest/api/1.0/projects', { key: 'EV', name: 'Events' })))),
      [{ id: 2, type: 'project.created', projectId: project.id, repositoryId: null, key: 'EV', name: 'Events', public: false }],
    );
    projectId = project.id;
    assert.deepEqual(await producedBy(() => ok(api(server, 'PUT', '/rest/api/1.0/projects/EV', { name: 'Event Log', public: true }))), [
      { id: 3, type: 'project.updated', projectId, repositoryId: null, key: 'EV', name: 'Event Log', previousKey: 'EV', public: true },
    ]);
  });

  it('repositories: created, pushed to, renamed', async () => {
    let repo: Json;
    assert.deepEqual(
      await producedBy(async () => (repo = await ok(api(server, 'POST', '/rest/api/1.0/projects/EV/repos', { name: 'App' })))),
      [{ id: 4, type: 'repository.created', projectId, repositoryId: repo.id, projectKey: 'EV', slug: 'app', name: 'App', defaultBranch: 'refs/heads/main', public: false, actor: 'admin' }],
    );
    repoId = repo.id;
    const work = await makeWorkTree();
    main = (await gitOk(null, ['rev-parse', 'HEAD'], { cwd: work })).trim();
    assert.deepEqual(await producedBy(() => gitOk(server, ['push', repo.links.clone[0].href, 'main'], { creds: ADMIN, cwd: work })), [
      { id: 5, type: 'ref.updated', projectId, repositoryId: repoId, refId: 'refs/heads/main', fromHash: ZERO, toHash: main, changeType: 'ADD', actor: 'admin', via: 'http' },
    ]);
    assert.deepEqual(await producedBy(() => ok(api(server, 'PUT', '/rest/api/1.0/projects/EV/repos/app', { name: 'Web App' }))), [
      { id: 6, type: 'repository.updated', projectId, repositoryId: repoId, projectKey: 'EV', slug: 'web-app', name: 'Web App', public: false, previousProjectKey: 'EV', previousSlug: 'app' },
    ]);
  });

  it('refs: branch and tag created and deleted, default branch changed, all via rest', async () => {
    const base = '/rest/api/1.0/projects/EV/repos/web-app';
    const ref = (id: number, refId: string, fromHash: string, toHash: string, changeType: string) => ({
      id,
      type: 'ref.updated',
      projectId,
      repositoryId: repoId,
      refId,
      fromHash,
      toHash,
      changeType,
      actor: 'admin',
      via: 'rest',
    });
    assert.deepEqual(await producedBy(() => ok(api(server, 'POST', `${base}/branches`, { name: 'dev', startPoint: 'main' }))), [ref(7, 'refs/heads/dev', ZERO, main, 'ADD')]);
    assert.deepEqual(await producedBy(() => ok(api(server, 'PUT', `${base}/default-branch`, { id: 'refs/heads/dev' }))), [
      { id: 8, type: 'repository.head_changed', projectId, repositoryId: repoId, from: 'refs/heads/main', to: 'refs/heads/dev', actor: 'admin', via: 'rest' },
    ]);
    let tag: Json;
    const tagEvents = await producedBy(async () => (tag = await ok(api(server, 'POST', `${base}/tags`, { name: 'v1', startPoint: 'main', message: 'one' }))));
    assert.deepEqual(tagEvents, [ref(9, 'refs/tags/v1', ZERO, tag.hash, 'ADD')], 'an annotated tag points at its tag object');
    assert.deepEqual(await producedBy(() => ok(api(server, 'DELETE', `/rest/git/1.0/projects/EV/repos/web-app/tags/v1`))), [ref(10, 'refs/tags/v1', tag.hash, ZERO, 'DELETE')]);
    await ok(api(server, 'PUT', `${base}/default-branch`, { id: 'main' }));
    assert.deepEqual(await producedBy(() => ok(api(server, 'DELETE', '/rest/branch-utils/1.0/projects/EV/repos/web-app/branches', { name: 'dev' }))), [
      ref(12, 'refs/heads/dev', main, ZERO, 'DELETE'),
    ]);
  });

  it('users: created, updated, made sysadmin, password set', async () => {
    const password = 'frank-password-1';
    secrets.push(password);
    const created = await producedBy(() => ok(api(server, 'POST', '/rest/api/1.0/admin/users', { name: 'frank', password, displayName: 'Frank' })));
    userId = created[0]!.userId as number;
    assert.deepEqual(created, [{ id: 13, type: 'user.created', projectId: null, repositoryId: null, userId, name: 'frank', sysadmin: false }]);
    assert.deepEqual(await producedBy(() => ok(api(server, 'PUT', '/rest/api/1.0/admin/users', { name: 'frank', displayName: 'Frank F' }))), [
      { id: 14, type: 'user.updated', projectId: null, repositoryId: null, userId, name: 'frank', sysadmin: false, active: true },
    ]);
    assert.deepEqual(await producedBy(() => ok(api(server, 'PUT', '/rest/api/1.0/admin/permissions/users?name=frank&permission=SYS_ADMIN'))), [
      { id: 15, type: 'user.updated', projectId: null, repositoryId: null, userId, name: 'frank', sysadmin: true, active: true },
    ]);
    const newPassword = 'frank-password-2';
    secrets.push(newPassword);
    assert.deepEqual(
      await producedBy(() => ok(api(server, 'PUT', '/rest/api/1.0/admin/users/credentials', { name: 'frank', password: newPassword, passwordConfirm: newPassword }))),
      [{ id: 16, type: 'user.updated', projectId: null, repositoryId: null, userId, name: 'frank', credentials: 'password' }],
    );
  });

  it('permissions: granted and revoked, per scope', async () => {
    assert.deepEqual(await producedBy(() => ok(api(server, 'PUT', '/rest/api/1.0/projects/EV/permissions/users?name=frank&permission=PROJECT_WRITE'))), [
      { id: 17, type: 'permission.changed', projectId, repositoryId: null, scope: 'project', projectKey: 'EV', userId, user: 'frank', permission: 'PROJECT_WRITE' },
    ]);
    assert.deepEqual(await producedBy(() => ok(api(server, 'PUT', '/rest/api/1.0/projects/EV/repos/web-app/permissions/users?name=frank&permission=REPO_ADMIN'))), [
      { id: 18, type: 'permission.changed', projectId, repositoryId: repoId, scope: 'repository', projectKey: 'EV', slug: 'web-app', userId, user: 'frank', permission: 'REPO_ADMIN' },
    ]);
    assert.deepEqual(await producedBy(() => ok(api(server, 'DELETE', '/rest/api/1.0/projects/EV/permissions/users?name=frank'))), [
      { id: 19, type: 'permission.changed', projectId, repositoryId: null, scope: 'project', projectKey: 'EV', userId, user: 'frank', permission: null },
    ]);
  });

  it('SSH keys and access tokens: added, updated, removed', async () => {
    const key = await sshKeyPair();
    secrets.push(...readFileSync(key.privateKey, 'utf8').split('\n').filter((l) => l.length > 20 && !l.startsWith('-----')));
    let added: Json;
    assert.deepEqual(await producedBy(async () => (added = await ok(api(server, 'POST', '/rest/ssh/1.0/keys?user=frank', { text: key.publicKey })))), [
      { id: 20, type: 'ssh_key.added', projectId: null, repositoryId: null, keyId: added.id, userId, fingerprint: added.fingerprint },
    ]);
    assert.deepEqual(await producedBy(() => ok(api(server, 'DELETE', `/rest/ssh/1.0/keys/${added.id}`))), [
      { id: 21, type: 'ssh_key.removed', projectId: null, repositoryId: null, keyId: added.id, userId, fingerprint: added.fingerprint },
    ]);
    const frank = { user: 'frank', secret: 'frank-password-2' };
    let token: Json;
    assert.deepEqual(
      await producedBy(async () => (token = await ok(api(server, 'PUT', '/rest/access-tokens/1.0/users/frank', { name: 'ci', permissions: ['REPO_READ', 'PROJECT_READ'] }, frank)))),
      [{ id: 22, type: 'access_token.created', projectId: null, repositoryId: null, tokenId: Number(token.id), userId, permissions: ['REPO_READ', 'PROJECT_READ'] }],
    );
    secrets.push(token.token);
    assert.deepEqual(await producedBy(() => ok(api(server, 'POST', `/rest/access-tokens/1.0/users/frank/${token.id}`, { permissions: ['REPO_WRITE'] }, frank))), [
      { id: 23, type: 'access_token.revoked', projectId: null, repositoryId: null, tokenId: Number(token.id), userId, reason: 'updated' },
    ]);
    assert.deepEqual(await producedBy(() => ok(api(server, 'DELETE', `/rest/access-tokens/1.0/users/frank/${token.id}`, undefined, frank))), [
      { id: 24, type: 'access_token.revoked', projectId: null, repositoryId: null, tokenId: Number(token.id), userId },
    ]);
  });

  it('deletions: repository, project, user', async () => {
    assert.deepEqual(await producedBy(() => ok(api(server, 'DELETE', '/rest/api/1.0/projects/EV/repos/web-app'))), [
      { id: 25, type: 'repository.deleted', projectId, repositoryId: repoId, projectKey: 'EV', slug: 'web-app', actor: 'admin' },
    ]);
    assert.deepEqual(await producedBy(() => ok(api(server, 'DELETE', '/rest/api/1.0/projects/EV'))), [
      { id: 26, type: 'project.deleted', projectId, repositoryId: null, key: 'EV' },
    ]);
    assert.deepEqual(await producedBy(() => ok(api(server, 'DELETE', '/rest/api/1.0/admin/users?name=frank'))), [
      { id: 27, type: 'user.deleted', projectId: null, repositoryId: null, userId, name: 'frank' },
    ]);
  });

  it('refused operations log nothing', async () => {
    assert.deepEqual(
      await producedBy(async () => {
        await api(server, 'POST', '/rest/api/1.0/projects', { key: '1nvalid' });
        await api(server, 'DELETE', '/rest/api/1.0/admin/users?name=admin');
        await api(server, 'POST', '/rest/api/1.0/admin/users', { name: 'admin', password: 'another-password' });
      }),
      [],
    );
  });

  it('has a dense sequence and no secret in any event', async () => {
    const all = await events(server);
    assert.deepEqual(
      all.map((e) => e.id),
      all.map((_, i) => i + 1),
    );
    const text = JSON.stringify(all);
    for (const secret of secrets) assert.ok(!text.includes(secret), `secret ${secret.slice(0, 6)}... appears in the log`);
    assert.doesNotMatch(text, /password_hash|secret_hash|scrypt\$|PRIVATE KEY|"token":|"password":|"secret":/);
  });
});

describe('reading the log', () => {
  it('pages by cursor with nextAfter, isLastPage, firstAvailable and last', async () => {
    const last = await lastEventId(server);
    let r = await api(server, 'GET', '/rest/mirroring/1.0/events?after=0&limit=3');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual({ ...r.body, values: r.body.values.map((e: LoggedEvent) => e.id) }, { values: [1, 2, 3], size: 3, limit: 3, isLastPage: false, nextAfter: 3, firstAvailable: 1, last });
    r = await api(server, 'GET', `/rest/mirroring/1.0/events?after=${last - 2}&limit=2`);
    assert.deepEqual([r.body.values.map((e: LoggedEvent) => e.id), r.body.isLastPage, r.body.nextAfter], [[last - 1, last], true, last]);
    r = await api(server, 'GET', `/rest/mirroring/1.0/events?after=${last}`);
    assert.deepEqual({ ...r.body }, { values: [], size: 0, limit: 100, isLastPage: true, nextAfter: last, firstAvailable: 1, last });
    assert.equal((await api(server, 'GET', '/rest/mirroring/1.0/events?limit=5000')).body.limit, 1000);
    assert.equal((await api(server, 'GET', '/rest/mirroring/1.0/events?after=-1')).status, 400);
  });

  it('shows through firstAvailable when a cursor fell out of retention', async () => {
    // Retention is days long; drop the oldest rows the way pruning does, in the server's own database.
    const db = new Database(join(server.home, 'mirrorfarm.db'));
    try {
      db.pragma('busy_timeout = 5000');
      db.prepare('delete from events where seq <= 10').run();
    } finally {
      db.close();
    }
    const r = await api(server, 'GET', '/rest/mirroring/1.0/events?after=5&limit=2');
    assert.deepEqual([r.body.firstAvailable, r.body.values.map((e: LoggedEvent) => e.id), r.body.nextAfter], [11, [11, 12], 12]);
    assert.ok(5 < r.body.firstAvailable - 1, 'the consumer can tell it missed events 6..10');
  });

  it('is for sysadmins with a password only', async () => {
    const q = new URLSearchParams({ name: 'gina', password: 'gina-password-1' });
    await ok(api(server, 'POST', `/rest/api/1.0/admin/users?${q}`));
    assert.equal((await api(server, 'GET', '/rest/mirroring/1.0/events', undefined, null)).status, 401);
    const gina = await api(server, 'GET', '/rest/mirroring/1.0/events', undefined, { user: 'gina', secret: 'gina-password-1' });
    assert.equal(gina.status, 403);
    assert.equal(gina.body.errors[0].code, 'FORBIDDEN');
    const token = await ok(api(server, 'PUT', '/rest/access-tokens/1.0/users/admin', { name: 'mirror', permissions: ['PROJECT_ADMIN', 'REPO_ADMIN'] }));
    assert.equal((await api(server, 'GET', '/rest/mirroring/1.0/events', undefined, null, { authorization: `Bearer ${token.token}` })).status, 403);
  });
});
