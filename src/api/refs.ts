// Branches, tags and the default branch, at Bitbucket's paths (/rest/api/1.0, /rest/branch-utils/1.0,
// /rest/git/1.0). Every change goes through the Repositories service, which records it in the event log like a
// push (via "rest", with the caller as actor).
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Principal } from '../access/authorize.js';
import { Errors } from '../errors.js';
import type { RefChangeCause } from '../events/ref-recorder.js';
import type { Repositories, RepositoryView } from '../domain/repositories.js';
import type { AppContext } from '../server/context.js';
import { principalOf, repositoryFor } from './access.js';
import { branchJson, BranchJson, errorResponses, MinimalRefJson, tagJson, TagJson, NoContent } from './json.js';
import { PageQuery, Paged, pageBounds, pageOf } from './paging.js';
import { RepoParams } from './repos.js';

const TAGS = ['Branches and tags'];
const API = '/rest/api/1.0/projects/:projectKey/repos/:repositorySlug';
const BRANCH_UTILS = '/rest/branch-utils/1.0/projects/:projectKey/repos/:repositorySlug';
const GIT = '/rest/git/1.0/projects/:projectKey/repos/:repositorySlug';

const OrderBy = Type.Union([Type.Literal('ALPHABETICAL'), Type.Literal('MODIFICATION')], {
  description: 'MODIFICATION (the default): most recently changed first; ALPHABETICAL: by name.',
});

export const RefListQuery = Type.Composite([
  PageQuery,
  Type.Object({
    filterText: Type.Optional(Type.String({ description: 'Only refs whose short name contains this text (case-insensitive).' })),
    orderBy: Type.Optional(OrderBy),
    boostMatches: Type.Optional(Type.Boolean({ description: 'Put a ref named exactly `filterText` first.' })),
    details: Type.Optional(Type.Boolean({ description: 'Accepted for compatibility; no extra details are returned.' })),
  }),
]);
export type RefListQuery = Static<typeof RefListQuery>;

const RefIdBody = Type.Object({ id: Type.String({ examples: ['refs/heads/main'], description: 'A branch, as refs/heads/NAME or NAME.' }) });

const CreateBranchBody = Type.Object({
  name: Type.String({ description: 'Branch name (refs/heads/ is optional).' }),
  startPoint: Type.String({ description: 'A branch, tag or commit id.' }),
  message: Type.Optional(Type.String({ description: 'Accepted for compatibility; branches carry no message.' })),
});

const DeleteBranchBody = Type.Object({
  name: Type.String({ description: 'Branch name (refs/heads/ is optional).' }),
  endPoint: Type.Optional(Type.String({ description: 'The commit the branch must still point to; otherwise 409.' })),
  dryRun: Type.Optional(Type.Boolean({ description: 'Check only; delete nothing.' })),
});

const CreateTagBody = Type.Object({
  name: Type.String({ description: 'Tag name (refs/tags/ is optional).' }),
  startPoint: Type.String({ description: 'A branch, tag or commit id.' }),
  message: Type.Optional(Type.String({ description: 'With a message the tag is annotated, the caller being the tagger; without, lightweight.' })),
  type: Type.Optional(Type.Union([Type.Literal('ANNOTATED'), Type.Literal('LIGHTWEIGHT')])),
  force: Type.Optional(Type.Boolean({ description: 'Not supported: an existing tag is never moved (409).' })),
});

const HEX = /^[0-9a-f]{4,64}$/;

function strip(name: string, prefix: 'refs/heads/' | 'refs/tags/'): string {
  const short = name.startsWith(prefix) ? name.slice(prefix.length) : name;
  if (!short) throw Errors.invalid(`A ${prefix === 'refs/heads/' ? 'branch' : 'tag'} name is required.`);
  return short;
}

function causeOf(principal: Principal): RefChangeCause {
  return { ...(principal.kind === 'user' ? { actor: principal.name } : {}), via: 'rest' };
}

/** Names and e-mails go into a tag object's header line, so nothing that could end or split that line may pass. */
function identity(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[<>\u0000-\u001f\u007f]/g, '').trim();
}

/** Branches or tags of a repository as a list request asks for them (filter, order, exact match first), with the page bounds. */
export async function queryRefs(repositories: Repositories, repo: RepositoryView['repo'], prefix: 'refs/heads/' | 'refs/tags/', q: RefListQuery) {
  const { start, limit } = pageBounds(q);
  let refs = await repositories.listRefsOrdered(repo, prefix, { ...(q.filterText ? { filter: q.filterText } : {}), orderBy: q.orderBy ?? 'MODIFICATION' });
  if (q.boostMatches && q.filterText) {
    const exact = `${prefix}${q.filterText}`;
    refs = [...refs.filter((r) => r.ref === exact), ...refs.filter((r) => r.ref !== exact)];
  }
  return { refs, start, limit };
}

export function registerRefRoutes(app: FastifyInstance, context: AppContext): void {
  const { repositories } = context;
  const view = (request: { params: RepoParams }, principal: Principal, action: 'read' | 'write' | 'admin') =>
    repositoryFor(context, principal, request.params.projectKey, request.params.repositorySlug, action);

  async function listRefs(request: { params: RepoParams; query: RefListQuery }, principal: Principal, prefix: 'refs/heads/' | 'refs/tags/') {
    const { repo } = await view(request, principal, 'read');
    return { repo, ...(await queryRefs(repositories, repo, prefix, request.query)) };
  }

  // --- default branch -------------------------------------------------------------------------------------

  app.get<{ Params: RepoParams }>(
    `${API}/default-branch`,
    {
      schema: {
        tags: TAGS,
        summary: 'Get repository default branch',
        description: 'The configured default branch (HEAD), which may not exist yet in an empty repository.',
        params: RepoParams,
        response: { 200: MinimalRefJson, ...errorResponses },
      },
    },
    async (request) => {
      const { repo } = await view(request, principalOf(request), 'read');
      const head = await repositories.defaultBranchOf(repo);
      if (!head) throw Errors.branchNotFound('The default branch');
      return { id: head, displayId: head.replace(/^refs\/heads\//, ''), type: 'BRANCH' as const };
    },
  );

  const setDefault = async (request: { params: RepoParams; body: { id: string } }, principal: Principal) => {
    const { repo } = await view(request, principal, 'admin');
    await repositories.setDefaultBranch(repo, request.body.id, causeOf(principal));
  };

  app.put<{ Params: RepoParams; Body: Static<typeof RefIdBody> }>(
    `${API}/default-branch`,
    {
      schema: { tags: TAGS, summary: 'Update default branch for repository', description: 'Needs REPO_ADMIN.', params: RepoParams, body: RefIdBody, response: { 204: NoContent, ...errorResponses } },
    },
    async (request, reply) => {
      await setDefault(request, principalOf(request));
      return reply.status(204).send();
    },
  );

  app.get<{ Params: RepoParams }>(
    `${API}/branches/default`,
    {
      schema: {
        tags: TAGS,
        summary: 'Get default branch (older form)',
        description: 'The default branch with its latest commit; 404 while it does not exist.',
        params: RepoParams,
        response: { 200: BranchJson, ...errorResponses },
      },
    },
    async (request) => {
      const { repo } = await view(request, principalOf(request), 'read');
      const head = await repositories.defaultBranchOf(repo);
      const branch = head ? (await repositories.listRefsOrdered(repo, 'refs/heads/')).find((r) => r.ref === head) : undefined;
      if (!head || !branch) throw Errors.branchNotFound(`The default branch${head ? ` ${head}` : ''}`);
      return branchJson(branch, head);
    },
  );

  app.put<{ Params: RepoParams; Body: Static<typeof RefIdBody> }>(
    `${API}/branches/default`,
    {
      schema: { tags: TAGS, summary: 'Update default branch (older form)', description: 'Needs REPO_ADMIN.', params: RepoParams, body: RefIdBody, response: { 204: NoContent, ...errorResponses } },
    },
    async (request, reply) => {
      await setDefault(request, principalOf(request));
      return reply.status(204).send();
    },
  );

  // --- branches -------------------------------------------------------------------------------------------

  app.get<{ Params: RepoParams; Querystring: RefListQuery }>(
    `${API}/branches`,
    {
      schema: {
        tags: TAGS,
        summary: 'Find branches',
        params: RepoParams,
        querystring: RefListQuery,
        response: { 200: Paged(BranchJson, 'A page of branches.'), ...errorResponses },
      },
    },
    async (request) => {
      const { repo, refs, start, limit } = await listRefs(request, principalOf(request), 'refs/heads/');
      const head = await repositories.defaultBranchOf(repo);
      return pageOf(
        refs.map((r) => branchJson(r, head)),
        start,
        limit,
      );
    },
  );

  const createBranch = async (request: { params: RepoParams; body: Static<typeof CreateBranchBody> }, principal: Principal) => {
    const { repo } = await view(request, principal, 'write');
    const ref = `refs/heads/${strip(request.body.name, 'refs/heads/')}`;
    const commit = await repositories.createRef(repo, { ref, startPoint: request.body.startPoint }, causeOf(principal));
    return branchJson({ ref, commit }, await repositories.defaultBranchOf(repo));
  };

  for (const [base, summary] of [
    [API, 'Create branch'],
    [BRANCH_UTILS, 'Create branch (branch-utils)'],
  ] as const) {
    app.post<{ Params: RepoParams; Body: Static<typeof CreateBranchBody> }>(
      `${base}/branches`,
      {
        schema: {
          tags: TAGS,
          summary,
          description: 'Needs REPO_WRITE. 409 when the branch exists.',
          params: RepoParams,
          body: CreateBranchBody,
          response: { 200: BranchJson, ...errorResponses },
        },
      },
      async (request) => createBranch(request, principalOf(request)),
    );
  }

  app.delete<{ Params: RepoParams; Body: Static<typeof DeleteBranchBody> }>(
    `${BRANCH_UTILS}/branches`,
    {
      schema: {
        tags: TAGS,
        summary: 'Delete branch',
        description: 'Needs REPO_WRITE. The default branch cannot be deleted; make another branch the default first.',
        params: RepoParams,
        body: DeleteBranchBody,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { repo } = await view(request, principal, 'write');
      const ref = `refs/heads/${strip(request.body.name, 'refs/heads/')}`;
      const endPoint = request.body.endPoint;
      if (endPoint !== undefined && !HEX.test(endPoint)) throw Errors.invalid('endPoint must be a commit id.');
      if ((await repositories.defaultBranchOf(repo)) === ref) {
        throw Errors.invalid(`${ref} is the default branch of this repository; make another branch the default before deleting it.`);
      }
      if (request.body.dryRun) {
        const exists = (await repositories.listRefsOrdered(repo, 'refs/heads/')).find((r) => r.ref === ref);
        if (!exists) throw Errors.branchNotFound(ref);
        if (endPoint && !exists.commit.startsWith(endPoint)) throw Errors.conflict(`${ref} has moved; reload and try again.`);
      } else {
        await repositories.deleteRef(repo, ref, endPoint, causeOf(principal));
      }
      return reply.status(204).send();
    },
  );

  // --- tags -----------------------------------------------------------------------------------------------

  app.get<{ Params: RepoParams; Querystring: RefListQuery }>(
    `${API}/tags`,
    {
      schema: {
        tags: TAGS,
        summary: 'Find tags',
        params: RepoParams,
        querystring: RefListQuery,
        response: { 200: Paged(TagJson, 'A page of tags.'), ...errorResponses },
      },
    },
    async (request) => {
      const { refs, start, limit } = await listRefs(request, principalOf(request), 'refs/tags/');
      return pageOf(refs.map(tagJson), start, limit);
    },
  );

  const createTag = async (request: { params: RepoParams; body: Static<typeof CreateTagBody> }, principal: Principal) => {
    const { repo } = await view(request, principal, 'write');
    const body = request.body;
    const ref = `refs/tags/${strip(body.name, 'refs/tags/')}`;
    if (body.force) throw Errors.invalid('Moving an existing tag (force) is not supported; delete the tag and create it again.');
    const annotated = body.type === 'ANNOTATED' || (body.type !== 'LIGHTWEIGHT' && !!body.message);
    if (body.message?.includes('\0')) throw Errors.invalid('A tag message cannot contain NUL characters.');
    let tagger: { name: string; email: string } | undefined;
    if (annotated) {
      const user = principal.kind === 'user' ? await context.users.byId(principal.userId) : undefined;
      if (!user) throw Errors.authenticationRequired();
      tagger = { name: identity(user.display_name) || user.name, email: identity(user.email ?? '') };
    }
    await repositories.createRef(repo, { ref, startPoint: body.startPoint, ...(annotated ? { message: body.message || ref.slice(10), tagger } : {}) }, causeOf(principal));
    const created = (await repositories.listRefsOrdered(repo, 'refs/tags/')).find((r) => r.ref === ref);
    if (!created) throw Errors.tagNotFound(ref);
    return tagJson(created);
  };

  for (const [base, summary] of [
    [API, 'Create tag'],
    [GIT, 'Create tag (git)'],
  ] as const) {
    app.post<{ Params: RepoParams; Body: Static<typeof CreateTagBody> }>(
      `${base}/tags`,
      {
        schema: {
          tags: TAGS,
          summary,
          description: 'Needs REPO_WRITE. 409 when the tag exists.',
          params: RepoParams,
          body: CreateTagBody,
          response: { 200: TagJson, ...errorResponses },
        },
      },
      async (request) => createTag(request, principalOf(request)),
    );
  }

  const deleteTag = async (request: { params: RepoParams }, name: string, principal: Principal) => {
    const { repo } = await view(request, principal, 'write');
    await repositories.deleteRef(repo, `refs/tags/${strip(name, 'refs/tags/')}`, undefined, causeOf(principal));
  };

  const TagParams = Type.Composite([RepoParams, Type.Object({ name: Type.String({ description: 'Tag name; encode "/" as %2F.' }) })]);
  app.delete<{ Params: Static<typeof TagParams> }>(
    `${GIT}/tags/:name`,
    {
      schema: { tags: TAGS, summary: 'Delete tag', description: 'Needs REPO_WRITE.', params: TagParams, response: { 204: NoContent, ...errorResponses } },
    },
    async (request, reply) => {
      await deleteTag(request, request.params.name, principalOf(request));
      return reply.status(204).send();
    },
  );
  // Bitbucket also takes tag names with unencoded "/" (tags/release/1.0); same operation, not documented twice.
  app.delete<{ Params: RepoParams & { '*': string } }>(`${GIT}/tags/*`, { schema: { hide: true } }, async (request, reply) => {
    await deleteTag(request, request.params['*'], principalOf(request));
    return reply.status(204).send();
  });
}
