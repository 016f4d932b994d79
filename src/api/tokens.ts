// Personal access tokens at /rest/access-tokens/1.0/users/{userSlug}. The token itself is returned once, by
// the create call; only a hash is stored, and no other answer (or event) carries either.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Principal } from '../access/authorize.js';
import { Errors } from '../errors.js';
import type { AppContext } from '../server/context.js';
import type { AccessToken, User } from '../store/tables.js';
import { authorizeAccountOf, principalOf } from './access.js';
import { AccessTokenJson, accessTokenJson, errorResponses, RawAccessTokenJson, NoContent } from './json.js';
import { PageQuery, Paged, pageBounds, pageOf } from './paging.js';

const TAGS = ['Access tokens'];
const PATH = '/rest/access-tokens/1.0/users/:userSlug';

const SlugParams = Type.Object({ userSlug: Type.String() });
const TokenParams = Type.Object({ userSlug: Type.String(), tokenId: Type.String() });
const Permissions = Type.Array(Type.String({ examples: ['REPO_READ', 'PROJECT_READ', 'REPO_WRITE'] }), {
  description: 'At most one PROJECT_* and one REPO_* level; the token never allows more than these, nor more than its user may do.',
});
const CreateBody = Type.Object({
  name: Type.String(),
  permissions: Permissions,
  // One JSON type list rather than a union: with a union, request coercion would turn 0 into null (no expiry).
  expiryDays: Type.Optional(Type.Unsafe<number | null>({ type: ['integer', 'null'], minimum: 1, description: 'Days until the token stops working; never when absent or null.' })),
});
const UpdateBody = Type.Object({ name: Type.Optional(Type.String()), permissions: Type.Optional(Permissions) });

export function registerTokenRoutes(app: FastifyInstance, context: AppContext): void {
  const { users, urls } = context;

  async function ownerFor(principal: Principal, slug: string): Promise<User> {
    authorizeAccountOf(principal, slug, 'access tokens');
    return users.require(slug);
  }

  async function tokenFor(owner: User, rawId: string): Promise<AccessToken> {
    const token = /^\d{1,15}$/.test(rawId) ? await users.tokenById(owner.id, Number(rawId)) : undefined;
    if (!token) throw Errors.notFound(`Access token ${rawId} of ${owner.name}`);
    return token;
  }

  app.get<{ Params: Static<typeof SlugParams>; Querystring: Static<typeof PageQuery> }>(
    PATH,
    {
      schema: {
        tags: TAGS,
        summary: 'Get personal HTTP tokens',
        description: 'The user themself (logged in with a password) or a sysadmin. Tokens themselves are never shown again.',
        params: SlugParams,
        querystring: PageQuery,
        response: { 200: Paged(AccessTokenJson, 'A page of access tokens.'), ...errorResponses },
      },
    },
    async (request) => {
      const owner = await ownerFor(principalOf(request), request.params.userSlug);
      const { start, limit } = pageBounds(request.query);
      return pageOf(
        (await users.tokens(owner.id)).map((t) => accessTokenJson(urls, t, owner)),
        start,
        limit,
      );
    },
  );

  app.put<{ Params: Static<typeof SlugParams>; Body: Static<typeof CreateBody> }>(
    PATH,
    {
      schema: {
        tags: TAGS,
        summary: 'Create personal HTTP token',
        description:
          'The user themself (logged in with a password) or a sysadmin. The answer carries `token` once. Use it as the password of HTTP Basic ' +
          'authentication with the user name, or as `Authorization: Bearer TOKEN`.',
        params: SlugParams,
        body: CreateBody,
        response: { 200: RawAccessTokenJson, ...errorResponses },
      },
    },
    async (request) => {
      const owner = await ownerFor(principalOf(request), request.params.userSlug);
      const { name, permissions, expiryDays } = request.body;
      const { token, secret } = await users.createToken(owner, { name, permissions, ...(expiryDays != null ? { expiryDays } : {}) });
      return { ...accessTokenJson(urls, token, owner), token: secret };
    },
  );

  app.get<{ Params: Static<typeof TokenParams> }>(
    `${PATH}/:tokenId`,
    { schema: { tags: TAGS, summary: 'Get HTTP token by ID', params: TokenParams, response: { 200: AccessTokenJson, ...errorResponses } } },
    async (request) => {
      const owner = await ownerFor(principalOf(request), request.params.userSlug);
      return accessTokenJson(urls, await tokenFor(owner, request.params.tokenId), owner);
    },
  );

  app.post<{ Params: Static<typeof TokenParams>; Body: Static<typeof UpdateBody> }>(
    `${PATH}/:tokenId`,
    {
      schema: {
        tags: TAGS,
        summary: 'Update HTTP token',
        description: 'Renames the token or changes its permissions; fields left out stay as they are.',
        params: TokenParams,
        body: UpdateBody,
        response: { 200: AccessTokenJson, ...errorResponses },
      },
    },
    async (request) => {
      const owner = await ownerFor(principalOf(request), request.params.userSlug);
      const token = await tokenFor(owner, request.params.tokenId);
      const { name, permissions } = request.body ?? {};
      if (name !== undefined && !name.trim()) throw Errors.invalid('A token needs a name.');
      if (permissions !== undefined && permissions.length === 0) throw Errors.invalid('A token needs at least one permission.');
      const updated = await users.updateToken(token, { ...(name !== undefined ? { name: name.trim() } : {}), ...(permissions ? { permissions } : {}) });
      return accessTokenJson(urls, updated, owner);
    },
  );

  app.delete<{ Params: Static<typeof TokenParams> }>(
    `${PATH}/:tokenId`,
    { schema: { tags: TAGS, summary: 'Delete a HTTP token', params: TokenParams, response: { 204: NoContent, ...errorResponses } } },
    async (request, reply) => {
      const owner = await ownerFor(principalOf(request), request.params.userSlug);
      await users.revokeToken(await tokenFor(owner, request.params.tokenId));
      return reply.status(204).send();
    },
  );
}
