// The two-phase publish coordinator: a mirror's nodes each stage a repository's new state, and the primary
// tells them to publish it only once every active node has staged the same ref-state hash, so that a client
// bouncing between nodes never sees a ref whose objects some node lacks. A farm of one commits at once.
//
// Active nodes are the mirror's nodes holding an event stream, minus evicted ones; a node posting `prepared`
// counts itself even without a stream. The first `prepared` of a hash starts a timer: a node that has not staged
// that hash when it fires is evicted (OUT_OF_SYNC, so it reports not ready and the load balancer skips it) and
// the others commit. A node's latest prepared hash replaces its earlier one, so a newer push supersedes a round
// still waiting. State is in memory: after a primary restart nodes simply prepare again.
//
// A commit sent to a node without an open stream (one still in its initial sync) would be lost, so the last
// committed hash per repository is kept: a node announcing that hash (again, when its stream connects) is told to
// commit at once, because the farm already agreed on it.
import type { Logger } from '../obs/logger.js';
import { KeyedLock } from '../util/keyed-lock.js';

/** How the coordinator reaches a mirror's nodes (the stream hub). */
export interface FarmChannel {
  /** Node ids of the mirror that hold an open event stream. */
  streamingNodes(mirrorId: string): string[];
  /** Sends `event: commit` on the node's stream; false when it has none. */
  sendCommit(mirrorId: string, nodeId: string, data: { repositoryId: number; refStateHash: string }): boolean;
}

/** Where evictions are recorded (mirror_nodes.state). */
export interface EvictionStore {
  evicted(mirrorId: string): Promise<Set<string>>;
  evict(mirrorId: string, nodeIds: string[]): Promise<void>;
}

export interface CoordinatorOptions {
  /** How long the other nodes have to stage a hash after the first node did. */
  prepareTimeoutMs: number;
}

export const DEFAULT_PREPARE_TIMEOUT_MS = 30_000;

interface Pending {
  /** Latest staged hash per node. */
  prepared: Map<string, string>;
  /** One timer per hash some node is waiting on. */
  timers: Map<string, NodeJS.Timeout>;
}

export interface CommitOutcome {
  commit: boolean;
}

export class PublishCoordinator {
  private readonly pending = new Map<string, Pending>();
  private readonly lastCommitted = new Map<string, string>();
  private readonly lock = new KeyedLock<string>();
  private stopped = false;

  constructor(
    private readonly farm: FarmChannel,
    private readonly store: EvictionStore,
    private readonly log: Logger,
    private readonly options: CoordinatorOptions = { prepareTimeoutMs: DEFAULT_PREPARE_TIMEOUT_MS },
    private readonly onCommit: (mirrorId: string, repositoryId: number, nodes: string[]) => void = () => {},
    private readonly onEvict: (mirrorId: string, nodes: string[]) => void = () => {},
  ) {}

  private static key(mirrorId: string, repositoryId: number): string {
    return `${mirrorId}\u0000${repositoryId}`;
  }

  /** A node staged `hash` for the repository; answers whether it may publish now. */
  async prepared(mirrorId: string, nodeId: string, repositoryId: number, hash: string): Promise<CommitOutcome> {
    const key = PublishCoordinator.key(mirrorId, repositoryId);
    return this.lock.run(key, async () => {
      if (this.lastCommitted.get(key) === hash) return { commit: true };
      let entry = this.pending.get(key);
      if (!entry) this.pending.set(key, (entry = { prepared: new Map(), timers: new Map() }));
      entry.prepared.set(nodeId, hash);
      if (!entry.timers.has(hash) && !this.stopped) {
        const timer = setTimeout(() => void this.expire(mirrorId, repositoryId, hash), this.options.prepareTimeoutMs);
        timer.unref();
        entry.timers.set(hash, timer);
      }
      const committed = await this.commitIfAgreed(mirrorId, repositoryId, hash, nodeId);
      this.tidy(key);
      return { commit: committed };
    });
  }

  /** The set of streaming nodes changed (one left, one joined): rounds may now be complete. */
  async recheck(mirrorId: string): Promise<void> {
    const prefix = `${mirrorId}\u0000`;
    for (const key of [...this.pending.keys()].filter((k) => k.startsWith(prefix))) {
      const repositoryId = Number(key.slice(prefix.length));
      await this.lock.run(key, async () => {
        const entry = this.pending.get(key);
        if (!entry) return;
        for (const hash of [...entry.timers.keys()]) await this.commitIfAgreed(mirrorId, repositoryId, hash);
        this.tidy(key);
      });
    }
  }

  /** Forgets a mirror (deleted or rejected). */
  forget(mirrorId: string): void {
    const prefix = `${mirrorId}\u0000`;
    for (const [key, entry] of this.pending) {
      if (!key.startsWith(prefix)) continue;
      for (const timer of entry.timers.values()) clearTimeout(timer);
      this.pending.delete(key);
    }
    for (const key of [...this.lastCommitted.keys()]) if (key.startsWith(prefix)) this.lastCommitted.delete(key);
  }

  stop(): void {
    this.stopped = true;
    for (const entry of this.pending.values()) for (const timer of entry.timers.values()) clearTimeout(timer);
    this.pending.clear();
    this.lastCommitted.clear();
  }

  private async activeNodes(mirrorId: string, poster?: string): Promise<Set<string>> {
    const evicted = await this.store.evicted(mirrorId);
    const active = new Set(this.farm.streamingNodes(mirrorId).filter((n) => !evicted.has(n)));
    if (poster !== undefined) active.add(poster);
    return active;
  }

  /**
   * Commits `hash` when every active node staged it: the poster learns it from the answer, the others from an
   * `event: commit` on their streams. Returns whether the poster may publish.
   */
  private async commitIfAgreed(mirrorId: string, repositoryId: number, hash: string, poster?: string): Promise<boolean> {
    const entry = this.pending.get(PublishCoordinator.key(mirrorId, repositoryId));
    if (!entry) return false;
    const active = await this.activeNodes(mirrorId, poster);
    for (const node of active) if (entry.prepared.get(node) !== hash) return false;
    this.publish(mirrorId, repositoryId, hash, entry, poster);
    return true;
  }

  private publish(mirrorId: string, repositoryId: number, hash: string, entry: Pending, poster?: string): void {
    const participants = [...entry.prepared].filter(([, h]) => h === hash).map(([node]) => node);
    this.lastCommitted.set(PublishCoordinator.key(mirrorId, repositoryId), hash);
    for (const node of participants) {
      entry.prepared.delete(node);
      if (node !== poster) this.farm.sendCommit(mirrorId, node, { repositoryId, refStateHash: hash });
    }
    const timer = entry.timers.get(hash);
    if (timer) clearTimeout(timer);
    entry.timers.delete(hash);
    this.onCommit(mirrorId, repositoryId, participants);
  }

  /** The prepare window of `hash` closed: evict the nodes that did not stage it, commit the ones that did. */
  private async expire(mirrorId: string, repositoryId: number, hash: string): Promise<void> {
    const key = PublishCoordinator.key(mirrorId, repositoryId);
    try {
      await this.lock.run(key, async () => {
        const entry = this.pending.get(key);
        if (!entry || !entry.timers.has(hash)) return;
        entry.timers.delete(hash);
        const participants = [...entry.prepared].filter(([, h]) => h === hash).map(([node]) => node);
        if (participants.length === 0) return this.tidy(key);
        const active = await this.activeNodes(mirrorId);
        const laggards = [...active].filter((node) => entry.prepared.get(node) !== hash);
        if (laggards.length) {
          await this.store.evict(mirrorId, laggards);
          this.onEvict(mirrorId, laggards);
          this.log.warn(
            { mirrorId, repositoryId, refStateHash: hash, evicted: laggards, committed: participants, timeoutMs: this.options.prepareTimeoutMs },
            'mirror nodes did not prepare in time; evicted them from the active set and committed on the others',
          );
          // A laggard that staged an older hash is no longer waited for either.
          for (const node of laggards) entry.prepared.delete(node);
        }
        this.publish(mirrorId, repositoryId, hash, entry);
        this.tidy(key);
      });
    } catch (err) {
      this.log.error({ err, mirrorId, repositoryId }, 'two-phase publish: handling a prepare timeout failed');
    }
  }

  /** Drops timers of hashes nobody waits on any more, and empty entries. */
  private tidy(key: string): void {
    const entry = this.pending.get(key);
    if (!entry) return;
    const waiting = new Set(entry.prepared.values());
    for (const [hash, timer] of entry.timers) {
      if (!waiting.has(hash)) {
        clearTimeout(timer);
        entry.timers.delete(hash);
      }
    }
    if (entry.prepared.size === 0 && entry.timers.size === 0) this.pending.delete(key);
  }
}
