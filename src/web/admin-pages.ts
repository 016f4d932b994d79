// The administration's Users and Groups, for system administrators: users (search, create, deactivate and
// activate again) and groups (search, create, members: add and remove). requireSysadmin() (authorize() on the
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
import { formatDate } from './repo-pages.js';

type Body = Record<string, unknown>;
const field = (body: Body | undefined, name: string) => (typeof body?.[name] === 'string' ? (body[name] as string).trim() : '');
const LIMIT = 200;
const NOTICES: Record<string, string> = {
  created: 'Created.',
  deactivated: 'The user is deactivated: their sessions, keys and tokens stop working at once.',
  activated: 'The user is active again.',
  added: 'Added to the group.',
  removed: 'Removed from the group.',
};
const groupPath = (name: string) => `/admin/groups/${encodeURIComponent(name)}`;

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
    const rows = await users.page(search ? { filter: search } : {}, 0, LIMIT + 1);
    const me = web.state(request).session?.userId;
    return sendPage(
      reply,
      'admin-users',
      {
        ...web.layout(request, 'Users', 'users'),
        q: search,
        users: rows.slice(0, LIMIT).map((u) => ({ name: u.name, displayName: u.display_name, email: u.email, sysadmin: !!u.is_sysadmin, active: !!u.active, created: formatDate(Number(u.created_at)), self: u.id === me })),
        more: rows.length > LIMIT,
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
      return reply.redirect(`/admin/users?done=${active ? 'activated' : 'deactivated'}`, 303);
    });
  }

  async function groupsPage(request: FastifyRequest, reply: FastifyReply, extra: Record<string, unknown> = {}, status = 200) {
    const search = q(request);
    const rows = await groups.page(search ? { filter: search } : {}, 0, LIMIT + 1);
    const list = [];
    for (const g of rows.slice(0, LIMIT)) list.push({ name: g.name, href: groupPath(g.name), sysadmin: (await groups.globalPermission(g)) === 'SYS_ADMIN' });
    return sendPage(reply, 'admin-groups', { ...web.layout(request, 'Groups', 'groups'), q: search, groups: list, more: rows.length > LIMIT, form: {}, notice: done(request), ...extra }, status);
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
