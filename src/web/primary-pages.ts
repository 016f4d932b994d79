// A primary's web pages: the home page (the projects and repositories the user can read, with search), and the
// administration's Mirrors section: pending requests (Authorize with a project selection, Reject), mirrors with
// their state, nodes, lag and synchronization, one mirror's page (nodes, projects, Delete with a confirmation),
// and the JSON those pages poll. Every page asks the same services and authorize() as the REST API; the mirror
// details are the REST API's own mirrorServers/{id} answer.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authorize, effectiveLevel, Level, type Principal } from '../access/authorize.js';
import { canRead, isSysadmin } from '../api/access.js';
import { mirrorDetailsJson } from '../api/mirroring/admin.js';
import { mirroringRequestJson } from '../api/mirroring/json.js';
import { userPrincipal } from '../auth/authenticator.js';
import { Errors } from '../errors.js';
import type { Mirroring } from '../primary/wire.js';
import type { AppContext } from '../server/context.js';
import type { Mirror } from '../store/tables.js';
import { registerWeb, type Web, type WebAuth } from './plugin.js';
import { UserPreferences } from './preferences.js';
import { sendPage } from './render.js';
import { registerAccountPages } from './account-pages.js';
import { registerAdminPages } from './admin-pages.js';
import { pageLinks, startOf } from './paging.js';
import { registerRepositoryPages, repoPath } from './repo-pages.js';
import { registerSettingsPages } from './settings-pages.js';
import { WebSessions } from './sessions.js';

const MIRROR_ID = /^[0-9A-Fa-f]{4}(-[0-9A-Fa-f]{4}){3}$/;
/** Fixed messages after a redirect, chosen by a word in the query: nothing from the URL is echoed. */
const NOTICES: Record<string, string> = {
  authorized: 'The mirror is authorized. It starts synchronizing its projects now.',
  updated: 'The project selection is saved. The mirror follows it at once.',
  rejected: 'The request was rejected. That mirror has no access.',
  deleted: 'The mirror was deleted: its access is cut off. Uninstall it (e.g. helm uninstall) on its side.',
};

type Details = Awaited<ReturnType<typeof mirrorDetailsJson>>[number];

/** A mirror's state in words, as the pages show it. */
export function mirrorSummary(m: Details): string {
  if (m.state === 'DELETED') return 'Deleted';
  if (m.state === 'REJECTED') return 'Rejected';
  if (m.state === 'PENDING') return 'Waiting for authorization';
  const { synced, total, failing } = m.repositories;
  if (m.farm.memberCount === 0) return 'No node in contact';
  if (failing.length > 0) return `${failing.length} failing, ${synced} of ${total} in sync`;
  if (synced >= total) return 'In sync';
  return `Synchronizing ${synced} of ${total}`;
}

function primaryAuth(context: AppContext, sessions: WebSessions): WebAuth {
  return {
    async signIn(name, password, address) {
      // Tokens are for git and the REST API: a web session has the user's full rights, a token may have less.
      if (password.startsWith('mft_')) throw Errors.webTokenSignIn();
      const principal = await context.authenticator.fromAuthorizationHeader(`Basic ${Buffer.from(`${name}:${password}`, 'utf8').toString('base64')}`, { address });
      if (principal.kind !== 'user' || principal.via !== 'password') throw Errors.webTokenSignIn();
      return sessions.create({ id: principal.userId, name: principal.name });
    },
    // Read again on every request: a deactivated or deleted user is signed out at once, a new group applies at once.
    async resume(cookie) {
      const session = await sessions.find(cookie);
      if (!session) return undefined;
      const user = await context.users.byId(session.userId);
      if (!user?.active) {
        await sessions.destroy(session.id);
        return undefined;
      }
      const principal = userPrincipal(user, 'password', await context.users.isSysadmin(user));
      return { session, principal, sysadmin: isSysadmin(principal) };
    },
    signOut: (session) => sessions.destroy(session.id),
    prune: () => sessions.prune(),
  };
}

export async function registerPrimaryWeb(app: FastifyInstance, context: AppContext, mirroring: Pick<Mirroring, 'registry' | 'state'>): Promise<void> {
  const { config } = context;
  const sessions = new WebSessions(context.db, { idleMs: config.web.sessionIdleMinutes * 60_000, maxMs: config.web.sessionMaxHours * 3_600_000 });
  // A new password ends the user's sign-ins (someone who had the old one, or a session left open elsewhere, is out),
  // as it ends their sessions on mirrors.
  const unsubscribe = context.events.subscribe((events) => {
    for (const event of events) {
      if (event.type !== 'user.updated' || event.credentials !== 'password' || typeof event.userId !== 'number') continue;
      sessions
        .destroyForUser(event.userId)
        .then((ended) => ended && context.log.info({ user: event.name, sessions: ended }, 'password changed: ended the user\'s web sessions'))
        .catch((err: Error) => context.log.error({ err }, 'could not end the web sessions of a user whose password changed'));
    }
  });
  app.addHook('onClose', async () => unsubscribe());
  await registerWeb(app, {
    mode: 'primary',
    product: config.displayName,
    auth: primaryAuth(context, sessions),
    log: context.log,
    routes: (scope, web) => {
      registerHome(scope, web, context);
      registerRepositoryPages(scope, web, context, mirroring, new UserPreferences(context.db));
      registerAccountPages(scope, web, context);
      registerSettingsPages(scope, web, context);
      registerAdminPages(scope, web, context);
      registerMirrorAdmin(scope, web, context, mirroring);
    },
  });
}

/** The repositories (grouped by project) the principal can read, filtered by a search term. */
async function readableProjects(context: AppContext, principal: Principal, search: string) {
  const index = await context.permissions.accessIndex(principal);
  const sysadmin = principal.kind === 'user' && principal.sysadmin;
  const views = await context.repositories.listViews(sysadmin ? {} : { candidatesFor: { projectIds: index.grantedProjectIds, repositoryIds: index.grantedRepositoryIds } }, 0, 100_000);
  const readable = views.filter((v) => canRead(principal, index.repository(v.project, v.repo)));
  const needle = search.toLowerCase();
  const matches = (...texts: string[]) => !needle || texts.some((t) => t.toLowerCase().includes(needle));
  const projects = (await context.projects.list()).filter((p) => canRead(principal, index.project(p)) || readable.some((v) => v.project.id === p.id));
  return projects
    .map((p) => ({
      key: p.key,
      settings: principal.kind === 'user' && effectiveLevel(principal, index.project(p)) >= Level.ADMIN ? `/projects/${encodeURIComponent(p.key)}/settings` : undefined,
      name: p.name,
      description: p.description,
      public: !!p.is_public,
      repositories: readable
        .filter((v) => v.project.id === p.id && matches(p.key, p.name, v.repo.name, v.repo.slug))
        .map((v) => ({ slug: v.repo.slug, name: v.repo.name, href: repoPath(p.key, v.repo.slug), public: !!v.repo.is_public, http: context.urls.httpClone(p.key, v.repo.slug), ssh: context.urls.sshClone(p.key, v.repo.slug) })),
    }))
    .filter((p) => matches(p.key, p.name) || p.repositories.length > 0);
}

/** Projects per page of the projects list, repositories shown per project there, and per page of a project's own page. */
const PROJECTS_PER_PAGE = 20;
const REPOS_PER_PROJECT = 25;
const REPOS_PER_PAGE = 50;

function registerHome(app: FastifyInstance, web: Web, context: AppContext): void {
  app.get<{ Querystring: { q?: string; done?: string } }>('/', async (request, reply) => {
    const q = typeof request.query.q === 'string' ? request.query.q.slice(0, 200) : '';
    const start = startOf(request);
    const all = await readableProjects(context, web.state(request).principal, q);
    const projects = all.slice(start, start + PROJECTS_PER_PAGE).map((p) => ({
      ...p,
      href: `/projects/${encodeURIComponent(p.key)}`,
      repositories: p.repositories.slice(0, REPOS_PER_PROJECT),
      moreRepositories: Math.max(0, p.repositories.length - REPOS_PER_PROJECT),
    }));
    const paging = pageLinks('/', { q }, start, PROJECTS_PER_PAGE, all.length > start + PROJECTS_PER_PAGE);
    const notice = request.query.done === 'deleted' ? 'Deleted.' : undefined;
    return sendPage(reply, 'home', { ...web.layout(request, 'Projects', 'projects'), projects, paging, q, notice });
  });

  // A project's repositories, a page at a time; the same 404 for a project the user cannot see as for none.
  app.get<{ Params: { key: string } }>('/projects/:key', async (request, reply) => {
    const principal = web.state(request).principal;
    const key = request.params.key.toUpperCase();
    const project = (await readableProjects(context, principal, '')).find((p) => p.key === key);
    if (!project) throw Errors.projectNotFound(request.params.key);
    const start = startOf(request);
    return sendPage(reply, 'project', {
      ...web.layout(request, project.name, 'projects'),
      project: { ...project, repositories: project.repositories.slice(start, start + REPOS_PER_PAGE) },
      total: project.repositories.length,
      paging: pageLinks(`/projects/${encodeURIComponent(project.key)}`, {}, start, REPOS_PER_PAGE, project.repositories.length > start + REPOS_PER_PAGE),
    });
  });
}

function registerMirrorAdmin(app: FastifyInstance, web: Web, context: AppContext, mirroring: Pick<Mirroring, 'registry' | 'state'>): void {
  const { registry, state } = mirroring;
  const describe = async (mirrors: Mirror[]) => (await mirrorDetailsJson(context, state, mirrors)).map((m) => ({ ...m, summary: mirrorSummary(m) }));

  /** Signed in as a system administrator, or the sign-in page (anonymous) / the 403 page (anyone else). */
  const admin = (request: FastifyRequest, reply: FastifyReply): boolean => {
    if (web.requireSignIn(request, reply)) return false;
    authorize(web.state(request).principal, { kind: 'system' }, 'admin');
    return true;
  };
  const apiAdmin = (request: FastifyRequest) => authorize(web.state(request).principal, { kind: 'system' }, 'admin');

  async function overview() {
    const requests = (await registry.list(['PENDING'])).map(mirroringRequestJson);
    const mirrors = await describe(await registry.list(['ACTIVE']));
    return { requests, mirrors };
  }

  app.get<{ Querystring: { done?: string } }>('/admin/mirrors', async (request, reply) => {
    if (!admin(request, reply)) return reply;
    return sendPage(reply, 'admin-mirrors', { ...web.layout(request, 'Mirrors', 'mirrors'), ...(await overview()), notice: NOTICES[request.query.done ?? ''] });
  });

  app.get('/admin/mirrors/live.json', async (request, reply) => {
    apiAdmin(request);
    return reply.header('cache-control', 'no-store').send(await overview());
  });

  app.get<{ Params: { id: string }; Querystring: { done?: string } }>('/admin/mirrors/:id', async (request, reply) => {
    if (!admin(request, reply)) return reply;
    const mirror = await found(request.params.id);
    const [details] = await describe([mirror]);
    const projects = mirror.mirroring_mode === 'ALL_PROJECTS' ? [] : details!.projects;
    return sendPage(reply, 'admin-mirror', {
      ...web.layout(request, `Mirror ${mirror.name}`, 'mirrors'),
      mirror: details,
      request: mirroringRequestJson(mirror),
      projects,
      notice: NOTICES[request.query.done ?? ''],
    });
  });

  app.get<{ Params: { id: string } }>('/admin/mirrors/:id/live.json', async (request, reply) => {
    apiAdmin(request);
    const mirror = await found(request.params.id);
    return reply.header('cache-control', 'no-store').send((await describe([mirror]))[0]);
  });

  // Which projects: every project including future ones, or a selection (the page filters the list as you type).
  app.get<{ Params: { id: string } }>('/admin/mirrors/:id/projects', async (request, reply) => {
    if (!admin(request, reply)) return reply;
    const mirror = await found(request.params.id);
    if (mirror.state !== 'PENDING' && mirror.state !== 'ACTIVE') throw Errors.conflict(`Mirror ${mirror.id} is ${mirror.state}; it cannot carry projects.`);
    const selected = new Set(await registry.projectIds(mirror.id));
    const projects = (await context.projects.list()).map((p) => ({ id: p.id, key: p.key, name: p.name, selected: selected.has(p.id) }));
    return sendPage(reply, 'admin-mirror-projects', {
      ...web.layout(request, mirror.state === 'PENDING' ? `Authorize ${mirror.name}` : `Projects of ${mirror.name}`, 'mirrors'),
      mirror: mirroringRequestJson(mirror),
      pending: mirror.state === 'PENDING',
      selectionMode: mirror.state === 'PENDING' ? 'ALL_PROJECTS' : mirror.mirroring_mode,
      projects,
    });
  });

  app.post<{ Params: { id: string }; Body: Record<string, unknown> }>('/admin/mirrors/:id/projects', async (request, reply) => {
    apiAdmin(request);
    const mirror = await found(request.params.id);
    const body = request.body ?? {};
    const mode = body.mode === 'SELECTED_PROJECTS' ? 'SELECTED_PROJECTS' : body.mode === 'ALL_PROJECTS' ? 'ALL_PROJECTS' : undefined;
    if (!mode) throw Errors.invalid('Choose all projects or a selection of projects.');
    const raw = body.project === undefined ? [] : Array.isArray(body.project) ? body.project : [body.project];
    const ids = mode === 'ALL_PROJECTS' ? [] : raw.map((v) => Number(v)).filter((n) => Number.isSafeInteger(n) && n > 0);
    if (mode === 'SELECTED_PROJECTS' && ids.length === 0) throw Errors.invalid('Select at least one project, or choose all projects.');
    if (mirror.state === 'PENDING') {
      await registry.accept(mirror.id, mode, ids);
      request.log.info({ mirrorId: mirror.id, mode, projects: ids.length }, 'mirror authorized in the web interface');
      return reply.redirect(`/admin/mirrors/${mirror.id}?done=authorized`, 303);
    }
    await registry.setMode(mirror.id, mode, ids);
    return reply.redirect(`/admin/mirrors/${mirror.id}?done=updated`, 303);
  });

  app.post<{ Params: { id: string } }>('/admin/mirrors/:id/reject', async (request, reply) => {
    apiAdmin(request);
    const mirror = await found(request.params.id);
    await registry.reject(mirror.id);
    return reply.redirect('/admin/mirrors?done=rejected', 303);
  });

  app.get<{ Params: { id: string } }>('/admin/mirrors/:id/delete', async (request, reply) => {
    if (!admin(request, reply)) return reply;
    const mirror = await found(request.params.id);
    const [details] = await describe([mirror]);
    return sendPage(reply, 'admin-mirror-delete', { ...web.layout(request, `Delete ${mirror.name}`, 'mirrors'), mirror: details });
  });

  app.post<{ Params: { id: string } }>('/admin/mirrors/:id/delete', async (request, reply) => {
    apiAdmin(request);
    const mirror = await found(request.params.id);
    await registry.remove(mirror.id);
    request.log.info({ mirrorId: mirror.id }, 'mirror deleted in the web interface');
    return reply.redirect('/admin/mirrors?done=deleted', 303);
  });

  async function found(raw: string): Promise<Mirror> {
    const mirror = MIRROR_ID.test(raw) ? await registry.get(raw.toUpperCase()) : undefined;
    if (!mirror) throw Errors.notFound(`Mirror ${raw.slice(0, 40)}`);
    return mirror;
  }
}
