// A mirror's own metrics, on the server's registry.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { UpstreamHealth } from './upstream-health.js';

export class MirrorMetrics {
  readonly lag: Gauge;
  readonly queueDepth: Gauge;
  readonly fetchDuration: Histogram;
  readonly failures: Counter;
  readonly authCache: Counter;
  readonly streamEvents: Counter;
  readonly snapshotDuration: Histogram;
  readonly fetchedBytes: Counter;
  readonly upstreamUp: Gauge;
  readonly upstreamSilence: Gauge;
  private health: UpstreamHealth | undefined;

  constructor(registry: Registry) {
    this.lag = new Gauge({ name: 'mirrorfarm_mirror_sync_lag_seconds', help: 'Seconds since the oldest change from the primary that this node has not yet published.', registers: [registry] });
    this.queueDepth = new Gauge({ name: 'mirrorfarm_mirror_sync_queue_depth', help: 'Repositories waiting to be synchronized.', registers: [registry] });
    this.fetchDuration = new Histogram({
      name: 'mirrorfarm_mirror_sync_duration_seconds',
      help: 'Duration of one repository sync (fetch and publish).',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120, 600],
      registers: [registry],
    });
    this.failures = new Counter({ name: 'mirrorfarm_mirror_sync_failures_total', help: 'Repository syncs that failed.', registers: [registry] });
    this.authCache = new Counter({ name: 'mirrorfarm_mirror_auth_cache_total', help: 'Delegated authentication lookups, by result (hit, miss, grace).', labelNames: ['result'], registers: [registry] });
    this.snapshotDuration = new Histogram({
      name: 'mirrorfarm_mirror_snapshot_duration_seconds',
      help: 'Duration of one snapshot pass (comparing every repository with the primary).',
      buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    });
    this.fetchedBytes = new Counter({ name: 'mirrorfarm_mirror_fetched_bytes_total', help: 'Bytes of pack data fetched from the primary.', registers: [registry] });
    // Read at scrape time, so they move even when nothing else on the node runs (the primary is away).
    this.upstreamUp = new Gauge({
      name: 'mirrorfarm_mirror_upstream_up',
      help: '1 while this node reaches its primary, 0 while it cannot (it keeps serving what it has).',
      registers: [registry],
      collect: () => {
        this.upstreamUp.set(this.health?.up() ? 1 : 0);
      },
    });
    this.upstreamSilence = new Gauge({
      name: 'mirrorfarm_mirror_upstream_last_contact_seconds',
      help: 'Seconds since this node last heard from its primary (any answer, event or stream ping).',
      registers: [registry],
      collect: () => {
        const seconds = this.health?.secondsSinceContact();
        if (seconds !== null && seconds !== undefined) this.upstreamSilence.set(seconds);
      },
    });
    this.streamEvents = new Counter({ name: 'mirrorfarm_mirror_stream_events_total', help: 'Events received from the primary.', registers: [registry] });
  }

  /** Where the upstream gauges read from. */
  watchUpstream(health: UpstreamHealth): void {
    this.health = health;
  }
}
