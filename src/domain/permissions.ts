// Project and repository permissions granted to users and to groups, and the facts the policy function needs
// about them. A user's grant on a project or repository is the highest of their own and their groups' grants.
import type { Kysely } from 'kysely';
import { effectiveLevel, Level, PERMISSION_LEVELS, type AccessFacts, type Principal, type Resource } from '../access/authorize.js';
import { Errors } from '../errors.js';
import type { EventLog, NewEvent } from '../events/log.js';
import type { Db } from '../store/database.js';
import type { Database, Group, Project, Repository, User } from '../store/tables.js';

export interface Grant {
  user: User;
  permission: string;
}

export interface GroupGrant {
  group: Group;
  permission: string;
}

/** Who a grant is for. */
export type Grantee = { kind: 'user'; user: User } | { kind: 'group'; group: Group };

/** Refuse a change that would lower `principal`'s own level on the target, with `refusal()`. */
export interface SelfGuard {
  principal: Principal;
  refusal: () => Error;
}

export interface Target {
  project: Project;
  repo?: Repository;
}

/**
 * One principal's grants loaded once, so that lists (projects, repositories) can be checked item by item with
 * `authorize`/`effectiveLevel` without a query per item. It builds the same resources as projectResource and
 * repositoryResource.
 */
export interface AccessIndex {
  project(project: Project): Resource;
  repository(project: Project, repo: Repository): Resource;
  /** Projects the principal holds a grant on, directly or through a group. */
  grantedProjectIds: number[];
  /** Repositories the principal holds a grant on (the only private repositories it can see outside readable projects). */
  grantedRepositoryIds: number[];
}

function levelOf(permission: string): Level {
  return PERMISSION_LEVELS[permission]?.level ?? Level.NONE;
}

export function grantEventData(grantee: Grantee): Record<string, unknown> {
  return grantee.kind === 'user' ? { userId: grantee.user.id, user: grantee.user.name } : { groupId: grantee.group.id, group: grantee.group.name };
}

export class Permissions {
  constructor(
    private readonly db: Db,
    private readonly events: EventLog,
  ) {}

  /** The resource descriptor `authorize` takes, filled with this principal's grants. */
  async projectResource(principal: Principal, project: Project): Promise<Resource> {
    return { kind: 'project', key: project.key, facts: await this.facts(principal, project) };
  }

  async repositoryResource(principal: Principal, project: Project, repo: Repository): Promise<Resource> {
    return { kind: 'repository', path: `${project.key}/${repo.slug}`, facts: await this.facts(principal, project, repo) };
  }

  private async resource(principal: Principal, target: Target, db: Kysely<Database>): Promise<Resource> {
    const facts = await this.facts(principal, target.project, target.repo, db);
    return target.repo ? { kind: 'repository', path: `${target.project.key}/${target.repo.slug}`, facts } : { kind: 'project', key: target.project.key, facts };
  }

  /** The user's own grants and their groups' grants on the project (and repository), in one query. */
  private async facts(principal: Principal, project: Project, repo?: Repository, db: Kysely<Database> = this.db): Promise<AccessFacts> {
    const facts: AccessFacts = { isPublic: !!project.is_public || !!repo?.is_public, projectGrant: Level.NONE, repositoryGrant: Level.NONE };
    if (principal.kind !== 'user') return facts;
    const own = db
      .selectFrom('permissions')
      .select(['permission', 'repository_id'])
      .where('user_id', '=', principal.userId)
      .where((eb) => (repo ? eb.or([eb('project_id', '=', project.id), eb('repository_id', '=', repo.id)]) : eb('project_id', '=', project.id)));
    const viaGroups = db
      .selectFrom('group_permissions as gp')
      .innerJoin('group_members as gm', 'gm.group_id', 'gp.group_id')
      .select(['gp.permission', 'gp.repository_id'])
      .where('gm.user_id', '=', principal.userId)
      .where((eb) => (repo ? eb.or([eb('gp.project_id', '=', project.id), eb('gp.repository_id', '=', repo.id)]) : eb('gp.project_id', '=', project.id)));
    for (const row of await own.unionAll(viaGroups).execute()) {
      const level = levelOf(row.permission);
      if (row.repository_id === null) facts.projectGrant = Math.max(facts.projectGrant, level);
      else facts.repositoryGrant = Math.max(facts.repositoryGrant, level);
    }
    return facts;
  }

  async accessIndex(principal: Principal): Promise<AccessIndex> {
    const projectGrants = new Map<number, Level>();
    const repositoryGrants = new Map<number, Level>();
    if (principal.kind === 'user') {
      const own = this.db.selectFrom('permissions').select(['permission', 'project_id', 'repository_id']).where('user_id', '=', principal.userId);
      const viaGroups = this.db
        .selectFrom('group_permissions as gp')
        .innerJoin('group_members as gm', 'gm.group_id', 'gp.group_id')
        .select(['gp.permission', 'gp.project_id', 'gp.repository_id'])
        .where('gm.user_id', '=', principal.userId)
        .where((eb) => eb.or([eb('gp.project_id', 'is not', null), eb('gp.repository_id', 'is not', null)]));
      for (const row of await own.unionAll(viaGroups).execute()) {
        const level = levelOf(row.permission);
        if (row.repository_id === null && row.project_id !== null) projectGrants.set(row.project_id, Math.max(projectGrants.get(row.project_id) ?? Level.NONE, level));
        else if (row.repository_id !== null) repositoryGrants.set(row.repository_id, Math.max(repositoryGrants.get(row.repository_id) ?? Level.NONE, level));
      }
    }
    const facts = (project: Project, repo?: Repository): AccessFacts => ({
      isPublic: !!project.is_public || !!repo?.is_public,
      projectGrant: projectGrants.get(project.id) ?? Level.NONE,
      repositoryGrant: repo ? (repositoryGrants.get(repo.id) ?? Level.NONE) : Level.NONE,
    });
    return {
      project: (project) => ({ kind: 'project', key: project.key, facts: facts(project) }),
      repository: (project, repo) => ({ kind: 'repository', path: `${project.key}/${repo.slug}`, facts: facts(project, repo) }),
      grantedProjectIds: [...projectGrants.keys()],
      grantedRepositoryIds: [...repositoryGrants.keys()],
    };
  }

  async projectGrants(project: Project): Promise<Grant[]> {
    return this.userGrants('project_id', project.id);
  }

  async repositoryGrants(repo: Repository): Promise<Grant[]> {
    return this.userGrants('repository_id', repo.id);
  }

  private async userGrants(column: 'project_id' | 'repository_id', id: number): Promise<Grant[]> {
    const rows = await this.db
      .selectFrom('permissions as g')
      .innerJoin('users as u', 'u.id', 'g.user_id')
      .selectAll('u')
      .select('g.permission')
      .where(`g.${column}`, '=', id)
      .orderBy('u.name')
      .execute();
    return rows.map(({ permission, ...user }) => ({ user, permission }));
  }

  /** Group grants on the target itself (a project's, or a repository's own), ordered by group name. */
  async groupGrants(target: Target): Promise<GroupGrant[]> {
    let q = this.db.selectFrom('group_permissions as g').innerJoin('groups as gr', 'gr.id', 'g.group_id').selectAll('gr').select('g.permission').orderBy('gr.lower_name');
    q = target.repo ? q.where('g.repository_id', '=', target.repo.id) : q.where('g.project_id', '=', target.project.id).where('g.repository_id', 'is', null);
    const rows = await q.execute();
    return rows.map(({ permission, ...group }) => ({ group, permission }));
  }

  /**
   * Sets (or with `permission` null removes) the permission of users and groups on a project or repository, all
   * or none. With a guard, the changes are made and the caller's own level compared before and after inside one
   * transaction, so that a change that would lower it is rolled back, whatever mix of own and group grants the
   * caller holds.
   */
  async set(target: Target, grantees: Grantee[], permission: string | null, guard?: SelfGuard): Promise<void> {
    const scope = target.repo ? 'repository' : 'project';
    if (permission !== null && PERMISSION_LEVELS[permission]?.scope !== scope) {
      const names = scope === 'project' ? 'PROJECT_READ, PROJECT_WRITE or PROJECT_ADMIN' : 'REPO_READ, REPO_WRITE or REPO_ADMIN';
      throw Errors.invalid(`"${permission}" is not a ${scope} permission: use ${names}.`);
    }
    const projectId = target.repo ? null : target.project.id;
    const repositoryId = target.repo?.id ?? null;
    await this.events.transact(async (trx) => {
      const before = guard ? effectiveLevel(guard.principal, await this.resource(guard.principal, target, trx)) : Level.NONE;
      for (const grantee of grantees) {
        if (grantee.kind === 'user') {
          let del = trx.deleteFrom('permissions').where('user_id', '=', grantee.user.id);
          del = repositoryId === null ? del.where('project_id', '=', projectId).where('repository_id', 'is', null) : del.where('repository_id', '=', repositoryId);
          await del.execute();
          if (permission !== null) await trx.insertInto('permissions').values({ user_id: grantee.user.id, project_id: projectId, repository_id: repositoryId, permission }).execute();
        } else {
          let del = trx.deleteFrom('group_permissions').where('group_id', '=', grantee.group.id);
          del = repositoryId === null ? del.where('project_id', '=', projectId).where('repository_id', 'is', null) : del.where('repository_id', '=', repositoryId);
          await del.execute();
          if (permission !== null) await trx.insertInto('group_permissions').values({ group_id: grantee.group.id, project_id: projectId, repository_id: repositoryId, permission }).execute();
        }
      }
      if (guard && effectiveLevel(guard.principal, await this.resource(guard.principal, target, trx)) < before) throw guard.refusal();
      return { result: undefined, events: grantees.map((grantee) => permissionChanged(target, grantee, permission)) };
    });
  }
}

/** The event for one grant on a project or repository being set, changed or (permission null) removed. */
export function permissionChanged(target: { project: { id: number; key: string }; repo?: { id: number; slug: string } }, grantee: Grantee, permission: string | null): NewEvent {
  return {
    type: 'permission.changed',
    projectId: target.project.id,
    repositoryId: target.repo?.id ?? null,
    data: {
      scope: target.repo ? 'repository' : 'project',
      projectKey: target.project.key,
      ...(target.repo ? { slug: target.repo.slug } : {}),
      ...grantEventData(grantee),
      permission,
    },
  };
}
