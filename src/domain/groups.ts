// Groups of users, as Bitbucket has them: created and deleted by sysadmins, holding members, and granted
// permissions on projects and repositories (src/domain/permissions.ts) or the global SYS_ADMIN. Every change is
// an event, because a membership change alters what its user may do everywhere the group holds a grant:
// mirrors drop their cached answers on it.
import type { Kysely } from 'kysely';
import { Errors } from '../errors.js';
import type { EventLog, NewEvent } from '../events/log.js';
import type { Db } from '../store/database.js';
import type { Database, Group, User } from '../store/tables.js';
import { columnContains } from './like.js';
import { permissionChanged } from './permissions.js';

const MAX_NAME = 255;

export function normalizeGroupName(name: string): string {
  const trimmed = name.trim();
  // Control characters would make names that print alike but differ; commas separate names in CLI options.
  if (!trimmed || trimmed.length > MAX_NAME || /[\p{Cc},]/u.test(trimmed)) {
    throw Errors.invalid(`"${name}" is not a valid group name: use 1-${MAX_NAME} characters without commas or control characters.`);
  }
  return trimmed;
}

/** Whether a user is a system administrator: their own flag, or a group they belong to that holds SYS_ADMIN. */
export async function isSysadmin(db: Kysely<Database>, user: Pick<User, 'id' | 'is_sysadmin'>): Promise<boolean> {
  if (user.is_sysadmin) return true;
  const row = await db
    .selectFrom('group_members as gm')
    .innerJoin('group_permissions as gp', 'gp.group_id', 'gm.group_id')
    .select('gp.id')
    .where('gm.user_id', '=', user.id)
    .where('gp.permission', '=', 'SYS_ADMIN')
    .where('gp.project_id', 'is', null)
    .where('gp.repository_id', 'is', null)
    .executeTakeFirst();
  return !!row;
}

/** Refuse a change that would take system administration away from `user` (the caller), with `refusal()`. */
export interface SysadminGuard {
  user: Pick<User, 'id' | 'is_sysadmin'>;
  refusal: () => Error;
}

export class Groups {
  constructor(
    private readonly db: Db,
    private readonly events: EventLog,
  ) {}

  async byName(name: string): Promise<Group | undefined> {
    return this.db.selectFrom('groups').selectAll().where('lower_name', '=', name.trim().toLowerCase()).executeTakeFirst();
  }

  async require(name: string): Promise<Group> {
    const group = await this.byName(name);
    if (!group) throw Errors.groupNotFound(name);
    return group;
  }

  /** A page of groups ordered by name; `filter` matches anywhere in the name, ignoring case. */
  async page(options: { filter?: string; withGlobalPermission?: boolean }, offset: number, limit: number): Promise<Group[]> {
    let q = this.db.selectFrom('groups').selectAll().orderBy('lower_name').offset(offset).limit(limit);
    if (options.filter) q = q.where(columnContains('name', options.filter));
    if (options.withGlobalPermission) {
      q = q.where(({ exists, selectFrom }) =>
        exists(selectFrom('group_permissions as gp').select('gp.id').whereRef('gp.group_id', '=', 'groups.id').where('gp.project_id', 'is', null).where('gp.repository_id', 'is', null)),
      );
    }
    return q.execute();
  }

  async create(name: string): Promise<Group> {
    const clean = normalizeGroupName(name);
    return this.events.transact(async (trx) => {
      const exists = await trx.selectFrom('groups').select('name').where('lower_name', '=', clean.toLowerCase()).executeTakeFirst();
      if (exists) throw Errors.conflict(`A group named "${exists.name}" already exists.`);
      const group = await trx.insertInto('groups').values({ name: clean, lower_name: clean.toLowerCase(), created_at: Date.now() }).returningAll().executeTakeFirstOrThrow();
      return { result: group, events: [{ type: 'group.created', data: { groupId: group.id, group: group.name } }] };
    });
  }

  /**
   * Deletes a group with its memberships and grants. Each grant removed is logged as a `permission.changed`
   * (so that a consumer following one project sees its permissions change), then the deletion itself.
   */
  async remove(group: Group, guard?: SysadminGuard): Promise<void> {
    await this.events.transact(async (trx) => {
      const wasSysadmin = guard ? await isSysadmin(trx, guard.user) : false;
      const grants = await trx
        .selectFrom('group_permissions as g')
        .leftJoin('repositories as r', 'r.id', 'g.repository_id')
        .select(['g.project_id', 'g.repository_id', 'r.slug', 'r.project_id as repo_project_id'])
        .where('g.group_id', '=', group.id)
        .orderBy('g.id')
        .execute();
      const projectIds = [...new Set(grants.map((g) => g.project_id ?? g.repo_project_id).filter((id): id is number => id !== null))];
      const keys = new Map(
        projectIds.length ? (await trx.selectFrom('projects').select(['id', 'key']).where('id', 'in', projectIds).execute()).map((p) => [p.id, p.key] as const) : [],
      );
      await trx.deleteFrom('group_permissions').where('group_id', '=', group.id).execute();
      await trx.deleteFrom('group_members').where('group_id', '=', group.id).execute();
      await trx.deleteFrom('groups').where('id', '=', group.id).execute();
      if (guard && wasSysadmin && !(await isSysadmin(trx, guard.user))) throw guard.refusal();
      const grantee = { kind: 'group' as const, group };
      const events: NewEvent[] = grants.map((g) => {
        const projectId = g.project_id ?? g.repo_project_id;
        const key = projectId === null ? undefined : keys.get(projectId);
        if (projectId === null || key === undefined) return globalPermissionChanged(group, null);
        const repo = g.repository_id !== null && g.slug !== null ? { repo: { id: g.repository_id, slug: g.slug } } : {};
        return permissionChanged({ project: { id: projectId, key }, ...repo }, grantee, null);
      });
      events.push({ type: 'group.deleted', data: { groupId: group.id, group: group.name } });
      return { result: undefined, events };
    });
  }

  /** What goes with a group when it is deleted: how many members lose it and how many permissions it holds. */
  async holdings(group: Group): Promise<{ members: number; grants: number }> {
    const count = async (table: 'group_members' | 'group_permissions') =>
      Number((await this.db.selectFrom(table).select((eb) => eb.fn.countAll().as('n')).where('group_id', '=', group.id).executeTakeFirstOrThrow()).n);
    return { members: await count('group_members'), grants: await count('group_permissions') };
  }

  /** Adds users to a group; those already in it are left as they are (and logged no event). */
  async addMembers(group: Group, users: User[]): Promise<void> {
    await this.events.transact(async (trx) => {
      const events: NewEvent[] = [];
      for (const user of users) {
        const added = await trx.insertInto('group_members').values({ group_id: group.id, user_id: user.id }).onConflict((oc) => oc.doNothing()).executeTakeFirst();
        if (Number(added.numInsertedOrUpdatedRows ?? 0n) > 0) events.push(membershipEvent('group.user_added', group, user));
      }
      return { result: undefined, events };
    });
  }

  /** Removes a user from a group; a user who is not in it is no error (and no event). */
  async removeMember(group: Group, user: User, guard?: SysadminGuard): Promise<void> {
    await this.events.transact(async (trx) => {
      const wasSysadmin = guard ? await isSysadmin(trx, guard.user) : false;
      const removed = await trx.deleteFrom('group_members').where('group_id', '=', group.id).where('user_id', '=', user.id).executeTakeFirst();
      if (guard && wasSysadmin && !(await isSysadmin(trx, guard.user))) throw guard.refusal();
      return { result: undefined, events: Number(removed.numDeletedRows) > 0 ? [membershipEvent('group.user_removed', group, user)] : [] };
    });
  }

  /** A page of the group's members (or, with `nonMembers`, of the users outside it), ordered by name. */
  async members(group: Group, options: { filter?: string; nonMembers?: boolean }, offset: number, limit: number): Promise<User[]> {
    let q = this.db.selectFrom('users').selectAll().orderBy('name').offset(offset).limit(limit);
    const inGroup = this.db.selectFrom('group_members as gm').select('gm.user_id').where('gm.group_id', '=', group.id);
    q = options.nonMembers ? q.where('id', 'not in', inGroup) : q.where('id', 'in', inGroup);
    if (options.filter) {
      const text = options.filter;
      q = q.where(({ or }) => or([columnContains('name', text), columnContains('display_name', text), columnContains('email', text)]));
    }
    return q.execute();
  }

  /** A page of the groups a user is in (or, with `nonMember`, is not in), ordered by name. */
  async groupsOf(user: User, options: { filter?: string; nonMember?: boolean }, offset: number, limit: number): Promise<Group[]> {
    let q = this.db.selectFrom('groups').selectAll().orderBy('lower_name').offset(offset).limit(limit);
    const ofUser = this.db.selectFrom('group_members as gm').select('gm.group_id').where('gm.user_id', '=', user.id);
    q = options.nonMember ? q.where('id', 'not in', ofUser) : q.where('id', 'in', ofUser);
    if (options.filter) q = q.where(columnContains('name', options.filter));
    return q.execute();
  }

  /** The group's global permission (SYS_ADMIN), or null. */
  async globalPermission(group: Group): Promise<string | null> {
    const row = await this.db.selectFrom('group_permissions').select('permission').where('group_id', '=', group.id).where('project_id', 'is', null).where('repository_id', 'is', null).executeTakeFirst();
    return row?.permission ?? null;
  }

  /** Grants (SYS_ADMIN) or with null revokes a group's global permission. */
  async setGlobalPermission(group: Group, permission: 'SYS_ADMIN' | null, guard?: SysadminGuard): Promise<void> {
    await this.events.transact(async (trx) => {
      const wasSysadmin = guard ? await isSysadmin(trx, guard.user) : false;
      const removed = await trx.deleteFrom('group_permissions').where('group_id', '=', group.id).where('project_id', 'is', null).where('repository_id', 'is', null).executeTakeFirst();
      if (permission) await trx.insertInto('group_permissions').values({ group_id: group.id, project_id: null, repository_id: null, permission }).execute();
      if (guard && wasSysadmin && !(await isSysadmin(trx, guard.user))) throw guard.refusal();
      const changed = permission !== null || Number(removed.numDeletedRows) > 0;
      return { result: undefined, events: changed ? [globalPermissionChanged(group, permission)] : [] };
    });
  }
}

function membershipEvent(type: 'group.user_added' | 'group.user_removed', group: Group, user: User): NewEvent {
  return { type, data: { groupId: group.id, group: group.name, userId: user.id, user: user.name } };
}

function globalPermissionChanged(group: Group, permission: string | null): NewEvent {
  return { type: 'permission.changed', data: { scope: 'global', groupId: group.id, group: group.name, permission } };
}
