// Personal SSH keys at /rest/ssh/1.0/keys. Users manage their own keys (with a password login: a token must not
// be able to mint itself an SSH identity); sysadmins manage anybody's with ?user=NAME.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Principal } from '../access/authorize.js';
import { Errors } from '../errors.js';
import type { AppContext } from '../server/context.js';
import type { SshKey, User } from '../store/tables.js';
import { authorizeAccountOf, isSysadmin, principalOf, requireUser } from './access.js';
import { errorResponses, SshKeyJson, sshKeyJson, NoContent } from './json.js';
import { PageQuery, Paged, pageBounds, pageOf } from './paging.js';

const TAGS = ['SSH keys'];
const PATH = '/rest/ssh/1.0/keys';

const UserQuery = Type.Object({
  user: Type.Optional(Type.String({ description: 'Whose keys; the caller by default. Only sysadmins may name another user.' })),
  userName: Type.Optional(Type.String({ description: 'Same as `user` (newer Bitbucket spelling).' })),
});
type UserQuery = Static<typeof UserQuery>;
const ListQuery = Type.Composite([PageQuery, UserQuery]);
const AddBody = Type.Object({
  text: Type.String({ description: 'One OpenSSH public key line, e.g. the contents of ~/.ssh/id_ed25519.pub.' }),
  label: Type.Optional(Type.String({ description: 'Defaults to the key\'s comment.' })),
});
const KeyParams = Type.Object({ keyId: Type.String() });

export function registerSshKeyRoutes(app: FastifyInstance, context: AppContext): void {
  const { users } = context;

  /** The owner named by the query (or the caller), after checking the caller may act for them. */
  async function ownerFor(principal: Principal, query: UserQuery, mutation: boolean): Promise<User> {
    const caller = requireUser(principal);
    const name = query.user ?? query.userName ?? caller.name;
    if (mutation) authorizeAccountOf(principal, name, 'SSH keys');
    else if (name.toLowerCase() !== caller.name && !isSysadmin(principal)) throw Errors.forbidden('see the SSH keys of another user');
    return users.require(name);
  }

  /** A key the caller may act on; others' keys look like missing ones. */
  async function keyFor(principal: Principal, rawId: string, mutation: boolean): Promise<SshKey> {
    const caller = requireUser(principal);
    const key = /^\d{1,15}$/.test(rawId) ? await users.keyById(Number(rawId)) : undefined;
    if (!key || (key.user_id !== caller.userId && !isSysadmin(principal))) throw Errors.notFound(`SSH key ${rawId}`);
    // Only sysadmins get here for others' keys; for one's own, a token login is refused.
    if (mutation) authorizeAccountOf(principal, caller.name, 'SSH keys');
    return key;
  }

  app.get<{ Querystring: Static<typeof ListQuery> }>(
    PATH,
    {
      schema: {
        tags: TAGS,
        summary: 'Get SSH keys for user',
        querystring: ListQuery,
        response: { 200: Paged(SshKeyJson, 'A page of SSH keys.'), ...errorResponses },
      },
    },
    async (request) => {
      const owner = await ownerFor(principalOf(request), request.query, false);
      const { start, limit } = pageBounds(request.query);
      return pageOf((await users.keys(owner.id)).map(sshKeyJson), start, limit);
    },
  );

  app.post<{ Querystring: UserQuery; Body: Static<typeof AddBody> }>(
    PATH,
    {
      schema: {
        tags: TAGS,
        summary: 'Add SSH key for user',
        description: 'A key belongs to one user only (409 when it is registered already).',
        querystring: UserQuery,
        body: AddBody,
        response: { 201: SshKeyJson, ...errorResponses },
      },
    },
    async (request, reply) => {
      const owner = await ownerFor(principalOf(request), request.query, true);
      const key = await users.addKey(owner, request.body.text, request.body.label);
      return reply.status(201).send(sshKeyJson(key));
    },
  );

  app.delete<{ Querystring: UserQuery }>(
    PATH,
    {
      schema: {
        tags: TAGS,
        summary: 'Delete all user SSH keys',
        querystring: UserQuery,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const owner = await ownerFor(principalOf(request), request.query, true);
      for (const key of await users.keys(owner.id)) await users.removeKey(key);
      return reply.status(204).send();
    },
  );

  app.get<{ Params: Static<typeof KeyParams> }>(
    `${PATH}/:keyId`,
    { schema: { tags: TAGS, summary: 'Get SSH key for user by keyId', params: KeyParams, response: { 200: SshKeyJson, ...errorResponses } } },
    async (request) => sshKeyJson(await keyFor(principalOf(request), request.params.keyId, false)),
  );

  app.delete<{ Params: Static<typeof KeyParams> }>(
    `${PATH}/:keyId`,
    { schema: { tags: TAGS, summary: 'Remove SSH key', params: KeyParams, response: { 204: NoContent, ...errorResponses } } },
    async (request, reply) => {
      await users.removeKey(await keyFor(principalOf(request), request.params.keyId, true));
      return reply.status(204).send();
    },
  );
}
