// The optional outgoing webhook of a primary (mirroring.webhookUrl): "mirror:repo_synchronized" when a mirror
// has a repository in sync at the primary's current state on all of its active nodes, so CI can start jobs that
// clone from that mirror. Delivery is best effort: a few retries with backoff, failures are logged, nothing
// waits for it. TLS is always validated, against Node's trust store plus the configured CA bundle.
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { rootCertificates } from 'node:tls';
import type { Logger } from '../obs/logger.js';

export interface RepoSynchronized {
  eventKey: 'mirror:repo_synchronized';
  mirrorServer: { id: string; name: string };
  repository: { id: number; slug: string; project: { key: string } };
  refStateHash: string;
  date: string;
}

export interface WebhookOptions {
  url: string;
  /** Extra PEM CA bundle to trust besides Node's defaults. */
  caFile?: string;
  /** Delays before each retry; the number of entries is the number of retries. */
  retryDelaysMs?: number[];
  timeoutMs?: number;
}

export class WebhookNotifier {
  private readonly ca: string[] | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;

  constructor(
    private readonly options: WebhookOptions,
    private readonly log: Logger,
  ) {
    if (!/^https:\/\//i.test(options.url)) throw new Error(`mirroring.webhookUrl must be an https:// URL, not ${options.url}`);
    this.ca = options.caFile ? [...rootCertificates, readFileSync(options.caFile, 'utf8')] : undefined;
  }

  notify(payload: RepoSynchronized): void {
    if (this.stopped) return;
    const delivery = this.deliver(payload).finally(() => this.inFlight.delete(delivery));
    this.inFlight.add(delivery);
  }

  /** Lets deliveries in flight finish their current attempt; no retry starts afterwards. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.allSettled([...this.inFlight]);
  }

  private async deliver(payload: RepoSynchronized): Promise<void> {
    const delays = this.options.retryDelaysMs ?? [1_000, 5_000, 30_000];
    const body = Buffer.from(JSON.stringify(payload));
    for (let attempt = 0; ; attempt++) {
      try {
        const status = await this.post(body);
        if (status >= 200 && status < 300) return;
        throw new Error(`HTTP ${status}`);
      } catch (err) {
        const last = attempt >= delays.length || this.stopped;
        this.log[last ? 'error' : 'warn'](
          { err, url: this.options.url, attempt: attempt + 1, mirrorId: payload.mirrorServer.id, repositoryId: payload.repository.id },
          last ? 'mirror webhook delivery failed; giving up' : 'mirror webhook delivery failed; will retry',
        );
        if (last) return;
        await new Promise((resolve) => setTimeout(resolve, delays[attempt]).unref());
        if (this.stopped) return;
      }
    }
  }

  private post(body: Buffer): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = request(
        this.options.url,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': body.length, 'user-agent': 'mirrorfarm' },
          ...(this.ca ? { ca: this.ca } : {}),
          timeout: this.options.timeoutMs ?? 10_000,
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', reject);
      req.end(body);
    });
  }
}
