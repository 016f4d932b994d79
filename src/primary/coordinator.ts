// The two-phase publish coordinator: a mirror's nodes each stage a repository's new state, and the primary
// tells them to publish it only once every member of the farm's active set (src/primary/membership.ts) has
// staged the same ref-state hash, so that a client bouncing between nodes never sees a ref whose objects some
// node lacks. A farm of one commits at once.
//
// A round starts with the first member's `prepared` of a hash and ends when every member staged it. Under
// continuous pushes rounds supersede each other faster than any timeout, so the timeout belongs to the
// repository, not to a hash: it runs from the moment the repository started waiting for agreement, and when it
// fires, the members that are stuck (staged nothing since, or only an older hash and not for a whole timeout)
// are evicted (OUT_OF_SYNC), but only once their lease and the balancer's margin have run out, so that they are
// out of rotation before anyone publishes without them. Members that keep staging, even a step behind, are not
// evicted. A node's latest prepared hash replaces its earlier one.
//
// Nodes that are not members (joining, resyncing after an eviction) are followers: they are not waited for, and
// they publish only what the farm agreed on (the last committed hash, or the hash every member reports serving),
// so that a node joins with a state the others have. While a farm has no member at all, a node publishes at once.
//
// State is in memory: after a primary restart nodes simply prepare again.
import type { Logger } from '../obs/logger.js';
import { KeyedLock } from '../util/keyed-lock.js';
import type { FarmMembership } from './membership.js';

/** How the coordinator reaches a mirror's nodes (the stream hub). */
export interface FarmChannel {
  /** Sends `event: commit` on the node's stream; false when it has none. */
  sendCommit(mirrorId: string, nodeId: string, data: { repositoryId: number; refStateHash: string }): boolean;
}

/** Where evictions are recorded (mirror_nodes.state), and what nodes last reported serving. */
export interface EvictionStore {
  evict(mirrorId: string, nodeIds: string[]): Promise<void>;
  clearEviction(mirrorId: string, nodeId: string): Promise<void>;
  /** Node id -> ref-state hash each node last reported serving (SYNCED) for the repository. */
  servedHashes(mirrorId: string, repositoryId: number): Promise<Map<string, string>>;
}

export interface CoordinatorOptions {
  /** How long the other members have to stage a hash after the first member did. */
  prepareTimeoutMs: number;
}

export const DEFAULT_PREPARE_TIMEOUT_MS = 30_000;

interface Round {
  startedAt: number;
  /** Order of rounds (two may start within one millisecond). */
  seq: number;
}

interface Pending {
  /** Latest staged hash per member, and when the member staged it. */
  prepared: Map<string, string>;
  preparedAt: Map<string, number>;
  /** Since when the repository waits for its members to agree, and the timer of that wait. */
  waitingSince: number | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Latest staged hash per follower, told to commit when the farm commits that hash. */
  followers: Map<string, string>;
  /** One round per hash some member staged. */
  rounds: Map<string, Round>;
}

export interface CommitOutcome {
  commit: boolean;
}

export interface JoinOutcome {
  member: boolean;
  /** The node published while its farm was empty: it must stage everything again, then ask again. */
  resync?: boolean;
}

export class PublishCoordinator {
  private readonly pending = new Map<string, Pending>();
  private readonly lastCommitted = new Map<string, string>();
  private readonly lock = new KeyedLock<string>();
  private stopped = false;
  private rounds = 0;

  constructor(
    private readonly farm: FarmChannel,
    private readonly store: EvictionStore,
    readonly membership: FarmMembership,
    private readonly log: Logger,
    private readonly options: CoordinatorOptions = { prepareTimeoutMs: DEFAULT_PREPARE_TIMEOUT_MS },
    private readonly onCommit: (mirrorId: string, repositoryId: number, nodes: string[]) => void = () => {},
    private readonly onEvict: (mirrorId: string, nodes: string[]) => void = () => {},
  ) {}

  private static key(mirrorId: string, repositoryId: number): string {
    return `${mirrorId}\u0000${repositoryId}`;
  }

  private entryOf(key: string): Pending {
    let entry = this.pending.get(key);
    if (!entry) this.pending.set(key, (entry = { prepared: new Map(), preparedAt: new Map(), waitingSince: undefined, timer: undefined, followers: new Map(), rounds: new Map() }));
    return entry;
  }

  /** A node staged `hash` for the repository; answers whether it may publish now. */
  async prepared(mirrorId: string, nodeId: string, repositoryId: number, hash: string): Promise<CommitOutcome> {
    await this.membership.ensureLoaded(mirrorId);
    const key = PublishCoordinator.key(mirrorId, repositoryId);
    return this.lock.run(key, async () => {
      const members = this.membership.members(mirrorId);
      if (!members.has(nodeId)) return { commit: await this.follow(mirrorId, nodeId, repositoryId, hash, members) };
      if (this.lastCommitted.get(key) === hash || (!this.lastCommitted.has(key) && (await this.othersServe(mirrorId, repositoryId, hash, members, nodeId)))) {
        this.lastCommitted.set(key, hash);
        this.pending.get(key)?.prepared.delete(nodeId);
        this.tidy(key);
        return { commit: true };
      }
      const entry = this.entryOf(key);
      entry.prepared.set(nodeId, hash);
      entry.preparedAt.set(nodeId, Date.now());
      if (!entry.rounds.has(hash)) entry.rounds.set(hash, { startedAt: Date.now(), seq: ++this.rounds });
      if (entry.waitingSince === undefined) this.arm(mirrorId, repositoryId, entry, Date.now());
      const committed = this.commitIfAgreed(mirrorId, repositoryId, hash, nodeId);
      this.tidy(key);
      return { commit: committed };
    });
  }

  /** Starts (or restarts) the repository's wait for agreement from `since`. */
  private arm(mirrorId: string, repositoryId: number, entry: Pending, since: number, at = since + this.options.prepareTimeoutMs): void {
    clearTimeout(entry.timer);
    entry.waitingSince = since;
    entry.timer = undefined;
    if (this.stopped) return;
    entry.timer = setTimeout(() => void this.expire(mirrorId, repositoryId), Math.max(0, at - Date.now()));
    entry.timer.unref();
  }

  private disarm(entry: Pending): void {
    clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.waitingSince = undefined;
  }

  /**
   * Members that hold the repository back: they staged nothing while it waited since `since`, or staged only an
   * older hash than the newest and have not staged anything since `since`.
   */
  private stuck(entry: Pending, members: Iterable<string>, since: number): string[] {
    let newest: string | undefined;
    let newestSeq = -1;
    for (const [hash, round] of entry.rounds) if (round.seq > newestSeq) [newest, newestSeq] = [hash, round.seq];
    return [...members].filter((node) => {
      const hash = entry.prepared.get(node);
      if (hash === undefined) return true;
      return hash !== newest && (entry.preparedAt.get(node) ?? 0) <= since;
    });
  }

  /**
   * Whether every other member reports serving `hash` (nothing committed since this primary started, or since
   * the farm formed). A member that stages what the others already serve, say after it restaged everything
   * before joining, may publish it at once: a round for it would wait on members that have nothing left to
   * stage, and evict them when it times out.
   */
  private async othersServe(mirrorId: string, repositoryId: number, hash: string, members: Set<string>, nodeId: string): Promise<boolean> {
    const others = [...members].filter((m) => m !== nodeId);
    if (others.length === 0) return false;
    const served = await this.store.servedHashes(mirrorId, repositoryId);
    return others.every((m) => served.get(m) === hash);
  }

  /** A node outside the active set staged `hash`: it may publish it only if the farm already agreed on it. */
  private async follow(mirrorId: string, nodeId: string, repositoryId: number, hash: string, members: Set<string>): Promise<boolean> {
    const key = PublishCoordinator.key(mirrorId, repositoryId);
    if (members.size === 0) {
      this.membership.markUnagreed(mirrorId, nodeId);
      return true;
    }
    let agreed = this.lastCommitted.get(key);
    if (agreed === undefined) {
      // Not committed since this primary started: what every member reports serving is what the farm agreed on.
      const served = await this.store.servedHashes(mirrorId, repositoryId);
      const hashes = new Set([...members].map((m) => served.get(m)));
      if (hashes.size === 1 && !hashes.has(undefined)) agreed = [...hashes][0];
    }
    if (agreed === hash) return true;
    this.entryOf(key).followers.set(nodeId, hash);
    return false;
  }

  /**
   * A node that is in sync asks to join the active set. A node that published while the farm was empty is
   * refused once, with `resync`, when others joined meanwhile: its states were agreed with nobody.
   */
  async join(mirrorId: string, nodeId: string): Promise<JoinOutcome> {
    await this.membership.ensureLoaded(mirrorId);
    const members = this.membership.members(mirrorId);
    if (members.has(nodeId)) return { member: true };
    if (members.size > 0 && this.membership.takeUnagreed(mirrorId, nodeId)) return { member: false, resync: true };
    if (members.size === 0) this.forgetCommits(mirrorId); // the first member's state is the farm's from now on
    this.membership.admit(mirrorId, nodeId);
    // What it staged as a follower now counts as staged by a member, also where no member has staged that hash
    // yet: the node will not stage it again, so a round that starts later must find it (else it waits on the
    // node for a whole prepare timeout and evicts it).
    const prefix = `${mirrorId}\u0000`;
    for (const [key, entry] of this.pending) {
      if (!key.startsWith(prefix)) continue;
      const hash = entry.followers.get(nodeId);
      entry.followers.delete(nodeId);
      if (hash !== undefined) {
        entry.prepared.set(nodeId, hash);
        entry.preparedAt.set(nodeId, Date.now());
      }
    }
    await this.store.clearEviction(mirrorId, nodeId);
    this.log.info({ mirrorId, nodeId, members: members.size + 1 }, 'mirror node joined its farm');
    return { member: true };
  }

  /**
   * A member renews its lease. A member that keeps a round waiting past the lag cutoff is answered without a
   * lease (it stays a member until the round times out, and is ready again if it catches up); a node that is
   * not a member (evicted, or it left) learns so and must resync and join again.
   */
  async renew(mirrorId: string, nodeId: string): Promise<{ member: boolean; leaseMs: number; memberCount: number }> {
    await this.membership.ensureLoaded(mirrorId);
    const memberCount = this.membership.members(mirrorId).size;
    if (!this.membership.isMember(mirrorId, nodeId)) return { member: false, leaseMs: 0, memberCount };
    if (this.lagging(mirrorId, nodeId)) return { member: true, leaseMs: 0, memberCount };
    return { member: true, ...this.membership.grant(mirrorId, nodeId) };
  }

  /** A member leaves the active set (graceful shutdown): rounds stop waiting for it at once. */
  async leave(mirrorId: string, nodeId: string): Promise<void> {
    await this.membership.ensureLoaded(mirrorId);
    if (!this.membership.remove(mirrorId, nodeId)) return;
    this.log.info({ mirrorId, nodeId }, 'mirror node left its farm');
    await this.recheck(mirrorId);
  }

  /**
   * Whether a member has kept some round waiting for longer than the lag cutoff: such a member gets no new
   * lease, so that it is out of rotation by the time the round times out.
   */
  lagging(mirrorId: string, nodeId: string, now = Date.now()): boolean {
    const cutoff = now - this.membership.timing.lagCutoffMs;
    const prefix = `${mirrorId}\u0000`;
    for (const [key, entry] of this.pending) {
      if (!key.startsWith(prefix) || entry.waitingSince === undefined || entry.waitingSince >= cutoff) continue;
      if (this.stuck(entry, [nodeId], cutoff).length) return true;
    }
    return false;
  }

  /** The active set shrank (a member left): rounds may now be complete. */
  async recheck(mirrorId: string): Promise<void> {
    const prefix = `${mirrorId}\u0000`;
    for (const key of [...this.pending.keys()].filter((k) => k.startsWith(prefix))) {
      const repositoryId = Number(key.slice(prefix.length));
      await this.lock.run(key, async () => {
        const entry = this.pending.get(key);
        if (!entry) return;
        for (const hash of [...entry.rounds.keys()]) this.commitIfAgreed(mirrorId, repositoryId, hash);
        this.tidy(key);
      });
    }
  }

  private forgetCommits(mirrorId: string): void {
    const prefix = `${mirrorId}\u0000`;
    for (const key of [...this.lastCommitted.keys()]) if (key.startsWith(prefix)) this.lastCommitted.delete(key);
  }

  /** Forgets a mirror (deleted or rejected). */
  forget(mirrorId: string): void {
    const prefix = `${mirrorId}\u0000`;
    for (const [key, entry] of this.pending) {
      if (!key.startsWith(prefix)) continue;
      clearTimeout(entry.timer);
      this.pending.delete(key);
    }
    this.forgetCommits(mirrorId);
    this.membership.forget(mirrorId);
  }

  stop(): void {
    this.stopped = true;
    for (const entry of this.pending.values()) clearTimeout(entry.timer);
    this.pending.clear();
    this.lastCommitted.clear();
  }

  /**
   * Commits `hash` when every member staged it: the poster learns it from the answer, the others (members and
   * followers that staged it) from an `event: commit` on their streams. Returns whether it committed.
   */
  private commitIfAgreed(mirrorId: string, repositoryId: number, hash: string, poster?: string): boolean {
    const key = PublishCoordinator.key(mirrorId, repositoryId);
    const entry = this.pending.get(key);
    if (!entry || !entry.rounds.has(hash)) return false;
    const members = this.membership.members(mirrorId);
    if (members.size === 0) return false;
    for (const node of members) if (entry.prepared.get(node) !== hash) return false;
    this.lastCommitted.set(key, hash);
    const participants: string[] = [];
    for (const map of [entry.prepared, entry.followers]) {
      for (const [node, h] of [...map]) {
        if (h !== hash) continue;
        map.delete(node);
        entry.preparedAt.delete(node);
        participants.push(node);
        if (node !== poster) this.farm.sendCommit(mirrorId, node, { repositoryId, refStateHash: hash });
      }
    }
    // Rounds that started before this one are superseded: nobody is evicted for an older state.
    const seq = entry.rounds.get(hash)!.seq;
    for (const [h, round] of [...entry.rounds]) if (round.seq <= seq) entry.rounds.delete(h);
    if (entry.rounds.size === 0) this.disarm(entry);
    else this.arm(mirrorId, repositoryId, entry, Math.min(...[...entry.rounds.values()].map((r) => r.startedAt)));
    this.onCommit(mirrorId, repositoryId, participants);
    return true;
  }

  /** The repository waited a whole prepare timeout: evict the stuck members (once fenced), then commit. */
  private async expire(mirrorId: string, repositoryId: number): Promise<void> {
    const key = PublishCoordinator.key(mirrorId, repositoryId);
    try {
      await this.lock.run(key, async () => {
        const entry = this.pending.get(key);
        if (!entry || entry.waitingSince === undefined || this.stopped) return;
        const now = Date.now();
        const laggards = this.stuck(entry, this.membership.members(mirrorId), now - this.options.prepareTimeoutMs);
        const fence = Math.max(0, ...laggards.map((node) => this.membership.fencedAt(mirrorId, node)));
        if (fence > now) {
          // A laggard may still be in rotation: wait until its lease and the balancer's margin are over.
          this.arm(mirrorId, repositoryId, entry, entry.waitingSince, fence + 10);
          return;
        }
        if (laggards.length) {
          // Removed before anything is awaited, so that no renewal can slip in between.
          for (const node of laggards) {
            this.membership.remove(mirrorId, node);
            entry.prepared.delete(node);
            entry.preparedAt.delete(node);
          }
          await this.store.evict(mirrorId, laggards);
          this.onEvict(mirrorId, laggards);
          this.log.warn(
            { mirrorId, repositoryId, evicted: laggards, timeoutMs: this.options.prepareTimeoutMs },
            'mirror nodes did not prepare in time; evicted them from the active set and committed on the others',
          );
        }
        // Newest first: one commit supersedes every older round.
        const byNewest = [...entry.rounds].sort(([, a], [, b]) => b.seq - a.seq).map(([hash]) => hash);
        if (!byNewest.some((hash) => this.commitIfAgreed(mirrorId, repositoryId, hash))) {
          // The members left keep staging but have not met on one hash yet: give them another timeout.
          if (entry.rounds.size) this.arm(mirrorId, repositoryId, entry, now);
          else this.disarm(entry);
        }
        this.tidy(key);
      });
      if (this.membership.members(mirrorId).size > 0) await this.recheck(mirrorId);
    } catch (err) {
      this.log.error({ err, mirrorId, repositoryId }, 'two-phase publish: handling a prepare timeout failed');
    }
  }

  /** Drops rounds nobody waits on any more, and empty entries. */
  private tidy(key: string): void {
    const entry = this.pending.get(key);
    if (!entry) return;
    const waiting = new Set(entry.prepared.values());
    for (const hash of [...entry.rounds.keys()]) if (!waiting.has(hash)) entry.rounds.delete(hash);
    if (entry.rounds.size === 0) this.disarm(entry);
    if (entry.prepared.size === 0 && entry.followers.size === 0 && entry.rounds.size === 0) this.pending.delete(key);
  }
}
