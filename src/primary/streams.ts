// The event stream each mirror node holds (SSE, resumable with Last-Event-ID), and the registry of open
// streams per mirror and node, which the publish coordinator uses to know a farm's active nodes and to send
// `commit`. A stream replays the log from the node's cursor in pages, then goes live; it subscribes before
// replaying and skips ids already sent, so the switch has no gap and no duplicate (a live event that skips
// ahead makes it read the gap from the database). Events are filtered with the mirror's selection, which
// follows the log itself: a `mirror.updated` of this mirror changes the filter from that point on.
//
// A client that stops reading is not buffered for: during replay the stream waits for the socket to drain
// (and gives up after a while), live it drops the connection once the socket buffer passes a few MB; the node
// resumes with Last-Event-ID. When the mirror is deleted or rejected every stream of it gets `event: removed`
// and ends at once.
import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { EventLog, LoggedEvent } from '../events/log.js';
import type { Logger } from '../obs/logger.js';
import type { Mirror } from '../store/tables.js';
import { disclose, selectionAfter, type MirrorSelection } from './event-filter.js';
import type { FarmChannel } from './coordinator.js';
import type { MirrorState } from './mirror-state.js';
import type { MirrorRegistry } from './mirrors.js';

export interface StreamOptions {
  pingIntervalMs: number;
  /** Live: the connection is dropped when this much is waiting in the socket buffer. */
  maxBufferedBytes: number;
  /** Replay: how long the stream waits for a client that does not read before dropping it. */
  stallTimeoutMs: number;
  replayPageSize: number;
}

export const DEFAULT_STREAM_OPTIONS: StreamOptions = {
  pingIntervalMs: 15_000,
  maxBufferedBytes: 4 * 1024 * 1024,
  stallTimeoutMs: 60_000,
  replayPageSize: 500,
};

export interface StreamMetrics {
  opened(): void;
  closed(): void;
  sent(kind: 'full' | 'stripped' | 'skip' | 'control'): void;
  dropped(reason: string): void;
}

function message(event: string | undefined, data: unknown, id?: number): string {
  return `${id !== undefined ? `id: ${id}\n` : ''}${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(data)}\n\n`;
}

class MirrorStream {
  closed = false;
  private readonly queue: LoggedEvent[] = [];
  private wake: (() => void) | undefined;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  constructor(
    readonly mirrorId: string,
    readonly nodeId: string,
    private readonly res: ServerResponse,
    public cursor: number,
    private selection: MirrorSelection,
    private readonly events: EventLog,
    private readonly options: StreamOptions,
    private readonly metrics: StreamMetrics,
    private readonly log: Logger,
  ) {
    this.closedPromise = new Promise((resolve) => (this.resolveClosed = resolve));
    res.once('close', () => this.markClosed());
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.resolveClosed();
    this.wake?.();
  }

  enqueue(events: LoggedEvent[]): void {
    if (this.closed) return;
    this.queue.push(...events);
    this.wake?.();
  }

  /** Writes one whole message, or drops the connection of a client that stopped reading. */
  write(text: string): boolean {
    if (this.closed) return false;
    this.res.write(text);
    if (this.res.writableLength > this.options.maxBufferedBytes) {
      this.log.warn({ mirrorId: this.mirrorId, nodeId: this.nodeId, buffered: this.res.writableLength }, 'mirror stream client is not reading; dropping the connection');
      this.metrics.dropped('slow-consumer');
      this.destroy();
      return false;
    }
    return true;
  }

  control(event: string, data: unknown): boolean {
    this.metrics.sent('control');
    return this.write(message(event, data));
  }

  ping(): void {
    this.write(': ping\n\n');
  }

  /** Ends the stream normally, after a last control message if given. */
  end(event?: string, data?: unknown): void {
    if (this.closed) return;
    if (event) this.control(event, data ?? {});
    this.markClosed();
    this.res.end();
  }

  destroy(): void {
    this.markClosed();
    this.res.destroy();
  }

  private snapshotRequired(firstAvailable: number): void {
    this.log.info({ mirrorId: this.mirrorId, nodeId: this.nodeId, cursor: this.cursor, firstAvailable }, 'mirror cursor is older than the event log retention; asking for a snapshot');
    this.end('snapshot-required', { firstAvailable });
  }

  // A deletion of this mirror is not acted on here: when replayed it may be history (the mirror was deleted,
  // asked again and was re-authorized with the same key). The hub ends streams when a deletion is appended,
  // and `serve` checks the mirror's current state when a stream opens.
  private deliver(event: LoggedEvent): void {
    const shown = disclose(this.selection, event);
    this.selection = selectionAfter(this.selection, event) ?? this.selection;
    this.metrics.sent(shown.kind);
    this.write(shown.kind === 'skip' ? `id: ${event.id}\n\n` : message(event.type, shown.event, event.id));
    this.cursor = event.id;
  }

  /** Waits until the client has read what is buffered, or drops it when it stalls. */
  private async drained(): Promise<void> {
    if (!this.res.writableNeedDrain || this.closed) return;
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<'stalled'>((resolve) => (timer = setTimeout(() => resolve('stalled'), this.options.stallTimeoutMs)));
    const drained = new Promise<'drained'>((resolve) => this.res.once('drain', () => resolve('drained')));
    const outcome = await Promise.race([drained, stalled, this.closedPromise.then(() => 'closed' as const)]);
    clearTimeout(timer);
    if (outcome === 'stalled') {
      this.log.warn({ mirrorId: this.mirrorId, nodeId: this.nodeId }, 'mirror stream client stopped reading during replay; dropping the connection');
      this.metrics.dropped('stalled');
      this.destroy();
    }
  }

  /** Sends the log from the cursor on, from the database, until it is exhausted. False when the stream ended. */
  private async catchUp(): Promise<boolean> {
    for (;;) {
      if (this.closed) return false;
      const page = await this.events.read(this.cursor, this.options.replayPageSize);
      if (page.length === 0) return true;
      // Sequence numbers are dense: a hole right after the cursor means retention dropped those events.
      if (page[0]!.id !== this.cursor + 1) {
        this.snapshotRequired(page[0]!.id);
        return false;
      }
      for (const event of page) {
        if (this.closed) return false;
        this.deliver(event);
      }
      await this.drained();
      if (page.length < this.options.replayPageSize) return !this.closed;
    }
  }

  async run(): Promise<void> {
    const { first, last } = await this.events.bounds();
    // A cursor beyond the log's end means the primary's log was replaced (restore from backup): the mirror's
    // view cannot be trusted incrementally any more.
    if (this.cursor > last || (first > 0 && this.cursor < first - 1)) return this.snapshotRequired(first);
    if (!(await this.catchUp())) return;
    while (!this.closed) {
      if (this.queue.length === 0) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      for (const event of this.queue.splice(0)) {
        if (this.closed) return;
        if (event.id <= this.cursor) continue;
        if (event.id > this.cursor + 1 && !(await this.catchUp())) return;
        if (event.id <= this.cursor) continue;
        this.deliver(event);
      }
    }
  }
}

export class StreamHub implements FarmChannel {
  private readonly open = new Map<string, Map<string, MirrorStream>>();
  private readonly unsubscribe: () => void;
  private readonly listeners = new Set<(mirrorId: string) => void>();
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly events: EventLog,
    private readonly registry: MirrorRegistry,
    private readonly state: MirrorState,
    private readonly log: Logger,
    private readonly metrics: StreamMetrics,
    private readonly options: StreamOptions = DEFAULT_STREAM_OPTIONS,
  ) {
    // Cut-off does not wait for a stream's own pump (which may be waiting for a slow client).
    this.unsubscribe = events.subscribe((appended) => {
      for (const event of appended) {
        if ((event.type === 'mirror.deleted' || event.type === 'mirror.rejected') && typeof event.mirrorId === 'string') {
          this.closeMirror(event.mirrorId, event.type === 'mirror.deleted' ? 'DELETED' : 'REJECTED');
        }
      }
    });
  }

  /** Called with a mirror id whenever one of its nodes opens or closes a stream. */
  onNodesChanged(listener: (mirrorId: string) => void): void {
    this.listeners.add(listener);
  }

  streamingNodes(mirrorId: string): string[] {
    return [...(this.open.get(mirrorId)?.keys() ?? [])];
  }

  isStreaming(mirrorId: string, nodeId: string): boolean {
    return this.open.get(mirrorId)?.has(nodeId) ?? false;
  }

  sendCommit(mirrorId: string, nodeId: string, data: { repositoryId: number; refStateHash: string }): boolean {
    const stream = this.open.get(mirrorId)?.get(nodeId);
    return stream ? stream.control('commit', data) : false;
  }

  closeMirror(mirrorId: string, reason: 'DELETED' | 'REJECTED'): void {
    for (const stream of this.open.get(mirrorId)?.values() ?? []) stream.end('removed', { mirrorId, reason });
  }

  closeAll(): void {
    for (const streams of this.open.values()) for (const stream of streams.values()) stream.end();
  }

  /** Ends every stream and waits until each has recorded its node as disconnected. */
  async stop(): Promise<void> {
    this.unsubscribe();
    this.closeAll();
    await Promise.allSettled([...this.running]);
  }

  private changed(mirrorId: string): void {
    for (const listener of this.listeners) {
      try {
        listener(mirrorId);
      } catch (err) {
        this.log.error({ err, mirrorId }, 'mirror stream listener failed');
      }
    }
  }

  /** Serves one node's stream until the client leaves, the mirror is removed or the server stops. */
  async serve(request: FastifyRequest, reply: FastifyReply, mirror: Mirror, nodeId: string, cursor: number): Promise<void> {
    const done = this.stream(request, reply, mirror, nodeId, cursor);
    this.running.add(done);
    try {
      await done;
    } finally {
      this.running.delete(done);
    }
  }

  private async stream(request: FastifyRequest, reply: FastifyReply, mirror: Mirror, nodeId: string, cursor: number): Promise<void> {
    const selection: MirrorSelection = { mirrorId: mirror.id, mode: mirror.mirroring_mode, projectIds: new Set(await this.registry.projectIds(mirror.id)) };
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      // Proxies such as nginx would otherwise hold events back to fill their buffers.
      'x-accel-buffering': 'no',
      'x-request-id': request.id,
    });
    res.socket?.setNoDelay(true);
    res.flushHeaders();
    const log = this.log.child({ mirrorId: mirror.id, nodeId, reqId: request.id });
    const stream = new MirrorStream(mirror.id, nodeId, res, cursor, selection, this.events, this.options, this.metrics, log);

    let nodes = this.open.get(mirror.id);
    if (!nodes) this.open.set(mirror.id, (nodes = new Map()));
    // A node reconnecting before its old connection was noticed gone: the new stream wins.
    nodes.get(nodeId)?.end();
    nodes.set(nodeId, stream);
    const unsubscribe = this.events.subscribe((appended) => stream.enqueue(appended));
    const ping = setInterval(() => {
      stream.ping();
      this.state.touchNode(mirror.id, nodeId).catch((err: Error) => log.warn({ err }, 'could not record mirror node contact'));
    }, this.options.pingIntervalMs);
    ping.unref();
    this.metrics.opened();
    log.info({ cursor }, 'mirror node opened its event stream');

    try {
      await this.state.touchNode(mirror.id, nodeId, 'CONNECTED');
      this.changed(mirror.id);
      // The mirror may have been deleted between authentication and registration above, in which case the hub
      // has already sent its removals and would not see this stream.
      const current = await this.registry.get(mirror.id);
      if (current?.state !== 'ACTIVE') {
        stream.end('removed', { mirrorId: mirror.id, reason: current?.state ?? 'DELETED' });
        return;
      }
      await stream.run();
    } catch (err) {
      log.error({ err }, 'mirror event stream failed');
      stream.destroy();
    } finally {
      clearInterval(ping);
      unsubscribe();
      if (!stream.closed) stream.end();
      if (nodes.get(nodeId) === stream) {
        nodes.delete(nodeId);
        if (nodes.size === 0 && this.open.get(mirror.id) === nodes) this.open.delete(mirror.id);
        await this.state.touchNode(mirror.id, nodeId, 'DISCONNECTED').catch((err: Error) => log.warn({ err }, 'could not record mirror node disconnect'));
        this.changed(mirror.id);
      }
      this.metrics.closed();
      log.info({ cursor: stream.cursor }, 'mirror node event stream closed');
    }
  }
}
