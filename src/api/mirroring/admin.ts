// Administration of mirrors, for system administrators: pending registration requests (accept with a project
// selection, or reject), mirror servers with their nodes, lag and synchronization state, their project
// selection, and deletion, which cuts a mirror off at once (REST, SSH and event streams).
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { authorize } from '../../access/authorize.js';
import { Errors } from '../../errors.js';
import type { MirroringMode } from '../../primary/mirrors.js';
import type { AppContext } from '../../server/context.js';
import type { Mirror, Project } from '../../store/tables.js';
import { errorResponses, projectJson, ProjectJson } from '../json.js';
import { PageQuery, Paged, pageBounds, pageOf } from '../paging.js';
import { callerOf, PREFIX, TAGS, type MirroringServices } from './common.js';
import { MirroringMode as MirroringModeSchema, MirroringRequestJson, mirroringRequestJson, MirrorIdParams, MirrorServerDetailsJson, mirrorServerDetailsJson } from './json.js';

const SelectionBody = Type.Object({
  mirroringMode: Type.Optional(MirroringModeSchema),
  projectKeys: Type.Optional(Type.Array(Type.String(), { maxItems: 10_000, description: 'Projects to carry, by key (SELECTED_PROJECTS).' })),
  projectIds: Type.Optional(Type.Array(Type.Integer(), { maxItems: 10_000, description: 'Projects to carry, by id (SELECTED_PROJECTS).' })),
});
type SelectionBody = Static<typeof SelectionBody>;
const AcceptBody = Type.Composite([Type.Object({ mirroringMode: MirroringModeSchema }), Type.Omit(SelectionBody, ['mirroringMode'])]);
const ProjectParams = Type.Composite([MirrorIdParams, Type.Object({ projectKeyOrId: Type.String({ description: 'Project key (e.g. PROJ) or numeric id.' }) })]);

/** mirrorServers/{id} of each mirror, as this API answers it (also what the web UI's Mirrors pages show). */
export async function mirrorDetailsJson(context: AppContext, state: MirroringServices['state'], mirrors: Mirror[]): Promise<Array<Static<typeof MirrorServerDetailsJson>>> {
  const details = await state.describe(mirrors);
  const projectIds = [...new Set([...details.values()].flatMap((d) => d.projectIds))];
  const projects = new Map<number, Project>();
  for (let i = 0; i < projectIds.length; i += 500) {
    for (const p of await context.db.selectFrom('projects').selectAll().where('id', 'in', projectIds.slice(i, i + 500)).execute()) projects.set(p.id, p);
  }
  return mirrors.map((m) => mirrorServerDetailsJson(context.urls, m, details.get(m.id)!, projects));
}

export function registerAdminRoutes(app: FastifyInstance, context: AppContext, services: MirroringServices): void {
  const { registry, state } = services;
  const { urls } = context;

  async function requireSysadmin(request: FastifyRequest): Promise<void> {
    authorize(await callerOf(context, request), { kind: 'system' }, 'admin');
  }

  const normalizeId = (id: string) => id.trim().toUpperCase();

  /** Project ids of a selection given by keys and/or ids; unknown keys are named in the error. */
  async function projectIdsOf(body: SelectionBody): Promise<number[] | undefined> {
    if (body.projectKeys === undefined && body.projectIds === undefined) return undefined;
    const ids = [...(body.projectIds ?? [])];
    for (const key of body.projectKeys ?? []) {
      const project = /^[A-Za-z0-9_]{1,128}$/.test(key) ? await context.projects.byKey(key) : undefined;
      if (!project) throw Errors.invalid(`Project ${key.toUpperCase()} does not exist.`);
      ids.push(project.id);
    }
    return ids;
  }

  async function projectFor(raw: string): Promise<Project> {
    const project = /^\d{1,15}$/.test(raw) ? await context.projects.byId(Number(raw)) : /^[A-Za-z0-9_]{1,128}$/.test(raw) ? await context.projects.byKey(raw) : undefined;
    if (!project) throw Errors.projectNotFound(raw.toUpperCase());
    return project;
  }

  const detailsJson = (mirrors: Mirror[]) => mirrorDetailsJson(context, state, mirrors);

  const one = async (mirror: Mirror) => (await detailsJson([mirror]))[0]!;

  app.get<{ Querystring: Static<typeof PageQuery> }>(
    `${PREFIX}/requests`,
    {
      schema: {
        tags: TAGS,
        summary: 'Get mirroring requests',
        description: 'System administrators. Pending registration requests, oldest first. Compare `publicKeyFingerprint` with the fingerprint the mirror shows before accepting.',
        querystring: PageQuery,
        response: { 200: Paged(MirroringRequestJson, 'A page of mirroring requests.'), ...errorResponses },
      },
    },
    async (request) => {
      await requireSysadmin(request);
      const { start, limit } = pageBounds(request.query);
      return pageOf((await registry.list(['PENDING'])).map(mirroringRequestJson), start, limit);
    },
  );

  app.post<{ Params: MirrorIdParams; Body: Static<typeof AcceptBody> }>(
    `${PREFIX}/requests/:mirrorId/accept`,
    {
      schema: {
        tags: TAGS,
        summary: 'Accept a mirroring request',
        description:
          'System administrators. Authorizes the mirror with ALL_PROJECTS or SELECTED_PROJECTS (`projectKeys` and/or `projectIds`). From now on its key may fetch ' +
          'those projects over SSH, read-only.',
        params: MirrorIdParams,
        body: AcceptBody,
        response: { 200: MirrorServerDetailsJson, ...errorResponses },
      },
    },
    async (request) => {
      await requireSysadmin(request);
      const body = request.body;
      const ids = (await projectIdsOf(body)) ?? [];
      return one(await registry.accept(normalizeId(request.params.mirrorId), body.mirroringMode, ids));
    },
  );

  app.post<{ Params: MirrorIdParams }>(
    `${PREFIX}/requests/:mirrorId/reject`,
    {
      schema: {
        tags: TAGS,
        summary: 'Reject a mirroring request',
        description: 'System administrators. The mirror gets MIRROR_REJECTED on every call; it may ask again with a new request later.',
        params: MirrorIdParams,
        response: { 204: Type.Null({ description: 'Rejected.' }), ...errorResponses },
      },
    },
    async (request, reply) => {
      await requireSysadmin(request);
      await registry.reject(normalizeId(request.params.mirrorId));
      return reply.status(204).send();
    },
  );

  app.get<{ Querystring: Static<typeof PageQuery> }>(
    `${PREFIX}/mirrorServers`,
    {
      schema: {
        tags: TAGS,
        summary: 'Get mirrors',
        description:
          'System administrators. Authorized mirrors (farms) with their nodes (state, role, last contact, lag, version, repositories in sync), the farm\'s size, its ' +
          'SSH host keys, and how many of its repositories are in sync or failing.',
        querystring: PageQuery,
        response: { 200: Paged(MirrorServerDetailsJson, 'A page of mirror servers.'), ...errorResponses },
      },
    },
    async (request) => {
      await requireSysadmin(request);
      const { start, limit } = pageBounds(request.query);
      const page = pageOf(await registry.list(['ACTIVE']), start, limit);
      return { ...page, values: await detailsJson(page.values) };
    },
  );

  app.get<{ Params: MirrorIdParams }>(
    `${PREFIX}/mirrorServers/:mirrorId`,
    {
      schema: { tags: TAGS, summary: 'Get mirror by id', description: 'System administrators.', params: MirrorIdParams, response: { 200: MirrorServerDetailsJson, ...errorResponses } },
    },
    async (request) => {
      await requireSysadmin(request);
      return one(await registry.require(normalizeId(request.params.mirrorId)));
    },
  );

  app.put<{ Params: MirrorIdParams; Body: SelectionBody }>(
    `${PREFIX}/mirrorServers/:mirrorId`,
    {
      schema: {
        tags: TAGS,
        summary: 'Update mirror',
        description: 'System administrators. Changes `mirroringMode` and, when `projectKeys` or `projectIds` is given, replaces the project selection.',
        params: MirrorIdParams,
        body: SelectionBody,
        response: { 200: MirrorServerDetailsJson, ...errorResponses },
      },
    },
    async (request) => {
      await requireSysadmin(request);
      const id = normalizeId(request.params.mirrorId);
      const mirror = await registry.require(id);
      const body = request.body ?? {};
      const mode: MirroringMode = body.mirroringMode ?? mirror.mirroring_mode;
      return one(await registry.setMode(id, mode, await projectIdsOf(body)));
    },
  );

  app.delete<{ Params: MirrorIdParams }>(
    `${PREFIX}/mirrorServers/:mirrorId`,
    {
      schema: {
        tags: TAGS,
        summary: 'Delete mirror',
        description: 'System administrators. Revokes the mirror at once: its REST calls get MIRROR_REMOVED, its event streams end, its SSH key stops working.',
        params: MirrorIdParams,
        response: { 204: Type.Null({ description: 'Deleted.' }), ...errorResponses },
      },
    },
    async (request, reply) => {
      await requireSysadmin(request);
      await registry.remove(normalizeId(request.params.mirrorId));
      return reply.status(204).send();
    },
  );

  app.delete<{ Params: MirrorIdParams }>(
    `${PREFIX}/mirrorServers/:mirrorId/farmIdentity`,
    {
      schema: {
        tags: TAGS,
        summary: "Reset a farm's identity",
        description:
          "System administrators. Forgets the farm's SSH host keys and SSH URL, and lets the next node that registers (each node does when it starts) fix them and " +
          'the base URL again: do it before restarting the nodes with rotated host keys (ssh.hostKeyDir) or a new baseUrl. Running nodes are not affected, ' +
          'and clone links keep the current base URL until then.',
        params: MirrorIdParams,
        response: { 200: MirrorServerDetailsJson, ...errorResponses },
      },
    },
    async (request) => {
      await requireSysadmin(request);
      const mirror = await registry.resetIdentity(normalizeId(request.params.mirrorId));
      request.log.info({ mirrorId: mirror.id }, "mirror farm identity reset: the next node to register fixes it");
      return one(mirror);
    },
  );

  app.get<{ Params: MirrorIdParams; Querystring: Static<typeof PageQuery> }>(
    `${PREFIX}/mirrorServers/:mirrorId/projects`,
    {
      schema: {
        tags: TAGS,
        summary: 'Get projects of a mirror',
        description: 'System administrators. The projects the mirror carries: the selection, or every project with ALL_PROJECTS.',
        params: MirrorIdParams,
        querystring: PageQuery,
        response: { 200: Paged(ProjectJson, 'A page of projects.'), ...errorResponses },
      },
    },
    async (request) => {
      await requireSysadmin(request);
      const mirror = await registry.require(normalizeId(request.params.mirrorId));
      const { start, limit } = pageBounds(request.query);
      let q = context.db.selectFrom('projects').selectAll().orderBy('key').offset(start).limit(limit + 1);
      if (mirror.mirroring_mode !== 'ALL_PROJECTS' || mirror.state !== 'ACTIVE') {
        q = q.where('id', 'in', (eb) => eb.selectFrom('mirror_projects').select('project_id').where('mirror_id', '=', mirror.id));
      }
      return pageOf((await q.execute()).map((p) => projectJson(urls, p)), start, limit, true);
    },
  );

  app.post<{ Params: Static<typeof ProjectParams> }>(
    `${PREFIX}/mirrorServers/:mirrorId/projects/:projectKeyOrId`,
    {
      schema: {
        tags: TAGS,
        summary: 'Add a project to a mirror',
        description: 'System administrators. The mirror learns of it from its event stream and starts mirroring it.',
        params: ProjectParams,
        response: { 200: ProjectJson, ...errorResponses },
      },
    },
    async (request) => {
      await requireSysadmin(request);
      const project = await projectFor(request.params.projectKeyOrId);
      await registry.addProject(normalizeId(request.params.mirrorId), project.id);
      return projectJson(urls, project);
    },
  );

  app.delete<{ Params: Static<typeof ProjectParams> }>(
    `${PREFIX}/mirrorServers/:mirrorId/projects/:projectKeyOrId`,
    {
      schema: {
        tags: TAGS,
        summary: 'Remove a project from a mirror',
        description: 'System administrators. The mirror stops serving it and its key can no longer fetch it.',
        params: ProjectParams,
        response: { 204: Type.Null({ description: 'Removed.' }), ...errorResponses },
      },
    },
    async (request, reply) => {
      await requireSysadmin(request);
      const project = await projectFor(request.params.projectKeyOrId);
      await registry.removeProject(normalizeId(request.params.mirrorId), project.id);
      return reply.status(204).send();
    },
  );
}
