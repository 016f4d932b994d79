// The mirror's end of the event stream: one long-lived SSE request to the primary, resumed from the last event
// id after any interruption, with backoff. Parsing is ours because the stream needs the mirror's signed token
// and trust store on every reconnect, which EventSource implementations do not offer.
import type { IncomingMessage } from 'node:http';
import type { Logger } from '../obs/logger.js';
import { readBody, type Upstream } from './upstream.js';
import { errorOfBody, MirrorfarmError } from '../errors.js';

/**
 * The primary pings every 15 s; a stream silent for three pings is dead (a primary that vanished without closing
 * the connection). The ordinary 15 s request timeout would race the pings and report false outages.
 */
const STREAM_IDLE_TIMEOUT_MS = 45_000;

export interface StreamMessage {
  id: number | undefined;
  event: string;
  data: unknown;
}

export interface StreamHandlers {
  /** Resolves once the message is handled; the cursor advances only then. */
  onMessage(message: StreamMessage): Promise<void>;
  /** An id-only line: nothing to do but remember the cursor. */
  onCursor(id: number): Promise<void>;
  /** Called when the primary refuses us for good (deleted, rejected). */
  onRefused(err: MirrorfarmError): void;
  onConnected(): void;
  onDisconnected(err: Error | undefined): void;
}

export class EventStreamClient {
  private abort: AbortController | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly upstream: Upstream,
    private readonly cursor: () => number,
    private readonly handlers: StreamHandlers,
    private readonly log: Logger,
  ) {}

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
    this.wake?.();
  }

  /** The primary answers again (another call got through): reconnect now rather than after the backoff. */
  nudge(): void {
    this.wake?.();
  }

  private async loop(): Promise<void> {
    let delay = 250;
    while (!this.stopped) {
      this.abort = new AbortController();
      let err: Error | undefined;
      try {
        const res = await this.upstream.open('GET', '/rest/mirroring/1.0/mirror/stream', undefined, { accept: 'text/event-stream', 'last-event-id': String(this.cursor()) }, this.abort.signal, STREAM_IDLE_TIMEOUT_MS);
        if (res.statusCode !== 200) {
          const text = await readBody(res, 64 * 1024).catch(() => '');
          const first = (() => {
            try {
              return errorOfBody(JSON.parse(text));
            } catch {
              return undefined;
            }
          })();
          const refused = new MirrorfarmError(first?.code ?? `HTTP_${res.statusCode}`, res.statusCode ?? 0, first?.message ?? `the primary answered the event stream with HTTP ${res.statusCode}`);
          if (res.statusCode === 403) {
            this.handlers.onRefused(refused);
            return;
          }
          throw refused;
        }
        delay = 250;
        this.handlers.onConnected();
        await this.consume(res);
      } catch (e) {
        err = e as Error;
      }
      if (this.stopped) return;
      this.handlers.onDisconnected(err);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
      delay = Math.min(delay * 2, 10_000);
    }
  }

  private async consume(res: IncomingMessage): Promise<void> {
    let buffer = '';
    let id: number | undefined;
    let event = 'message';
    let data: string[] = [];
    res.setEncoding('utf8');
    for await (const chunk of res) {
      // Every chunk (events and the primary's pings) is proof that the primary is there.
      this.upstream.health?.contact();
      buffer += chunk as string;
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, '');
        buffer = buffer.slice(newline + 1);
        if (line === '') {
          if (data.length) {
            let parsed: unknown;
            try {
              parsed = JSON.parse(data.join('\n'));
            } catch {
              this.log.warn({ event }, 'ignoring a malformed event from the primary');
              parsed = undefined;
            }
            if (parsed !== undefined) await this.handlers.onMessage({ id, event, data: parsed });
          } else if (id !== undefined) {
            await this.handlers.onCursor(id);
          }
          id = undefined;
          event = 'message';
          data = [];
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'id') id = /^\d+$/.test(value) ? Number(value) : undefined;
        else if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
    }
  }
}
