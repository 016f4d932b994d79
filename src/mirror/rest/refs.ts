// Branches, tags and the default branch on a mirror, read from the node's own bare repository (its published
// refs: the hidden staging namespace is never listed), in the primary's shapes and with the primary's paging,
// filtering and ordering. A repository not synchronized yet answers 503 naming the primary, as git does.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { branchJson, BranchJson, errorResponses, MinimalRefJson, tagJson, TagJson } from '../../api/json.js';
import { Paged, pageOf } from '../../api/paging.js';
import { queryRefs, RefListQuery } from '../../api/refs.js';
import { RepoParams } from '../../api/repos.js';
import { Errors } from '../../errors.js';
import { principalOf, repositoryFor } from './access.js';
import type { MirrorRestContext } from './context.js';

const API = '/rest/api/1.0/projects/:projectKey/repos/:repositorySlug';

export function registerMirrorRefRoutes(app: FastifyInstance, context: MirrorRestContext): void {
  const { repositories } = context;

  const served = async (request: FastifyRequest<{ Params: RepoParams }>) => {
    const view = await repositoryFor(context, principalOf(request), request.params.projectKey, request.params.repositorySlug);
    await context.checkAvailable(view);
    return view.repo;
  };

  async function listRefs(request: FastifyRequest<{ Params: RepoParams; Querystring: RefListQuery }>, prefix: 'refs/heads/' | 'refs/tags/') {
    const repo = await served(request);
    return { repo, ...(await queryRefs(repositories, repo, prefix, request.query)) };
  }

  app.get<{ Params: RepoParams }>(`${API}/default-branch`, { schema: { params: RepoParams, response: { 200: MinimalRefJson, ...errorResponses } } }, async (request) => {
    const head = await repositories.defaultBranchOf(await served(request));
    if (!head) throw Errors.notFound('The default branch');
    return { id: head, displayId: head.replace(/^refs\/heads\//, ''), type: 'BRANCH' as const };
  });

  app.get<{ Params: RepoParams }>(`${API}/branches/default`, { schema: { params: RepoParams, response: { 200: BranchJson, ...errorResponses } } }, async (request) => {
    const repo = await served(request);
    const head = await repositories.defaultBranchOf(repo);
    const branch = head ? (await repositories.listRefsOrdered(repo, 'refs/heads/')).find((r) => r.ref === head) : undefined;
    if (!head || !branch) throw Errors.notFound(`The default branch${head ? ` ${head}` : ''}`);
    return branchJson(branch, head);
  });

  app.get<{ Params: RepoParams; Querystring: RefListQuery }>(
    `${API}/branches`,
    { schema: { params: RepoParams, querystring: RefListQuery, response: { 200: Paged(BranchJson, 'A page of branches.'), ...errorResponses } } },
    async (request) => {
      const { repo, refs, start, limit } = await listRefs(request, 'refs/heads/');
      const head = await repositories.defaultBranchOf(repo);
      return pageOf(
        refs.map((r) => branchJson(r, head)),
        start,
        limit,
      );
    },
  );

  app.get<{ Params: RepoParams; Querystring: RefListQuery }>(
    `${API}/tags`,
    { schema: { params: RepoParams, querystring: RefListQuery, response: { 200: Paged(TagJson, 'A page of tags.'), ...errorResponses } } },
    async (request) => {
      const { refs, start, limit } = await listRefs(request, 'refs/tags/');
      return pageOf(refs.map(tagJson), start, limit);
    },
  );
}
