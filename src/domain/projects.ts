// Projects: a key such as PROJ, a name, and the repositories and permissions that hang off them.
import { Errors } from '../errors.js';
import type { EventLog } from '../events/log.js';
import type { Db } from '../store/database.js';
import type { Project } from '../store/tables.js';

const PROJECT_KEY = /^[A-Z][A-Z0-9_]{0,127}$/;

export function normalizeProjectKey(key: string): string {
  const upper = key.trim().toUpperCase();
  if (!PROJECT_KEY.test(upper)) throw Errors.invalid(`"${key}" is not a valid project key: use letters, digits and "_", starting with a letter (e.g. PROJ).`);
  return upper;
}

export class Projects {
  constructor(
    private readonly db: Db,
    private readonly events: EventLog,
  ) {}

  /** Keys are case-insensitive in URLs (SSH URLs use lower case), stored upper case. */
  async byKey(key: string): Promise<Project | undefined> {
    return this.db.selectFrom('projects').selectAll().where('key', '=', key.toUpperCase()).executeTakeFirst();
  }

  async byId(id: number): Promise<Project | undefined> {
    return this.db.selectFrom('projects').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async list(): Promise<Project[]> {
    return this.db.selectFrom('projects').selectAll().orderBy('key').execute();
  }

  async create(input: { key: string; name?: string; description?: string | null; public?: boolean }): Promise<Project> {
    const key = normalizeProjectKey(input.key);
    const name = (input.name ?? key).trim();
    if (!name || name.length > 128) throw Errors.invalid('A project name must have 1 to 128 characters.');
    return this.events.transact(async (trx) => {
      const clash = await trx.selectFrom('projects').select(['key', 'name']).where((eb) => eb.or([eb('key', '=', key), eb('name', '=', name)])).executeTakeFirst();
      if (clash) throw Errors.conflict(clash.key === key ? `Project key ${key} is already taken.` : `A project named "${name}" already exists.`);
      const project = await trx
        .insertInto('projects')
        .values({ key, name, description: input.description ?? null, is_public: input.public ? 1 : 0, created_at: Date.now() })
        .returningAll()
        .executeTakeFirstOrThrow();
      return { result: project, events: [{ type: 'project.created', projectId: project.id, data: { key, name, public: !!input.public } }] };
    });
  }

  async update(project: Project, changes: { key?: string; name?: string; description?: string | null; public?: boolean }): Promise<Project> {
    const key = changes.key === undefined ? project.key : normalizeProjectKey(changes.key);
    const name = changes.name?.trim() ?? project.name;
    return this.events.transact(async (trx) => {
      const clash = await trx
        .selectFrom('projects')
        .select(['key', 'name'])
        .where('id', '!=', project.id)
        .where((eb) => eb.or([eb('key', '=', key), eb('name', '=', name)]))
        .executeTakeFirst();
      if (clash) throw Errors.conflict(clash.key === key ? `Project key ${key} is already taken.` : `A project named "${name}" already exists.`);
      const updated = await trx
        .updateTable('projects')
        .set({ key, name, ...(changes.description !== undefined ? { description: changes.description } : {}), ...(changes.public !== undefined ? { is_public: changes.public ? 1 : 0 } : {}) })
        .where('id', '=', project.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      return {
        result: updated,
        events: [{ type: 'project.updated', projectId: project.id, data: { key, name, previousKey: project.key, public: !!updated.is_public } }],
      };
    });
  }

  /** Like Bitbucket, a project must be empty before it can be deleted, so no repository goes by accident. */
  async remove(project: Project): Promise<void> {
    await this.events.transact(async (trx) => {
      const repo = await trx.selectFrom('repositories').select('id').where('project_id', '=', project.id).executeTakeFirst();
      if (repo) throw Errors.projectNotEmpty(project.key);
      await trx.deleteFrom('projects').where('id', '=', project.id).execute();
      return { result: undefined, events: [{ type: 'project.deleted', projectId: project.id, data: { key: project.key } }] };
    });
  }
}
