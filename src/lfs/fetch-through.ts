// A mirror's LFS objects come from its own store; a miss is fetched from the primary once, however many clients
// ask for it at the same moment. The first asker gets the bytes as they arrive (teed into the store, which
// verifies the hash before the object becomes visible); those who ask while the fetch runs wait for it and read
// the stored object. A client that goes away does not stop the fetch: the object is stored for the next one.
import type { IncomingMessage } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import { Errors, MirrorfarmError } from '../errors.js';
import type { Logger } from '../obs/logger.js';
import type { Metrics } from '../obs/metrics.js';
import type { LfsObjectStore } from './object-store.js';

export interface LfsObject {
  size: number;
  body: Readable;
}

/** Opens the primary's copy of an object (the mirror's signed request). */
export type PrimaryObjectSource = (repositoryId: number, oid: string) => Promise<IncomingMessage>;

export class LfsFetchThrough {
  private readonly inflight = new Map<string, Promise<void>>();

  constructor(
    private readonly store: LfsObjectStore,
    private readonly source: PrimaryObjectSource,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /**
   * The object from the store, or from the primary (stored on the way). `forClient: false` (a prefetch) counts
   * nothing as served.
   */
  async open(repositoryId: number, oid: string, forClient = true): Promise<LfsObject> {
    const key = `${repositoryId}/${oid}`;
    const running = this.inflight.get(key);
    if (running) await running.catch(() => {});
    const size = await this.store.size(repositoryId, oid);
    if (size !== undefined) return this.local(repositoryId, oid, size, forClient);
    if (this.inflight.has(key)) return this.open(repositoryId, oid, forClient);
    return this.fetch(key, repositoryId, oid, forClient);
  }

  private local(repositoryId: number, oid: string, size: number, forClient: boolean): LfsObject {
    const body = this.store.open(repositoryId, oid);
    if (forClient) body.once('end', () => this.metrics.lfsBytes.inc({ direction: 'out', source: 'local' }, size));
    return { size, body };
  }

  private async fetch(key: string, repositoryId: number, oid: string, forClient: boolean): Promise<LfsObject> {
    let settle!: (err?: Error) => void;
    const done = new Promise<void>((resolve, reject) => (settle = (err) => (err ? reject(err) : resolve())));
    done.catch(() => {});
    this.inflight.set(key, done);
    const finish = (err?: Error) => {
      this.inflight.delete(key);
      settle(err);
    };
    let res: IncomingMessage;
    try {
      res = await this.source(repositoryId, oid);
    } catch (err) {
      finish(err as Error);
      throw err;
    }
    const status = res.statusCode ?? 0;
    const size = Number(res.headers['content-length']);
    if (status !== 200 || !Number.isSafeInteger(size)) {
      res.resume();
      const err = status === 404 ? Errors.lfsObjectNotFound(oid) : new MirrorfarmError('LFS_UPSTREAM_FAILED', 502, `The primary answered HTTP ${status} for Git LFS object ${oid}; try again, or fetch from the primary.`);
      finish(err);
      throw err;
    }
    const toClient = new PassThrough();
    const toStore = new PassThrough();
    res.pipe(toStore);
    res.pipe(toClient);
    // A client that goes away must not hold the store's copy back.
    toClient.once('close', () => res.unpipe(toClient));
    this.store.write(repositoryId, oid, size, toStore).then(
      () => {
        this.metrics.lfsBytes.inc({ direction: 'in', source: 'primary' }, size);
        this.log.info({ repositoryId, oid, size }, 'fetched a Git LFS object from the primary');
        finish();
      },
      (err: Error) => {
        this.log.warn({ repositoryId, oid, err: err.message }, 'could not store a Git LFS object fetched from the primary');
        toClient.destroy(err);
        finish(err);
      },
    );
    if (forClient) toClient.once('end', () => this.metrics.lfsBytes.inc({ direction: 'out', source: 'primary' }, size));
    return { size, body: toClient };
  }
}
