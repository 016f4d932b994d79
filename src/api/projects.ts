// /rest/api/1.0/projects: list (only what the caller can see), create (sysadmins), get, update, delete.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { authorize, type Action } from '../access/authorize.js';
import { Errors } from '../errors.js';
import type { AppContext } from '../server/context.js';
import { canRead, principalOf, projectFor, projectViewFor, requireSysadmin } from './access.js';
import { errorResponses, projectJson, ProjectJson } from './json.js';
import { PageQuery, Paged, pageBounds, pageOf } from './paging.js';

const TAGS = ['Projects'];
export const ProjectKeyParams = Type.Object({ projectKey: Type.String({ description: 'Project key, e.g. PROJ (case-insensitive).' }) });
type ProjectKeyParams = Static<typeof ProjectKeyParams>;

const ProjectLevel = Type.Union([Type.Literal('PROJECT_READ'), Type.Literal('PROJECT_WRITE'), Type.Literal('PROJECT_ADMIN')]);
export const ACTION_OF: Record<string, Action> = {
  PROJECT_READ: 'read',
  PROJECT_WRITE: 'write',
  PROJECT_ADMIN: 'admin',
  REPO_READ: 'read',
  REPO_WRITE: 'write',
  REPO_ADMIN: 'admin',
};

export const ListQuery = Type.Composite([
  PageQuery,
  Type.Object({
    name: Type.Optional(Type.String({ description: 'Only projects whose name contains this text (case-insensitive).' })),
    permission: Type.Optional(ProjectLevel),
  }),
]);

const CreateBody = Type.Object({
  key: Type.String({ description: 'Letters, digits and "_", starting with a letter; stored upper case.' }),
  name: Type.Optional(Type.String()),
  description: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  public: Type.Optional(Type.Boolean()),
});

const UpdateBody = Type.Object({
  key: Type.Optional(Type.String({ description: 'A new key; clone URLs change with it.' })),
  name: Type.Optional(Type.String()),
  description: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  public: Type.Optional(Type.Boolean()),
});

export function registerProjectRoutes(app: FastifyInstance, context: AppContext): void {
  const { urls } = context;

  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/rest/api/1.0/projects',
    {
      schema: {
        tags: TAGS,
        summary: 'Get projects',
        description: 'Projects the caller can see, by key: public projects for anonymous callers, and projects in which the caller can read the project or one of its repositories.',
        querystring: ListQuery,
        response: { 200: Paged(ProjectJson, 'A page of projects.'), ...errorResponses },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { start, limit } = pageBounds(request.query);
      const index = await context.permissions.accessIndex(principal);
      const needle = request.query.name?.toLowerCase();
      const action = request.query.permission ? ACTION_OF[request.query.permission]! : undefined;
      // Projects seen only through a readable repository (Bitbucket's implied PROJECT_VIEW).
      const viaRepos = new Set<number>();
      if (!action) {
        const candidates = await context.repositories.listViews({ candidatesFor: { projectIds: [], repositoryIds: index.grantedRepositoryIds } }, 0, 100_000);
        for (const v of candidates) if (canRead(principal, index.repository(v.project, v.repo))) viaRepos.add(v.project.id);
      }
      const visible = (await context.projects.list()).filter((p) => {
        if (needle && !p.name.toLowerCase().includes(needle)) return false;
        const resource = index.project(p);
        if (action) {
          try {
            authorize(principal, resource, action);
            return true;
          } catch {
            return false;
          }
        }
        return canRead(principal, resource) || viaRepos.has(p.id);
      });
      return pageOf(
        visible.map((p) => projectJson(urls, p)),
        start,
        limit,
      );
    },
  );

  app.post<{ Body: Static<typeof CreateBody> }>(
    '/rest/api/1.0/projects',
    {
      schema: {
        tags: TAGS,
        summary: 'Create a new project',
        description: 'System administrators only.',
        body: CreateBody,
        response: { 201: ProjectJson, ...errorResponses },
      },
    },
    async (request, reply) => {
      requireSysadmin(principalOf(request));
      const body = request.body;
      const project = await context.projects.create({
        key: body.key,
        ...(body.name !== undefined ? { name: body.name } : {}),
        ...(body.description !== undefined ? { description: body.description } : {}),
        ...(body.public !== undefined ? { public: body.public } : {}),
      });
      return reply.status(201).send(projectJson(urls, project));
    },
  );

  app.get<{ Params: ProjectKeyParams }>(
    '/rest/api/1.0/projects/:projectKey',
    {
      schema: { tags: TAGS, summary: 'Get a project', params: ProjectKeyParams, response: { 200: ProjectJson, ...errorResponses } },
    },
    async (request) => projectJson(urls, await projectViewFor(context, principalOf(request), request.params.projectKey)),
  );

  app.put<{ Params: ProjectKeyParams; Body: Static<typeof UpdateBody> }>(
    '/rest/api/1.0/projects/:projectKey',
    {
      schema: {
        tags: TAGS,
        summary: 'Update project',
        description: 'Needs PROJECT_ADMIN. Answers 200, or 201 when the key changed (as Bitbucket does).',
        params: ProjectKeyParams,
        body: UpdateBody,
        response: { 200: ProjectJson, 201: ProjectJson, ...errorResponses },
      },
    },
    async (request, reply) => {
      const project = await projectFor(context, principalOf(request), request.params.projectKey, 'admin');
      const body = request.body ?? {};
      const updated = await context.projects.update(project, {
        ...(body.key !== undefined ? { key: body.key } : {}),
        ...(body.name !== undefined ? { name: body.name } : {}),
        ...(body.description !== undefined ? { description: body.description } : {}),
        ...(body.public !== undefined ? { public: body.public } : {}),
      });
      return reply.status(updated.key !== project.key ? 201 : 200).send(projectJson(urls, updated));
    },
  );

  app.delete<{ Params: ProjectKeyParams }>(
    '/rest/api/1.0/projects/:projectKey',
    {
      schema: {
        tags: TAGS,
        summary: 'Delete project',
        description: 'Needs PROJECT_ADMIN. A project must be empty (409 otherwise), so that no repository is deleted by accident.',
        params: ProjectKeyParams,
        response: { 204: Type.Null({ description: 'Deleted.' }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const project = await projectFor(context, principalOf(request), request.params.projectKey, 'admin');
      await context.projects.remove(project);
      return reply.status(204).send();
    },
  );
}

/** For messages: "PROJECT_WRITE" is not a repository permission, and the like. */
export function unknownPermission(value: string, scope: 'project' | 'repository' | 'global'): Error {
  const names = { project: 'PROJECT_READ, PROJECT_WRITE or PROJECT_ADMIN', repository: 'REPO_READ, REPO_WRITE or REPO_ADMIN', global: 'SYS_ADMIN' }[scope];
  return Errors.invalid(`"${value}" is not a ${scope} permission: use ${names}.`);
}
