// Git's output as an HTTP response body. The status is chosen only once git has written its first byte (or
// closed its output without any), so that a git failure can still become a proper HTTP error; after that,
// git's stdout is written straight into Node's response, in batches, with backpressure.
//
// Measured on a 306 MiB clone (bench/RESULTS.md, "HTTPS data path"): git's pipe delivers ~20,000 reads of
// 8-64 KiB, because Node reads faster than git writes. Before, each read went through a PassThrough, a
// pipe() pause/resume cycle (a socket's 16 KiB high-water mark pauses the source after every read), its own
// chunk frame, TLS write and loopback syscall, plus a counting 'data' listener. Writing the reads into the
// corked response and uncorking once 256 KiB or 5 ms have gathered cuts the TLS writes and syscalls ~15x
// (~1,400 per clone); batching per event-loop turn instead does not batch at all (1.2 reads per batch, as
// git is the slower side). Backpressure is per batch: git is paused while the socket has not drained, so at
// most one batch per response waits in memory. A batch is sent at once when git's output ends, so no
// response waits for the timer; within a response, nothing waits on a client round trip.
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';

/** A batch is written out once it holds this much... */
export const BATCH_BYTES = 256 * 1024;
/** ...or this long after its first read. */
export const BATCH_MS = 5;

/** Reads git's stdout from the start, holding back what arrives until the response is committed. */
export class GitOutput {
  private readonly held: Buffer[] = [];
  private sink: ((chunk: Buffer) => void) | undefined;
  private ended = false;
  private onEnd: (() => void) | undefined;
  private onError: ((err: Error) => void) | undefined;
  private readonly started: Promise<void>;

  constructor(private readonly source: Readable) {
    this.started = new Promise((resolve) => {
      source.on('data', (chunk: Buffer) => {
        if (this.sink) return this.sink(chunk);
        this.held.push(chunk);
        // Nothing more is read from git until the response has a status; git waits on its pipe meanwhile.
        source.pause();
        resolve();
      });
      source.once('end', () => {
        this.ended = true;
        this.onEnd?.();
        resolve();
      });
      // A broken pipe from git: the response (if started) is cut off, which the client reports as an error.
      source.on('error', (err) => {
        this.ended = true;
        this.onError?.(err);
        resolve();
      });
    });
  }

  /** Resolves once git has written something (true) or closed its output without writing anything (false). */
  async first(): Promise<boolean> {
    await this.started;
    return this.held.length > 0;
  }

  /**
   * Sends status 200 with `headers` and git's output (after `prefix`, if any) on `res`. Resolves when the
   * response is complete or the client has gone; never rejects. A client that goes away closes git's stdout,
   * so a git still writing gets EPIPE at once (the caller's abort signal also stops it).
   */
  sendTo(res: ServerResponse, headers: OutgoingHttpHeaders, prefix?: Buffer): Promise<void> {
    return new Promise((resolve) => {
      const source = this.source;
      let corked = false;
      let batched = 0;
      let timer: NodeJS.Timeout | undefined;
      const flush = () => {
        if (timer) clearTimeout(timer);
        timer = undefined;
        if (!corked) return;
        corked = false;
        batched = 0;
        res.uncork();
        if (res.writableNeedDrain && !this.ended) {
          source.pause();
          res.once('drain', () => source.resume());
        }
      };
      const write = (chunk: Buffer) => {
        if (res.destroyed) return;
        if (!corked) {
          corked = true;
          res.cork();
        }
        // The return value is checked per batch, in flush(): write() says false as soon as 16 KiB wait.
        res.write(chunk);
        batched += chunk.length;
        if (batched >= BATCH_BYTES) flush();
        else timer ??= setTimeout(flush, BATCH_MS);
      };
      const finish = () => {
        flush();
        if (!res.destroyed) res.end();
      };
      res.once('close', () => {
        if (timer) clearTimeout(timer);
        if (!res.writableFinished) source.destroy();
        resolve();
      });
      this.onError = (err) => res.destroy(err);
      res.writeHead(200, headers);
      if (prefix) write(prefix);
      for (const chunk of this.held.splice(0)) write(chunk);
      this.sink = write;
      if (this.ended) finish();
      else {
        this.onEnd = finish;
        source.resume();
      }
    });
  }
}
