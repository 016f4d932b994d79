// After the primary accepted a push that came through this mirror, the client is let go only once what it
// pushed is served here: this node has published the accepted refs (which the farm's two-phase publish allows
// only once every active node staged them), and every member of the farm reports serving that state, so a fetch
// right after the push sees it whichever node answers. The wait is bounded; the caller tells the client when it
// ran out (also when a newer push moved the same ref meanwhile: what the client pushed is then no longer served).
import { Transform, type TransformCallback } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RepositoryView } from '../../domain/repositories.js';
import type { Logger } from '../../obs/logger.js';
import { refStateHash } from '../../git/ref-hash.js';
import type { RefState } from '../../git/repo-store.js';
import { acceptedRefs, isDelete, progressMessage, type PushCommand, type PushRequestReader } from './protocol.js';

export interface PublishedSource {
  readRefs(repositoryId: number): Promise<RefState>;
  /** Resolves at this node's next publish of the repository, or after `ms`, whichever comes first. */
  nextPublish(repositoryId: number, ms: number): Promise<void>;
  /** How many farm members there are and how many serve `hash` (the primary's view). */
  farmServing(repositoryId: number, hash: string): Promise<{ members: number; serving: number }>;
}

/** Tells waiters when the sync engine published a repository (fed from its results). */
export class PublishSignal {
  private readonly waiters = new Map<number, Set<() => void>>();

  published(repositoryId: number): void {
    const waiting = this.waiters.get(repositoryId);
    this.waiters.delete(repositoryId);
    for (const wake of waiting ?? []) wake();
  }

  next(repositoryId: number, ms: number): Promise<void> {
    return new Promise((resolve) => {
      let set = this.waiters.get(repositoryId);
      if (!set) this.waiters.set(repositoryId, (set = new Set()));
      const wake = () => {
        clearTimeout(timer);
        this.waiters.get(repositoryId)?.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      timer.unref();
      set.add(wake);
    });
  }
}

/** While the farm's reports come in, how often the primary is asked. */
const FARM_POLL_MS = 25;
/** A publish that the signal missed is still noticed this soon. */
const LOCAL_RECHECK_MS = 500;

function published(refs: RefState, commands: PushCommand[]): boolean {
  return commands.every((c) => (isDelete(c) ? !refs.has(c.ref) : refs.get(c.ref) === c.newOid));
}

/** Resolves true once the commands are served by the whole farm, false when `timeoutMs` ran out first. */
export async function waitForPublished(source: PublishedSource, repositoryId: number, commands: PushCommand[], timeoutMs: number): Promise<boolean> {
  if (commands.length === 0) return true;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    // Asked for before the refs are read, so that a publish between the two is not missed.
    const next = source.nextPublish(repositoryId, Math.max(0, Math.min(LOCAL_RECHECK_MS, deadline - Date.now())));
    const refs = await source.readRefs(repositoryId).catch(() => undefined);
    if (refs && published(refs, commands)) {
      const hash = refStateHash(refs);
      const farm = await source.farmServing(repositoryId, hash).catch(() => undefined);
      if (farm && farm.serving >= farm.members) return true;
      await sleep(FARM_POLL_MS);
    } else {
      // Not published here yet: wait for this node's next publish rather than reading the refs again and again.
      await next;
    }
  }
  return false;
}

/**
 * Passes the answer on as it comes, but its last four bytes (the final flush-pkt) only after `beforeEnd`
 * resolved, so that the client finishes the push only then. What `beforeEnd` returns (whole pkt-lines) is sent
 * just before that flush, where a pkt-line boundary is certain.
 */
class HoldFinalFlush extends Transform {
  private tail = Buffer.alloc(0);
  constructor(
    private readonly beforeEnd: () => Promise<Buffer>,
    /** Whether the answer to the push has begun: over SSH the ref advertisement comes first and must pass whole. */
    private readonly armed: () => boolean,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    if (!this.armed()) {
      this.push(chunk);
      return callback();
    }
    const all = this.tail.length ? Buffer.concat([this.tail, chunk]) : chunk;
    const keep = Math.min(4, all.length);
    if (all.length > keep) this.push(all.subarray(0, all.length - keep));
    this.tail = Buffer.from(all.subarray(all.length - keep));
    callback();
  }
  override _flush(callback: TransformCallback): void {
    this.beforeEnd().then(
      (extra) => {
        if (extra.length && this.tail.toString('latin1') === '0000') this.push(extra);
        if (this.tail.length) this.push(this.tail);
        callback();
      },
      (err: Error) => callback(err),
    );
  }
}

/** The most of the primary's answer kept to read its report-status (progress messages included). */
const MAX_REPORT_BYTES = 4 * 1024 * 1024;

/**
 * The primary's answer to a push on its way to the client, held at its final flush until the farm serves
 * what the primary accepted. `record` is given every chunk of the answer (for its report-status).
 */
export function holdUntilServed(
  deps: { published: PublishedSource; waitMs: number; log: Logger },
  view: RepositoryView,
  request: PushRequestReader,
): { stream: Transform; record(chunk: Buffer): void } {
  const answer: Buffer[] = [];
  let answerBytes = 0;
  const started = Date.now();
  const stream = new HoldFinalFlush(async () => {
    const head = request.result();
    if (!head) return Buffer.alloc(0);
    const accepted = acceptedRefs(Buffer.concat(answer), head.sideBand);
    const commands = head.commands.filter((c) => accepted.has(c.ref));
    const served = await waitForPublished(deps.published, view.repo.id, commands, deps.waitMs);
    deps.log.info({ repository: `${view.project.key}/${view.repo.slug}`, refs: commands.length, served, ms: Date.now() - started }, 'push passed on to the primary');
    if (served) return Buffer.alloc(0);
    return progressMessage(
      `mirrorfarm: the primary accepted the push, but this mirror did not serve it within ${Math.round(deps.waitMs / 1000)} s; a fetch from the mirror may not show it for a moment.`,
      head.sideBand,
    );
  }, () => request.result() !== undefined);
  return {
    stream,
    record(chunk) {
      if (answerBytes < MAX_REPORT_BYTES) answer.push(chunk);
      answerBytes += chunk.length;
    },
  };
}
