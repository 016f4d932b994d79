// After a repository synced, a mirror fetches the Git LFS objects that its default branch's tip refers to and
// that it does not have yet, so that the first clone after a push finds them here instead of crossing to the
// primary. One pass per repository at a time (a sync during a pass asks for one more pass afterwards), a few
// objects at a time. What cannot be fetched (the primary does not have it either, or it failed) is kept per
// repository, for /status: a repository whose checkout would fail on this mirror is visible before a user hits it.
import type { RepoStore } from '../git/repo-store.js';
import type { GitRunner } from '../git/runner.js';
import type { Logger } from '../obs/logger.js';
import type { LfsFetchThrough } from './fetch-through.js';
import type { LfsObjectStore } from './object-store.js';
import { pointersAt, type LfsPointer } from './pointers.js';

const PARALLEL = 2;

export interface MissingLfsObjects {
  repositoryId: number;
  /** How many objects of the default branch's tip the mirror has not got. */
  missing: number;
  /** The first few of them, with why. */
  examples: Array<{ oid: string; error: string }>;
}

export class LfsPrefetcher {
  private readonly running = new Map<number, Promise<void>>();
  private readonly again = new Set<number>();
  private readonly missing = new Map<number, MissingLfsObjects>();

  constructor(
    private readonly repos: RepoStore,
    private readonly git: GitRunner,
    private readonly store: LfsObjectStore,
    private readonly fetcher: LfsFetchThrough,
    private readonly log: Logger,
  ) {}

  /** Asks for a pass over the repository (after it synced). */
  request(repositoryId: number): void {
    if (this.running.has(repositoryId)) {
      this.again.add(repositoryId);
      return;
    }
    const pass = this.pass(repositoryId)
      .catch((err: Error) => this.log.warn({ repositoryId, err: err.message }, 'Git LFS prefetch failed'))
      .finally(() => {
        this.running.delete(repositoryId);
        if (this.again.delete(repositoryId)) this.request(repositoryId);
      });
    this.running.set(repositoryId, pass);
  }

  /** Resolves when no pass is running (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.all([...this.running.values()]);
  }

  report(): MissingLfsObjects[] {
    return [...this.missing.values()];
  }

  forget(repositoryId: number): void {
    this.missing.delete(repositoryId);
  }

  private async pass(repositoryId: number): Promise<void> {
    if (!this.repos.exists(repositoryId)) return;
    const refs = await this.repos.readRefs(repositoryId);
    const head = refs.get('HEAD');
    const tip = head?.startsWith('ref: ') ? refs.get(head.slice(5)) : undefined;
    if (!tip) return this.forget(repositoryId);
    const pointers = await pointersAt(this.git, this.repos.pathOf(repositoryId), tip);
    const absent: LfsPointer[] = [];
    for (const p of pointers) if ((await this.store.size(repositoryId, p.oid)) === undefined) absent.push(p);
    const failed: Array<{ oid: string; error: string }> = [];
    let next = 0;
    const worker = async () => {
      while (next < absent.length) {
        const { oid } = absent[next++]!;
        try {
          const { body } = await this.fetcher.open(repositoryId, oid, false);
          body.resume();
          await new Promise<void>((resolve, reject) => body.once('end', resolve).once('error', reject));
        } catch (err) {
          failed.push({ oid, error: (err as Error).message });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, absent.length) }, worker));
    if (absent.length) this.log.info({ repositoryId, fetched: absent.length - failed.length, failed: failed.length }, 'prefetched Git LFS objects of the default branch');
    if (failed.length) this.missing.set(repositoryId, { repositoryId, missing: failed.length, examples: failed.slice(0, 5) });
    else this.missing.delete(repositoryId);
  }
}
