// /rest/api/1.0/projects on a mirror: the projects it carries that the caller can see, in the primary's shapes.
import type { Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { errorResponses, projectJson, ProjectJson } from '../../api/json.js';
import { Paged, pageBounds, pageOf } from '../../api/paging.js';
import { ListQuery, ProjectKeyParams } from '../../api/projects.js';
import { principalOf, projectViewFor, visibleProjects } from './access.js';
import type { MirrorRestContext } from './context.js';

export function registerMirrorProjectRoutes(app: FastifyInstance, context: MirrorRestContext): void {
  const { urls } = context;

  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/rest/api/1.0/projects',
    { schema: { querystring: ListQuery, response: { 200: Paged(ProjectJson, 'A page of projects.'), ...errorResponses } } },
    async (request) => {
      const { start, limit } = pageBounds(request.query);
      // A mirror never grants more than read: asking for projects one may write to or administer finds none here.
      if (request.query.permission && request.query.permission !== 'PROJECT_READ') return pageOf([], start, limit);
      const needle = request.query.name?.toLowerCase();
      const visible = (await visibleProjects(context, principalOf(request))).filter((p) => !needle || p.name.toLowerCase().includes(needle));
      return pageOf(
        visible.map((p) => projectJson(urls, p)),
        start,
        limit,
      );
    },
  );

  app.get<{ Params: Static<typeof ProjectKeyParams> }>(
    '/rest/api/1.0/projects/:projectKey',
    { schema: { params: ProjectKeyParams, response: { 200: ProjectJson, ...errorResponses } } },
    async (request) => projectJson(urls, await projectViewFor(context, principalOf(request), request.params.projectKey)),
  );
}

