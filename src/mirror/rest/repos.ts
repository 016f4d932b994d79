// /rest/api/1.0/projects/{key}/repos, /rest/api/1.0/repos and single repositories on a mirror: what it carries
// that the caller can read, in the primary's shapes, with clone links on this mirror.
import type { Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { errorResponses, repositoryJson, RepositoryJson } from '../../api/json.js';
import { Paged, pageBounds, pageOf } from '../../api/paging.js';
import { ProjectKeyParams } from '../../api/projects.js';
import { AllReposQuery, ProjectReposQuery, RepoParams } from '../../api/repos.js';
import type { RepositoryFilter, RepositoryView } from '../../domain/repositories.js';
import type { Page } from '../../api/paging.js';
import { principalOf, projectViewFor, repositoryFor, visibleRepositories } from './access.js';
import type { MirrorRestContext } from './context.js';

const PagedRepositories = Paged(RepositoryJson, 'A page of repositories.');

export function registerMirrorRepositoryRoutes(app: FastifyInstance, context: MirrorRestContext): void {
  const json = (page: Page<RepositoryView>) => ({ ...page, values: page.values.map((v) => repositoryJson(context.urls, v.project, v.repo)) });

  app.get<{ Params: Static<typeof ProjectKeyParams>; Querystring: Static<typeof ProjectReposQuery> }>(
    '/rest/api/1.0/projects/:projectKey/repos',
    { schema: { params: ProjectKeyParams, querystring: ProjectReposQuery, response: { 200: PagedRepositories, ...errorResponses } } },
    async (request) => {
      const principal = principalOf(request);
      const project = await projectViewFor(context, principal, request.params.projectKey);
      const { start, limit } = pageBounds(request.query);
      return json(await visibleRepositories(context, principal, { projectId: project.id }, start, limit));
    },
  );

  app.get<{ Params: RepoParams }>(
    '/rest/api/1.0/projects/:projectKey/repos/:repositorySlug',
    { schema: { params: RepoParams, response: { 200: RepositoryJson, ...errorResponses } } },
    async (request) => {
      const view = await repositoryFor(context, principalOf(request), request.params.projectKey, request.params.repositorySlug);
      return repositoryJson(context.urls, view.project, view.repo);
    },
  );

  app.get<{ Querystring: Static<typeof AllReposQuery> }>(
    '/rest/api/1.0/repos',
    { schema: { querystring: AllReposQuery, response: { 200: PagedRepositories, ...errorResponses } } },
    async (request) => {
      const q = request.query;
      const { start, limit } = pageBounds(q);
      // Read-only: nobody may write to or administer a repository through a mirror.
      if (q.permission && q.permission !== 'REPO_READ') return pageOf([], start, limit);
      const filter: RepositoryFilter = {
        ...(q.name ? { name: q.name } : {}),
        ...(q.projectname ? { projectName: q.projectname } : {}),
        ...(q.projectkey ? { projectKey: q.projectkey } : {}),
        ...(q.visibility ? { public: q.visibility === 'public' } : {}),
      };
      return json(await visibleRepositories(context, principalOf(request), filter, start, limit));
    },
  );
}
