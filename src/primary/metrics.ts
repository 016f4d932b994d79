// Metrics of the primary's mirroring: open streams, events sent by disclosure, dropped streams, two-phase
// commits and evictions, how long publish rounds take and which wait on a slow node, and each farm's size.
// Registered on the server's registry next to the others. Per-mirror series carry the mirror id (a handful per
// primary); never a repository label, whose count is unbounded.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { StreamMetrics } from './streams.js';

function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[]): Counter<L> {
  return (registry.getSingleMetric(name) as Counter<L> | undefined) ?? new Counter({ name, help, labelNames, registers: [registry] });
}

/** A round open this long is waiting on a slow node (a healthy farm commits within milliseconds). */
export const SLOW_ROUND_MS = 1000;
/** Rounds older than this are forgotten (their mirror or repository went away mid-round). */
const MAX_ROUND_MS = 3_600_000;

/**
 * Publish rounds in progress, per mirror and repository: a round opens with the first `prepared` after the last
 * commit and closes with the next commit, so its length is the prepare-to-commit time of a change, supersedings
 * included. Kept beside the coordinator rather than in it: it only observes.
 */
export class PublishRounds {
  private readonly open = new Map<string, { mirrorId: string; hash: string; startedAt: number }>();

  private static key(mirrorId: string, repositoryId: number): string {
    return `${mirrorId}\u0000${repositoryId}`;
  }

  prepared(mirrorId: string, repositoryId: number, hash: string, now = Date.now()): void {
    const key = PublishRounds.key(mirrorId, repositoryId);
    if (!this.open.has(key)) this.open.set(key, { mirrorId, hash, startedAt: now });
  }

  /** Seconds since the round opened, when one was open. */
  committed(mirrorId: string, repositoryId: number, now = Date.now()): number | undefined {
    const key = PublishRounds.key(mirrorId, repositoryId);
    const round = this.open.get(key);
    if (!round) return undefined;
    this.open.delete(key);
    return (now - round.startedAt) / 1000;
  }

  /** A `prepared` was answered "commit" without a round (the farm had already agreed on that hash). */
  settled(mirrorId: string, repositoryId: number, hash: string): void {
    const key = PublishRounds.key(mirrorId, repositoryId);
    if (this.open.get(key)?.hash === hash) this.open.delete(key);
  }

  forget(mirrorId: string): void {
    for (const [key, round] of this.open) if (round.mirrorId === mirrorId) this.open.delete(key);
  }

  /** Rounds open longer than SLOW_ROUND_MS, per mirror. */
  waiting(now = Date.now()): Map<string, number> {
    const out = new Map<string, number>();
    for (const [key, round] of this.open) {
      const age = now - round.startedAt;
      if (age > MAX_ROUND_MS) this.open.delete(key);
      else if (age > SLOW_ROUND_MS) out.set(round.mirrorId, (out.get(round.mirrorId) ?? 0) + 1);
    }
    return out;
  }
}

export interface FarmSizeSource {
  farmSizes(): Promise<Array<{ mirrorId: string; memberCount: number; activeCount: number }>>;
}

export class MirroringMetrics implements StreamMetrics {
  private readonly streams: Gauge;
  private readonly events: Counter<'disclosure'>;
  private readonly drops: Counter<'reason'>;
  readonly commits: Counter<'outcome'>;
  readonly evictions: Counter<'mirror_id'>;
  readonly prepareToCommit: Histogram<'mirror_id'>;
  readonly rounds = new PublishRounds();

  constructor(registry: Registry, farms?: FarmSizeSource) {
    this.streams =
      (registry.getSingleMetric('mirrorfarm_mirror_streams_open') as Gauge | undefined) ??
      new Gauge({ name: 'mirrorfarm_mirror_streams_open', help: 'Mirror node event streams currently open.', registers: [registry] });
    this.events = counter(registry, 'mirrorfarm_mirror_stream_messages_total', 'Messages sent on mirror event streams, by disclosure (full, stripped, skip = id only, control).', ['disclosure']);
    this.drops = counter(registry, 'mirrorfarm_mirror_streams_dropped_total', 'Mirror event streams dropped by the primary, by reason.', ['reason']);
    this.commits = counter(registry, 'mirrorfarm_mirror_commits_total', 'Two-phase publish rounds committed.', ['outcome']);
    this.evictions = counter(registry, 'mirrorfarm_mirror_node_evictions_total', 'Mirror nodes evicted from their farm for not preparing in time, by mirror.', ['mirror_id']);
    this.prepareToCommit = new Histogram({
      name: 'mirrorfarm_mirror_prepare_to_commit_seconds',
      help: "Per repository change: from the first node's prepared to the commit of the farm, by mirror.",
      labelNames: ['mirror_id'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    });
    const rounds = this.rounds;
    new Gauge({
      name: 'mirrorfarm_mirror_commits_waiting',
      help: `Publish rounds open for more than ${SLOW_ROUND_MS / 1000} s, by mirror: a node staged the change and the farm waits for a slower node before committing.`,
      labelNames: ['mirror_id'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [mirrorId, n] of rounds.waiting()) this.set({ mirror_id: mirrorId }, n);
      },
    });
    if (farms) {
      // Read at scrape time from what the primary knows, so a deleted farm's series disappear with it.
      const farmGauge = (name: string, help: string, pick: (f: { memberCount: number; activeCount: number }) => number) =>
        new Gauge({
          name,
          help,
          labelNames: ['mirror_id'],
          registers: [registry],
          async collect() {
            const sizes = await farms.farmSizes();
            this.reset();
            for (const f of sizes) this.set({ mirror_id: f.mirrorId }, pick(f));
          },
        });
      farmGauge('mirrorfarm_mirror_farm_nodes', 'Nodes of each authorized mirror farm in contact with the primary (not OFFLINE), by mirror.', (f) => f.memberCount);
      farmGauge('mirrorfarm_mirror_farm_active_nodes', 'Nodes of each farm that every change waits for (role ACTIVE), by mirror.', (f) => f.activeCount);
    }
  }

  /** A round committed: its prepare-to-commit time is observed. */
  committed(mirrorId: string, repositoryId: number): void {
    const seconds = this.rounds.committed(mirrorId, repositoryId);
    if (seconds !== undefined) this.prepareToCommit.observe({ mirror_id: mirrorId }, seconds);
  }

  opened(): void {
    this.streams.inc();
  }

  closed(): void {
    this.streams.dec();
  }

  sent(kind: 'full' | 'stripped' | 'skip' | 'control'): void {
    this.events.inc({ disclosure: kind });
  }

  dropped(reason: string): void {
    this.drops.inc({ reason });
  }
}
