// What this mirror carries: the primary's projects and repositories, kept in the ordinary tables under the
// primary's ids (so URL lookup and serving work as on the primary), plus each repository's sync state.
import type { Db } from '../store/database.js';

export interface UpstreamProject {
  id: number;
  key: string;
  name: string;
  public: boolean;
}

export interface UpstreamRepository {
  id: number;
  projectId: number;
  slug: string;
  name: string;
  public: boolean;
  defaultBranch: string | null;
  refStateHash: string | null;
}

export interface LocalRepository {
  id: number;
  projectId: number;
  projectKey: string;
  slug: string;
  status: 'NEW' | 'SYNCED' | 'FAILED';
  refStateHash: string | null;
  defaultBranch: string | null;
  error: string | null;
  /** When this node last synchronized the repository or failed to (epoch ms). */
  updatedAt: number | null;
}

export class Catalog {
  constructor(private readonly db: Db) {}

  async upsertProject(p: UpstreamProject): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      // Keys and names are unique; a swap between two projects must not trip over the old rows.
      await trx.deleteFrom('projects').where('id', '!=', p.id).where((eb) => eb.or([eb('key', '=', p.key), eb('name', '=', p.name)])).execute();
      await trx
        .insertInto('projects')
        .values({ id: p.id, key: p.key, name: p.name, description: null, is_public: p.public ? 1 : 0, created_at: Date.now() } as never)
        .onConflict((oc) => oc.column('id').doUpdateSet({ key: p.key, name: p.name, is_public: p.public ? 1 : 0 }))
        .execute();
    });
  }

  async removeProject(id: number): Promise<number[]> {
    const repos = await this.db.selectFrom('repositories').select('id').where('project_id', '=', id).execute();
    for (const r of repos) await this.removeRepository(r.id);
    await this.db.deleteFrom('projects').where('id', '=', id).execute();
    return repos.map((r) => r.id);
  }

  /** Inserts or updates a repository's metadata; returns true when it is new here. */
  async upsertRepository(r: UpstreamRepository): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const existing = await trx.selectFrom('repositories').select('id').where('id', '=', r.id).executeTakeFirst();
      await trx.deleteFrom('repositories').where('id', '!=', r.id).where('project_id', '=', r.projectId).where('slug', '=', r.slug).execute();
      if (existing) {
        await trx.updateTable('repositories').set({ project_id: r.projectId, slug: r.slug, name: r.name, is_public: r.public ? 1 : 0 }).where('id', '=', r.id).execute();
      } else {
        await trx
          .insertInto('repositories')
          .values({ id: r.id, project_id: r.projectId, slug: r.slug, name: r.name, description: null, is_public: r.public ? 1 : 0, created_at: Date.now() } as never)
          .execute();
        await trx
          .insertInto('mirror_local_repos')
          .values({ repository_id: r.id, status: 'NEW', default_branch: r.defaultBranch, ref_state_hash: null, error: null, updated_at: Date.now() })
          .onConflict((oc) => oc.column('repository_id').doNothing())
          .execute();
      }
      if (r.defaultBranch) await trx.updateTable('mirror_local_repos').set({ default_branch: r.defaultBranch }).where('repository_id', '=', r.id).execute();
      return !existing;
    });
  }

  async setDefaultBranch(id: number, branch: string | null): Promise<void> {
    await this.db.updateTable('mirror_local_repos').set({ default_branch: branch }).where('repository_id', '=', id).execute();
  }

  async setPublic(id: number, isPublic: boolean): Promise<void> {
    await this.db.updateTable('repositories').set({ is_public: isPublic ? 1 : 0 }).where('id', '=', id).execute();
  }

  async removeRepository(id: number): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('refs').where('repository_id', '=', id).execute();
      await trx.deleteFrom('repositories').where('id', '=', id).execute();
      await trx.deleteFrom('mirror_local_repos').where('repository_id', '=', id).execute();
    });
  }

  async repository(id: number): Promise<LocalRepository | undefined> {
    return (await this.select(id))[0];
  }

  async repositories(): Promise<LocalRepository[]> {
    return this.select();
  }

  /** Whether every repository carried is SYNCED (one indexed query, whatever the number of repositories). */
  async allSynced(): Promise<boolean> {
    const row = await this.db
      .selectFrom('repositories as r')
      .leftJoin('mirror_local_repos as m', 'm.repository_id', 'r.id')
      .select('r.id')
      .where((eb) => eb.or([eb('m.status', 'is', null), eb('m.status', '!=', 'SYNCED')]))
      .limit(1)
      .executeTakeFirst();
    return row === undefined;
  }

  /** Every repository's metadata as last taken from the primary, to compare with a snapshot. */
  async metadata(): Promise<Array<{ id: number; projectId: number; slug: string; name: string; public: boolean; defaultBranch: string | null }>> {
    const rows = await this.db
      .selectFrom('repositories as r')
      .leftJoin('mirror_local_repos as m', 'm.repository_id', 'r.id')
      .select(['r.id', 'r.project_id', 'r.slug', 'r.name', 'r.is_public', 'm.default_branch'])
      .execute();
    return rows.map((r) => ({ id: r.id, projectId: r.project_id, slug: r.slug, name: r.name, public: !!r.is_public, defaultBranch: r.default_branch ?? null }));
  }

  private async select(id?: number): Promise<LocalRepository[]> {
    let query = this.db
      .selectFrom('repositories as r')
      .innerJoin('projects as p', 'p.id', 'r.project_id')
      .leftJoin('mirror_local_repos as m', 'm.repository_id', 'r.id')
      .select(['r.id', 'r.project_id', 'p.key', 'r.slug', 'm.status', 'm.ref_state_hash', 'm.default_branch', 'm.error', 'm.updated_at'])
      .orderBy('r.id');
    if (id !== undefined) query = query.where('r.id', '=', id);
    return (await query.execute()).map((row) => ({
      id: row.id,
      projectId: row.project_id,
      projectKey: row.key,
      slug: row.slug,
      status: row.status ?? 'NEW',
      refStateHash: row.ref_state_hash ?? null,
      defaultBranch: row.default_branch ?? null,
      error: row.error ?? null,
      updatedAt: row.updated_at === null || row.updated_at === undefined ? null : Number(row.updated_at),
    }));
  }

  async projectIds(): Promise<number[]> {
    return (await this.db.selectFrom('projects').select('id').execute()).map((p) => p.id);
  }

  async markSynced(id: number, hash: string): Promise<void> {
    await this.db.updateTable('mirror_local_repos').set({ status: 'SYNCED', ref_state_hash: hash, error: null, updated_at: Date.now() }).where('repository_id', '=', id).execute();
  }

  async markFailed(id: number, error: string): Promise<void> {
    await this.db.updateTable('mirror_local_repos').set({ status: 'FAILED', error, updated_at: Date.now() }).where('repository_id', '=', id).execute();
  }

  async getState(key: string): Promise<string | undefined> {
    return (await this.db.selectFrom('mirror_local_state').select('value').where('key', '=', key).executeTakeFirst())?.value;
  }

  async setState(key: string, value: string): Promise<void> {
    await this.db.insertInto('mirror_local_state').values({ key, value }).onConflict((oc) => oc.column('key').doUpdateSet({ value })).execute();
  }
}
