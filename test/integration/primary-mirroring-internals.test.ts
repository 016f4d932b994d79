// The primary's mirroring machinery in process, where timing can be controlled: the two-phase publish
// coordinator (agreement, eviction on timeout, superseded rounds, nodes leaving), the event stream's switch from
// replay to live under concurrent appends (no gap, no duplicate), its refusal to buffer for clients that stop
// reading, and the event filter's disclosure rules.
import assert from 'node:assert/strict';
import { createServer, get, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { pino } from 'pino';
import { generateMirrorKey, loadMirrorKey, signMirrorToken } from '../../src/auth/mirror-token.js';
import { EventLog, type LoggedEvent } from '../../src/events/log.js';
import { PublishCoordinator, type EvictionStore, type FarmChannel } from '../../src/primary/coordinator.js';
import { disclose, selectionAfter, type MirrorSelection } from '../../src/primary/event-filter.js';
import { MirrorState } from '../../src/primary/mirror-state.js';
import { MirrorRegistry } from '../../src/primary/mirrors.js';
import { DEFAULT_STREAM_OPTIONS, StreamHub, type StreamMetrics, type StreamOptions } from '../../src/primary/streams.js';
import { openDatabase, type Db } from '../../src/store/database.js';
import type { Mirror } from '../../src/store/tables.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

const log = pino({ level: 'silent' });
const H1 = `v1:${'1'.repeat(64)}`;
const H2 = `v1:${'2'.repeat(64)}`;

after(() => removeTempDirs());

// --- coordinator ------------------------------------------------------------------------------------------

class FakeFarm implements FarmChannel, EvictionStore {
  streaming = new Set<string>();
  evictedNodes = new Set<string>();
  commits: Array<{ node: string; repositoryId: number; refStateHash: string }> = [];
  streamingNodes(): string[] {
    return [...this.streaming];
  }
  sendCommit(_mirrorId: string, nodeId: string, data: { repositoryId: number; refStateHash: string }): boolean {
    if (!this.streaming.has(nodeId)) return false;
    this.commits.push({ node: nodeId, ...data });
    return true;
  }
  async evicted(): Promise<Set<string>> {
    return new Set(this.evictedNodes);
  }
  async evict(_mirrorId: string, nodeIds: string[]): Promise<void> {
    for (const n of nodeIds) this.evictedNodes.add(n);
  }
}

function coordinator(farm: FakeFarm, prepareTimeoutMs = 150) {
  return new PublishCoordinator(farm, farm, log, { prepareTimeoutMs });
}

describe('two-phase publish coordinator', () => {
  it('commits a farm of one at once, a streamless poster counting itself', async () => {
    const farm = new FakeFarm();
    assert.deepEqual(await coordinator(farm).prepared('M', 'solo', 1, H1), { commit: true });
    farm.streaming.add('a');
    assert.deepEqual(await coordinator(farm).prepared('M', 'a', 1, H1), { commit: true });
    assert.deepEqual(farm.commits, []);
  });

  it('commits when every streaming node staged the same hash, telling the others on their streams', async () => {
    const farm = new FakeFarm();
    farm.streaming = new Set(['a', 'b', 'c']);
    const c = coordinator(farm);
    assert.deepEqual(await c.prepared('M', 'a', 7, H1), { commit: false });
    assert.deepEqual(await c.prepared('M', 'b', 7, H1), { commit: false });
    assert.deepEqual(await c.prepared('M', 'c', 7, H1), { commit: true });
    assert.deepEqual(farm.commits.map((x) => x.node).sort(), ['a', 'b']);
    await sleep(250);
    assert.deepEqual([...farm.evictedNodes], [], 'a committed round leaves no timer behind');
    c.stop();
  });

  it('evicts a node that did not prepare in time and commits the others', async () => {
    const farm = new FakeFarm();
    farm.streaming = new Set(['a', 'b', 'c']);
    const c = coordinator(farm);
    const started = Date.now();
    assert.deepEqual(await c.prepared('M', 'a', 7, H1), { commit: false });
    assert.deepEqual(await c.prepared('M', 'b', 7, H1), { commit: false });
    while (farm.commits.length < 2 && Date.now() - started < 2000) await sleep(10);
    assert.ok(Date.now() - started >= 140, 'not before the timeout');
    assert.deepEqual([...farm.evictedNodes], ['c']);
    assert.deepEqual(farm.commits.map((x) => [x.node, x.refStateHash]).sort(), [['a', H1], ['b', H1]]);
    // The evicted node is not waited for any more.
    farm.commits = [];
    assert.deepEqual(await c.prepared('M', 'a', 8, H2), { commit: false });
    assert.deepEqual(await c.prepared('M', 'b', 8, H2), { commit: true });
    c.stop();
  });

  it('lets a newer hash supersede a round, without evicting anybody for the old one', async () => {
    const farm = new FakeFarm();
    farm.streaming = new Set(['a', 'b']);
    const c = coordinator(farm);
    assert.deepEqual(await c.prepared('M', 'a', 3, H1), { commit: false });
    // A push landed: b staged the newer state, then a caught up with it.
    assert.deepEqual(await c.prepared('M', 'b', 3, H2), { commit: false });
    assert.deepEqual(await c.prepared('M', 'a', 3, H2), { commit: true });
    assert.deepEqual(farm.commits, [{ node: 'b', repositoryId: 3, refStateHash: H2 }]);
    await sleep(250);
    assert.deepEqual([...farm.evictedNodes], []);
    c.stop();
  });

  it('commits a waiting round when a node that has not prepared leaves the farm', async () => {
    const farm = new FakeFarm();
    farm.streaming = new Set(['a', 'b']);
    const c = coordinator(farm, 10_000);
    assert.deepEqual(await c.prepared('M', 'a', 5, H1), { commit: false });
    farm.streaming.delete('b');
    await c.recheck('M');
    assert.deepEqual(farm.commits, [{ node: 'a', repositoryId: 5, refStateHash: H1 }]);
    c.stop();
  });
});

// --- event filter ------------------------------------------------------------------------------------------

describe('event disclosure', () => {
  const selection: MirrorSelection = { mirrorId: 'ME', mode: 'SELECTED_PROJECTS', projectIds: new Set([1]) };
  const event = (type: string, fields: Record<string, unknown> = {}): LoggedEvent =>
    ({ id: 9, type, createdDate: 1, projectId: null, repositoryId: null, ...fields }) as LoggedEvent;

  it('shows carried projects, strips deletions and moves elsewhere, hides the rest', () => {
    assert.equal(disclose(selection, event('ref.updated', { projectId: 1, repositoryId: 3 })).kind, 'full');
    assert.equal(disclose(selection, event('ref.updated', { projectId: 2, repositoryId: 4, refId: 'refs/heads/x' })).kind, 'skip');
    assert.equal(disclose(selection, event('permission.changed', { projectId: 2, user: 'alice' })).kind, 'skip');
    const moved = disclose(selection, event('repository.updated', { projectId: 2, repositoryId: 3, slug: 'x', previousProjectKey: 'A' }));
    assert.deepEqual(moved, { kind: 'stripped', event: { id: 9, type: 'repository.updated', createdDate: 1, projectId: 2, repositoryId: 3 } });
    assert.equal(disclose(selection, event('project.deleted', { projectId: 2, key: 'B' })).kind, 'stripped');
    for (const type of ['user.updated', 'ssh_key.removed', 'access_token.revoked']) assert.equal(disclose(selection, event(type)).kind, 'full');
    assert.equal(disclose(selection, event('mirror.updated', { mirrorId: 'OTHER' })).kind, 'skip');
    assert.equal(disclose({ ...selection, mode: 'ALL_PROJECTS' }, event('ref.updated', { projectId: 2 })).kind, 'full');
  });

  it('sends group changes to every mirror (membership changes what a user reads everywhere), group grants only where carried', () => {
    for (const type of ['group.created', 'group.deleted', 'group.user_added', 'group.user_removed']) {
      assert.equal(disclose(selection, event(type, { group: 'devs', user: 'alice' })).kind, 'full', type);
    }
    assert.equal(disclose(selection, event('permission.changed', { projectId: 1, group: 'devs' })).kind, 'full');
    assert.equal(disclose(selection, event('permission.changed', { projectId: 2, group: 'devs' })).kind, 'skip');
    // A group's SYS_ADMIN (which reads every repository) concerns every mirror.
    assert.equal(disclose(selection, event('permission.changed', { scope: 'global', group: 'admins', permission: null })).kind, 'full');
  });

  it('follows the selection carried by the mirror\'s own update events', () => {
    const next = selectionAfter(selection, event('mirror.updated', { mirrorId: 'ME', mirroringMode: 'SELECTED_PROJECTS', projectIds: [1, 2] }));
    assert.deepEqual([...next!.projectIds], [1, 2]);
    assert.equal(selectionAfter(selection, event('mirror.updated', { mirrorId: 'OTHER', projectIds: [5] })), undefined);
  });
});

// --- event stream ------------------------------------------------------------------------------------------

describe('event stream', () => {
  let db: Db;
  let events: EventLog;
  let registry: MirrorRegistry;
  let mirror: Mirror;
  let http: Server;
  let hub: StreamHub;
  const dropped: string[] = [];
  const metrics: StreamMetrics = { opened() {}, closed() {}, sent() {}, dropped: (reason) => dropped.push(reason) };
  let streamOptions: StreamOptions = DEFAULT_STREAM_OPTIONS;

  before(async () => {
    db = await openDatabase(join(tempDir('mf-stream-'), 'db.sqlite'));
    events = new EventLog(db, { days: 30, maxEvents: 1_000_000 });
    registry = new MirrorRegistry(db, events, () => 'https://primary.test');
    const key = loadMirrorKey(generateMirrorKey().privateKeyOpenSsh);
    const registered = await registry.register({ name: 'm', baseUrl: 'https://m.test', publicKey: key.publicKey, productVersion: '1' }, await signMirrorToken(key, 'https://primary.test', 'n'));
    mirror = await registry.accept(registered.id, 'ALL_PROJECTS', []);
    http = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      hub = new StreamHub(events, registry, new MirrorState(db), log, metrics, streamOptions);
      const reply = { hijack() {}, raw: res } as unknown as FastifyReply;
      void hub.serve({ id: 'test' } as FastifyRequest, reply, mirror, url.searchParams.get('node') ?? 'n', Number(url.searchParams.get('after') ?? 0));
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  });

  after(async () => {
    http.closeAllConnections();
    await new Promise((resolve) => http.close(resolve));
    await db.destroy();
  });

  const append = (count: number, payload = '') =>
    events.transact(async () => ({ result: undefined, events: Array.from({ length: count }, () => ({ type: 'user.updated' as const, data: { payload } })) }));

  function connect(after: number, node = 'n'): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => get(`http://127.0.0.1:${(http.address() as AddressInfo).port}/?after=${after}&node=${node}`, resolve).on('error', reject));
  }

  it('switches from replay to live with no gap and no duplicate while events keep coming', async () => {
    streamOptions = { ...DEFAULT_STREAM_OPTIONS, replayPageSize: 50 };
    for (let i = 0; i < 20; i++) await append(100);
    const res = await connect(0);
    const ids: number[] = [];
    let buffer = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffer += chunk;
      const end = buffer.lastIndexOf('\n\n');
      if (end < 0) return;
      for (const m of buffer.slice(0, end + 2).matchAll(/^id: (\d+)$/gm)) ids.push(Number(m[1]));
      buffer = buffer.slice(end + 2);
    });
    // Appends race the replay: single events and batches, from several writers.
    await Promise.all(Array.from({ length: 4 }, async () => {
      for (let i = 0; i < 50; i++) await append(1 + (i % 3));
    }));
    const { last } = await events.bounds();
    for (let i = 0; i < 200 && ids[ids.length - 1] !== last; i++) await sleep(20);
    res.destroy();
    assert.equal(ids.length, last, 'every event once');
    assert.deepEqual(ids, Array.from({ length: last }, (_, i) => i + 1));
  });

  it('drops a live client that stops reading instead of buffering for it', async () => {
    streamOptions = { ...DEFAULT_STREAM_OPTIONS, maxBufferedBytes: 256 * 1024 };
    const { last } = await events.bounds();
    const res = await connect(last, 'slow');
    res.pause();
    await sleep(50);
    const big = 'x'.repeat(16 * 1024);
    for (let i = 0; i < 100 && !dropped.includes('slow-consumer'); i++) await append(20, big);
    assert.ok(dropped.includes('slow-consumer'), 'dropped as a slow consumer');
    // The server let go of it (the paused client itself may never notice: it does not read).
    for (let i = 0; i < 50 && hub.streamingNodes(mirror.id).length; i++) await sleep(10);
    assert.deepEqual(hub.streamingNodes(mirror.id), []);
    res.destroy();
  });

  it('gives up on a client that stops reading during replay', async () => {
    streamOptions = { ...DEFAULT_STREAM_OPTIONS, stallTimeoutMs: 200, replayPageSize: 50 };
    // More backlog than the socket buffers of both ends hold.
    const big = 'y'.repeat(16 * 1024);
    for (let i = 0; i < 64; i++) await append(20, big);
    const res = await connect(0, 'stalled');
    res.pause();
    await sleep(50);
    for (let i = 0; i < 200 && hub.streamingNodes(mirror.id).length; i++) await sleep(10);
    assert.ok(dropped.includes('stalled'));
    assert.deepEqual(hub.streamingNodes(mirror.id), []);
    res.destroy();
  });
});
