// A mirror's web pages: its home page (what "visit the mirror URL" shows: name, state in words, progress, its
// farm, the way to the primary's page for this mirror, and the repositories the signed-in user can read with
// their clone URLs on this mirror), and the JSON the page polls to move without a reload. Users sign in with
// their primary credentials, checked by the primary through delegated authentication (and its login throttle);
// what they may read is the primary's answer, through the same helpers as the mirror's REST API.
import type { FastifyInstance } from 'fastify';
import type { Principal } from '../access/authorize.js';
import type { RepositoryView } from '../domain/repositories.js';
import { Errors, MirrorfarmError } from '../errors.js';
import type { MirrorController } from '../mirror/controller.js';
import { visibleRepositories } from '../mirror/rest/access.js';
import type { MirrorRestContext } from '../mirror/rest/context.js';
import type { Logger } from '../obs/logger.js';
import type { Db } from '../store/database.js';
import { registerWeb, type Web, type WebIdentity } from './plugin.js';
import { sendPage } from './render.js';
import { WebSessions, type WebSession } from './sessions.js';
import { explain } from './troubleshooting.js';

export interface MirrorWebDeps {
  db: Db;
  log: Logger;
  rest: MirrorRestContext;
  controller: MirrorController;
  /** The node's current error (its own, else the primary being unreachable). */
  error(): { code: string; message: string } | undefined;
}

/** The mirror's state in words, for the page and for its polling. */
export interface MirrorView {
  state: string;
  /** Short: "Waiting for authorization", "Synchronizing 3 of 10 repositories", "In sync", "Error", "Removed". */
  headline: string;
  detail: string;
  synced: number;
  total: number;
  error?: { code: string; message: string; cause?: string; fix?: string };
  failing: Array<{ repository: string; error: string | null }>;
  farm: { nodeId: string; member: boolean; ready: boolean; memberCount: number | null; activeCount: number | null; role: string | null };
  /** The farm's nodes as the primary last reported them (this one included). */
  peers: Array<{ id: string; state: string; role: string; lastSeenDate: string; lagSeconds: number | null; self: boolean }>;
}

const MAX_LISTED = 500;

export async function mirrorView(deps: MirrorWebDeps): Promise<MirrorView> {
  const { controller, rest } = deps;
  const progress = await controller.progress();
  const state = controller.state;
  const error = controller.error ?? deps.error();
  const counts = `${progress.synced} of ${progress.total} ${progress.total === 1 ? 'repository' : 'repositories'}`;
  const words: Record<string, [string, string]> = {
    INITIALIZING: ['Starting', 'Checking the connection to the primary server.'],
    PENDING: ['Waiting for authorization', 'An administrator of the primary server must authorize this mirror and choose the projects it carries. Compare the key fingerprint below with the one the primary shows.'],
    SYNCHRONIZING: [`Synchronizing ${counts}`, 'Repositories are being copied from the primary server.'],
    SYNCHRONIZED: ['In sync', progress.total === 0 ? 'This mirror carries no repositories yet.' : `Every repository (${progress.synced} of ${progress.total}) is the same as on the primary server.`],
    ERROR: ['Error', error ? error.message : 'This mirror cannot proceed; it retries on its own.'],
    REJECTED: ['Rejected', 'The registration of this mirror was rejected on the primary server. Uninstall it, or restart it to send a new request.'],
    REMOVED: ['Removed', 'This mirror was removed from its primary server and serves nothing. Clone from the primary server instead, and uninstall this mirror.'],
  };
  const [headline, detail] = words[state] ?? [state, ''];
  const farm = controller.farm();
  const explained = explain(error?.code);
  return {
    state,
    headline,
    detail,
    synced: progress.synced,
    total: progress.total,
    ...(error && state !== 'REMOVED' && state !== 'REJECTED' ? { error: { code: error.code, message: error.message, ...(explained ?? {}) } } : {}),
    failing: progress.failing.slice(0, 50),
    farm: { nodeId: rest.identity.nodeId, member: farm.member, ready: farm.ready, memberCount: farm.memberCount, activeCount: farm.activeCount ?? null, role: farm.role ?? null },
    peers: (farm.nodes ?? []).map((n) => ({ ...n, self: n.id === rest.identity.nodeId })),
  };
}

/**
 * Mirror sign-ins: the primary verifies the password (delegated authentication, with the primary's throttle). The
 * mirror must ask the primary again for each session (what the user may read can change at any time), so it keeps
 * the credentials of live sessions in memory only, never on disk: a restarted node asks its users to sign in again.
 */
function mirrorIdentity(rest: MirrorRestContext, log: Logger): WebIdentity {
  const headers = new Map<string, string>();
  const basic = (name: string, password: string) => `Basic ${Buffer.from(`${name}:${password}`, 'utf8').toString('base64')}`;
  return {
    async signIn(name, password, address) {
      if (password.startsWith('mft_')) throw Errors.webTokenSignIn();
      const principal = await rest.auth.fromAuthorizationHeader(basic(name, password), { address });
      if (principal.kind !== 'user') throw Errors.badCredentials();
      return { id: principal.userId, name: principal.name };
    },
    signedIn(session, name, password) {
      if (headers.size >= 10_000) headers.delete(headers.keys().next().value!);
      headers.set(session.id, basic(name, password));
    },
    async principal(session: WebSession): Promise<Principal | undefined> {
      const header = headers.get(session.id);
      if (!header) return undefined;
      try {
        const principal = await rest.auth.fromAuthorizationHeader(header);
        return principal.kind === 'user' ? principal : undefined;
      } catch (err) {
        // A changed password signs the session out; a primary that cannot answer (or a removed mirror) shows the
        // pages as to a visitor for now, and keeps the session for when it can.
        if (err instanceof MirrorfarmError && err.code === Errors.badCredentials.code) {
          headers.delete(session.id);
          return undefined;
        }
        log.info({ code: (err as MirrorfarmError).code }, 'cannot verify a web session with the primary right now');
        return { kind: 'anonymous' };
      }
    },
    async sysadmin() {
      return false;
    },
    signedOut(session) {
      headers.delete(session.id);
    },
  };
}

export async function registerMirrorWeb(app: FastifyInstance, deps: MirrorWebDeps): Promise<void> {
  const { rest } = deps;
  const config = rest.config;
  const sessions = new WebSessions(deps.db, { idleMs: config.web.sessionIdleMinutes * 60_000, maxMs: config.web.sessionMaxHours * 3_600_000 });
  await registerWeb(app, {
    mode: 'mirror',
    product: config.displayName,
    sessions,
    identity: mirrorIdentity(rest, deps.log),
    log: deps.log,
    routes: (scope, web) => routes(scope, web, deps),
  });
}

function routes(app: FastifyInstance, web: Web, deps: MirrorWebDeps): void {
  const { rest } = deps;
  const upstreamUrl = rest.config.mirror.upstreamUrl!;

  app.get('/', async (request, reply) => {
    const view = await mirrorView(deps);
    const { principal } = web.state(request);
    const serving = view.state === 'SYNCHRONIZED' || view.state === 'SYNCHRONIZING' || (view.state === 'ERROR' && view.total > 0);
    let repositories: Array<{ key: string; slug: string; name: string; http: string; ssh?: string; synced: boolean }> = [];
    let more = false;
    if (serving) {
      const page = await visibleRepositories(rest, principal, {}, 0, MAX_LISTED);
      more = !page.isLastPage;
      const local = new Map((await rest.catalog.repositories()).map((r) => [r.id, r.status]));
      repositories = page.values.map((v: RepositoryView) => {
        const ssh = rest.urls.sshClone(v.project.key, v.repo.slug);
        return { key: v.project.key, slug: v.repo.slug, name: v.repo.name, http: rest.urls.httpClone(v.project.key, v.repo.slug), ...(ssh ? { ssh } : {}), synced: local.get(v.repo.id) === 'SYNCED' };
      });
    }
    return sendPage(reply, 'mirror-home', {
      ...web.layout(request, 'Mirror status', 'home'),
      view,
      mirrorId: rest.identity.mirrorId,
      fingerprint: rest.identity.fingerprint,
      upstreamUrl,
      adminUrl: deps.controller.primaryAdminPageUrl(),
      serving,
      repositories,
      more,
      signedIn: principal.kind === 'user',
    });
  });

  app.get('/mirror/live.json', async (_request, reply) => reply.header('cache-control', 'no-store').send(await mirrorView(deps)));
}
