// Metrics of the primary's mirroring: open streams, events sent by disclosure, dropped streams, two-phase
// commits and evictions, webhook deliveries. Registered on the server's registry next to the others.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { StreamMetrics } from './streams.js';

function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[]): Counter<L> {
  return (registry.getSingleMetric(name) as Counter<L> | undefined) ?? new Counter({ name, help, labelNames, registers: [registry] });
}

export class MirroringMetrics implements StreamMetrics {
  private readonly streams: Gauge;
  private readonly events: Counter<'disclosure'>;
  private readonly drops: Counter<'reason'>;
  readonly commits: Counter<'outcome'>;
  readonly evictions: Counter;

  constructor(registry: Registry) {
    this.streams =
      (registry.getSingleMetric('mirrorfarm_mirror_streams_open') as Gauge | undefined) ??
      new Gauge({ name: 'mirrorfarm_mirror_streams_open', help: 'Mirror node event streams currently open.', registers: [registry] });
    this.events = counter(registry, 'mirrorfarm_mirror_stream_messages_total', 'Messages sent on mirror event streams, by disclosure (full, stripped, skip = id only, control).', ['disclosure']);
    this.drops = counter(registry, 'mirrorfarm_mirror_streams_dropped_total', 'Mirror event streams dropped by the primary, by reason.', ['reason']);
    this.commits = counter(registry, 'mirrorfarm_mirror_commits_total', 'Two-phase publish rounds committed.', ['outcome']);
    this.evictions = counter(registry, 'mirrorfarm_mirror_node_evictions_total', 'Mirror nodes evicted from their farm for not preparing in time.', []);
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
