// The web UI's frame, the same in both modes: security headers (a strict Content-Security-Policy: no inline
// script or style anywhere), the static files, form parsing, sessions with CSRF checks, sign in / sign out, and
// error pages. It is one encapsulated Fastify plugin, so none of this touches /scm, /rest, /status or /ready.
// The pages of each mode are registered by `routes` and act through the same domain services as the REST API,
// with `authorize()` deciding; what a user cannot read answers the same 404 page whether it exists or not.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Principal } from '../access/authorize.js';
import { Errors, isMirrorfarmError, MirrorfarmError } from '../errors.js';
import type { Logger } from '../obs/logger.js';
import { sendPage, STATIC_FILES, type LayoutData } from './render.js';
import { clearCookie, cookieOf, LOGIN_CSRF_COOKIE, randomToken, sameSecret, sessionCookie, setCookie, type WebSession } from './sessions.js';

export const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/** A session named by a cookie, as it stands on this request. */
export interface ResumedSession {
  session: WebSession;
  principal: Principal;
  /** Whether the principal is a system administrator (primary: authorize on the system resource). */
  sysadmin: boolean;
  /** Why the page shows less than the user may see (a mirror that cannot reach its primary right now). */
  notice?: string;
}

/** How a mode signs users in and finds their sessions again. */
export interface WebAuth {
  /**
   * Checks a password with the same authenticator (and login throttle) as git and the REST API, and opens a new
   * session; throws its MirrorfarmError (BAD_CREDENTIALS, TOO_MANY_LOGIN_ATTEMPTS, ...).
   */
  signIn(name: string, password: string, address: string): Promise<WebSession>;
  /** The session a cookie names; undefined when it no longer stands (signed out, timed out, user deactivated). */
  resume(cookie: string): Promise<ResumedSession | undefined>;
  signOut(session: WebSession): Promise<void>;
  /** Deletes sessions past their timeouts, where this mode keeps them. */
  prune?(): Promise<number>;
}

export interface WebRequestState {
  session?: WebSession;
  principal: Principal;
  sysadmin: boolean;
  notice?: string;
}

export interface Web {
  /** The caller's session and principal (anonymous without a session). */
  state(request: FastifyRequest): WebRequestState;
  /** What the layout needs, for this request. */
  layout(request: FastifyRequest, title: string, section?: string): LayoutData;
  /** Sends the sign-in page's redirect when nobody is signed in; returns true when it did. */
  requireSignIn(request: FastifyRequest, reply: FastifyReply): boolean;
}

export interface WebOptions {
  mode: 'primary' | 'mirror';
  product: string;
  auth: WebAuth;
  log: Logger;
  /** A mirror node's id, sent with every page (X-Mirrorfarm-Node), so that an operator sees which node of a farm answered. */
  nodeId?: string;
  routes(app: FastifyInstance, web: Web): void;
}

const ANON: WebRequestState = { principal: { kind: 'anonymous' }, sysadmin: false };

/** A local path to go back to after signing in; anything else (another site, `//host`) goes home. */
export function safeNext(next: unknown): string {
  return typeof next === 'string' && /^\/(?![/\\])[\x21-\x7e]*$/.test(next) && !next.startsWith('/login') ? next : '/';
}

export async function registerWeb(app: FastifyInstance, options: WebOptions): Promise<void> {
  const { auth } = options;
  const SESSION_COOKIE = sessionCookie(options.mode);
  const states = new WeakMap<FastifyRequest, WebRequestState>();

  const web: Web = {
    state: (request) => states.get(request) ?? ANON,
    layout(request, title, section) {
      const state = web.state(request);
      return {
        title,
        product: options.product,
        mode: options.mode,
        // A session whose user could not be confirmed right now has no name to show (see ResumedSession.notice).
        user: state.session?.userName ? { name: state.session.userName, sysadmin: state.sysadmin } : undefined,
        csrf: state.session?.csrfToken,
        ...(state.notice ? { sessionNotice: state.notice } : {}),
        ...(section ? { section } : {}),
      };
    },
    requireSignIn(request, reply) {
      if (web.state(request).session) return false;
      void reply.redirect(`/login?next=${encodeURIComponent(request.url)}`, 303);
      return true;
    },
  };

  await app.register(async (scope) => {
    // Forms are the only bodies the pages take; the parser exists inside this plugin only.
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 256 * 1024 }, (_request, body, done) => {
      const fields: Record<string, string | string[]> = {};
      for (const [k, v] of new URLSearchParams(body as string)) {
        const had = fields[k];
        fields[k] = had === undefined ? v : Array.isArray(had) ? [...had, v] : [had, v];
      }
      done(null, fields);
    });

    scope.addHook('onRequest', async (request, reply) => {
      reply.header('content-security-policy', CSP);
      reply.header('x-content-type-options', 'nosniff');
      reply.header('referrer-policy', 'same-origin');
      reply.header('x-frame-options', 'DENY');
      if (options.nodeId) reply.header('x-mirrorfarm-node', options.nodeId);
      const id = cookieOf(request, SESSION_COOKIE);
      if (!id) return;
      const resumed = await auth.resume(id);
      if (!resumed) {
        clearCookie(reply, SESSION_COOKIE);
        return;
      }
      states.set(request, { session: resumed.session, principal: resumed.principal, sysadmin: resumed.sysadmin, ...(resumed.notice ? { notice: resumed.notice } : {}) });
    });

    // Every state-changing request of the pages carries the session's CSRF token (sign-in: the form's cookie).
    scope.addHook('preHandler', async (request) => {
      if (request.method === 'GET' || request.method === 'HEAD') return;
      const body = (request.body ?? {}) as Record<string, unknown>;
      const given = typeof body._csrf === 'string' ? body._csrf : typeof request.headers['x-csrf-token'] === 'string' ? request.headers['x-csrf-token'] : undefined;
      const expected = request.routeOptions.url === '/login' ? cookieOf(request, LOGIN_CSRF_COOKIE) : web.state(request).session?.csrfToken;
      if (!sameSecret(given, expected)) throw Errors.csrfInvalid();
    });

    scope.setErrorHandler((error, request, reply) => {
      const err = isMirrorfarmError(error) ? error : toError(error);
      if (err.status >= 500) request.log.error({ err: error }, 'page failed');
      if (err.status === 401 && request.method === 'GET') return reply.redirect(`/login?next=${encodeURIComponent(request.url)}`, 303);
      if (request.url.split('?')[0]!.endsWith('.json')) return reply.status(err.status).send({ errors: [{ code: err.code, message: err.message }] });
      const title = err.status === 404 ? 'Not found' : err.status === 403 ? 'Not allowed' : 'Something went wrong';
      return sendPage(reply, 'error', { ...web.layout(request, title), code: err.code, message: err.message, status: err.status }, err.status);
    });

    scope.get<{ Params: { name: string } }>('/static/:name', async (request, reply) => {
      const file = STATIC_FILES[request.params.name];
      if (!file) throw Errors.notFound(`File ${request.params.name}`);
      return reply.type(file.type).header('cache-control', 'public, max-age=300').send(file.body);
    });

    scope.get<{ Querystring: { next?: string } }>('/login', async (request, reply) => {
      const next = safeNext(request.query.next);
      if (web.state(request).session) return reply.redirect(next, 303);
      return loginPage(request, reply, next);
    });

    scope.post<{ Body: Record<string, unknown> }>('/login', async (request, reply) => {
      const body = request.body ?? {};
      const next = safeNext(body.next);
      const name = typeof body.username === 'string' ? body.username.trim() : '';
      const password = typeof body.password === 'string' ? body.password : '';
      if (!name || !password) return loginPage(request, reply, next, 'Enter your username and password.', 400, name);
      let session: WebSession;
      try {
        session = await auth.signIn(name, password, request.ip);
      } catch (err) {
        // A primary that cannot be reached (a mirror's 502/503) is said on the form; a fault of this server is not.
        if (!(err instanceof MirrorfarmError) || err.status === 500) throw err;
        if (err.retryAfterSeconds !== undefined) reply.header('retry-after', String(err.retryAfterSeconds));
        const message = err.code === Errors.badCredentials.code ? 'Wrong username or password.' : err.message;
        return loginPage(request, reply, next, message, err.status, name);
      }
      // A new id at every sign-in; the session the browser had (if any) ends.
      const old = web.state(request).session;
      if (old) await auth.signOut(old).catch((err: Error) => request.log.warn({ err }, 'could not end the previous web session'));
      setCookie(reply, SESSION_COOKIE, session.id);
      clearCookie(reply, LOGIN_CSRF_COOKIE);
      request.log.info({ user: session.userName }, 'signed in to the web interface');
      return reply.redirect(next, 303);
    });

    scope.post('/logout', async (request, reply) => {
      const session = web.state(request).session;
      // The cookie goes whatever happens; a session the server could not end runs out by its idle timeout.
      if (session) await auth.signOut(session).catch((err: Error) => request.log.warn({ code: (err as MirrorfarmError).code, err }, 'could not end the web session'));
      clearCookie(reply, SESSION_COOKIE);
      return reply.redirect('/', 303);
    });

    options.routes(scope, web);
  });

  function loginPage(request: FastifyRequest, reply: FastifyReply, next: string, error?: string, status = 200, username = '') {
    const token = cookieOf(request, LOGIN_CSRF_COOKIE) ?? randomToken();
    setCookie(reply, LOGIN_CSRF_COOKIE, token, { sameSite: 'Strict', maxAgeSeconds: 3600 });
    return sendPage(reply, 'login', { ...web.layout(request, 'Sign in', 'login'), loginCsrf: token, next, error, username }, status);
  }

  if (auth.prune) {
    const prune = auth.prune.bind(auth);
    const timer = setInterval(() => {
      prune().catch((err: Error) => options.log.warn({ err }, 'pruning web sessions failed'));
    }, 600_000).unref();
    app.addHook('onClose', async () => clearInterval(timer));
  }
}

function toError(error: unknown): MirrorfarmError {
  const e = error as { statusCode?: number; code?: string; message?: string; validation?: unknown };
  if (e.validation) return Errors.invalid(e.message ?? 'invalid request');
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return new MirrorfarmError(e.code ?? 'BAD_REQUEST', e.statusCode, e.message ?? 'bad request');
  return new MirrorfarmError('INTERNAL_ERROR', 500, 'Internal server error; the server log has the details.');
}
