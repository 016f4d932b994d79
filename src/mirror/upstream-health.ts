// Whether this node can reach its primary right now, since when it cannot, and the last outage it lived through.
// Fed by every HTTPS exchange with the primary (calls, the event stream and its pings) and by preflight. A node
// keeps serving what it has while the primary is away (that is what a mirror is for); this is how /status, the
// metrics and, once it is back, the primary learn that what it serves may be stale.

export type UpstreamConnection = 'UNKNOWN' | 'CONNECTED' | 'UNREACHABLE';

export interface UpstreamOutage {
  errorCode: string;
  message: string;
  /** ISO 8601: the first failed exchange. */
  since: string;
  /** ISO 8601: the first successful exchange after it; absent while the outage lasts. */
  until?: string;
}

export interface UpstreamView {
  state: UpstreamConnection;
  errorCode: string | null;
  message: string | null;
  since: string | null;
  lastContact: string | null;
  /** Seconds since the last successful exchange with the primary; null before the first. */
  secondsSinceContact: number | null;
  lastOutage: UpstreamOutage | null;
}

/** HTTP statuses that mean "the primary is not there" (a proxy or load balancer in front answered for it). */
const UNAVAILABLE_STATUSES = new Set([502, 503, 504]);

export class UpstreamHealth {
  private state: UpstreamConnection = 'UNKNOWN';
  private lastContactAt: number | undefined;
  private current: { errorCode: string; message: string; since: number } | undefined;
  private last: UpstreamOutage | undefined;

  constructor(
    private readonly onChange: (from: UpstreamConnection, to: UpstreamConnection, detail: { errorCode?: string; message?: string; outageSeconds?: number }) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  /** A response arrived from the primary (whatever its status, unless it says the primary is unavailable). */
  contact(status?: number): void {
    if (status !== undefined && UNAVAILABLE_STATUSES.has(status)) {
      this.failure(`MIRROR_UPSTREAM_HTTP_${status}`, `The primary, or the proxy in front of it, answered HTTP ${status}.`);
      return;
    }
    const now = this.now();
    this.lastContactAt = now;
    if (this.state === 'CONNECTED') return;
    const from = this.state;
    this.state = 'CONNECTED';
    if (this.current) {
      this.last = { errorCode: this.current.errorCode, message: this.current.message, since: new Date(this.current.since).toISOString(), until: new Date(now).toISOString() };
      const outageSeconds = (now - this.current.since) / 1000;
      this.current = undefined;
      this.onChange(from, 'CONNECTED', { outageSeconds });
    } else {
      this.onChange(from, 'CONNECTED', {});
    }
  }

  /** An exchange with the primary failed before any answer (connection refused, DNS, TLS, timeout). */
  failure(errorCode: string, rawMessage: string): void {
    // Reported to the primary, whose report schema bounds the length.
    const message = rawMessage.slice(0, 500);
    const from = this.state;
    if (!this.current) this.current = { errorCode, message, since: this.now() };
    else {
      // The latest reason is the useful one; the outage still started when it started.
      this.current.errorCode = errorCode;
      this.current.message = message;
    }
    this.state = 'UNREACHABLE';
    if (from !== 'UNREACHABLE') this.onChange(from, 'UNREACHABLE', { errorCode, message });
  }

  up(): boolean {
    return this.state === 'CONNECTED';
  }

  /** Seconds since the last successful exchange, or since the node started trying when it never had one. */
  secondsSinceContact(): number | null {
    return this.lastContactAt === undefined ? null : (this.now() - this.lastContactAt) / 1000;
  }

  /** The error that stops the node from reaching its primary right now, for /status. */
  error(): { code: string; message: string } | undefined {
    return this.current ? { code: this.current.errorCode, message: this.current.message } : undefined;
  }

  view(): UpstreamView {
    const seconds = this.secondsSinceContact();
    return {
      state: this.state,
      errorCode: this.current?.errorCode ?? null,
      message: this.current?.message ?? null,
      since: this.current ? new Date(this.current.since).toISOString() : null,
      lastContact: this.lastContactAt === undefined ? null : new Date(this.lastContactAt).toISOString(),
      secondsSinceContact: seconds === null ? null : Math.round(seconds * 10) / 10,
      lastOutage: this.last ?? null,
    };
  }

  /**
   * What the node tells the primary in each report: the last outage that is over. One still going on is left
   * out: a report that gets through ends it, and the primary would otherwise keep an outage without its end
   * (the report was written before the answer that ended it arrived).
   */
  report(): { state: UpstreamConnection; lastOutage?: UpstreamOutage } {
    return { state: this.state, ...(this.last ? { lastOutage: this.last } : {}) };
  }
}
