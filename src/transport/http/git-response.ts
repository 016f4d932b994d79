// Git's output as an HTTP response body. The status is chosen only once git has written its first byte (or
// closed its output without any), so that a git failure can still become a proper HTTP error; after that,
// git's output is written straight into Node's response, in batches, with backpressure.
//
// Measured on a 306 MiB clone (bench/RESULTS.md, "HTTPS data path"): git delivers ~20,000 reads of 8-64 KiB,
// because Node reads faster than git writes. Through a child-process pipe each read is a fresh 64 KiB buffer,
// and that allocation rate made V8 collect garbage about every 300 ms of a transfer ("external memory
// pressure"): a third of the server's CPU per clone. So git's stdout is not a pipe but one end of a Unix
// socket connection, whose other end is read with net's `onread` option straight into buffers this module
// owns: each read lands in a batch at the place it belongs, and nothing is allocated or copied per read. The
// batches are shared by all responses.
//
// The connection costs a listening socket, a connect, an accept and a few event-loop turns per request, which
// only a response carrying a pack pays back, so ref advertisements and push reports, which are small, are read
// from git's pipe (fromPipe) and copied into the batches. The first version (that connection and a fresh
// 320 KiB buffer for every response) made a mirror answering 100 info/refs polls a second beside its syncs
// ~2 ms slower per poll and ~15 ms slower per sync (bench:mirror-latency); with small responses on the pipe and
// the shared batches, the figures are those from before this module read git through a socket.
//
// A batch is written out once 256 KiB have gathered or 5 ms after its first read (15x fewer TLS writes and
// syscalls than a write per read), and at once when git's output ends, so no response waits for the timer.
// Backpressure: at most two writes per response wait for the socket; reading from git stops until one is done.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { join } from 'node:path';

/** A batch is written out once it holds this much... */
export const BATCH_BYTES = 256 * 1024;
/** ...or this long after its first read. */
export const BATCH_MS = 5;
/** Room offered to each read: git writes pack data in side-band packets of up to 65,520 bytes. */
const READ_ROOM = 64 * 1024;
/** Writes of one response that may wait for the client's socket before git is read again. */
const MAX_WRITES_WAITING = 2;

class Batch {
  readonly bytes = Buffer.allocUnsafeSlow(BATCH_BYTES + READ_ROOM);
  /** Where the part not yet written out starts, and where the next read lands. */
  start = 0;
  end = 0;
  /** Writes of this batch's bytes not yet taken by the socket; it is reused only when none are left. */
  writing = 0;
  /** No more reads land here (it is full, or its response is over): free once `writing` is 0. */
  done = false;
  /** In `free`: a batch is never handed out twice. */
  pooled = false;
}

/**
 * Batches no response uses, shared by all responses: a fresh 320 KiB buffer per response (glibc maps and unmaps
 * one that large, and V8 counts it as external memory) is a cost on every small response (see the top of this
 * file). Bounded, so a burst of concurrent clones leaves at most this many behind.
 */
const free: Batch[] = [];
const MAX_FREE_BATCHES = 16;

function takeBatch(): Batch {
  const batch = free.pop() ?? new Batch();
  batch.start = batch.end = batch.writing = 0;
  batch.done = batch.pooled = false;
  return batch;
}

/** Called when a batch's last write is done or its response is over, whichever is later. */
function releaseBatch(batch: Batch): void {
  if (!batch.done || batch.writing > 0 || batch.pooled || free.length >= MAX_FREE_BATCHES) return;
  batch.pooled = true;
  free.push(batch);
}

/** Creates the owner-only directory GitOutput's sockets live in, once per server. */
export function prepareOutputDir(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/**
 * Reads git's stdout from the start, holding back what arrives until the response is committed. Either create
 * it with open(), start git with `gitEnd` as its stdout (then call gitStarted()) and pass `bytes` to
 * GitService, or start git with a pipe and read that with fromPipe().
 */
export class GitOutput {
  /** git's end of the connection (open() only): pass it as git's stdout. */
  gitEnd: Socket | undefined;
  /** The total git wrote, once its output has been read to the end (or the response gave up on it). */
  readonly bytes: Promise<number>;
  private resolveBytes!: (bytes: number) => void;
  private reader!: Readable;
  private total = 0;
  private current = takeBatch();
  private waiting = 0;
  private paused = false;
  private res: ServerResponse | undefined;
  private held: Buffer | undefined;
  private ended = false;
  private failure: Error | undefined;
  private timer: NodeJS.Timeout | undefined;
  private onEnd: (() => void) | undefined;
  private startedResolve!: () => void;
  private readonly started = new Promise<void>((resolve) => (this.startedResolve = resolve));

  private constructor() {
    this.bytes = new Promise((resolve) => (this.resolveBytes = resolve));
  }

  /**
   * Connects a fresh Unix socket in `dir` (owner-only, see prepareOutputDir) to itself: one end is for git, the
   * other is read here. The listening socket is gone again before this resolves.
   */
  static async open(dir: string): Promise<GitOutput> {
    // Short, as a Unix socket's path has at most 107 bytes: HOME/run/o-<12 hex digits>.
    const path = join(dir, `o-${randomBytes(6).toString('hex')}`);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, resolve);
    });
    try {
      const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
      const output = new GitOutput();
      const reader = connect({ path, onread: { buffer: () => output.room(), callback: (bytes: number) => output.onRead(bytes) } });
      output.attach(reader);
      output.gitEnd = await Promise.race([accepted, new Promise<never>((_resolve, reject) => reader.once('error', reject))]);
      return output;
    } finally {
      server.close(); // unlinks the path; the connection stays
    }
  }

  /** Reads git's stdout pipe, copying each chunk (at most 64 KiB, READ_ROOM) into the batches. */
  static fromPipe(stdout: Readable): GitOutput {
    const output = new GitOutput();
    output.attach(stdout);
    stdout.on('data', (chunk: Buffer) => {
      chunk.copy(output.room());
      if (!output.onRead(chunk.length)) stdout.pause();
    });
    return output;
  }

  /** Git has its copy of the socket; ours is closed, so that git's exit is the end of its output. */
  gitStarted(): void {
    this.gitEnd?.destroy();
  }

  /** Gives up on git's output (the request failed before the response started): git gets EPIPE. */
  close(): void {
    this.gitEnd?.destroy();
    this.reader.destroy();
    this.release();
  }

  /** No more reads land in the current batch: it goes back to the shared ones once its writes are done. */
  private release(): void {
    this.current.done = true;
    releaseBatch(this.current);
  }

  /** Resolves once git has written something (true) or closed its output without writing anything (false). */
  async first(): Promise<boolean> {
    await this.started;
    return this.held !== undefined;
  }

  /**
   * Sends status 200 with `headers` and git's output (after `prefix`, if any) on `res`. Resolves when the
   * response is complete or the client has gone; never rejects. A client that goes away closes git's stdout,
   * so a git still writing gets EPIPE at once (the caller's abort signal also stops it).
   */
  sendTo(res: ServerResponse, headers: OutgoingHttpHeaders, prefix?: Buffer): Promise<void> {
    return new Promise((resolve) => {
      res.once('close', () => {
        if (this.timer) clearTimeout(this.timer);
        if (!res.writableFinished) this.reader.destroy();
        this.release();
        resolve();
      });
      res.writeHead(200, headers);
      const opening = prefix && this.held ? Buffer.concat([prefix, this.held]) : (prefix ?? this.held);
      if (opening) res.write(opening);
      this.held = undefined;
      this.res = res;
      if (this.failure) return void res.destroy(this.failure);
      if (this.ended) return void res.end();
      this.onEnd = () => {
        this.send();
        if (this.failure) res.destroy(this.failure);
        else if (!res.destroyed) res.end();
      };
      this.resume();
    });
  }

  private attach(reader: Readable): void {
    this.reader = reader;
    reader.once('end', () => this.finish());
    // A broken connection to git: the response (if started) is cut off, which the client reports as an error.
    reader.on('error', (err) => {
      this.failure = err;
      this.finish();
    });
    reader.once('close', () => this.resolveBytes(this.total));
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.startedResolve();
    this.onEnd?.();
  }

  /** Where the next read lands: the free end of the current batch, or a fresh batch once it is full. */
  private room(): Buffer {
    if (this.current.bytes.length - this.current.end < READ_ROOM) {
      this.send();
      this.release();
      this.current = takeBatch();
    }
    return this.current.bytes.subarray(this.current.end);
  }

  /** `bytes` more have landed at the end of the current batch. Returns false to stop reading for now. */
  private onRead(bytes: number): boolean {
    this.total += bytes;
    const batch = this.current;
    batch.end += bytes;
    if (!this.res) {
      // Nothing more is read from git until the response has a status; git waits on its socket meanwhile.
      this.held = Buffer.from(batch.bytes.subarray(batch.start, batch.end));
      batch.start = batch.end = 0;
      this.startedResolve();
      this.paused = true;
      return false;
    }
    if (batch.end - batch.start >= BATCH_BYTES) this.send();
    else this.timer ??= setTimeout(() => this.send(), BATCH_MS);
    if (this.waiting < MAX_WRITES_WAITING) return true;
    this.paused = true;
    return false;
  }

  /** Writes out what the current batch holds beyond what was already written. */
  private send(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const res = this.res;
    const batch = this.current;
    if (!res || res.destroyed || batch.end === batch.start) return;
    const part = batch.bytes.subarray(batch.start, batch.end);
    batch.start = batch.end;
    batch.writing++;
    this.waiting++;
    res.write(part, () => {
      this.waiting--;
      batch.writing--;
      releaseBatch(batch);
      if (this.waiting < MAX_WRITES_WAITING) this.resume();
    });
  }

  private resume(): void {
    if (!this.paused || this.ended) return;
    this.paused = false;
    this.reader.resume();
  }
}
