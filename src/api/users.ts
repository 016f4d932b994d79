// Users: the directory any logged-in user may browse (/rest/api/1.0/users), a user's own password change, and
// the sysadmin's user administration (/rest/api/1.0/admin/users, /admin/permissions/users). mirrorfarm has
// one global permission, SYS_ADMIN; every active user may log in.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { Errors } from '../errors.js';
import type { AppContext } from '../server/context.js';
import { principalOf, requireSysadmin, requireUser } from './access.js';
import { DetailedUserJson, detailedUserJson, errorResponses, PermittedUserJson, userJson, UserJson, NoContent } from './json.js';
import { PageQuery, Paged, pageBounds, pageOf } from './paging.js';
import { unknownPermission } from './projects.js';

const TAGS = ['Users'];
const ADMIN_TAGS = ['User administration'];

const FilterQuery = Type.Composite([
  PageQuery,
  Type.Object({ filter: Type.Optional(Type.String({ description: 'Only users whose name, display name or e-mail address contains this text.' })) }),
]);
type FilterQuery = Static<typeof FilterQuery>;
const SlugParams = Type.Object({ userSlug: Type.String() });
const NameQuery = Type.Object({ name: Type.String() });

const NewUserFields = {
  name: Type.Optional(Type.String()),
  password: Type.Optional(Type.String()),
  displayName: Type.Optional(Type.String()),
  emailAddress: Type.Optional(Type.String()),
  addToDefaultGroup: Type.Optional(Type.Boolean({ description: 'Accepted for compatibility; there is no default group (add the user to groups with POST /rest/api/1.0/admin/users/add-groups).' })),
  notify: Type.Optional(Type.Boolean({ description: 'Not supported: mirrorfarm sends no e-mail, so a password is required.' })),
};
const CreateUserQuery = Type.Object(NewUserFields);
const CreateUserBody = Type.Union([Type.Object(NewUserFields), Type.Null()]);

const UpdateUserBody = Type.Object({
  name: Type.String(),
  displayName: Type.Optional(Type.String()),
  email: Type.Optional(Type.Union([Type.String(), Type.Null()])),
});

const AdminCredentialsBody = Type.Object({ name: Type.String(), password: Type.String(), passwordConfirm: Type.String() });
const OwnCredentialsBody = Type.Object({ password: Type.String(), passwordConfirm: Type.String(), oldPassword: Type.String() });
const GlobalGrantQuery = Type.Object({ name: Type.Array(Type.String(), { minItems: 1 }), permission: Type.String({ examples: ['SYS_ADMIN'] }) });
const GlobalRevokeQuery = Type.Object({ name: Type.Array(Type.String(), { minItems: 1 }) });

const EMAIL = /^[^\s@<>]+@[^\s@<>]+$/;

function checkEmail(email: string | null | undefined): void {
  if (email && !EMAIL.test(email)) throw Errors.invalid(`"${email}" is not an e-mail address.`);
}

function checkConfirmation(password: string, confirmation: string): void {
  if (password !== confirmation) throw Errors.invalid('The password and its confirmation do not match.');
}

export function registerUserRoutes(app: FastifyInstance, context: AppContext): void {
  const { users, urls } = context;

  async function page(query: FilterQuery, sysadminOnly: boolean) {
    const { start, limit } = pageBounds(query);
    const rows = await users.page({ ...(query.filter ? { filter: query.filter } : {}), sysadminOnly }, start, limit + 1);
    return { rows, start, limit };
  }

  // --- directory ------------------------------------------------------------------------------------------

  app.get<{ Querystring: FilterQuery }>(
    '/rest/api/1.0/users',
    {
      schema: {
        tags: TAGS,
        summary: 'Get all users',
        description: 'Any logged-in user may list users.',
        querystring: FilterQuery,
        response: { 200: Paged(UserJson, 'A page of users.'), ...errorResponses },
      },
    },
    async (request) => {
      requireUser(principalOf(request));
      const { rows, start, limit } = await page(request.query, false);
      return pageOf(
        rows.map((u) => userJson(urls, u)),
        start,
        limit,
        true,
      );
    },
  );

  app.put<{ Body: Static<typeof OwnCredentialsBody> }>(
    '/rest/api/1.0/users/credentials',
    {
      schema: {
        tags: TAGS,
        summary: 'Set password',
        description: 'Changes the caller\'s own password; needs the current one, and a password login (not a token).',
        body: OwnCredentialsBody,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const principal = requireUser(principalOf(request));
      if (principal.via !== 'password') throw Errors.forbidden('change your password while logged in with an access token; log in with your password');
      const { password, passwordConfirm, oldPassword } = request.body;
      checkConfirmation(password, passwordConfirm);
      if (!(await users.verifyPassword(principal.name, oldPassword))) throw Errors.invalid('The current password (oldPassword) is not correct.');
      await users.setPassword(principal.name, password);
      return reply.status(204).send();
    },
  );

  app.get<{ Params: Static<typeof SlugParams> }>(
    '/rest/api/1.0/users/:userSlug',
    { schema: { tags: TAGS, summary: 'Get user', params: SlugParams, response: { 200: UserJson, ...errorResponses } } },
    async (request) => {
      requireUser(principalOf(request));
      return userJson(urls, await users.require(request.params.userSlug));
    },
  );

  // --- administration -------------------------------------------------------------------------------------

  app.get<{ Querystring: FilterQuery }>(
    '/rest/api/1.0/admin/users',
    {
      schema: {
        tags: ADMIN_TAGS,
        summary: 'Get users (administration)',
        description: 'System administrators only.',
        querystring: FilterQuery,
        response: { 200: Paged(DetailedUserJson, 'A page of users.'), ...errorResponses },
      },
    },
    async (request) => {
      const admin = requireSysadmin(principalOf(request));
      const { rows, start, limit } = await page(request.query, false);
      return pageOf(
        rows.map((u) => detailedUserJson(urls, u, admin.userId)),
        start,
        limit,
        true,
      );
    },
  );

  app.post<{ Querystring: Static<typeof CreateUserQuery>; Body: Static<typeof CreateUserBody> }>(
    '/rest/api/1.0/admin/users',
    {
      schema: {
        tags: ADMIN_TAGS,
        summary: 'Create user',
        description:
          'System administrators only. Takes `name`, `password`, `displayName` and `emailAddress` as query parameters (as Bitbucket does) or as a JSON body ' +
          '(which keeps the password out of URLs). Make the user a sysadmin with PUT /rest/api/1.0/admin/permissions/users?permission=SYS_ADMIN.',
        querystring: CreateUserQuery,
        body: CreateUserBody,
        response: { 204: Type.Null({ description: 'Created.' }), ...errorResponses },
      },
    },
    async (request, reply) => {
      requireSysadmin(principalOf(request));
      const input = { ...request.query, ...(request.body ?? {}) };
      if (!input.name) throw Errors.invalid('A user name (name) is required.');
      if (!input.password) throw Errors.invalid('A password is required: mirrorfarm sends no e-mail, so it cannot ask the user to set one.');
      checkEmail(input.emailAddress);
      await users.create({
        name: input.name,
        password: input.password,
        ...(input.displayName ? { displayName: input.displayName } : {}),
        ...(input.emailAddress ? { email: input.emailAddress } : {}),
      });
      return reply.status(204).send();
    },
  );

  app.put<{ Body: Static<typeof UpdateUserBody> }>(
    '/rest/api/1.0/admin/users',
    {
      schema: {
        tags: ADMIN_TAGS,
        summary: 'Update user details',
        description: 'System administrators only.',
        body: UpdateUserBody,
        response: { 200: DetailedUserJson, ...errorResponses },
      },
    },
    async (request) => {
      const admin = requireSysadmin(principalOf(request));
      const { name, displayName, email } = request.body;
      if (displayName !== undefined && !displayName.trim()) throw Errors.invalid('A display name cannot be empty.');
      checkEmail(email);
      const updated = await users.update(name, {
        ...(displayName !== undefined ? { displayName: displayName.trim() } : {}),
        ...(email !== undefined ? { email: email || null } : {}),
      });
      return detailedUserJson(urls, updated, admin.userId);
    },
  );

  app.delete<{ Querystring: Static<typeof NameQuery> }>(
    '/rest/api/1.0/admin/users',
    {
      schema: {
        tags: ADMIN_TAGS,
        summary: 'Remove user',
        description: 'System administrators only; nobody can delete themselves (409). Answers with the deleted user. Their keys, tokens and permissions go with them.',
        querystring: NameQuery,
        response: { 200: DetailedUserJson, ...errorResponses },
      },
    },
    async (request) => {
      const admin = requireSysadmin(principalOf(request));
      const user = await users.require(request.query.name);
      if (user.id === admin.userId) throw Errors.conflict('You cannot delete yourself; ask another administrator.');
      await users.remove(user.name);
      return detailedUserJson(urls, user, admin.userId);
    },
  );

  app.put<{ Body: Static<typeof AdminCredentialsBody> }>(
    '/rest/api/1.0/admin/users/credentials',
    {
      schema: {
        tags: ADMIN_TAGS,
        summary: 'Set password for user',
        description: 'System administrators only.',
        body: AdminCredentialsBody,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      requireSysadmin(principalOf(request));
      const { name, password, passwordConfirm } = request.body;
      checkConfirmation(password, passwordConfirm);
      await users.setPassword(name, password);
      return reply.status(204).send();
    },
  );

  // --- global permissions ---------------------------------------------------------------------------------

  app.get<{ Querystring: FilterQuery }>(
    '/rest/api/1.0/admin/permissions/users',
    {
      schema: {
        tags: ADMIN_TAGS,
        summary: 'Get users with a global permission',
        description: 'System administrators only. Lists the users holding SYS_ADMIN, the one global permission mirrorfarm has.',
        querystring: FilterQuery,
        response: { 200: Paged(PermittedUserJson, 'A page of users and their global permission.'), ...errorResponses },
      },
    },
    async (request) => {
      requireSysadmin(principalOf(request));
      const { rows, start, limit } = await page(request.query, true);
      return pageOf(
        rows.map((u) => ({ user: userJson(urls, u), permission: 'SYS_ADMIN' })),
        start,
        limit,
        true,
      );
    },
  );

  app.put<{ Querystring: Static<typeof GlobalGrantQuery> }>(
    '/rest/api/1.0/admin/permissions/users',
    {
      schema: {
        tags: ADMIN_TAGS,
        summary: 'Update global permission for user',
        description: 'System administrators only. `permission` must be SYS_ADMIN.',
        querystring: GlobalGrantQuery,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      requireSysadmin(principalOf(request));
      if (request.query.permission !== 'SYS_ADMIN') throw unknownPermission(request.query.permission, 'global');
      const people = await Promise.all(request.query.name.map((n) => users.require(n)));
      for (const user of people) if (!user.is_sysadmin) await users.update(user.name, { sysadmin: true });
      return reply.status(204).send();
    },
  );

  app.delete<{ Querystring: Static<typeof GlobalRevokeQuery> }>(
    '/rest/api/1.0/admin/permissions/users',
    {
      schema: {
        tags: ADMIN_TAGS,
        summary: 'Revoke all global permissions for user',
        description: 'System administrators only; nobody can revoke their own (409), so a server always keeps a sysadmin.',
        querystring: GlobalRevokeQuery,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const admin = requireSysadmin(principalOf(request));
      const people = await Promise.all(request.query.name.map((n) => users.require(n)));
      if (people.some((u) => u.id === admin.userId)) throw Errors.conflict('You cannot revoke your own SYS_ADMIN permission; ask another administrator.');
      for (const user of people) if (user.is_sysadmin) await users.update(user.name, { sysadmin: false });
      return reply.status(204).send();
    },
  );
}
