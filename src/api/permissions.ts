// User permissions on projects and repositories, at Bitbucket's paths and with its query-parameter style
// (PUT ?name=alice&name=bob&permission=REPO_WRITE, DELETE ?name=alice). Administrators of a project or
// repository manage them; like Bitbucket, nobody can lower their own access here unless a higher grant (or
// being a sysadmin) keeps it.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { effectiveLevel, PERMISSION_LEVELS, type Principal, type Resource } from '../access/authorize.js';
import { Errors } from '../errors.js';
import type { AppContext } from '../server/context.js';
import type { Project, Repository, User } from '../store/tables.js';
import { principalOf, projectFor, repositoryFor } from './access.js';
import { errorResponses, PermittedUserJson, userJson, NoContent } from './json.js';
import { PageQuery, Paged, pageBounds, pageOf } from './paging.js';
import { ProjectKeyParams, unknownPermission } from './projects.js';
import { RepoParams } from './repos.js';

const TAGS = ['Permissions'];

const ListQuery = Type.Composite([PageQuery, Type.Object({ filter: Type.Optional(Type.String({ description: 'Only users whose name or display name contains this text.' })) })]);
const Names = Type.Array(Type.String(), { minItems: 1, description: 'User name; repeat the parameter for several users.' });
const GrantQuery = Type.Object({ name: Names, permission: Type.String({ examples: ['PROJECT_WRITE', 'REPO_WRITE'] }) });
const RevokeQuery = Type.Object({ name: Names });

interface Target {
  project: Project;
  repo?: Repository;
}

export function registerPermissionRoutes(app: FastifyInstance, context: AppContext): void {
  const { permissions, users, urls } = context;

  async function resourceOf(principal: Principal, target: Target): Promise<Resource> {
    return target.repo ? permissions.repositoryResource(principal, target.project, target.repo) : permissions.projectResource(principal, target.project);
  }

  async function list(target: Target, filter: string | undefined, start: number, limit: number) {
    const grants = target.repo ? await permissions.repositoryGrants(target.repo) : await permissions.projectGrants(target.project);
    const needle = filter?.toLowerCase();
    const shown = grants.filter((g) => !needle || g.user.name.includes(needle) || g.user.display_name.toLowerCase().includes(needle));
    return pageOf(
      shown.map((g) => ({ user: userJson(urls, g.user), permission: g.permission })),
      start,
      limit,
    );
  }

  /** Refuses a change that would lower the caller's own effective level on the target. */
  async function guardSelf(principal: Principal, target: Target, user: User, permission: string | null, refusal: () => Error): Promise<void> {
    if (principal.kind !== 'user' || principal.userId !== user.id) return;
    const before = await resourceOf(principal, target);
    if (before.kind === 'system') return;
    const level = permission === null ? 0 : (PERMISSION_LEVELS[permission]?.level ?? 0);
    const facts = target.repo ? { ...before.facts, repositoryGrant: level } : { ...before.facts, projectGrant: level };
    if (effectiveLevel(principal, { ...before, facts }) < effectiveLevel(principal, before)) throw refusal();
  }

  async function usersNamed(names: string[]): Promise<User[]> {
    const found: User[] = [];
    for (const name of [...new Set(names.map((n) => n.toLowerCase()))]) found.push(await users.require(name));
    return found;
  }

  async function grant(principal: Principal, target: Target, names: string[], permission: string): Promise<void> {
    const scope = target.repo ? 'repository' : 'project';
    if (PERMISSION_LEVELS[permission]?.scope !== scope) throw unknownPermission(permission, scope);
    const people = await usersNamed(names);
    for (const user of people) {
      await guardSelf(principal, target, user, permission, () => Errors.forbidden('lower your own permission here; ask another administrator'));
    }
    for (const user of people) await permissions.set(target, user, permission);
  }

  async function revoke(principal: Principal, target: Target, names: string[]): Promise<void> {
    const people = await usersNamed(names);
    for (const user of people) {
      await guardSelf(principal, target, user, null, () => Errors.conflict('You cannot revoke your own permission here; ask another administrator.'));
    }
    for (const user of people) await permissions.set(target, user, null);
  }

  // --- projects -------------------------------------------------------------------------------------------

  const projectPath = '/rest/api/1.0/projects/:projectKey/permissions/users';
  const projectTarget = async (principal: Principal, key: string): Promise<Target> => ({ project: await projectFor(context, principal, key, 'admin') });

  app.get<{ Params: Static<typeof ProjectKeyParams>; Querystring: Static<typeof ListQuery> }>(
    projectPath,
    {
      schema: {
        tags: TAGS,
        summary: 'Get users with permission to project',
        description: 'Needs PROJECT_ADMIN.',
        params: ProjectKeyParams,
        querystring: ListQuery,
        response: { 200: Paged(PermittedUserJson, 'A page of users and their permission.'), ...errorResponses },
      },
    },
    async (request) => {
      const target = await projectTarget(principalOf(request), request.params.projectKey);
      const { start, limit } = pageBounds(request.query);
      return list(target, request.query.filter, start, limit);
    },
  );

  app.put<{ Params: Static<typeof ProjectKeyParams>; Querystring: Static<typeof GrantQuery> }>(
    projectPath,
    {
      schema: {
        tags: TAGS,
        summary: 'Update user project permission',
        description: 'Needs PROJECT_ADMIN. `permission` is PROJECT_READ, PROJECT_WRITE or PROJECT_ADMIN; it replaces what the users had on the project.',
        params: ProjectKeyParams,
        querystring: GrantQuery,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      await grant(principal, await projectTarget(principal, request.params.projectKey), request.query.name, request.query.permission);
      return reply.status(204).send();
    },
  );

  app.delete<{ Params: Static<typeof ProjectKeyParams>; Querystring: Static<typeof RevokeQuery> }>(
    projectPath,
    {
      schema: {
        tags: TAGS,
        summary: 'Revoke user project permission',
        description: 'Needs PROJECT_ADMIN.',
        params: ProjectKeyParams,
        querystring: RevokeQuery,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      await revoke(principal, await projectTarget(principal, request.params.projectKey), request.query.name);
      return reply.status(204).send();
    },
  );

  // --- repositories ---------------------------------------------------------------------------------------

  const repoPath = '/rest/api/1.0/projects/:projectKey/repos/:repositorySlug/permissions/users';
  const repoTarget = async (principal: Principal, params: RepoParams): Promise<Target> => {
    const view = await repositoryFor(context, principal, params.projectKey, params.repositorySlug, 'admin');
    return { project: view.project, repo: view.repo };
  };

  app.get<{ Params: RepoParams; Querystring: Static<typeof ListQuery> }>(
    repoPath,
    {
      schema: {
        tags: TAGS,
        summary: 'Get users with permission to repository',
        description: 'Needs REPO_ADMIN. Lists grants on the repository itself (project grants are listed on the project).',
        params: RepoParams,
        querystring: ListQuery,
        response: { 200: Paged(PermittedUserJson, 'A page of users and their permission.'), ...errorResponses },
      },
    },
    async (request) => {
      const target = await repoTarget(principalOf(request), request.params);
      const { start, limit } = pageBounds(request.query);
      return list(target, request.query.filter, start, limit);
    },
  );

  app.put<{ Params: RepoParams; Querystring: Static<typeof GrantQuery> }>(
    repoPath,
    {
      schema: {
        tags: TAGS,
        summary: 'Update user repository permission',
        description: 'Needs REPO_ADMIN. `permission` is REPO_READ, REPO_WRITE or REPO_ADMIN.',
        params: RepoParams,
        querystring: GrantQuery,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      await grant(principal, await repoTarget(principal, request.params), request.query.name, request.query.permission);
      return reply.status(204).send();
    },
  );

  app.delete<{ Params: RepoParams; Querystring: Static<typeof RevokeQuery> }>(
    repoPath,
    {
      schema: {
        tags: TAGS,
        summary: 'Revoke user repository permission',
        description: 'Needs REPO_ADMIN.',
        params: RepoParams,
        querystring: RevokeQuery,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      await revoke(principal, await repoTarget(principal, request.params), request.query.name);
      return reply.status(204).send();
    },
  );
}
