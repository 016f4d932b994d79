// The primary's mirroring machinery in process, where timing can be controlled (the two-phase publish
// coordinator has its own file, test/unit/publish-coordinator.test.ts): the event stream's switch from
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
import { disclose, selectionAfter, type MirrorSelection } from '../../src/primary/event-filter.js';
import { MirrorState } from '../../src/primary/mirror-state.js';
import { MirrorRegistry } from '../../src/primary/mirrors.js';
import { DEFAULT_STREAM_OPTIONS, StreamHub, type StreamMetrics, type StreamOptions } from '../../src/primary/streams.js';
import { openDatabase, type Db } from '../../src/store/database.js';
import type { Mirror } from '../../src/store/tables.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

const log = pino({ level: 'silent' });

after(() => removeTempDirs());

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
