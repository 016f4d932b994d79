// The administration's Users and Groups, for system administrators: users (search, create, deactivate and
// activate again, delete after a page naming what goes; a user's page with their SSH keys and access tokens,
// which an administrator can delete and revoke) and groups (search, create, delete, members: add and remove).
// Long lists come a page at a time with "next" links. requireSysadmin() (authorize() on the
// system resource) decides, and the Users and Groups services act, as for /rest/api/1.0/admin/...; the same
// guards keep an administrator from locking themselves out (deactivating themselves, leaving the group that
// makes them a system administrator).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { requireSysadmin, type UserPrincipal } from '../api/access.js';
import { Errors } from '../errors.js';
import type { AppContext } from '../server/context.js';
import { formError } from './account-pages.js';
import type { Web } from './plugin.js';
import { sendPage } from './render.js';
import { pageLinks, startOf } from './paging.js';
import { formatDate } from './repo-pages.js';

type Body = Record<string, unknown>;
const field = (body: Body | undefined, name: string) => (typeof body?.[name] === 'string' ? (body[name] as string).trim() : '');
/** Rows per page of the users and groups lists. */
export const PAGE_SIZE = 50;
const NOTICES: Record<string, string> = {
  created: 'Created.',
  deleted: 'Deleted.',
  'key-deleted': 'The SSH key is deleted: it stops working at once, here and on mirrors.',
  'token-revoked': 'The token is revoked: it stops working at once, here and on mirrors.',
  deactivated: 'The user is deactivated: their sessions, keys and tokens stop working at once.',
  activated: 'The user is active again.',
  added: 'Added to the group.',
  removed: 'Removed from the group.',
};
const groupPath = (name: string) => `/admin/groups/${encodeURIComponent(name)}`;
const userPath = (name: string) => `/admin/users/${encodeURIComponent(name)}`;

export function registerAdminPages(app: FastifyInstance, web: Web, context: AppContext): void {
  const { users, groups } = context;

  /** A system administrator, or the sign-in page (anonymous GET) / 403 (anyone else). */
  const admin = (request: FastifyRequest, reply?: FastifyReply): UserPrincipal | undefined => {
    if (reply && web.requireSignIn(request, reply)) return undefined;
    return requireSysadmin(web.state(request).principal);
  };
  const q = (request: FastifyRequest) => {
    const raw = (request.query as { q?: unknown }).q;
    return typeof raw === 'string' ? raw.slice(0, 200) : '';
  };
  const done = (request: FastifyRequest) => NOTICES[(request.query as { done?: string }).done ?? ''];

  async function usersPage(request: FastifyRequest, reply: FastifyReply, extra: Record<string, unknown> = {}, status = 200) {
    const search = q(request);
    const start = startOf(request);
    const rows = await users.page(search ? { filter: search } : {}, start, PAGE_SIZE + 1);
    const me = web.state(request).session?.userId;
    return sendPage(
      reply,
      'admin-users',
      {
        ...web.layout(request, 'Users', 'users'),
        q: search,
        users: rows.slice(0, PAGE_SIZE).map((u) => ({ name: u.name, href: userPath(u.name), displayName: u.display_name, email: u.email, sysadmin: !!u.is_sysadmin, active: !!u.active, created: formatDate(Number(u.created_at)), self: u.id === me })),
        paging: pageLinks('/admin/users', { q: search }, start, PAGE_SIZE, rows.length > PAGE_SIZE),
        form: {},
        notice: done(request),
        ...extra,
      },
      status,
    );
  }

  app.get('/admin/users', async (request, reply) => {
    if (!admin(request, reply)) return reply;
    return usersPage(request, reply);
  });

  app.post<{ Body: Body }>('/admin/users', async (request, reply) => {
    admin(request);
    const form = { name: field(request.body, 'name'), displayName: field(request.body, 'displayName'), email: field(request.body, 'email') };
    const password = typeof request.body?.password === 'string' ? request.body.password : '';
    try {
      if (!form.name) throw Errors.invalid('A user needs a username.');
      if (!password) throw Errors.invalid('A password is required: mirrorfarm sends no e-mail, so it cannot ask the user to set one.');
      if (form.email && !/^[^\s@]+@[^\s@]+$/.test(form.email)) throw Errors.invalid('That e-mail address does not look like one.');
      await users.create({ name: form.name, password, ...(form.displayName ? { displayName: form.displayName } : {}), ...(form.email ? { email: form.email } : {}) });
    } catch (err) {
      return usersPage(request, reply, { error: formError(err), form }, 400);
    }
    return reply.redirect('/admin/users?done=created', 303);
  });

  for (const [action, active] of [['deactivate', false], ['activate', true]] as const) {
    app.post<{ Params: { name: string } }>(`/admin/users/:name/${action}`, async (request, reply) => {
      const me = admin(request)!;
      const user = await users.require(request.params.name);
      if (!active && user.id === me.userId) throw Errors.conflict('You cannot deactivate yourself; ask another administrator.');
      await users.update(user.name, { active });
      request.log.info({ user: user.name, active }, 'user changed in the web interface');
      const back = field(request.body as Body, 'back') === 'user' ? userPath(user.name) : '/admin/users';
      return reply.redirect(`${back}?done=${active ? 'activated' : 'deactivated'}`, 303);
    });
  }

  // One user, as Bitbucket's user administration shows them: details, groups, SSH keys and access tokens.
  app.get<{ Params: { name: string } }>('/admin/users/:name', async (request, reply) => {
    const me = admin(request, reply);
    if (!me) return reply;
    const user = await users.require(request.params.name);
    const base = userPath(user.name);
    return sendPage(reply, 'admin-user', {
      ...web.layout(request, `User ${user.name}`, 'users'),
      person: { name: user.name, displayName: user.display_name, email: user.email, active: !!user.active, sysadmin: await users.isSysadmin(user), created: formatDate(Number(user.created_at)), self: user.id === me.userId },
      base,
      groups: (await groups.groupsOf(user, {}, 0, 1000)).map((g) => ({ name: g.name, href: groupPath(g.name) })),
      keys: (await users.keys(user.id)).map((k) => ({ id: k.id, label: k.label, algorithm: k.algorithm, fingerprint: k.fingerprint, added: formatDate(Number(k.created_at)) })),
      tokens: (await users.tokens(user.id)).map((t) => ({
        id: t.id,
        name: t.name,
        permissions: (JSON.parse(t.permissions) as string[]).join(', '),
        created: formatDate(Number(t.created_at)),
        lastUsed: t.last_used_at ? formatDate(Number(t.last_used_at)) : 'never',
        expires: t.expires_at ? formatDate(Number(t.expires_at)) : 'never',
      })),
      notice: done(request),
    });
  });

  app.post<{ Params: { name: string; id: string } }>('/admin/users/:name/keys/:id/delete', async (request, reply) => {
    admin(request);
    const user = await users.require(request.params.name);
    const key = /^\d{1,12}$/.test(request.params.id) ? await users.keyById(Number(request.params.id)) : undefined;
    // Another user's key is "not found" here, as in the REST API.
    if (!key || key.user_id !== user.id) throw Errors.notFound(`SSH key ${request.params.id.slice(0, 20)}`);
    await users.removeKey(key);
    request.log.info({ user: user.name, keyId: key.id }, 'SSH key deleted by an administrator in the web interface');
    return reply.redirect(`${userPath(user.name)}?done=key-deleted`, 303);
  });

  app.post<{ Params: { name: string; id: string } }>('/admin/users/:name/tokens/:id/revoke', async (request, reply) => {
    admin(request);
    const user = await users.require(request.params.name);
    const token = /^\d{1,12}$/.test(request.params.id) ? await users.tokenById(user.id, Number(request.params.id)) : undefined;
    if (!token) throw Errors.notFound(`Access token ${request.params.id.slice(0, 20)}`);
    await users.revokeToken(token);
    request.log.info({ user: user.name, tokenId: token.id }, 'access token revoked by an administrator in the web interface');
    return reply.redirect(`${userPath(user.name)}?done=token-revoked`, 303);
  });

  app.get<{ Params: { name: string } }>('/admin/users/:name/delete', async (request, reply) => {
    const me = admin(request, reply);
    if (!me) return reply;
    const user = await users.require(request.params.name);
    if (user.id === me.userId) throw Errors.conflict('You cannot delete yourself; ask another administrator.');
    const held = await users.holdings(user);
    const n = (count: number, one: string, many: string) => `${count} ${count === 1 ? one : many}`;
    return sendPage(reply, 'confirm-delete', {
      ...web.layout(request, `Delete ${user.name}`, 'users'),
      what: `user ${user.name}`,
      consequences: [
        `Their ${n(held.keys, 'SSH key', 'SSH keys')} and ${n(held.tokens, 'access token', 'access tokens')} are deleted and stop working at once, here and on mirrors.`,
        `Their ${n(held.grants, 'permission', 'permissions')} on projects and repositories and their ${n(held.groups, 'group membership', 'group memberships')} go with them.`,
        'Their sign-ins end at once. What they pushed stays in the repositories.',
        'This cannot be undone; to keep the account for later, deactivate it instead.',
      ],
      action: `${userPath(user.name)}/delete`,
      cancel: userPath(user.name),
      button: 'Delete user',
    });
  });

  app.post<{ Params: { name: string } }>('/admin/users/:name/delete', async (request, reply) => {
    const me = admin(request)!;
    const user = await users.require(request.params.name);
    if (user.id === me.userId) throw Errors.conflict('You cannot delete yourself; ask another administrator.');
    await users.remove(user.name);
    request.log.info({ user: user.name }, 'user deleted in the web interface');
    return reply.redirect('/admin/users?done=deleted', 303);
  });

  async function groupsPage(request: FastifyRequest, reply: FastifyReply, extra: Record<string, unknown> = {}, status = 200) {
    const search = q(request);
    const start = startOf(request);
    const rows = await groups.page(search ? { filter: search } : {}, start, PAGE_SIZE + 1);
    const list = [];
    for (const g of rows.slice(0, PAGE_SIZE)) list.push({ name: g.name, href: groupPath(g.name), sysadmin: (await groups.globalPermission(g)) === 'SYS_ADMIN' });
    const paging = pageLinks('/admin/groups', { q: search }, start, PAGE_SIZE, rows.length > PAGE_SIZE);
    return sendPage(reply, 'admin-groups', { ...web.layout(request, 'Groups', 'groups'), q: search, groups: list, paging, form: {}, notice: done(request), ...extra }, status);
  }

  app.get('/admin/groups', async (request, reply) => {
    if (!admin(request, reply)) return reply;
    return groupsPage(request, reply);
  });

  app.post<{ Body: Body }>('/admin/groups', async (request, reply) => {
    admin(request);
    const name = field(request.body, 'name');
    try {
      const group = await groups.create(name);
      return reply.redirect(`${groupPath(group.name)}?done=created`, 303);
    } catch (err) {
      return groupsPage(request, reply, { error: formError(err), form: { name } }, 400);
    }
  });

  async function groupPage(request: FastifyRequest<{ Params: { name: string } }>, reply: FastifyReply, extra: Record<string, unknown> = {}, status = 200) {
    const group = await groups.require(request.params.name);
    const members = await groups.members(group, {}, 0, 1000);
    return sendPage(
      reply,
      'admin-group',
      {
        ...web.layout(request, `Group ${group.name}`, 'groups'),
        group: { name: group.name, href: groupPath(group.name), sysadmin: (await groups.globalPermission(group)) === 'SYS_ADMIN' },
        members: members.map((u) => ({ name: u.name, displayName: u.display_name, active: !!u.active })),
        notice: done(request),
        ...extra,
      },
      status,
    );
  }

  app.get<{ Params: { name: string } }>('/admin/groups/:name', async (request, reply) => {
    if (!admin(request, reply)) return reply;
    return groupPage(request, reply);
  });

  app.get<{ Params: { name: string } }>('/admin/groups/:name/delete', async (request, reply) => {
    if (!admin(request, reply)) return reply;
    const group = await groups.require(request.params.name);
    const held = await groups.holdings(group);
    const sysadmin = (await groups.globalPermission(group)) === 'SYS_ADMIN';
    return sendPage(reply, 'confirm-delete', {
      ...web.layout(request, `Delete ${group.name}`, 'groups'),
      what: `group ${group.name}`,
      consequences: [
        `Its ${held.members} ${held.members === 1 ? 'member loses' : 'members lose'} what the group grants, at once, here and on mirrors; the users themselves stay.`,
        `Its ${held.grants} ${held.grants === 1 ? 'permission goes' : 'permissions go'} with it${sysadmin ? ', SYS_ADMIN included' : ''}.`,
        ...(sysadmin ? ['You cannot delete it if it is what makes you a system administrator.'] : []),
      ],
      action: `${groupPath(group.name)}/delete`,
      cancel: groupPath(group.name),
      button: 'Delete group',
    });
  });

  app.post<{ Params: { name: string } }>('/admin/groups/:name/delete', async (request, reply) => {
    const me = admin(request)!;
    const group = await groups.require(request.params.name);
    const self = await users.byId(me.userId);
    if (!self) throw Errors.authenticationRequired();
    // The REST API's guard: nobody takes away their own system administration.
    await groups.remove(group, { user: self, refusal: () => Errors.conflict('Deleting this group would take away your own SYS_ADMIN permission; ask another administrator.') });
    request.log.info({ group: group.name }, 'group deleted in the web interface');
    return reply.redirect('/admin/groups?done=deleted', 303);
  });

  app.post<{ Params: { name: string }; Body: Body }>('/admin/groups/:name/members', async (request, reply) => {
    admin(request);
    const group = await groups.require(request.params.name);
    try {
      const name = field(request.body, 'user');
      if (!name) throw Errors.invalid('Enter a username.');
      const user = await users.byName(name.toLowerCase());
      if (!user) throw Errors.invalid(`There is no user named "${name.slice(0, 100)}".`);
      await groups.addMembers(group, [user]);
    } catch (err) {
      return groupPage(request, reply, { error: formError(err) }, 400);
    }
    return reply.redirect(`${groupPath(group.name)}?done=added`, 303);
  });

  app.post<{ Params: { name: string }; Body: Body }>('/admin/groups/:name/members/remove', async (request, reply) => {
    const me = admin(request)!;
    const group = await groups.require(request.params.name);
    const user = await users.require(field(request.body, 'user'));
    const self = await users.byId(me.userId);
    if (!self) throw Errors.authenticationRequired();
    try {
      await groups.removeMember(group, user, { user: self, refusal: () => Errors.conflict('This would take away your own SYS_ADMIN permission; ask another administrator.') });
    } catch (err) {
      return groupPage(request, reply, { error: formError(err) }, 409);
    }
    return reply.redirect(`${groupPath(group.name)}?done=removed`, 303);
  });
}
