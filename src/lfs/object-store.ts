// Git LFS objects on disk, per repository and by oid: HOME/lfs/<repository id>/ab/cd/<oid>. Keyed by the
// repository's immutable id, so a rename or a move to another project changes nothing here, and deleting the
// repository removes its directory. Objects stream in and out; an upload is written to a temporary file,
// hashed on the way, and renamed into place only when its SHA-256 and size match what was announced, so a
// half-written or corrupt object is never served.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, type ReadStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Errors } from '../errors.js';

export const OID = /^[0-9a-f]{64}$/;

export interface LfsLimits {
  /** Largest single object. */
  maxObjectBytes: number;
  /** Most LFS bytes one repository may hold (0: no limit). */
  maxRepositoryBytes: number;
}

/** Counts and hashes what passes, and fails once more than `limit` bytes arrived. */
class HashingLimit extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) return callback(Errors.lfsSizeMismatch(this.limit, this.bytes));
    this.hash.update(chunk);
    callback(null, chunk);
  }
}

export class LfsObjectStore {
  private readonly tmp: string;

  constructor(
    private readonly root: string,
    readonly limits: LfsLimits,
  ) {
    this.tmp = join(root, 'tmp');
  }

  async prepare(): Promise<void> {
    await mkdir(this.tmp, { recursive: true, mode: 0o700 });
    // Uploads cut off by a crash leave temporary files only; they are never objects.
    for (const name of await readdir(this.tmp)) await rm(join(this.tmp, name), { force: true });
  }

  private dir(repositoryId: number): string {
    return join(this.root, String(repositoryId));
  }

  private pathOf(repositoryId: number, oid: string): string {
    if (!OID.test(oid)) throw Errors.invalid(`"${oid.slice(0, 80)}" is not a Git LFS object id (64 lowercase hex digits of SHA-256).`);
    return join(this.dir(repositoryId), oid.slice(0, 2), oid.slice(2, 4), oid);
  }

  /** The object's size, or undefined when the repository does not have it. */
  async size(repositoryId: number, oid: string): Promise<number | undefined> {
    try {
      return (await stat(this.pathOf(repositoryId, oid))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  open(repositoryId: number, oid: string): ReadStream {
    return createReadStream(this.pathOf(repositoryId, oid));
  }

  /** Bytes the repository's LFS objects take. */
  async usage(repositoryId: number): Promise<number> {
    let total = 0;
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      for (const entry of entries) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await walk(path);
        else total += (await stat(path)).size;
      }
    };
    await walk(this.dir(repositoryId));
    return total;
  }

  /**
   * A check for the objects of one batch: each is refused (throws) when it may not be stored, before any byte of
   * it is read. The repository's usage is read once, and the objects admitted count against its limit.
   */
  async admission(repositoryId: number): Promise<(size: number) => void> {
    let used = this.limits.maxRepositoryBytes > 0 ? await this.usage(repositoryId) : 0;
    return (size) => {
      if (size > this.limits.maxObjectBytes) throw Errors.lfsObjectTooLarge(size, this.limits.maxObjectBytes);
      if (this.limits.maxRepositoryBytes > 0 && used + size > this.limits.maxRepositoryBytes) throw Errors.lfsRepositoryFull(this.limits.maxRepositoryBytes);
      used += size;
    };
  }

  /**
   * Stores `body` as object `oid` of `size` bytes. The object becomes visible only once its hash and size
   * are verified; on any failure nothing is left behind.
   */
  async write(repositoryId: number, oid: string, size: number, body: Readable): Promise<void> {
    const target = this.pathOf(repositoryId, oid);
    (await this.admission(repositoryId))(size);
    const temp = join(this.tmp, `${randomUUID()}.part`);
    const counter = new HashingLimit(size);
    try {
      await pipeline(body, counter, createWriteStream(temp, { mode: 0o600, flags: 'wx' }));
      if (counter.bytes !== size) throw Errors.lfsSizeMismatch(size, counter.bytes);
      const actual = counter.hash.digest('hex');
      if (actual !== oid) throw Errors.lfsHashMismatch(oid, actual);
      await mkdir(join(target, '..'), { recursive: true, mode: 0o700 });
      await rename(temp, target);
    } catch (err) {
      await unlink(temp).catch(() => {});
      throw err;
    }
  }

  async removeRepository(repositoryId: number): Promise<void> {
    await rm(this.dir(repositoryId), { recursive: true, force: true });
  }
}
