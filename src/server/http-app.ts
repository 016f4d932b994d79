// The HTTP(S) listener shared by every mode: Fastify with request ids, redacted logs, metrics per route and
// one error mapping. Git routes answer errors as text (git prints it as "remote: ..."), REST routes in
// Bitbucket's {"errors":[...]} shape. Bitbucket's `latest` version alias is resolved here, before routing, so it
// holds for every REST root of every mode without a second copy of any route.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Fastify, { LogController, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Config } from '../config/schema.js';
import { Errors, isMirrorfarmError, MirrorfarmError } from '../errors.js';
import type { Logger } from '../obs/logger.js';
import type { Metrics } from '../obs/metrics.js';
import { LFS_MEDIA_TYPE } from '../lfs/media-type.js';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;
export const HSTS = 'max-age=31536000';

/** Query parameters that may carry secrets (Bitbucket's user admin API takes a password in the query). */
function redactUrl(url: string): string {
  return url.replace(/([?&](?:password|passwordConfirm|token)=)[^&]*/gi, '$1[redacted]');
}

/**
 * Bitbucket serves `/rest/<root>/latest/...` as the current version of every REST root (published clients and
 * scripts mostly use it). Mapping it onto `1.0` before routing serves it wherever 1.0 is served; the query
 * string is kept, and links in answers keep naming 1.0, the version that actually answered.
 */
const LATEST = /^\/rest\/([A-Za-z0-9_-]+)\/latest(?=[/?]|$)/;

export function rewriteLatest(url: string): string {
  return url.replace(LATEST, '/rest/$1/1.0');
}

/**
 * Bitbucket's error body. `exceptionName` is Bitbucket's class for the condition where it has one (clients
 * branch on it), else mirrorfarm's code; `code` is always mirrorfarm's stable code (see the README's table).
 */
export function bitbucketError(err: MirrorfarmError) {
  return { errors: [{ context: null, message: err.message, exceptionName: err.bitbucketException ?? err.code, code: err.code }] };
}

export function createHttpApp(config: Config, log: Logger, metrics: Metrics): FastifyInstance {
  const tls = config.http.tls.cert && config.http.tls.key ? { cert: readFileSync(config.http.tls.cert), key: readFileSync(config.http.tls.key) } : undefined;
  const app = Fastify({
    loggerInstance: log,
    https: tls ?? null,
    trustProxy: config.http.trustProxy,
    bodyLimit: config.http.maxRequestBodyBytes,
    routerOptions: { maxParamLength: 300 },
    rewriteUrl: (req) => rewriteLatest(req.url ?? '/'),
    // Idle keep-alive connections are closed at shutdown; requests in flight (clones, pushes) finish.
    forceCloseConnections: 'idle',
    requestIdHeader: 'x-request-id',
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // Fastify's own request log prints raw URLs; ours (onResponse) redacts secrets in query strings.
    logController: new LogController({ disableRequestLogging: true }),
  }) as unknown as FastifyInstance;

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  if (tls) {
    // Served over HTTPS directly: browsers must not fall back to plain HTTP for this host for a year. Not sent
    // without TLS (behind a TLS-terminating proxy, the proxy owns the header; over http:// it would be ignored).
    app.addHook('onRequest', async (_request, reply) => {
      reply.header('strict-transport-security', HSTS);
    });
  }
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    request.log.info(
      // The URL as the client sent it (a `latest` path stays `latest`), with secrets in the query redacted.
      { method: request.method, url: redactUrl(request.originalUrl), status: reply.statusCode, ms: Math.round(reply.elapsedTime), remote: request.ip },
      'request completed',
    );
  });

  app.setErrorHandler((error, request, reply) => {
    const err = toMirrorfarmError(error);
    if (err.status >= 500) request.log.error({ err: error, url: redactUrl(request.originalUrl) }, 'request failed');
    else request.log.info({ code: err.code, status: err.status, url: redactUrl(request.originalUrl) }, 'request refused');
    if (err.status === 401) reply.header('www-authenticate', 'Basic realm="mirrorfarm"');
    if (err.retryAfterSeconds !== undefined) reply.header('retry-after', String(err.retryAfterSeconds));
    if (reply.sent || reply.raw.headersSent) {
      reply.raw.destroy();
      return;
    }
    if (isLfsRequest(request)) {
      // git-lfs shows `message`; LFS-Authenticate makes it ask for credentials.
      if (err.status === 401) reply.header('lfs-authenticate', 'Basic realm="mirrorfarm"');
      return reply.status(err.status).type(LFS_MEDIA_TYPE).send({ message: err.message, code: err.code, request_id: request.id });
    }
    if (isGitRequest(request)) return reply.status(err.status).type('text/plain; charset=utf-8').send(`${err.message}\n`);
    return reply.status(err.status).send(bitbucketError(err));
  });

  app.setNotFoundHandler((request, reply) => {
    const err = new MirrorfarmError('NOT_FOUND', 404, `No such resource: ${request.method} ${redactUrl(request.originalUrl.split('?')[0] ?? '')}`);
    if (isGitRequest(request)) return reply.status(404).type('text/plain; charset=utf-8').send(`${err.message}\n`);
    return reply.status(404).send(bitbucketError(err));
  });

  return app;
}

function isLfsRequest(request: FastifyRequest): boolean {
  return /^\/scm\/[^/?]+\/[^/?]+\/info\/lfs(\/|$)/.test(request.url);
}

function isGitRequest(request: FastifyRequest): boolean {
  return request.url.startsWith('/scm/');
}

function toMirrorfarmError(error: unknown): MirrorfarmError {
  if (isMirrorfarmError(error)) return error;
  const e = error as { statusCode?: number; code?: string; message?: string; validation?: unknown };
  if (e.validation) return Errors.invalid(e.message ?? 'invalid request');
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return new MirrorfarmError(e.code ?? 'BAD_REQUEST', e.statusCode, e.message ?? 'bad request');
  return new MirrorfarmError('INTERNAL_ERROR', 500, 'Internal server error; the server log has the details.');
}

export { redactUrl };
