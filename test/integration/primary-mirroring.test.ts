// The primary side of the mirroring protocol (docs/mirroring-protocol.md), driven over real HTTPS by a simulated
// mirror that holds an ed25519 key and signs its own tokens: registration and authorization, snapshot and
// ref-state hashes (checked against `git ls-remote`), the filtered and resumable event stream, token refusals,
// two-phase publish, delegated authentication, reports and "which mirrors have this repository", retention,
// and deletion cutting everything off.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer, request, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SignJWT } from 'jose';
import { generateMirrorKey, loadMirrorKey, mirrorIdFor, signMirrorToken, type MirrorKey } from '../../src/auth/mirror-token.js';
import { addSshKey, createProject, createRepo, createToken, createUser, grantRepo } from '../helpers/fixtures.js';
import { ADMIN, api, gitOk, makeWorkTree, sshKeyPair, startServer, testCa, type ApiResponse, type Credentials, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

 
type Json = any;

const M = '/rest/mirroring/1.0';
const MIRROR_URL = 'https://sydney.mirror.example';

let server: TestServer;
/** A CI system receiving the primary's webhook, over HTTPS with a certificate from the test CA. */
let hook: { server: HttpsServer; received: Array<{ at: number; body: Json }> };
let mirror: MirrorKey;
let mirrorId: string;
let alice: Credentials;
let bob: Credentials;
const ids = { sel: 0, other: 0, app: 0, lib: 0, secret: 0 };
let work: string;
let syncedHashes: string[] = [];

// --- the simulated mirror --------------------------------------------------------------------------------

async function asMirror<T = Json>(key: MirrorKey, node: string, method: string, path: string, body?: unknown, token?: string): Promise<ApiResponse<T>> {
  const bearer = token ?? (await signMirrorToken(key, server.baseUrl, node));
  return api<T>(server, method, `${M}${path}`, body, null, { authorization: `Bearer ${bearer}` });
}

const code = (r: ApiResponse) => r.body?.errors?.[0]?.code as string | undefined;

interface SseMessage {
  id?: number;
  event?: string;
  data?: Json;
  comment?: string;
  at: number;
}

interface SseClient {
  status: Promise<number>;
  messages: SseMessage[];
  ended: Promise<number>;
  next(predicate: (m: SseMessage) => boolean, timeoutMs?: number): Promise<SseMessage>;
  close(): void;
}

/** A minimal EventSource for tests: parses messages as they arrive and records when each one did. */
async function openStream(key: MirrorKey, node: string, options: { lastEventId?: number; after?: number } = {}): Promise<SseClient> {
  const token = await signMirrorToken(key, server.baseUrl, node);
  const messages: SseMessage[] = [];
  const waiters = new Set<() => void>();
  let resolveStatus!: (s: number) => void;
  let resolveEnded!: (at: number) => void;
  const status = new Promise<number>((r) => (resolveStatus = r));
  const ended = new Promise<number>((r) => (resolveEnded = r));
  const req = request(
    {
      host: '127.0.0.1',
      port: server.httpPort,
      path: `${M}/mirror/stream${options.after !== undefined ? `?after=${options.after}` : ''}`,
      ca: readFileSync(server.ca.caCert),
      agent: false,
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...(options.lastEventId !== undefined ? { 'last-event-id': String(options.lastEventId) } : {}) },
    },
    (res) => {
      resolveStatus(res.statusCode ?? 0);
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const message: SseMessage = { at: Date.now() };
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) message.comment = line.slice(1).trim();
            else if (line.startsWith('id: ')) message.id = Number(line.slice(4));
            else if (line.startsWith('event: ')) message.event = line.slice(7);
            else if (line.startsWith('data: ')) message.data = JSON.parse(line.slice(6));
          }
          messages.push(message);
        }
        for (const wake of waiters) wake();
      });
      res.on('end', () => resolveEnded(Date.now()));
      res.on('close', () => resolveEnded(Date.now()));
    },
  );
  req.on('error', () => resolveEnded(Date.now()));
  req.end();
  let seen = 0;
  return {
    status,
    messages,
    ended,
    close: () => req.destroy(),
    // Returns the first message after the previous one returned that matches.
    next: (predicate, timeoutMs = 5000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          while (seen < messages.length) {
            const m = messages[seen++]!;
            if (predicate(m)) {
              waiters.delete(check);
              clearTimeout(timer);
              resolve(m);
              return;
            }
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching stream message within ${timeoutMs} ms; got ${JSON.stringify(messages.slice(-5))}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
  };
}

/** The ref-state hash as docs/mirroring-protocol.md defines it, from `git ls-remote --symref` output. */
function hashFromLsRemote(stdout: string): string {
  let head = '';
  const refs: Array<[string, string]> = [];
  for (const line of stdout.split('\n').filter(Boolean)) {
    const [left, name] = line.split('\t') as [string, string];
    if (left.startsWith('ref: ') && name === 'HEAD') head = left.slice(5);
    else if (name !== 'HEAD' && !name.endsWith('^{}') && !name.startsWith('refs/mirrorfarm/')) refs.push([name, left]);
  }
  refs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const h = createHash('sha256');
  for (const [ref, oid] of refs) h.update(`${ref} ${oid}\n`);
  h.update(`HEAD ${head}\n`);
  return `v1:${h.digest('hex')}`;
}

async function push(project: string, slug: string, message = `change ${Date.now()}`): Promise<number> {
  await gitOk(null, ['commit', '-q', '--allow-empty', '-m', message], { cwd: work });
  await gitOk(server, ['push', '-q', '--force', server.httpUrl(project, slug), 'HEAD:main'], { creds: ADMIN, cwd: work });
  return Date.now();
}

async function snapshot(key = mirror, node = 'node-0') {
  const r = await asMirror(key, node, 'GET', '/mirror/snapshot');
  assert.equal(r.status, 200, r.text);
  return r.body as { lastEventId: number; mirroringMode: string; projectIds: number[]; projects: Json[]; repositories: Array<{ id: number; slug: string; refStateHash: string; defaultBranch: string }> };
}

before(async () => {
  const ca = await testCa();
  const received: Array<{ at: number; body: Json }> = [];
  const hookServer = createHttpsServer({ cert: readFileSync(ca.tlsCert), key: readFileSync(ca.tlsKey) }, (req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString('utf8')));
    req.on('end', () => {
      received.push({ at: Date.now(), body: JSON.parse(text) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => hookServer.listen(0, '127.0.0.1', resolve));
  hook = { server: hookServer, received };
  const webhookUrl = `https://127.0.0.1:${(hookServer.address() as AddressInfo).port}/hook`;
  // The hook's certificate comes from the test CA, which the primary trusts through trust.caFile only.
  server = await startServer({ env: { MIRRORFARM_MIRRORING_WEBHOOK_URL: webhookUrl, MIRRORFARM_TRUST_CA_FILE: ca.caCert } });
  ids.sel = (await createProject(server, 'SEL')).id;
  ids.other = (await createProject(server, 'OTHER')).id;
  ids.app = (await createRepo(server, 'SEL', 'app')).id;
  ids.lib = (await createRepo(server, 'SEL', 'lib')).id;
  ids.secret = (await createRepo(server, 'OTHER', 'secret')).id;
  alice = await createUser(server, 'alice');
  bob = await createUser(server, 'bob');
  await grantRepo(server, 'SEL', 'app', 'alice', 'REPO_WRITE');
  await grantRepo(server, 'OTHER', 'secret', 'alice', 'REPO_READ');
  work = await makeWorkTree();
  await gitOk(server, ['push', '-q', server.httpUrl('SEL', 'app'), 'main'], { creds: ADMIN, cwd: work });
  mirror = loadMirrorKey(generateMirrorKey().privateKeyOpenSsh);
  mirrorId = mirrorIdFor(mirror.publicKey);
});

after(async () => {
  await server?.stop();
  hook?.server.close();
  removeTempDirs();
});

describe('primary mirroring', () => {
  it('publishes discovery anonymously, with the SSH host keys to pin', async () => {
    const r = await api(server, 'GET', `${M}/primary`, undefined, null);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.product, 'mirrorfarm');
    assert.equal(r.body.baseUrl, server.baseUrl);
    assert.deepEqual([r.body.ssh.enabled, r.body.ssh.host, r.body.ssh.port], [true, '127.0.0.1', server.sshPort]);
    assert.ok(r.body.ssh.hostKeys.some((k: string) => /^ssh-ed25519 AAAA/.test(k)), r.text);
  });

  it('takes a registration request signed by the key it registers, and lists it as pending', async () => {
    const body = { mirrorName: 'Sydney', baseUrl: MIRROR_URL, publicKey: mirror.publicKey, productVersion: '0.1.0' };
    const missing = await api(server, 'POST', `${M}/requests`, body, null);
    assert.deepEqual([missing.status, code(missing)], [401, 'MIRROR_TOKEN_MISSING']);
    const other = loadMirrorKey(generateMirrorKey().privateKeyOpenSsh);
    const wrongKey = await asMirror(other, 'node-0', 'POST', '/requests', body);
    assert.deepEqual([wrongKey.status, code(wrongKey)], [401, 'MIRROR_TOKEN_INVALID']);

    const r = await asMirror(mirror, 'node-0', 'POST', '/requests', body);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual([r.body.id, r.body.state, r.body.name, r.body.baseUrl], [mirrorId, 'PENDING', 'Sydney', MIRROR_URL]);

    const self = await asMirror(mirror, 'node-0', 'GET', '/mirror/self');
    assert.deepEqual([self.status, self.body.state], [200, 'PENDING']);
    const early = await asMirror(mirror, 'node-0', 'GET', '/mirror/snapshot');
    assert.deepEqual([early.status, code(early)], [403, 'MIRROR_NOT_AUTHORIZED']);

    const list = await api(server, 'GET', `${M}/requests`);
    assert.equal(list.status, 200, list.text);
    const request = list.body.values.find((v: Json) => v.mirrorId === mirrorId);
    assert.ok(request, list.text);
    assert.equal(request.state, 'PENDING');
    assert.equal(request.mirrorName, 'Sydney');
    assert.equal(request.mirrorBaseUrl, MIRROR_URL);
    assert.match(request.publicKeyFingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
    assert.equal((await api(server, 'GET', `${M}/requests`, undefined, alice)).status, 403);
    assert.equal((await api(server, 'GET', `${M}/requests`, undefined, null)).status, 401);
  });

  it('authorizes with SELECTED_PROJECTS by key; the mirror sees itself ACTIVE with its projects', async () => {
    const refused = await api(server, 'POST', `${M}/requests/${mirrorId}/accept`, { mirroringMode: 'SELECTED_PROJECTS', projectKeys: ['SEL'] }, alice);
    assert.equal(refused.status, 403);
    const r = await api(server, 'POST', `${M}/requests/${mirrorId}/accept`, { mirroringMode: 'SELECTED_PROJECTS', projectKeys: ['SEL'] });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual([r.body.state, r.body.mirroringMode, r.body.projects.map((p: Json) => p.key)], ['ACTIVE', 'SELECTED_PROJECTS', ['SEL']]);
    const self = await asMirror(mirror, 'node-0', 'GET', '/mirror/self');
    assert.deepEqual(self.body, { id: mirrorId, state: 'ACTIVE', mirroringMode: 'SELECTED_PROJECTS', projectIds: [ids.sel] });
    const pending = await api(server, 'GET', `${M}/requests`);
    assert.equal(pending.body.values.length, 0);
  });

  it('snapshots exactly the carried repositories, with hashes that follow pushes and match git', async () => {
    const first = await snapshot();
    assert.deepEqual(first.projects.map((p) => p.key), ['SEL']);
    assert.deepEqual(first.repositories.map((r) => [r.id, r.slug]), [[ids.app, 'app'], [ids.lib, 'lib']]);
    assert.equal(first.repositories[0]!.defaultBranch, 'refs/heads/main');
    const before = first.repositories[0]!.refStateHash;
    await push('SEL', 'app');
    const second = await snapshot();
    const after = second.repositories[0]!.refStateHash;
    assert.notEqual(after, before);
    assert.ok(second.lastEventId > first.lastEventId);
    const ls = await gitOk(server, ['ls-remote', '--symref', server.httpUrl('SEL', 'app')], { creds: ADMIN });
    assert.equal(after, hashFromLsRemote(ls));
  });

  it('streams the log from 0 filtered to the mirror, then live events within 200 ms of a push', async () => {
    const { lastEventId } = await snapshot();
    const stream = await openStream(mirror, 'node-0', { after: 0 });
    assert.equal(await stream.status, 200);
    await stream.next((m) => m.id === lastEventId);
    const replayed = stream.messages.filter((m) => m.id !== undefined);
    // Every id exactly once, in order: the cursor advances over events the mirror may not see.
    assert.deepEqual(replayed.map((m) => m.id), Array.from({ length: lastEventId }, (_, i) => i + 1));
    const byType = (type: string) => replayed.filter((m) => m.event === type);
    assert.ok(byType('user.created').some((m) => m.data.name === 'alice'), 'user events always reach mirrors');
    const created = byType('repository.created').map((m) => m.data.slug);
    assert.deepEqual(created, ['app', 'lib'], 'repository events only for carried projects');
    assert.ok(byType('mirror.accepted').some((m) => m.data.mirrorId === mirrorId));
    // Events about OTHER are bare id lines: no key, slug or user leaks.
    const otherEvents = replayed.filter((m) => m.data?.projectId === ids.other);
    assert.deepEqual(otherEvents, []);
    assert.ok(replayed.filter((m) => m.event === undefined).length >= 3, 'project/repo/permission events of OTHER appear as id-only lines');
    assert.ok(!JSON.stringify(replayed).includes('secret'));

    const pushed = await push('SEL', 'app');
    const live = await stream.next((m) => m.event === 'ref.updated');
    assert.equal(live.data.repositoryId, ids.app);
    assert.equal(live.data.refId, 'refs/heads/main');
    assert.ok(live.at - pushed < 200, `event arrived ${live.at - pushed} ms after the push finished`);
    await push('OTHER', 'secret');
    const hidden = await stream.next((m) => m.id !== undefined);
    assert.deepEqual([hidden.event, hidden.data], [undefined, undefined]);
    stream.close();
  });

  it('resumes after Last-Event-ID without duplicates, and follows selection changes', async () => {
    const { lastEventId } = await snapshot();
    const from = lastEventId - 3;
    const stream = await openStream(mirror, 'node-0', { lastEventId: from });
    await stream.next((m) => m.id === lastEventId);
    assert.deepEqual(stream.messages.filter((m) => m.id !== undefined).map((m) => m.id), [from + 1, from + 2, from + 3]);

    const add = await api(server, 'POST', `${M}/mirrorServers/${mirrorId}/projects/OTHER`);
    assert.equal(add.status, 200, add.text);
    const updated = await stream.next((m) => m.event === 'mirror.updated');
    assert.deepEqual(updated.data.projectIds, [ids.sel, ids.other]);
    await push('OTHER', 'secret');
    const visible = await stream.next((m) => m.id !== undefined);
    assert.deepEqual([visible.event, visible.data.repositoryId], ['ref.updated', ids.secret]);

    assert.equal((await api(server, 'DELETE', `${M}/mirrorServers/${mirrorId}/projects/${ids.other}`)).status, 204);
    await stream.next((m) => m.event === 'mirror.updated');
    await push('OTHER', 'secret');
    const hiddenAgain = await stream.next((m) => m.id !== undefined);
    assert.equal(hiddenAgain.event, undefined);
    const projects = await api(server, 'GET', `${M}/mirrorServers/${mirrorId}/projects`);
    assert.deepEqual(projects.body.values.map((p: Json) => p.key), ['SEL']);
    stream.close();
  });

  it('rejects a request: the mirror is told so on every call', async () => {
    const stranger = loadMirrorKey(generateMirrorKey().privateKeyOpenSsh);
    const strangerId = mirrorIdFor(stranger.publicKey);
    const asked = await asMirror(stranger, 'x', 'POST', '/requests', { mirrorName: 'Unknown', baseUrl: 'https://unknown.example', publicKey: stranger.publicKey, productVersion: '0.1.0' });
    assert.equal(asked.body.state, 'PENDING');
    assert.equal((await api(server, 'POST', `${M}/requests/${strangerId}/reject`, undefined, alice)).status, 403);
    assert.equal((await api(server, 'POST', `${M}/requests/${strangerId}/reject`)).status, 204);
    for (const path of ['/mirror/self', '/mirror/snapshot']) {
      const r = await asMirror(stranger, 'x', 'GET', path);
      assert.deepEqual([path, r.status, code(r)], [path, 403, 'MIRROR_REJECTED']);
    }
    assert.deepEqual((await api(server, 'GET', `${M}/requests`)).body.values, []);
    assert.equal((await api(server, 'POST', `${M}/requests/${strangerId}/accept`, { mirroringMode: 'ALL_PROJECTS' })).status, 409);
  });

  it('refuses forged, expired, replayed and misaddressed tokens with their codes', async () => {
    const forger = loadMirrorKey(generateMirrorKey().privateKeyOpenSsh);
    const forged = await new SignJWT({ node: 'node-0' })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
      .setIssuer(mirrorId)
      .setAudience(server.baseUrl)
      .setIssuedAt()
      .setExpirationTime('60s')
      .setJti('forged-1')
      .sign(forger.privateKey);
    const cases: Array<[string, string, number, string]> = [
      ['forged', forged, 401, 'MIRROR_TOKEN_INVALID'],
      ['expired', await signMirrorToken(mirror, server.baseUrl, 'node-0', Date.now() - 300_000), 401, 'MIRROR_TOKEN_EXPIRED'],
      ['future', await signMirrorToken(mirror, server.baseUrl, 'node-0', Date.now() + 300_000), 401, 'MIRROR_CLOCK_SKEW'],
      ['audience', await signMirrorToken(mirror, 'https://other-primary.example', 'node-0'), 401, 'MIRROR_TOKEN_INVALID'],
      ['unknown', await signMirrorToken(forger, server.baseUrl, 'node-0'), 401, 'MIRROR_UNKNOWN'],
    ];
    for (const [what, token, status, expected] of cases) {
      const r = await asMirror(mirror, 'node-0', 'GET', '/mirror/self', undefined, token);
      assert.deepEqual([what, r.status, code(r)], [what, status, expected], r.text);
    }
    const once = await signMirrorToken(mirror, server.baseUrl, 'node-0');
    assert.equal((await asMirror(mirror, 'node-0', 'GET', '/mirror/self', undefined, once)).status, 200);
    const replayed = await asMirror(mirror, 'node-0', 'GET', '/mirror/self', undefined, once);
    assert.deepEqual([replayed.status, code(replayed)], [401, 'MIRROR_TOKEN_INVALID']);
    assert.match(replayed.body.errors[0].message, /replay/);
  });

  it('commits a single node at once, and a farm when every streaming node has prepared', async () => {
    const { repositories } = await snapshot();
    const app = repositories.find((r) => r.id === ids.app)!;
    const single = await asMirror(mirror, 'node-0', 'POST', '/mirror/prepared', { repositoryId: ids.app, refStateHash: app.refStateHash });
    assert.deepEqual([single.status, single.body], [200, { commit: true }]);
    const notCarried = await asMirror(mirror, 'node-0', 'POST', '/mirror/prepared', { repositoryId: ids.secret, refStateHash: app.refStateHash });
    assert.equal(notCarried.status, 404);

    // A second mirror, a farm of two (ALL_PROJECTS), so that the first mirror's node set stays as it is.
    const farm = loadMirrorKey(generateMirrorKey().privateKeyOpenSsh);
    const farmId = mirrorIdFor(farm.publicKey);
    assert.equal((await asMirror(farm, 'a', 'POST', '/requests', { mirrorName: 'Farm', baseUrl: 'https://farm.example', publicKey: farm.publicKey, productVersion: '0.1.0' })).status, 200);
    assert.equal((await api(server, 'POST', `${M}/requests/${farmId}/accept`, { mirroringMode: 'ALL_PROJECTS' })).status, 200);
    const all = await snapshot(farm, 'a');
    assert.deepEqual(all.repositories.map((r) => r.id).sort(), [ids.app, ids.lib, ids.secret].sort());
    const streamA = await openStream(farm, 'a', { after: all.lastEventId });
    const streamB = await openStream(farm, 'b', { after: all.lastEventId });
    await Promise.all([streamA.status, streamB.status]);
    await sleep(100);
    const first = await asMirror(farm, 'a', 'POST', '/mirror/prepared', { repositoryId: ids.app, refStateHash: app.refStateHash });
    assert.deepEqual(first.body, { commit: false });
    const second = await asMirror(farm, 'b', 'POST', '/mirror/prepared', { repositoryId: ids.app, refStateHash: app.refStateHash });
    assert.deepEqual(second.body, { commit: true });
    const commit = await streamA.next((m) => m.event === 'commit');
    assert.deepEqual(commit.data, { repositoryId: ids.app, refStateHash: app.refStateHash });
    assert.equal(commit.id, undefined, 'control messages do not move the cursor');
    const servers = await api(server, 'GET', `${M}/mirrorServers/${farmId}`);
    assert.deepEqual(
      [servers.body.mirrorType, servers.body.nodes.map((n: Json) => [n.id, n.connection, n.role])],
      ['FARM', [['a', 'CONNECTED', 'ACTIVE'], ['b', 'CONNECTED', 'ACTIVE']]],
    );
    assert.deepEqual(servers.body.farm, { memberCount: 2, activeCount: 2 });
    streamA.close();
    streamB.close();
    assert.equal((await api(server, 'DELETE', `${M}/mirrorServers/${farmId}`)).status, 204);
  });

  it('authenticates users for the mirror: READ at most, and only where the mirror carries the repository', async () => {
    const auth = (credentials: unknown, repositoryIds = [ids.app, ids.lib, ids.secret]) => asMirror(mirror, 'node-0', 'POST', '/authenticate', { credentials, repositoryIds });
    const expectAccess = (app: string, lib: string, secret: string) => ({ [ids.app]: app, [ids.lib]: lib, [ids.secret]: secret });

    const password = await auth({ type: 'basic', username: 'alice', password: alice.secret });
    assert.equal(password.status, 200, password.text);
    assert.equal(password.body.user.name, 'alice');
    assert.equal(password.body.user.sysadmin, false);
    // alice may write app (capped to READ), has no grant on lib, and may read OTHER/secret, which this mirror does not carry.
    assert.deepEqual(password.body.access, expectAccess('READ', 'NONE', 'NONE'));

    const admin = await auth({ type: 'basic', username: 'admin', password: ADMIN.secret });
    assert.deepEqual([admin.body.user.sysadmin, admin.body.access], [true, expectAccess('READ', 'READ', 'NONE')]);

    const token = await createToken(server, alice, ['REPO_READ']);
    const viaToken = await auth({ type: 'basic', username: 'alice', password: token });
    assert.deepEqual([viaToken.status, viaToken.body.user.name, viaToken.body.access], [200, 'alice', expectAccess('READ', 'NONE', 'NONE')]);

    const key = await sshKeyPair('alice');
    await addSshKey(server, 'alice', key.publicKey);
    const viaKey = await auth({ type: 'ssh-key', publicKey: key.publicKey });
    assert.deepEqual([viaKey.status, viaKey.body.user.name, viaKey.body.access], [200, 'alice', expectAccess('READ', 'NONE', 'NONE')]);

    const nobody = await auth({ type: 'basic', username: 'bob', password: bob.secret });
    assert.deepEqual(nobody.body.access, expectAccess('NONE', 'NONE', 'NONE'));
    const anonymous = await auth({ type: 'anonymous' });
    assert.deepEqual([anonymous.body.user, anonymous.body.access], [null, expectAccess('NONE', 'NONE', 'NONE')]);

    for (const credentials of [
      { type: 'basic', username: 'alice', password: 'wrong-password' },
      { type: 'basic', username: 'nobody-here', password: 'whatever-1' },
      { type: 'basic', username: 'alice', password: 'mft_1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
      { type: 'ssh-key', publicKey: (await sshKeyPair('stranger')).publicKey },
    ]) {
      const r = await auth(credentials);
      assert.deepEqual([r.status, code(r)], [401, 'BAD_CREDENTIALS'], `${JSON.stringify(credentials)}: ${r.text}`);
      assert.match(r.body.errors[0].message, /Authentication failed/);
    }
  });

  it('lists a mirror for a repository only once it reported the current hash, and shows nodes, lag, counts and failures', async () => {
    const appHash = () => snapshot().then((s) => s.repositories.find((r) => r.id === ids.app)!.refStateHash);
    const mirrorsOf = (id: number, creds: Credentials | null = alice) => api(server, 'GET', `${M}/repos/${id}/mirrors`, undefined, creds);
    assert.deepEqual((await mirrorsOf(ids.app)).body.values, []);
    assert.equal((await mirrorsOf(ids.app, bob)).status, 404);
    assert.equal((await mirrorsOf(ids.app, null)).status, 401);

    const current = await appHash();
    const report = await asMirror(mirror, 'node-0', 'POST', '/mirror/report', {
      cursor: 42,
      lagSeconds: 1.5,
      state: 'READY',
      sshUrlBase: { host: 'sydney.mirror.example', port: 7999 },
      repositories: [
        { id: ids.app, status: 'SYNCED', refStateHash: current },
        { id: ids.lib, status: 'FAILED', refStateHash: null, error: 'fetch failed: connection reset' },
        { id: ids.secret, status: 'SYNCED', refStateHash: 'v1:' + '0'.repeat(64) },
      ],
    });
    assert.equal(report.status, 200, report.text);
    const { nodes, ...farmSeen } = report.body.farm;
    assert.deepEqual(farmSeen, { memberCount: 1, activeCount: 1, role: 'ACTIVE' }, 'a node seen lately is presumed a member of the active set, as after a primary restart');
    assert.deepEqual(nodes.map((n: { id: string; role: string }) => [n.id, n.role]), [['node-0', 'ACTIVE']], 'and listed with the farm\'s nodes');
    const listed = await mirrorsOf(ids.app);
    assert.equal(listed.body.values.length, 1, listed.text);
    const entry = listed.body.values[0];
    assert.deepEqual([entry.mirrorServer.id, entry.mirrorServer.name, entry.mirrorServer.enabled], [mirrorId, 'Sydney', true]);
    assert.deepEqual(entry.links.clone, [
      { href: `${MIRROR_URL}/scm/sel/app.git`, name: 'http' },
      { href: 'ssh://git@sydney.mirror.example:7999/sel/app.git', name: 'ssh' },
    ]);
    assert.deepEqual((await mirrorsOf(ids.lib, ADMIN)).body.values, []);

    const servers = await api(server, 'GET', `${M}/mirrorServers`);
    assert.equal(servers.status, 200, servers.text);
    const mine = servers.body.values.find((s: Json) => s.id === mirrorId);
    assert.deepEqual(mine.nodes.map((n: Json) => [n.id, n.cursor, n.lagSeconds]), [['node-0', 42, 1.5]]);
    assert.equal(mine.lagSeconds, 1.5);
    assert.ok(Date.parse(mine.lastSeenDate) > Date.now() - 60_000);
    assert.deepEqual(mine.repositories, { total: 2, synced: 1, failing: [{ id: ids.lib, projectKey: 'SEL', slug: 'lib', error: 'fetch failed: connection reset', nodeId: 'node-0' }] });
    assert.equal(mine.publicKeyFingerprint.startsWith('SHA256:'), true);

    // A push makes the mirror stale until it reports the new hash.
    await push('SEL', 'app');
    assert.deepEqual((await mirrorsOf(ids.app)).body.values, []);
    assert.equal((await api(server, 'GET', `${M}/mirrorServers/${mirrorId}`)).body.repositories.synced, 0);
    const newHash = await appHash();
    await asMirror(mirror, 'node-0', 'POST', '/mirror/report', { repositories: [{ id: ids.app, status: 'SYNCED', refStateHash: newHash }] });
    assert.equal((await mirrorsOf(ids.app)).body.values.length, 1);

    syncedHashes = [current, newHash];
  });

  it('posts mirror:repo_synchronized to the webhook each time the mirror caught up, over validated TLS', async () => {
    const deliveries = () => hook.received.filter((h) => h.body.repository.id === ids.app);
    for (let i = 0; i < 100 && deliveries().length < 2; i++) await sleep(20);
    assert.deepEqual(
      deliveries().map((h) => [h.body.eventKey, h.body.mirrorServer, h.body.repository, h.body.refStateHash]),
      syncedHashes.map((hash) => ['mirror:repo_synchronized', { id: mirrorId, name: 'Sydney' }, { id: ids.app, slug: 'app', project: { key: 'SEL' } }, hash]),
    );
    assert.ok(deliveries().every((h) => !Number.isNaN(Date.parse(h.body.date))));
    assert.equal(hook.received.length, 2, 'nothing for a failed repository or one the mirror does not carry');
  });

  it('asks for a snapshot when the cursor is older than retention', async () => {
    // One push of 1,100 branches makes 1,100 events; a restart with a 1,000-event retention prunes the rest.
    const head = (await gitOk(null, ['rev-parse', 'HEAD'], { cwd: work })).trim();
    const lines = Array.from({ length: 1100 }, (_, i) => `create refs/heads/bulk-${String(i).padStart(4, '0')} ${head}`).join('\n');
    const { run } = await import('../helpers/run.js');
    const r = await run('git', ['update-ref', '--stdin'], { cwd: work, input: `${lines}\n` });
    assert.equal(r.code, 0, r.stderr);
    await gitOk(server, ['push', '-q', server.httpUrl('SEL', 'lib'), 'refs/heads/*:refs/heads/*'], { creds: ADMIN, cwd: work });
    server = await server.restart({ MIRRORFARM_EVENTS_MAX_EVENTS: '1000' });
    const stream = await openStream(mirror, 'node-0', { lastEventId: 5 });
    assert.equal(await stream.status, 200);
    const required = await stream.next((m) => m.event !== undefined);
    assert.equal(required.event, 'snapshot-required');
    assert.ok(required.data.firstAvailable > 6, JSON.stringify(required.data));
    await stream.ended;
    const { lastEventId } = await snapshot();
    const resumed = await openStream(mirror, 'node-0', { lastEventId });
    await push('SEL', 'app');
    const next = await resumed.next((m) => m.id !== undefined);
    assert.deepEqual([next.id, next.event], [lastEventId + 1, 'ref.updated']);
    resumed.close();
  });

  it('cuts a deleted mirror off at once: the stream gets `removed` and ends within a second, every call gets MIRROR_REMOVED', async () => {
    const { lastEventId, repositories } = await snapshot();
    const stream = await openStream(mirror, 'node-0', { lastEventId });
    assert.equal(await stream.status, 200);
    await sleep(100);
    const deleted = await api(server, 'DELETE', `${M}/mirrorServers/${mirrorId}`);
    const at = Date.now();
    assert.equal(deleted.status, 204);
    const removed = await stream.next((m) => m.event === 'removed', 1000);
    assert.equal(removed.data.mirrorId, mirrorId);
    assert.ok((await stream.ended) - at < 1000);

    const hash = repositories[0]!.refStateHash;
    const calls: Array<[string, string, unknown?]> = [
      ['GET', '/mirror/self'],
      ['GET', '/mirror/snapshot'],
      ['GET', '/mirror/stream'],
      ['POST', '/mirror/report', { repositories: [] }],
      ['POST', '/mirror/prepared', { repositoryId: ids.app, refStateHash: hash }],
      ['POST', '/authenticate', { credentials: { type: 'anonymous' }, repositoryIds: [] }],
    ];
    for (const [method, path, body] of calls) {
      const r = await asMirror(mirror, 'node-0', method, path, body);
      assert.deepEqual([path, r.status, code(r)], [path, 403, 'MIRROR_REMOVED'], r.text);
    }
    assert.equal((await api(server, 'GET', `${M}/mirrorServers`)).body.values.length, 0);
    const gone = await api(server, 'GET', `${M}/mirrorServers/${mirrorId}`);
    assert.deepEqual([gone.body.state, gone.body.enabled, gone.body.nodes], ['DELETED', false, []]);
  });
});
