// Group administration at Bitbucket's paths (system administrators only): /rest/api/1.0/admin/groups (list,
// create, delete), membership from either side (admin/groups/add-user|add-users|remove-user|more-members|
// more-non-members and admin/users/add-group|add-groups|remove-group|more-members|more-non-members), and the
// global permission of groups (admin/permissions/groups; SYS_ADMIN is the one global permission). Project and
// repository permissions of groups are in permissions.ts. Nobody can take their own SYS_ADMIN away here (409),
// so a server always keeps a sysadmin.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { SysadminGuard } from '../domain/groups.js';
import { Errors } from '../errors.js';
import type { AppContext } from '../server/context.js';
import type { User } from '../store/tables.js';
import { principalOf, requireSysadmin, type UserPrincipal } from './access.js';
import { DetailedGroupJson, detailedGroupJson, DetailedUserJson, detailedUserJson, errorResponses, groupJson, NoContent, PermittedGroupJson } from './json.js';
import { PageQuery, Paged, pageBounds, pageOf } from './paging.js';
import { unknownPermission } from './projects.js';

const TAGS = ['Group administration'];
const SYSADMINS = 'System administrators only.';

const FilterQuery = Type.Composite([PageQuery, Type.Object({ filter: Type.Optional(Type.String({ description: 'Only groups whose name contains this text.' })) })]);
const NameQuery = Type.Object({ name: Type.String({ description: 'The group name (not case-sensitive).' }) });
const GroupContextQuery = Type.Composite([
  PageQuery,
  Type.Object({
    context: Type.String({ description: 'The group.' }),
    filter: Type.Optional(Type.String({ description: 'Only users whose name, display name or e-mail address contains this text.' })),
  }),
]);
const UserContextQuery = Type.Composite([
  PageQuery,
  Type.Object({ context: Type.String({ description: 'The user.' }), filter: Type.Optional(Type.String({ description: 'Only groups whose name contains this text.' })) }),
]);
const PickerBody = (context: string, item: string) =>
  Type.Object({ context: Type.String({ description: context }), itemName: Type.String({ description: item }) }, { description: "Bitbucket's picker context." });
const GroupAndUsersBody = Type.Object({ group: Type.String(), users: Type.Array(Type.String(), { minItems: 1 }) });
const UserAndGroupsBody = Type.Object({ user: Type.String(), groups: Type.Array(Type.String(), { minItems: 1 }) });
const GlobalGrantQuery = Type.Object({ name: Type.Array(Type.String(), { minItems: 1 }), permission: Type.String({ examples: ['SYS_ADMIN'] }) });

type Picker = { context: string; itemName: string };

export function registerGroupRoutes(app: FastifyInstance, context: AppContext): void {
  const { groups, users, urls } = context;

  /** The caller as a guard: refuses with 409 a change that would end their own system administration. */
  async function selfGuard(admin: UserPrincipal): Promise<SysadminGuard> {
    const user = await users.byId(admin.userId);
    if (!user) throw Errors.authenticationRequired();
    return { user, refusal: () => Errors.conflict('This would take away your own SYS_ADMIN permission; ask another administrator.') };
  }

  async function usersNamed(names: string[]): Promise<User[]> {
    const found: User[] = [];
    for (const name of [...new Set(names.map((n) => n.trim().toLowerCase()))]) found.push(await users.require(name));
    return found;
  }

  // --- groups ---------------------------------------------------------------------------------------------

  app.get<{ Querystring: Static<typeof FilterQuery> }>(
    '/rest/api/1.0/admin/groups',
    { schema: { tags: TAGS, summary: 'Get groups', description: SYSADMINS, querystring: FilterQuery, response: { 200: Paged(DetailedGroupJson, 'A page of groups.'), ...errorResponses } } },
    async (request) => {
      requireSysadmin(principalOf(request));
      const { start, limit } = pageBounds(request.query);
      const rows = await groups.page({ ...(request.query.filter ? { filter: request.query.filter } : {}) }, start, limit + 1);
      return pageOf(rows.map(detailedGroupJson), start, limit, true);
    },
  );

  app.post<{ Querystring: Static<typeof NameQuery> }>(
    '/rest/api/1.0/admin/groups',
    {
      schema: {
        tags: TAGS,
        summary: 'Create group',
        description: `${SYSADMINS} Names are unique regardless of case (409 when taken).`,
        querystring: NameQuery,
        response: { 200: DetailedGroupJson, ...errorResponses },
      },
    },
    async (request) => {
      requireSysadmin(principalOf(request));
      return detailedGroupJson(await groups.create(request.query.name));
    },
  );

  app.delete<{ Querystring: Static<typeof NameQuery> }>(
    '/rest/api/1.0/admin/groups',
    {
      schema: {
        tags: TAGS,
        summary: 'Remove group',
        description: `${SYSADMINS} Removes the group with its memberships and every permission granted to it, and answers with the deleted group. Refused (409) when the group is what makes the caller a sysadmin.`,
        querystring: NameQuery,
        response: { 200: DetailedGroupJson, ...errorResponses },
      },
    },
    async (request) => {
      const admin = requireSysadmin(principalOf(request));
      const group = await groups.require(request.query.name);
      await groups.remove(group, await selfGuard(admin));
      return detailedGroupJson(group);
    },
  );

  // --- membership, from the group's side ------------------------------------------------------------------

  async function addUsers(groupName: string, userNames: string[]): Promise<void> {
    const group = await groups.require(groupName);
    await groups.addMembers(group, await usersNamed(userNames));
  }

  async function removeUser(admin: UserPrincipal, groupName: string, userName: string): Promise<void> {
    const group = await groups.require(groupName);
    await groups.removeMember(group, await users.require(userName), await selfGuard(admin));
  }

  app.post<{ Body: Picker }>(
    '/rest/api/1.0/admin/groups/add-user',
    {
      schema: {
        tags: TAGS,
        summary: 'Add user to group',
        description: `${SYSADMINS} \`context\` is the group, \`itemName\` the user. Adding a member twice is no error.`,
        body: PickerBody('The group.', 'The user.'),
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      requireSysadmin(principalOf(request));
      await addUsers(request.body.context, [request.body.itemName]);
      return reply.status(204).send();
    },
  );

  app.post<{ Body: Static<typeof GroupAndUsersBody> }>(
    '/rest/api/1.0/admin/groups/add-users',
    {
      schema: {
        tags: TAGS,
        summary: 'Add multiple users to group',
        description: `${SYSADMINS} All users are added, or none (404 naming the first unknown user).`,
        body: GroupAndUsersBody,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      requireSysadmin(principalOf(request));
      await addUsers(request.body.group, request.body.users);
      return reply.status(204).send();
    },
  );

  app.post<{ Body: Picker }>(
    '/rest/api/1.0/admin/groups/remove-user',
    {
      schema: {
        tags: TAGS,
        summary: 'Remove user from group',
        description: `${SYSADMINS} \`context\` is the group, \`itemName\` the user. Removing a user who is not a member is no error.`,
        body: PickerBody('The group.', 'The user.'),
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const admin = requireSysadmin(principalOf(request));
      await removeUser(admin, request.body.context, request.body.itemName);
      return reply.status(204).send();
    },
  );

  for (const nonMembers of [false, true]) {
    app.get<{ Querystring: Static<typeof GroupContextQuery> }>(
      `/rest/api/1.0/admin/groups/${nonMembers ? 'more-non-members' : 'more-members'}`,
      {
        schema: {
          tags: TAGS,
          summary: nonMembers ? 'Get members not in group' : 'Get group members',
          description: `${SYSADMINS} The users ${nonMembers ? 'outside' : 'in'} the group named by \`context\`, ordered by name.`,
          querystring: GroupContextQuery,
          response: { 200: Paged(DetailedUserJson, 'A page of users.'), ...errorResponses },
        },
      },
      async (request) => {
        const admin = requireSysadmin(principalOf(request));
        const group = await groups.require(request.query.context);
        const { start, limit } = pageBounds(request.query);
        const rows = await groups.members(group, { ...(request.query.filter ? { filter: request.query.filter } : {}), nonMembers }, start, limit + 1);
        return pageOf(
          rows.map((u) => detailedUserJson(urls, u, admin.userId)),
          start,
          limit,
          true,
        );
      },
    );
  }

  // --- membership, from the user's side -------------------------------------------------------------------

  app.post<{ Body: Picker }>(
    '/rest/api/1.0/admin/users/add-group',
    {
      schema: {
        tags: TAGS,
        summary: 'Add group to user',
        description: `${SYSADMINS} \`context\` is the user, \`itemName\` the group (the reverse of admin/groups/add-user).`,
        body: PickerBody('The user.', 'The group.'),
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      requireSysadmin(principalOf(request));
      await addUsers(request.body.itemName, [request.body.context]);
      return reply.status(204).send();
    },
  );

  app.post<{ Body: Static<typeof UserAndGroupsBody> }>(
    '/rest/api/1.0/admin/users/add-groups',
    {
      schema: {
        tags: TAGS,
        summary: 'Add user to groups',
        description: `${SYSADMINS} Adds the user to every group named; all groups are checked first (404 naming the first unknown group).`,
        body: UserAndGroupsBody,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      requireSysadmin(principalOf(request));
      const user = await users.require(request.body.user);
      const named = [];
      for (const name of new Set(request.body.groups.map((g) => g.trim().toLowerCase()))) named.push(await groups.require(name));
      for (const group of named) await groups.addMembers(group, [user]);
      return reply.status(204).send();
    },
  );

  app.post<{ Body: Picker }>(
    '/rest/api/1.0/admin/users/remove-group',
    {
      schema: {
        tags: TAGS,
        summary: 'Remove user from group',
        description: `${SYSADMINS} \`context\` is the user, \`itemName\` the group.`,
        body: PickerBody('The user.', 'The group.'),
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const admin = requireSysadmin(principalOf(request));
      await removeUser(admin, request.body.itemName, request.body.context);
      return reply.status(204).send();
    },
  );

  for (const nonMember of [false, true]) {
    app.get<{ Querystring: Static<typeof UserContextQuery> }>(
      `/rest/api/1.0/admin/users/${nonMember ? 'more-non-members' : 'more-members'}`,
      {
        schema: {
          tags: TAGS,
          summary: nonMember ? 'Find other groups for user' : 'Get groups for user',
          description: `${SYSADMINS} The groups the user named by \`context\` is ${nonMember ? 'not ' : ''}in, ordered by name.`,
          querystring: UserContextQuery,
          response: { 200: Paged(DetailedGroupJson, 'A page of groups.'), ...errorResponses },
        },
      },
      async (request) => {
        requireSysadmin(principalOf(request));
        const user = await users.require(request.query.context);
        const { start, limit } = pageBounds(request.query);
        const rows = await groups.groupsOf(user, { ...(request.query.filter ? { filter: request.query.filter } : {}), nonMember }, start, limit + 1);
        return pageOf(rows.map(detailedGroupJson), start, limit, true);
      },
    );
  }

  // --- global permissions ---------------------------------------------------------------------------------

  app.get<{ Querystring: Static<typeof FilterQuery> }>(
    '/rest/api/1.0/admin/permissions/groups',
    {
      schema: {
        tags: TAGS,
        summary: 'Get groups with a global permission',
        description: `${SYSADMINS} Lists the groups holding SYS_ADMIN, the one global permission mirrorfarm has; their members are system administrators.`,
        querystring: FilterQuery,
        response: { 200: Paged(PermittedGroupJson, 'A page of groups and their global permission.'), ...errorResponses },
      },
    },
    async (request) => {
      requireSysadmin(principalOf(request));
      const { start, limit } = pageBounds(request.query);
      const rows = await groups.page({ ...(request.query.filter ? { filter: request.query.filter } : {}), withGlobalPermission: true }, start, limit + 1);
      return pageOf(
        rows.map((g) => ({ group: groupJson(g), permission: 'SYS_ADMIN' })),
        start,
        limit,
        true,
      );
    },
  );

  app.put<{ Querystring: Static<typeof GlobalGrantQuery> }>(
    '/rest/api/1.0/admin/permissions/groups',
    {
      schema: {
        tags: TAGS,
        summary: 'Update global permission for group',
        description: `${SYSADMINS} \`permission\` must be SYS_ADMIN: every member of the groups becomes a system administrator.`,
        querystring: GlobalGrantQuery,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      requireSysadmin(principalOf(request));
      if (request.query.permission !== 'SYS_ADMIN') throw unknownPermission(request.query.permission, 'global');
      const named = await Promise.all(request.query.name.map((n) => groups.require(n)));
      for (const group of named) if ((await groups.globalPermission(group)) !== 'SYS_ADMIN') await groups.setGlobalPermission(group, 'SYS_ADMIN');
      return reply.status(204).send();
    },
  );

  app.delete<{ Querystring: Static<typeof NameQuery> }>(
    '/rest/api/1.0/admin/permissions/groups',
    {
      schema: {
        tags: TAGS,
        summary: 'Revoke all global permissions for group',
        description: `${SYSADMINS} Refused (409) when the group is what makes the caller a sysadmin.`,
        querystring: NameQuery,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (request, reply) => {
      const admin = requireSysadmin(principalOf(request));
      const group = await groups.require(request.query.name);
      await groups.setGlobalPermission(group, null, await selfGuard(admin));
      return reply.status(204).send();
    },
  );
}
