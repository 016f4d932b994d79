// /rest/api/1.0/projects/{projectKey}/repos and /rest/api/1.0/repos: list, create, get, update (rename, move,
// publish), delete. Renames and moves are metadata changes: the repository on disk is named by its id.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { authorize, type Principal } from '../access/authorize.js';
import type { AccessIndex } from '../domain/permissions.js';
import type { RepositoryFilter, RepositoryView } from '../domain/repositories.js';
import { Errors } from '../errors.js';
import type { AppContext } from '../server/context.js';
import type { Project } from '../store/tables.js';
import { principalOf, projectFor, projectViewFor, repositoryFor } from './access.js';
import { errorResponses, repositoryJson, RepositoryJson } from './json.js';
import { PageQuery, Paged, pageBounds, scanPage, type Page } from './paging.js';
import { ACTION_OF, ProjectKeyParams } from './projects.js';

const TAGS = ['Repositories'];
export const RepoParams = Type.Object({
  projectKey: Type.String({ description: 'Project key (case-insensitive).' }),
  repositorySlug: Type.String({ description: 'Repository slug.' }),
});
export type RepoParams = Static<typeof RepoParams>;

const RepoLevel = Type.Union([Type.Literal('REPO_READ'), Type.Literal('REPO_WRITE'), Type.Literal('REPO_ADMIN')]);

export const ProjectReposQuery = PageQuery;

export const AllReposQuery = Type.Composite([
  PageQuery,
  Type.Object({
    name: Type.Optional(Type.String({ description: 'Only repositories whose name contains this text (case-insensitive).' })),
    projectname: Type.Optional(Type.String({ description: 'Only repositories in projects whose name contains this text.' })),
    projectkey: Type.Optional(Type.String({ description: 'Only repositories in this project.' })),
    visibility: Type.Optional(Type.Union([Type.Literal('public'), Type.Literal('private')])),
    permission: Type.Optional(RepoLevel),
  }),
]);

const CreateBody = Type.Object({
  name: Type.String({ description: 'The slug is derived from the name, as in Bitbucket.' }),
  scmId: Type.Optional(Type.Literal('git')),
  forkable: Type.Optional(Type.Boolean({ description: 'Accepted for compatibility; forks are not supported.' })),
  defaultBranch: Type.Optional(Type.String({ examples: ['main'] })),
  public: Type.Optional(Type.Boolean()),
  description: Type.Optional(Type.Union([Type.String(), Type.Null()])),
});

const UpdateBody = Type.Object({
  name: Type.Optional(Type.String({ description: 'A new name renames the repository; its slug follows the name.' })),
  public: Type.Optional(Type.Boolean()),
  description: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  defaultBranch: Type.Optional(Type.String()),
  project: Type.Optional(Type.Object({ key: Type.String() }, { description: 'Moves the repository (needs PROJECT_ADMIN on the target project).' })),
});

/** Repositories matching `filter` that the principal can use at `level`, paged in project/slug order. */
export async function visibleRepositories(
  context: AppContext,
  principal: Principal,
  filter: RepositoryFilter,
  start: number,
  limit: number,
  action: 'read' | 'write' | 'admin' = 'read',
): Promise<Page<RepositoryJson>> {
  const index: AccessIndex = await context.permissions.accessIndex(principal);
  // The database narrows to rows the caller could possibly see; the policy function decides about each one.
  const narrowed: RepositoryFilter =
    principal.kind === 'user' && principal.sysadmin ? filter : { ...filter, candidatesFor: { projectIds: index.grantedProjectIds, repositoryIds: index.grantedRepositoryIds } };
  return scanPage(
    (offset, count) => context.repositories.listViews(narrowed, offset, count),
    (view: RepositoryView) => {
      try {
        authorize(principal, index.repository(view.project, view.repo), action);
        return repositoryJson(context.urls, view.project, view.repo);
      } catch {
        return undefined;
      }
    },
    start,
    limit,
  );
}

export function registerRepositoryRoutes(app: FastifyInstance, context: AppContext): void {
  const { urls } = context;

  app.get<{ Params: Static<typeof ProjectKeyParams>; Querystring: Static<typeof ProjectReposQuery> }>(
    '/rest/api/1.0/projects/:projectKey/repos',
    {
      schema: {
        tags: TAGS,
        summary: 'Get repositories for project',
        description: 'The repositories of the project that the caller can read, by slug.',
        params: ProjectKeyParams,
        querystring: ProjectReposQuery,
        response: { 200: Paged(RepositoryJson, 'A page of repositories.'), ...errorResponses },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const project = await projectViewFor(context, principal, request.params.projectKey);
      const { start, limit } = pageBounds(request.query);
      return visibleRepositories(context, principal, { projectId: project.id }, start, limit);
    },
  );

  app.post<{ Params: Static<typeof ProjectKeyParams>; Body: Static<typeof CreateBody> }>(
    '/rest/api/1.0/projects/:projectKey/repos',
    {
      schema: {
        tags: TAGS,
        summary: 'Create repository',
        description: 'Needs PROJECT_ADMIN on the project. The clone links of the answer work at once.',
        params: ProjectKeyParams,
        body: CreateBody,
        response: { 201: RepositoryJson, ...errorResponses },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const project = await projectFor(context, principal, request.params.projectKey, 'admin');
      const body = request.body;
      const repo = await context.repositories.create(
        project,
        {
          name: body.name,
          ...(body.defaultBranch !== undefined ? { defaultBranch: body.defaultBranch } : {}),
          ...(body.public !== undefined ? { public: body.public } : {}),
          ...(body.description !== undefined ? { description: body.description } : {}),
        },
        actorOf(principal),
      );
      return reply.status(201).send(repositoryJson(urls, project, repo));
    },
  );

  app.get<{ Params: RepoParams }>(
    '/rest/api/1.0/projects/:projectKey/repos/:repositorySlug',
    { schema: { tags: TAGS, summary: 'Get repository', params: RepoParams, response: { 200: RepositoryJson, ...errorResponses } } },
    async (request) => {
      const view = await repositoryFor(context, principalOf(request), request.params.projectKey, request.params.repositorySlug, 'read');
      return repositoryJson(urls, view.project, view.repo);
    },
  );

  app.put<{ Params: RepoParams; Body: Static<typeof UpdateBody> }>(
    '/rest/api/1.0/projects/:projectKey/repos/:repositorySlug',
    {
      schema: {
        tags: TAGS,
        summary: 'Update repository',
        description:
          'Needs REPO_ADMIN. `name` renames (the slug follows, and the old clone URL stops working), `public` publishes, `project: {key}` moves the repository ' +
          '(needs PROJECT_ADMIN on the target), `defaultBranch` sets HEAD. Answers 201 with the updated repository, as Bitbucket does.',
        params: RepoParams,
        body: UpdateBody,
        response: { 201: RepositoryJson, ...errorResponses },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const view = await repositoryFor(context, principal, request.params.projectKey, request.params.repositorySlug, 'admin');
      const body = request.body ?? {};
      let target: Project | undefined;
      if (body.project?.key !== undefined && body.project.key.toUpperCase() !== view.project.key) {
        target = await projectFor(context, principal, body.project.key, 'admin');
      }
      let repo = view.repo;
      // Clients often send the whole repository back; only fields that differ are changes (an unchanged name
      // must not re-derive a slug that was chosen differently).
      const rename = body.name !== undefined && body.name.trim() !== view.repo.name;
      const publish = body.public !== undefined && body.public !== !!view.repo.is_public;
      const describe = body.description !== undefined && (body.description ?? null) !== view.repo.description;
      if (rename || publish || describe || target) {
        repo = await context.repositories.update(view, {
          ...(rename ? { name: body.name! } : {}),
          ...(publish ? { public: body.public! } : {}),
          ...(describe ? { description: body.description ?? null } : {}),
          ...(target ? { project: target } : {}),
        });
      }
      if (body.defaultBranch !== undefined) {
        await context.repositories.setDefaultBranch(repo, body.defaultBranch, { actor: principal.kind === 'user' ? principal.name : undefined, via: 'rest' });
      }
      return reply.status(201).send(repositoryJson(urls, target ?? view.project, repo));
    },
  );

  app.delete<{ Params: RepoParams }>(
    '/rest/api/1.0/projects/:projectKey/repos/:repositorySlug',
    {
      schema: {
        tags: TAGS,
        summary: 'Delete repository',
        description: 'Needs REPO_ADMIN. Answers 202 as Bitbucket does; the repository is gone from listings and git at once.',
        params: RepoParams,
        response: { 202: Type.Null({ description: 'Deleted.' }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const view = await repositoryFor(context, principal, request.params.projectKey, request.params.repositorySlug, 'admin');
      await context.repositories.remove(view, actorOf(principal));
      return reply.status(202).send();
    },
  );

  app.get<{ Querystring: Static<typeof AllReposQuery> }>(
    '/rest/api/1.0/repos',
    {
      schema: {
        tags: TAGS,
        summary: 'Search repositories',
        description: 'All repositories the caller can read (or use at `permission`), ordered by project key and slug.',
        querystring: AllReposQuery,
        response: { 200: Paged(RepositoryJson, 'A page of repositories.'), ...errorResponses },
      },
    },
    async (request) => {
      const q = request.query;
      const { start, limit } = pageBounds(q);
      const filter: RepositoryFilter = {
        ...(q.name ? { name: q.name } : {}),
        ...(q.projectname ? { projectName: q.projectname } : {}),
        ...(q.projectkey ? { projectKey: q.projectkey } : {}),
        ...(q.visibility ? { public: q.visibility === 'public' } : {}),
      };
      const action = q.permission ? ACTION_OF[q.permission] : 'read';
      if (!action) throw Errors.invalid(`Unknown permission "${q.permission}".`);
      return visibleRepositories(context, principalOf(request), filter, start, limit, action);
    },
  );
}

export function actorOf(principal: Principal): string | undefined {
  return principal.kind === 'user' ? principal.name : undefined;
}
