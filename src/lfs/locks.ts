// Git LFS file locks (the locking API that `git lfs lock`, `unlock`, `locks` and the pre-push check use):
// one lock per repository and path, owned by the user who took it. Who may lock, list or unlock is decided by
// the routes with authorize(); this module only keeps the records.
import type { Db } from '../store/database.js';
import { Errors } from '../errors.js';

export interface LfsLock {
  id: string;
  path: string;
  locked_at: string;
  owner: { name: string };
}

interface LockRow {
  id: number;
  path: string;
  locked_at: number;
  owner_id: number;
  owner_name: string;
}

function toLock(row: LockRow): LfsLock {
  return { id: String(row.id), path: row.path, locked_at: new Date(row.locked_at).toISOString(), owner: { name: row.owner_name } };
}

/** Paths are repository-relative with "/" separators, as git-lfs sends them. */
export function checkLockPath(path: unknown): string {
  if (typeof path !== 'string' || path === '' || path.length > 4096 || /[\0\r\n]/.test(path) || path.startsWith('/')) {
    throw Errors.invalid('A lock needs "path": the file\'s path inside the repository, e.g. "assets/logo.psd".');
  }
  return path;
}

export class LfsLocks {
  constructor(private readonly db: Db) {}

  private query(repositoryId: number) {
    return this.db
      .selectFrom('lfs_locks')
      .innerJoin('users', 'users.id', 'lfs_locks.owner_id')
      .select(['lfs_locks.id as id', 'lfs_locks.path as path', 'lfs_locks.locked_at as locked_at', 'lfs_locks.owner_id as owner_id', 'users.name as owner_name'])
      .where('lfs_locks.repository_id', '=', repositoryId);
  }

  /** Takes the lock, or throws LFS_LOCK_EXISTS with the existing lock. */
  async create(repositoryId: number, path: string, ownerId: number, refName: string | undefined): Promise<LfsLock> {
    const inserted = await this.db
      .insertInto('lfs_locks')
      .values({ repository_id: repositoryId, path, owner_id: ownerId, ref_name: refName ?? null, locked_at: Date.now() })
      .onConflict((oc) => oc.columns(['repository_id', 'path']).doNothing())
      .returning('id')
      .executeTakeFirst();
    const row = await this.query(repositoryId).where('lfs_locks.path', '=', path).executeTakeFirstOrThrow();
    if (!inserted) throw Object.assign(Errors.lfsLockExists(path, row.owner_name), { lock: toLock(row) });
    return toLock(row);
  }

  /** One page of locks, ordered by id; `cursor` is the id to start at. */
  async list(repositoryId: number, filter: { path?: string; id?: string; cursor?: string; limit: number }): Promise<{ locks: Array<LfsLock & { ownerId: number }>; nextCursor?: string }> {
    let q = this.query(repositoryId).orderBy('lfs_locks.id');
    if (filter.path !== undefined) q = q.where('lfs_locks.path', '=', filter.path);
    if (filter.id !== undefined) q = q.where('lfs_locks.id', '=', Number(filter.id));
    if (filter.cursor !== undefined) q = q.where('lfs_locks.id', '>=', Number(filter.cursor));
    const rows = await q.limit(filter.limit + 1).execute();
    const page = rows.slice(0, filter.limit).map((r) => ({ ...toLock(r), ownerId: r.owner_id }));
    return rows.length > filter.limit ? { locks: page, nextCursor: String(rows[filter.limit]!.id) } : { locks: page };
  }

  async get(repositoryId: number, id: string): Promise<(LfsLock & { ownerId: number }) | undefined> {
    if (!/^[0-9]{1,15}$/.test(id)) return undefined;
    const row = await this.query(repositoryId).where('lfs_locks.id', '=', Number(id)).executeTakeFirst();
    return row ? { ...toLock(row), ownerId: row.owner_id } : undefined;
  }

  async remove(repositoryId: number, id: string): Promise<void> {
    await this.db.deleteFrom('lfs_locks').where('repository_id', '=', repositoryId).where('id', '=', Number(id)).execute();
  }
}
