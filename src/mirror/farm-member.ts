// This node's membership in its farm's active set, as the node sees it (the primary's side is
// src/primary/membership.ts). The node joins once it is in sync, renews its lease while it is a member, and
// reports ready only while the lease runs: a node cut off from the primary, or one that keeps a round waiting,
// takes itself out of the load balancer's rotation before the others may publish without it. After joining it
// is ready only once it has handled every event up to the moment it joined, so that it does not serve a state
// the farm already moved past. On shutdown it stops reporting ready, stays a member while the balancer takes
// it out of rotation (it keeps staging and publishing meanwhile), then leaves.
import type { Logger } from '../obs/logger.js';
import type { Upstream } from './upstream.js';

interface MembershipAnswer {
  member: boolean;
  leaseMs: number;
  renewMs: number;
  drainMs: number;
  memberCount: number;
  resync?: boolean;
  lastEventId?: number;
}

export interface FarmMemberView {
  member: boolean;
  ready: boolean;
  memberCount: number | null;
  leaseSeconds: number | null;
}

export interface FarmMemberHooks {
  /** Close enough to join: the first pass done, every repository synced once, nothing asked for long unanswered. */
  canJoin(): Promise<boolean>;
  /** The last event id this node has handled. */
  cursor(): number;
  /** The sync engine's request generation, and whether everything asked for up to one is published. */
  generation(): number;
  servedUpTo(generation: number): boolean;
  /** Every sync result so far has reached the primary (which then lists this node as in sync). */
  reported(): boolean;
  /** Evicted: repair what was missed (a snapshot pass). */
  resync(): void;
  /** Published while the farm was empty: stage every repository again. */
  restageAll(): void;
  changed(): void;
  /**
   * Whether to stay ready after the lease ran out (mirror.farmAvailability: available, while the primary cannot
   * be reached). Off by default: the node cannot tell an outage of the primary from being the one cut off.
   */
  servesBeyondLease(): boolean;
}

const FIRST_RENEW_MS = 250;
const CALL_TIMEOUT_MS = 5_000;

export class FarmMember {
  private member = false;
  private caughtUp = false;
  private joinedAt = 0;
  /** Once the events up to joinedAt are handled: the requests they made, which must be published. */
  private catchUpTo: number | undefined;
  private leaseUntil = 0;
  private draining = false;
  private memberCount: number | null = null;
  private renewMs = FIRST_RENEW_MS;
  private drainMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private running = false;

  constructor(
    private readonly upstream: Upstream,
    private readonly hooks: FarmMemberHooks,
    private readonly log: Logger,
    private readonly now: () => number = () => performance.now(),
  ) {}

  start(): void {
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Ready for the load balancer: a member, caught up, and within its lease. */
  ready(): boolean {
    return this.member && this.caughtUp && !this.draining && (this.now() < this.leaseUntil || this.hooks.servesBeyondLease());
  }

  /** Something suggests the primary may be gone (the event stream broke): ask now rather than at the next renewal. */
  probeSoon(): void {
    if (!this.running) this.schedule(0);
  }

  /** Counted by the coordinator and caught up (the node serves what the farm agreed on, lease aside). */
  established(): boolean {
    return this.member && this.caughtUp;
  }

  view(): FarmMemberView {
    const left = this.leaseUntil - this.now();
    return { member: this.member, ready: this.ready(), memberCount: this.memberCount, leaseSeconds: this.member ? Math.max(0, Math.round(left / 100) / 10) : null };
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.step(), ms);
    this.timer.unref();
  }

  private async call(action: 'join' | 'renew' | 'leave'): Promise<{ answer: MembershipAnswer; sentAt: number }> {
    const sentAt = this.now();
    const answer = await Promise.race([
      this.upstream.call<MembershipAnswer>('POST', '/rest/mirroring/1.0/mirror/membership', { action }),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('membership call timed out')), CALL_TIMEOUT_MS).unref()),
    ]);
    this.renewMs = answer.renewMs;
    this.drainMs = answer.drainMs;
    this.memberCount = answer.memberCount;
    return { answer, sentAt };
  }

  private async step(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    try {
      if (this.member) await this.renew();
      else if (!this.draining && (await this.hooks.canJoin())) await this.join();
      if (this.member && !this.caughtUp && this.catchUpTo === undefined && this.hooks.cursor() >= this.joinedAt) this.catchUpTo = this.hooks.generation();
      if (this.member && !this.caughtUp && this.catchUpTo !== undefined && this.hooks.servedUpTo(this.catchUpTo) && this.hooks.reported()) {
        this.caughtUp = true;
        this.log.info({ memberCount: this.memberCount }, 'member of the farm and caught up: ready');
        this.hooks.changed();
      }
    } catch (err) {
      // The lease runs out by itself if this goes on.
      this.log.debug({ err: (err as Error).message }, 'farm membership call failed');
    } finally {
      this.running = false;
      this.schedule(this.member && this.caughtUp ? this.renewMs : FIRST_RENEW_MS);
    }
  }

  private async join(): Promise<void> {
    const { answer, sentAt } = await this.call('join');
    if (!answer.member) {
      if (answer.resync) {
        this.log.info('the farm formed while this node published on its own: staging everything again before joining');
        this.hooks.restageAll();
      }
      return;
    }
    this.member = true;
    this.caughtUp = false;
    this.catchUpTo = undefined;
    this.joinedAt = answer.lastEventId ?? 0;
    if (answer.leaseMs > 0) this.leaseUntil = sentAt + answer.leaseMs;
    this.log.info({ memberCount: answer.memberCount, lastEventId: this.joinedAt }, 'joined the farm');
  }

  private async renew(): Promise<void> {
    const { answer, sentAt } = await this.call('renew');
    if (!answer.member) {
      this.lost('the primary no longer counts this node in its farm (evicted): resynchronizing, then joining again');
      return;
    }
    if (answer.leaseMs > 0) this.leaseUntil = sentAt + answer.leaseMs;
  }

  private lost(message: string): void {
    const wasReady = this.ready();
    this.member = false;
    this.caughtUp = false;
    this.catchUpTo = undefined;
    this.leaseUntil = 0;
    this.log.warn({ wasReady }, message);
    this.hooks.resync();
    this.hooks.changed();
  }

  /** Tells the primary that this node is not a member (at start: a restarted node must catch up first). */
  async reset(): Promise<void> {
    try {
      await this.call('leave');
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'could not tell the primary that this node starts afresh');
    }
  }

  /** Graceful shutdown: unready at once, still a member while the balancer notices, then leave. */
  async leave(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.hooks.changed();
    if (!this.member) return;
    if ((this.memberCount ?? 1) > 1 && this.drainMs > 0) {
      this.log.info({ drainMs: this.drainMs }, 'leaving the farm: not ready, staying a member until the load balancer has noticed');
      await new Promise((resolve) => setTimeout(resolve, this.drainMs).unref());
    }
    this.stop();
    try {
      await this.call('leave');
      this.log.info('left the farm');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not tell the primary that this node leaves; it will be evicted instead');
    }
    this.member = false;
  }
}
