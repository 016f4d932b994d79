// Bitbucket's mirror-side resources under /rest/mirroring/1.0, at both of Bitbucket's path layouts (the top-level
// ones of 9.x and the ones under upstreamServers/{upstreamId} of 8.x):
//   mirrorRepos, mirrorRepos/{upstreamRepoId}   a repository on this mirror: clone URLs, status; needs REPO_READ
//   upstreamServer(s), upstreamServers/{id}      the primary this mirror copies, and whether it is reachable
//   progress                                     how many repositories are synchronized
//   syncSettings                                 the project selection; needs a system administrator of the primary
//   farmNodes                                    this node; needs a system administrator of the primary
// Changing the selection is done on the primary (it decides what a mirror may fetch), so writes are refused here
// with the primary's URL.
import { hostname } from 'node:os';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { authorize, type Principal } from '../../access/authorize.js';
import { errorResponses } from '../../api/json.js';
import { PageQuery, Paged, pageBounds, pageOf } from '../../api/paging.js';
import type { RepositoryView } from '../../domain/repositories.js';
import { Errors, MirrorfarmError } from '../../errors.js';
import { VERSION } from '../../version.js';
import { principalOf, requirePrimaryAdmin, visibleRepositories } from './access.js';
import type { MirrorRestContext } from './context.js';
import { ClusterNodeJson, MirroredRepositoryJson, mirrorRepoStatus, SyncProgressJson, UpstreamServerJson, upstreamServerId, upstreamServerState, UpstreamSettingsJson } from './json.js';

const PREFIX = '/rest/mirroring/1.0';
const UpstreamIdParams = Type.Object({ upstreamId: Type.String() });
const RepoIdParams = Type.Object({ upstreamRepoId: Type.String({ description: "The repository's id on the primary." }) });
const NestedRepoParams = Type.Composite([UpstreamIdParams, RepoIdParams]);

export function registerMirrorMirroringRoutes(app: FastifyInstance, context: MirrorRestContext): void {
  const { config, controller, catalog, health } = context;
  const upstreamUrl = config.mirror.upstreamUrl!;
  const upstreamId = upstreamServerId(upstreamUrl);

  const upstreamServer = (): Static<typeof UpstreamServerJson> => {
    const connection = health.view();
    return {
      apiBaseUrl: upstreamUrl,
      baseUrl: upstreamUrl,
      id: upstreamId,
      state: upstreamServerState(controller.state),
      connection: { state: connection.state, errorCode: connection.errorCode, since: connection.since, lastContact: connection.lastContact },
    };
  };

  /** 404 for any other upstream id: a mirror has exactly one primary. */
  const checkUpstream = (id: string) => {
    if (id.toLowerCase() !== upstreamId) throw Errors.notFound(`Upstream server ${id}`);
  };

  const mirrored = async (view: RepositoryView): Promise<Static<typeof MirroredRepositoryJson>> => {
    const local = await catalog.repository(view.repo.id);
    const status = mirrorRepoStatus(local);
    const ssh = context.urls.sshClone(view.project.key, view.repo.slug);
    return {
      available: status === 'AVAILABLE' || status === 'ERROR_AVAILABLE',
      cloneUrls: [{ href: context.urls.httpClone(view.project.key, view.repo.slug), name: 'http' }, ...(ssh ? [{ href: ssh, name: 'ssh' }] : [])],
      ...(local?.updatedAt && local.status !== 'NEW' ? { lastUpdated: new Date(local.updatedAt).toISOString() } : {}),
      mirrorName: config.displayName,
      pushUrls: context.primaryCloneUrls(view.project.key, view.repo.slug),
      repositoryId: String(view.repo.id),
      status,
    };
  };

  /**
   * A repository by its primary id, if the caller may read it. Missing and unreadable get the same answer, which
   * names only the id asked for (the path would tell a caller walking ids which names exist).
   */
  const byId = async (principal: Principal, raw: string): Promise<RepositoryView> => {
    const repo = /^\d{1,15}$/.test(raw) ? await context.repositories.byId(Number(raw)) : undefined;
    const project = repo ? await context.projects.byId(repo.project_id) : undefined;
    const hidden = () => (principal.kind === 'anonymous' ? Errors.authenticationRequired() : Errors.repoNotFound(`with id ${raw}`));
    if (!repo || !project) throw hidden();
    try {
      authorize(principal, await context.auth.repositoryResource(principal, project, repo), 'read');
    } catch (err) {
      if (err instanceof MirrorfarmError && (err.status === 404 || err.status === 401)) throw hidden();
      throw err;
    }
    return { repo, project };
  };

  const repoSchema = { response: { 200: MirroredRepositoryJson, ...errorResponses } };
  app.get<{ Querystring: Static<typeof PageQuery> }>(
    `${PREFIX}/mirrorRepos`,
    { schema: { querystring: PageQuery, response: { 200: Paged(MirroredRepositoryJson, 'A page of mirrored repositories.'), ...errorResponses } } },
    async (request) => {
      const { start, limit } = pageBounds(request.query);
      const page = await visibleRepositories(context, principalOf(request), {}, start, limit);
      return { ...page, values: await Promise.all(page.values.map(mirrored)) };
    },
  );
  app.get<{ Params: Static<typeof RepoIdParams> }>(`${PREFIX}/mirrorRepos/:upstreamRepoId`, { schema: { params: RepoIdParams, ...repoSchema } }, async (request) =>
    mirrored(await byId(principalOf(request), request.params.upstreamRepoId)),
  );
  app.get<{ Params: Static<typeof NestedRepoParams> }>(`${PREFIX}/upstreamServers/:upstreamId/repos/:upstreamRepoId`, { schema: { params: NestedRepoParams, ...repoSchema } }, async (request) => {
    checkUpstream(request.params.upstreamId);
    return mirrored(await byId(principalOf(request), request.params.upstreamRepoId));
  });

  // The primary's address and this node's state are in /status for anyone already; Bitbucket asks no permission here.
  app.get(`${PREFIX}/upstreamServer`, { schema: { response: { 200: UpstreamServerJson, ...errorResponses } } }, async () => upstreamServer());
  app.get<{ Querystring: Static<typeof PageQuery> }>(
    `${PREFIX}/upstreamServers`,
    { schema: { querystring: PageQuery, response: { 200: Paged(UpstreamServerJson, 'A page of upstream servers.'), ...errorResponses } } },
    async (request) => {
      const { start, limit } = pageBounds(request.query);
      return pageOf([upstreamServer()], start, limit);
    },
  );
  app.get<{ Params: Static<typeof UpstreamIdParams> }>(`${PREFIX}/upstreamServers/:upstreamId`, { schema: { params: UpstreamIdParams, response: { 200: UpstreamServerJson, ...errorResponses } } }, async (request) => {
    checkUpstream(request.params.upstreamId);
    return upstreamServer();
  });

  const progress = async (): Promise<Static<typeof SyncProgressJson>> => {
    const p = await controller.progress();
    return { discovering: controller.discovering(), syncedRepos: p.synced, totalRepos: p.total };
  };
  app.get(`${PREFIX}/progress`, { schema: { response: { 200: SyncProgressJson, ...errorResponses } } }, progress);
  app.get<{ Params: Static<typeof UpstreamIdParams> }>(`${PREFIX}/upstreamServers/:upstreamId/progress`, { schema: { params: UpstreamIdParams, response: { 200: SyncProgressJson, ...errorResponses } } }, async (request) => {
    checkUpstream(request.params.upstreamId);
    return progress();
  });

  const settings = async (request: FastifyRequest): Promise<Static<typeof UpstreamSettingsJson>> => {
    await requirePrimaryAdmin(context, principalOf(request));
    const selection = await controller.selection();
    if (!selection) throw new MirrorfarmError('MIRROR_NOT_AUTHORIZED', 404, `This mirror has no project selection yet: authorize it on the primary (${controller.primaryAdminPageUrl()}).`);
    const mode = selection.mode === 'ALL_PROJECTS' ? 'ALL_PROJECTS' : 'SELECTED_PROJECTS';
    return { mode, projectIds: mode === 'ALL_PROJECTS' ? [] : selection.projectIds.map(String) };
  };
  const readOnly = async () => {
    throw Errors.readOnly(`The project selection of a mirror is set on the primary: ${controller.primaryMirrorUrl()} (PUT, or POST/DELETE .../projects/{projectKey}).`);
  };
  app.get(`${PREFIX}/syncSettings`, { schema: { response: { 200: UpstreamSettingsJson, ...errorResponses } } }, settings);
  app.get<{ Params: Static<typeof UpstreamIdParams> }>(`${PREFIX}/upstreamServers/:upstreamId/settings`, { schema: { params: UpstreamIdParams, response: { 200: UpstreamSettingsJson, ...errorResponses } } }, async (request) => {
    checkUpstream(request.params.upstreamId);
    return settings(request);
  });
  for (const url of [`${PREFIX}/syncSettings`, `${PREFIX}/syncSettings/*`, `${PREFIX}/upstreamServers/:upstreamId/settings`, `${PREFIX}/upstreamServers/:upstreamId/settings/*`]) {
    app.route({ method: ['PUT', 'POST', 'DELETE'], url, handler: readOnly });
  }

  const farmNodes = async (request: FastifyRequest): Promise<Array<Static<typeof ClusterNodeJson>>> => {
    await requirePrimaryAdmin(context, principalOf(request));
    // Nodes of a farm do not talk to each other (the primary coordinates them), so a node knows only itself; the
    // primary's mirrorServers/{mirrorId} lists every node.
    const host = hostname();
    return [{ address: { address: host, port: context.httpPort() }, buildVersion: VERSION, id: context.identity.nodeId, local: true, name: context.identity.nodeId }];
  };
  app.get(`${PREFIX}/farmNodes`, { schema: { response: { 200: Type.Array(ClusterNodeJson), ...errorResponses } } }, farmNodes);
  app.get<{ Params: Static<typeof UpstreamIdParams> }>(`${PREFIX}/upstreamServers/:upstreamId/farmNodes`, { schema: { params: UpstreamIdParams, response: { 200: Type.Array(ClusterNodeJson), ...errorResponses } } }, async (request) => {
    checkUpstream(request.params.upstreamId);
    return farmNodes(request);
  });
}
