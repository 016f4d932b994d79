// Keeps this node's repositories equal to the primary's. Work is a per-repository queue that merges duplicate
// requests and runs with bounded parallelism. Syncing a repository is two-phase: prepare fetches every ref of
// the primary over SSH into the hidden namespace refs/mirrorfarm/staged/ (pruning only there, and only after
// the fetch succeeded) and tells the primary the staged ref-state hash; commit (when the primary says all
// nodes agree) moves the visible refs to the staged state in one atomic update-ref transaction. So a client
// never sees a ref whose objects are missing, and every node of a farm publishes the same state.
//
// A client may read the refs from one node and ask another for the objects, so a state some node of the farm
// may still advertise must stay fetchable on every node for a while after this node moved on: each staged tip
// that a fetch replaces or prunes is kept under refs/mirrorfarm/retired/<ms>/<n> for RETIRED_GRACE_MS. Those
// refs are hidden tips (uploadpack.allowTipSHA1InWant lets a protocol v0 want name them and what they reach)
// and keep the objects from gc; the fetch itself runs with auto-gc off, and gc runs only after they are written.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { GitCommand, GitError, type GitRunner } from '../git/runner.js';
import { refStateHash, HIDDEN_REF_PREFIX } from '../git/ref-hash.js';
import type { RefState, RepoStore } from '../git/repo-store.js';
import type { Logger } from '../obs/logger.js';
import type { Catalog, LocalRepository } from './catalog.js';
import type { MirrorMetrics } from './metrics.js';

/** Pack files of a repository and their sizes. */
async function packSizes(gitDir: string): Promise<Map<string, number>> {
  const dir = join(gitDir, 'objects', 'pack');
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.pack'));
  const sizes = await Promise.all(names.map(async (n) => [n, (await stat(join(dir, n)).catch(() => ({ size: 0 }))).size] as const));
  return new Map(sizes);
}

export const STAGED_PREFIX = `${HIDDEN_REF_PREFIX}staged/`;
export const RETIRED_PREFIX = `${HIDDEN_REF_PREFIX}retired/`;
/** How long a replaced staged tip stays fetchable: far beyond a commit's skew between nodes or a client's negotiation. */
export const RETIRED_GRACE_MS = 10 * 60_000;
/** A state waiting for its commit this long is announced again (the farm may have agreed meanwhile). */
const REANNOUNCE_AFTER_MS = 2_000;

export interface SyncTransport {
  /** ssh://git@primary:port/proj/repo.git */
  fetchUrl(repo: LocalRepository): string;
  /** Environment for git fetch (GIT_SSH_COMMAND with the pinned host key and the mirror key). */
  fetchEnv: Record<string, string>;
  /** Two-phase publish: tells the primary what was staged; true means commit now. */
  prepared(repositoryId: number, refStateHash: string): Promise<boolean>;
  /** What else goes when a repository leaves this mirror (its Git LFS objects). */
  removed?(repositoryId: number): Promise<void>;
}

export interface SyncResult {
  repositoryId: number;
  status: 'SYNCED' | 'FAILED';
  refStateHash: string | null;
  error?: string;
}

interface Staged {
  hash: string;
  refs: RefState;
  at: number;
  /** The request generation when the fetch started: every request up to it is served by publishing this. */
  generation: number;
}

/** The oldest request of a repository that nothing published yet answers. */
interface Unserved {
  generation: number;
  at: number;
}

export class SyncEngine {
  private readonly queued = new Map<number, number>(); // repository id -> time the oldest unapplied change was seen
  private readonly running = new Set<number>();
  private readonly again = new Set<number>();
  private readonly awaitingCommit = new Map<number, Staged>();
  // Every request gets a generation number, so that "everything asked for before X is published" can be told
  // (a farm member is caught up once that holds for the moment it joined).
  private generationCounter = 0;
  private readonly latestRequest = new Map<number, number>();
  private readonly unserved = new Map<number, Unserved>();
  private readonly idleWaiters: Array<() => void> = [];
  private stopped = false;

  constructor(
    private readonly catalog: Catalog,
    private readonly store: RepoStore,
    private readonly git: GitRunner,
    private readonly transport: SyncTransport,
    private readonly parallelism: number,
    private readonly log: Logger,
    private readonly metrics: MirrorMetrics,
    private readonly onResult: (result: SyncResult) => void,
  ) {}

  /** Asks for a repository to be brought up to date; merges with a pending request for the same one. */
  request(repositoryId: number, seenAt = Date.now()): void {
    if (this.stopped) return;
    const generation = ++this.generationCounter;
    this.latestRequest.set(repositoryId, generation);
    if (!this.unserved.has(repositoryId)) this.unserved.set(repositoryId, { generation, at: Date.now() });
    if (this.running.has(repositoryId)) {
      this.again.add(repositoryId); // a change arrived while fetching: fetch once more afterwards
      if (!this.queued.has(repositoryId)) this.queued.set(repositoryId, seenAt);
      return;
    }
    if (!this.queued.has(repositoryId)) this.queued.set(repositoryId, seenAt);
    this.metrics.queueDepth.set(this.queued.size);
    this.pump();
  }

  /** Seconds since the oldest change that is not yet published. */
  lagSeconds(now = Date.now()): number {
    let oldest = now;
    for (const t of this.queued.values()) oldest = Math.min(oldest, t);
    return (now - oldest) / 1000;
  }

  pending(): number {
    return this.queued.size + this.awaitingCommit.size;
  }

  /** The generation of the latest request so far. */
  generation(): number {
    return this.generationCounter;
  }

  /** Whether every request up to `generation` has been answered by a published state. */
  servedUpTo(generation: number): boolean {
    for (const u of this.unserved.values()) if (u.generation <= generation) return false;
    return true;
  }

  /** How long the oldest unanswered request has waited (ms), 0 when there is none. */
  behindMs(now = Date.now()): number {
    let oldest = now;
    for (const u of this.unserved.values()) oldest = Math.min(oldest, u.at);
    return now - oldest;
  }

  idle(): Promise<void> {
    return this.queued.size === 0 && this.running.size === 0 ? Promise.resolve() : new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
  }

  private pump(): void {
    for (const id of this.queued.keys()) {
      if (this.running.size >= this.parallelism) return;
      if (this.running.has(id)) continue;
      this.running.add(id);
      void this.run(id);
    }
  }

  private async run(id: number): Promise<void> {
    const seenAt = this.queued.get(id) ?? Date.now();
    this.again.delete(id);
    try {
      await this.sync(id);
    } finally {
      this.running.delete(id);
      if (this.again.has(id)) {
        this.again.delete(id);
        this.queued.set(id, seenAt);
      } else {
        this.queued.delete(id);
      }
      this.metrics.queueDepth.set(this.queued.size);
      this.pump();
      if (this.queued.size === 0 && this.running.size === 0) this.idleWaiters.splice(0).forEach((r) => r());
    }
  }

  private async sync(id: number): Promise<void> {
    const repo = await this.catalog.repository(id);
    if (!repo) {
      this.unserved.delete(id); // deleted meanwhile: nothing to serve
      return;
    }
    const started = process.hrtime.bigint();
    const generation = this.generationCounter;
    try {
      const staged = { ...(await this.prepare(repo)), generation };
      if (await this.transport.prepared(id, staged.hash)) await this.commit(repo, staged);
      else this.awaitingCommit.set(id, staged);
      this.metrics.fetchDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
    } catch (err) {
      const message = err instanceof GitError ? err.stderr.trim().split('\n').slice(-2).join(' / ') || err.message : (err as Error).message;
      this.metrics.failures.inc();
      await this.catalog.markFailed(id, message);
      this.onResult({ repositoryId: id, status: 'FAILED', refStateHash: repo.refStateHash, error: message });
      if (repo.status !== 'FAILED') this.log.warn({ repositoryId: id, repository: `${repo.projectKey}/${repo.slug}`, error: message }, 'repository sync failed');
    }
  }

  /** Phase one: every object and ref of the primary's repository, staged where clients cannot see it. */
  private async prepare(repo: LocalRepository): Promise<Staged> {
    const gitDir = this.store.pathOf(repo.id);
    if (!this.store.exists(repo.id)) await this.store.create(repo.id, (repo.defaultBranch ?? 'refs/heads/main').replace(/^refs\/heads\//, ''));
    // Auto-gc is off during the fetch (it would run before the replaced tips are kept, below) and runs after.
    // It keeps the packs that every fetch adds (unpackLimit=1, so the bytes fetched can be read off the new
    // pack files) from piling up.
    const fetch = GitCommand.of('fetch', '--prune', '--no-write-fetch-head', '--quiet')
      .value(this.transport.fetchUrl(repo))
      .value(`+refs/*:${STAGED_PREFIX}*`);
    const packsBefore = await packSizes(gitDir);
    const before = await this.store.readRefs(repo.id);
    const config = [['fetch.unpackLimit', '1'], ['gc.auto', '0'], ['maintenance.auto', 'false']];
    await this.git.run(fetch, {
      gitDir,
      env: { ...this.transport.fetchEnv, GIT_CONFIG_COUNT: String(config.length), ...Object.fromEntries(config.flatMap(([k, v], i) => [[`GIT_CONFIG_KEY_${i}`, k!], [`GIT_CONFIG_VALUE_${i}`, v!]])) },
    });
    let fetched = 0;
    for (const [name, size] of await packSizes(gitDir)) if (!packsBefore.has(name)) fetched += size;
    this.metrics.fetchedBytes.inc(fetched);
    const all = await this.store.readRefs(repo.id);
    await this.retire(gitDir, before, all);
    if (fetched > 0) await this.git.run(GitCommand.of('gc', '--auto', '--quiet'), { gitDir });
    const refs: RefState = new Map();
    for (const [ref, oid] of all) if (ref.startsWith(STAGED_PREFIX)) refs.set(`refs/${ref.slice(STAGED_PREFIX.length)}`, oid);
    if (repo.defaultBranch) refs.set('HEAD', `ref: ${repo.defaultBranch}`);
    return { hash: refStateHash(refs), refs, at: Date.now(), generation: 0 };
  }

  /** Keeps every staged tip the fetch replaced or pruned under refs/mirrorfarm/retired/, and drops expired ones. */
  private async retire(gitDir: string, before: RefState, after: RefState): Promise<void> {
    const now = Date.now();
    const lines: string[] = [];
    let n = 0;
    for (const [ref, oid] of before) {
      if (ref.startsWith(STAGED_PREFIX) && after.get(ref) !== oid) lines.push(`create ${RETIRED_PREFIX}${now}/${n++} ${oid}`);
    }
    for (const [ref, oid] of after) {
      if (!ref.startsWith(RETIRED_PREFIX)) continue;
      const at = Number(ref.slice(RETIRED_PREFIX.length).split('/')[0]);
      if (!(at > now - RETIRED_GRACE_MS)) lines.push(`delete ${ref} ${oid}`);
    }
    if (lines.length === 0) return;
    await this.git.run(GitCommand.of('update-ref', '--stdin'), { gitDir, input: ['start', ...lines, 'prepare', 'commit', ''].join('\n') });
  }

  /** The primary says every node staged `hash`: publish it. */
  async commitStaged(repositoryId: number, hash: string): Promise<void> {
    const staged = this.awaitingCommit.get(repositoryId);
    if (!staged || staged.hash !== hash) return;
    const repo = await this.catalog.repository(repositoryId);
    if (repo) await this.commit(repo, staged);
  }

  /**
   * Announces again every staged state still waiting for its commit, e.g. once the event stream is (re)connected:
   * a commit the primary sent while this node had no stream is answered at once.
   */
  async reannounce(olderThanMs = 0): Promise<void> {
    const now = Date.now();
    for (const [id, staged] of [...this.awaitingCommit]) {
      if (now - staged.at < olderThanMs) continue;
      try {
        if (await this.transport.prepared(id, staged.hash)) await this.commitStaged(id, staged.hash);
      } catch (err) {
        this.log.debug({ repositoryId: id, err: (err as Error).message }, 'announcing a staged state again failed; the next sync repeats it');
      }
    }
  }

  /** Announces states that have waited a while for their commit: the farm may have agreed on them meanwhile. */
  reannounceStale(): Promise<void> {
    return this.reannounce(REANNOUNCE_AFTER_MS);
  }

  /** Whether a staged state is waiting for the farm's commit. */
  awaiting(): number {
    return this.awaitingCommit.size;
  }

  /** Phase two: the visible refs become the staged ones in one atomic transaction, then HEAD follows. */
  private async commit(repo: LocalRepository, staged: Staged): Promise<void> {
    this.awaitingCommit.delete(repo.id);
    const latest = this.latestRequest.get(repo.id) ?? 0;
    if (latest <= staged.generation) this.unserved.delete(repo.id);
    // Asked again while fetching: what came after the fetch started is still to be served.
    else if ((this.unserved.get(repo.id)?.generation ?? Infinity) <= staged.generation) this.unserved.set(repo.id, { generation: staged.generation + 1, at: staged.at });
    const gitDir = this.store.pathOf(repo.id);
    const current = await this.store.readRefs(repo.id);
    const lines: string[] = ['start'];
    for (const [ref, oid] of current) {
      if (ref === 'HEAD' || ref.startsWith(HIDDEN_REF_PREFIX)) continue;
      if (!staged.refs.has(ref)) lines.push(`delete ${ref} ${oid}`);
    }
    for (const [ref, oid] of staged.refs) {
      if (ref === 'HEAD') continue;
      const old = current.get(ref);
      if (old === oid) continue;
      lines.push(old ? `update ${ref} ${oid} ${old}` : `create ${ref} ${oid}`);
    }
    lines.push('prepare', 'commit', '');
    if (lines.length > 4) await this.git.run(GitCommand.of('update-ref', '--stdin'), { gitDir, input: lines.join('\n') });
    const head = staged.refs.get('HEAD');
    if (head && current.get('HEAD') !== head) await this.git.run(GitCommand.of('symbolic-ref').value('HEAD', head.slice('ref: '.length)), { gitDir });
    await this.catalog.markSynced(repo.id, staged.hash);
    this.onResult({ repositoryId: repo.id, status: 'SYNCED', refStateHash: staged.hash });
  }

  /** The ref-state hash of what this node serves for a repository right now, read from disk. */
  async diskHash(repositoryId: number): Promise<string | null> {
    if (!this.store.exists(repositoryId)) return null;
    return refStateHash(await this.store.readRefs(repositoryId));
  }

  /** Removes a repository from disk (the catalog row is removed by the caller). */
  async remove(repositoryId: number): Promise<void> {
    this.queued.delete(repositoryId);
    this.unserved.delete(repositoryId);
    this.latestRequest.delete(repositoryId);
    this.awaitingCommit.delete(repositoryId);
    await this.store.remove(repositoryId);
    await this.transport.removed?.(repositoryId);
  }
}
