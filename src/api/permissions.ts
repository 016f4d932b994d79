// User and group permissions on projects and repositories, at Bitbucket's paths and with its query-parameter
// style (PUT .../permissions/users?name=alice&name=bob&permission=REPO_WRITE, DELETE ?name=alice, and the same
// under .../permissions/groups). Administrators of a project or repository manage them; like Bitbucket, nobody
// can lower their own access here (directly, or through a group they are in) unless another grant (or being a
// sysadmin) keeps it.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { PERMISSION_LEVELS, type Principal } from '../access/authorize.js';
import type { Grantee, Target } from '../domain/permissions.js';
import { Errors } from '../errors.js';
import type { AppContext } from '../server/context.js';
import { principalOf, projectFor, repositoryFor } from './access.js';
import { errorResponses, groupJson, PermittedGroupJson, PermittedUserJson, userJson, NoContent } from './json.js';
import { PageQuery, Paged, pageBounds, pageOf } from './paging.js';
import { ProjectKeyParams, unknownPermission } from './projects.js';
import { RepoParams } from './repos.js';

const TAGS = ['Permissions'];

type Kind = 'user' | 'group';

const listQuery = (kind: Kind) =>
  Type.Composite([
    PageQuery,
    Type.Object({
      filter: Type.Optional(Type.String({ description: kind === 'user' ? 'Only users whose name or display name contains this text.' : 'Only groups whose name contains this text.' })),
    }),
  ]);
const names = (kind: Kind) => Type.Array(Type.String(), { minItems: 1, description: `${kind === 'user' ? 'User' : 'Group'} name; repeat the parameter for several.` });
const grantQuery = (kind: Kind) => Type.Object({ name: names(kind), permission: Type.String({ examples: ['PROJECT_WRITE', 'REPO_WRITE'] }) });
const revokeQuery = (kind: Kind) => Type.Object({ name: names(kind) });

type ListQuery = Static<ReturnType<typeof listQuery>>;
type GrantQuery = Static<ReturnType<typeof grantQuery>>;
type RevokeQuery = Static<ReturnType<typeof revokeQuery>>;

export function registerPermissionRoutes(app: FastifyInstance, context: AppContext): void {
  const { permissions, users, groups, urls } = context;

  async function list(kind: Kind, target: Target, filter: string | undefined, start: number, limit: number) {
    const needle = filter?.toLowerCase();
    if (kind === 'group') {
      const grants = await permissions.groupGrants(target);
      const shown = grants.filter((g) => !needle || g.group.lower_name.includes(needle));
      return pageOf(
        shown.map((g) => ({ group: groupJson(g.group), permission: g.permission })),
        start,
        limit,
      );
    }
    const grants = target.repo ? await permissions.repositoryGrants(target.repo) : await permissions.projectGrants(target.project);
    const shown = grants.filter((g) => !needle || g.user.name.includes(needle) || g.user.display_name.toLowerCase().includes(needle));
    return pageOf(
      shown.map((g) => ({ user: userJson(urls, g.user), permission: g.permission })),
      start,
      limit,
    );
  }

  async function grantees(kind: Kind, requested: string[]): Promise<Grantee[]> {
    const found: Grantee[] = [];
    for (const name of [...new Set(requested.map((n) => n.trim().toLowerCase()))]) {
      found.push(kind === 'user' ? { kind, user: await users.require(name) } : { kind, group: await groups.require(name) });
    }
    return found;
  }

  async function grant(principal: Principal, target: Target, kind: Kind, requested: string[], permission: string): Promise<void> {
    const scope = target.repo ? 'repository' : 'project';
    if (PERMISSION_LEVELS[permission]?.scope !== scope) throw unknownPermission(permission, scope);
    const refusal = () => Errors.forbidden('lower your own permission here; ask another administrator');
    await permissions.set(target, await grantees(kind, requested), permission, { principal, refusal });
  }

  async function revoke(principal: Principal, target: Target, kind: Kind, requested: string[]): Promise<void> {
    const refusal = () => Errors.conflict('You cannot revoke your own permission here; ask another administrator.');
    await permissions.set(target, await grantees(kind, requested), null, { principal, refusal });
  }

  const scopes = [
    {
      what: 'project',
      path: '/rest/api/1.0/projects/:projectKey/permissions',
      params: ProjectKeyParams as TSchema,
      needs: 'PROJECT_ADMIN',
      permissionNames: 'PROJECT_READ, PROJECT_WRITE or PROJECT_ADMIN',
      listNote: '',
      target: async (principal: Principal, params: unknown): Promise<Target> => ({ project: await projectFor(context, principal, (params as { projectKey: string }).projectKey, 'admin') }),
    },
    {
      what: 'repository',
      path: '/rest/api/1.0/projects/:projectKey/repos/:repositorySlug/permissions',
      params: RepoParams as TSchema,
      needs: 'REPO_ADMIN',
      permissionNames: 'REPO_READ, REPO_WRITE or REPO_ADMIN',
      listNote: ' Lists grants on the repository itself (project grants are listed on the project).',
      target: async (principal: Principal, params: unknown): Promise<Target> => {
        const { projectKey, repositorySlug } = params as RepoParams;
        const view = await repositoryFor(context, principal, projectKey, repositorySlug, 'admin');
        return { project: view.project, repo: view.repo };
      },
    },
  ];

  for (const scope of scopes) {
    for (const kind of ['user', 'group'] as const) {
      const path = `${scope.path}/${kind}s`;
      const item = kind === 'user' ? PermittedUserJson : PermittedGroupJson;
      const members = kind === 'group' ? ' Members of a group get the highest of their own and their groups\' permissions.' : '';

      app.get<{ Querystring: ListQuery }>(
        path,
        {
          schema: {
            tags: TAGS,
            summary: `Get ${kind}s with permission to ${scope.what}`,
            description: `Needs ${scope.needs}.${scope.listNote}`,
            params: scope.params,
            querystring: listQuery(kind),
            response: { 200: Paged(item, `A page of ${kind}s and their permission.`), ...errorResponses },
          },
        },
        async (request) => {
          const target = await scope.target(principalOf(request), request.params);
          const { start, limit } = pageBounds(request.query);
          return list(kind, target, request.query.filter, start, limit);
        },
      );

      app.put<{ Querystring: GrantQuery }>(
        path,
        {
          schema: {
            tags: TAGS,
            summary: `Update ${kind} ${scope.what} permission`,
            description: `Needs ${scope.needs}. \`permission\` is ${scope.permissionNames}; it replaces what the ${kind}s had on the ${scope.what}.${members}`,
            params: scope.params,
            querystring: grantQuery(kind),
            response: { 204: NoContent, ...errorResponses },
          },
        },
        async (request, reply) => {
          const principal = principalOf(request);
          await grant(principal, await scope.target(principal, request.params), kind, request.query.name, request.query.permission);
          return reply.status(204).send();
        },
      );

      app.delete<{ Querystring: RevokeQuery }>(
        path,
        {
          schema: {
            tags: TAGS,
            summary: `Revoke ${kind} ${scope.what} permission`,
            description: `Needs ${scope.needs}.`,
            params: scope.params,
            querystring: revokeQuery(kind),
            response: { 204: NoContent, ...errorResponses },
          },
        },
        async (request, reply) => {
          const principal = principalOf(request);
          await revoke(principal, await scope.target(principal, request.params), kind, request.query.name);
          return reply.status(204).send();
        },
      );
    }
  }
}
