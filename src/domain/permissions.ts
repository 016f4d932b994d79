// Project and repository permissions granted to users, and the facts the policy function needs about them.
import { Level, PERMISSION_LEVELS, type AccessFacts, type Principal, type Resource } from '../access/authorize.js';
import { Errors } from '../errors.js';
import type { EventLog } from '../events/log.js';
import type { Db } from '../store/database.js';
import type { Project, Repository, User } from '../store/tables.js';

export interface Grant {
  user: User;
  permission: string;
}

/**
 * One principal's grants loaded once, so that lists (projects, repositories) can be checked item by item with
 * `authorize`/`effectiveLevel` without a query per item. It builds the same resources as projectResource and
 * repositoryResource.
 */
export interface AccessIndex {
  project(project: Project): Resource;
  repository(project: Project, repo: Repository): Resource;
  /** Projects the principal holds a direct grant on. */
  grantedProjectIds: number[];
  /** Repositories the principal holds a direct grant on (the only private repositories it can see outside readable projects). */
  grantedRepositoryIds: number[];
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

  private async facts(principal: Principal, project: Project, repo?: Repository): Promise<AccessFacts> {
    const facts: AccessFacts = { isPublic: !!project.is_public || !!repo?.is_public, projectGrant: Level.NONE, repositoryGrant: Level.NONE };
    if (principal.kind !== 'user') return facts;
    const rows = await this.db
      .selectFrom('permissions')
      .select(['permission', 'repository_id'])
      .where('user_id', '=', principal.userId)
      .where((eb) => (repo ? eb.or([eb('project_id', '=', project.id), eb('repository_id', '=', repo.id)]) : eb('project_id', '=', project.id)))
      .execute();
    for (const row of rows) {
      const level = PERMISSION_LEVELS[row.permission]?.level ?? Level.NONE;
      if (row.repository_id === null) facts.projectGrant = Math.max(facts.projectGrant, level);
      else facts.repositoryGrant = Math.max(facts.repositoryGrant, level);
    }
    return facts;
  }

  async accessIndex(principal: Principal): Promise<AccessIndex> {
    const projectGrants = new Map<number, Level>();
    const repositoryGrants = new Map<number, Level>();
    if (principal.kind === 'user') {
      const rows = await this.db.selectFrom('permissions').select(['permission', 'project_id', 'repository_id']).where('user_id', '=', principal.userId).execute();
      for (const row of rows) {
        const level = PERMISSION_LEVELS[row.permission]?.level ?? Level.NONE;
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
    return this.grants('project_id', project.id);
  }

  async repositoryGrants(repo: Repository): Promise<Grant[]> {
    return this.grants('repository_id', repo.id);
  }

  private async grants(column: 'project_id' | 'repository_id', id: number): Promise<Grant[]> {
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

  /** Sets (or with `permission` null removes) one user's permission on a project or repository. */
  async set(target: { project: Project; repo?: Repository }, user: User, permission: string | null): Promise<void> {
    const scope = target.repo ? 'repository' : 'project';
    if (permission !== null && PERMISSION_LEVELS[permission]?.scope !== scope) {
      const names = scope === 'project' ? 'PROJECT_READ, PROJECT_WRITE or PROJECT_ADMIN' : 'REPO_READ, REPO_WRITE or REPO_ADMIN';
      throw Errors.invalid(`"${permission}" is not a ${scope} permission: use ${names}.`);
    }
    const projectId = target.repo ? null : target.project.id;
    const repositoryId = target.repo?.id ?? null;
    await this.events.transact(async (trx) => {
      let del = trx.deleteFrom('permissions').where('user_id', '=', user.id);
      del = repositoryId === null ? del.where('project_id', '=', projectId).where('repository_id', 'is', null) : del.where('repository_id', '=', repositoryId);
      await del.execute();
      if (permission !== null) {
        await trx.insertInto('permissions').values({ user_id: user.id, project_id: projectId, repository_id: repositoryId, permission }).execute();
      }
      return {
        result: undefined,
        events: [
          {
            type: 'permission.changed',
            projectId: target.project.id,
            repositoryId,
            data: { scope, projectKey: target.project.key, ...(target.repo ? { slug: target.repo.slug } : {}), userId: user.id, user: user.name, permission },
          },
        ],
      };
    });
  }
}
