// A mirror's web pages: its home page (what "visit the mirror URL" shows: name, state in words, progress, its
// farm, the way to the primary's page for this mirror, and the repositories the signed-in user can read with
// their clone URLs on this mirror), and the JSON the page polls to move without a reload. Users sign in with
// their primary credentials into a session the primary keeps (so that any node of the farm accepts it); what
// they may read is the primary's answer, through the same helpers as the mirror's REST API.
import { createHmac, hkdfSync } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { RepositoryView } from '../domain/repositories.js';
import { Errors, MirrorfarmError } from '../errors.js';
import type { MirrorController } from '../mirror/controller.js';
import { visibleRepositories } from '../mirror/rest/access.js';
import type { MirrorRestContext } from '../mirror/rest/context.js';
import type { Logger } from '../obs/logger.js';
import { registerWeb, type Web, type WebAuth } from './plugin.js';
import { sendPage } from './render.js';
import type { WebSession } from './sessions.js';
import { explain } from './troubleshooting.js';

export interface MirrorWebDeps {
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
 * Mirror sign-ins, valid on every node of the farm with no state shared between nodes: the primary opens the
 * session (it checks the password, with its login throttle) and keeps it; the cookie holds the secret it
 * returned, and any node asks the primary who that is (delegated authentication, cached briefly, dropped on the
 * events that end it). No password is kept anywhere. The CSRF token is an HMAC of the secret under a key derived
 * from the farm's identity key, which every node holds (mirror.keyFile), so any node checks a form another node
 * served. While the primary cannot be reached, a session this node has not verified lately shows the visitor's
 * view with a notice, and stays for when the primary is back.
 */
function mirrorAuth(rest: MirrorRestContext, log: Logger): WebAuth {
  const csrfKey = Buffer.from(hkdfSync('sha256', rest.identity.key.privateKey.export({ format: 'der', type: 'pkcs8' }), 'mirrorfarm', 'web session csrf token', 32));
  const csrfOf = (secret: string) => createHmac('sha256', csrfKey).update(secret).digest('base64url');
  const session = (secret: string, user: { id: number; name: string }, createdAt: number): WebSession => ({
    id: secret,
    userId: user.id,
    userName: user.name,
    csrfToken: csrfOf(secret),
    createdAt,
    lastSeenAt: Date.now(),
  });
  return {
    async signIn(name, password, address) {
      if (password.startsWith('mft_')) throw Errors.webTokenSignIn();
      const opened = await rest.auth.openWebSession(name, password, address);
      return session(opened.secret, opened.user, opened.createdDate);
    },
    async resume(secret) {
      if (secret.length > 100) return undefined;
      try {
        const verified = await rest.auth.fromWebSession(secret);
        if (verified?.principal.kind !== 'user') return undefined;
        return { session: session(secret, { id: verified.principal.userId, name: verified.principal.name }, verified.createdDate), principal: verified.principal, sysadmin: false };
      } catch (err) {
        // A removed mirror serves nobody: its sessions are over. Anything else is the primary not answering now.
        if (err instanceof MirrorfarmError && err.code === 'MIRROR_REMOVED') return undefined;
        log.info({ code: (err as MirrorfarmError).code }, 'cannot verify a web session with the primary right now');
        return {
          session: { ...session(secret, { id: 0, name: '' }, 0) },
          principal: { kind: 'anonymous' },
          sysadmin: false,
          notice: 'The primary server cannot be reached to confirm your sign-in right now: this page shows what visitors see until it can.',
        };
      }
    },
    signOut: (s) => rest.auth.closeWebSession(s.id),
  };
}

export async function registerMirrorWeb(app: FastifyInstance, deps: MirrorWebDeps): Promise<void> {
  const { rest } = deps;
  const config = rest.config;
  await registerWeb(app, {
    mode: 'mirror',
    product: config.displayName,
    auth: mirrorAuth(rest, deps.log),
    nodeId: rest.identity.nodeId,
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
