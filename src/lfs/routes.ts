// The Git LFS HTTP API at the repository's LFS URL (git-lfs derives it from the clone URL:
// https://HOST/scm/PROJ/repo.git/info/lfs): the batch API with the basic transfer adapter (download, upload,
// verify) and the file-locking API (src/lfs/lock-routes.ts). Object bodies stream between the socket and the
// disk in both directions. Errors are answered in git-lfs's JSON shape by the HTTP app's error handler.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { Errors, MirrorfarmError } from '../errors.js';
import type { Metrics } from '../obs/metrics.js';
import type { LfsAccess, LfsTarget } from './access.js';
import { registerLockRoutes } from './lock-routes.js';
import type { LfsLocks } from './locks.js';
import type { LfsObject } from './fetch-through.js';
import { OID, type LfsObjectStore } from './object-store.js';
import type { LfsOperation } from './tokens.js';

import { LFS_MEDIA_TYPE } from './media-type.js';
/** The most objects one batch request may name (git-lfs sends 100 at a time by default). */
export const MAX_BATCH_OBJECTS = 1000;

/** Where object bytes come from: the store on a primary; the store or, on a miss, the primary on a mirror. */
export interface LfsObjects {
  /** The size to answer a batch download with; undefined when the object is known not to exist. */
  sizeForDownload(repositoryId: number, oid: string, claimedSize: number): Promise<number | undefined>;
  open(repositoryId: number, oid: string): Promise<LfsObject>;
}

export interface LfsRouteDeps {
  access: LfsAccess;
  store: LfsObjectStore;
  objects: LfsObjects;
  /** Absent where uploads and locks are forwarded to the primary (a mirror). */
  locks?: LfsLocks;
  metrics: Metrics;
  /** The public base URL that action hrefs start with. */
  baseUrl: () => string;
  /** A mirror's: passes the request to the primary as it is and its answer back (uploads and locks). */
  forward?: (request: FastifyRequest, reply: FastifyReply, body: unknown) => Promise<FastifyReply>;
}

/** A primary's objects: its store. */
export function storedObjects(store: LfsObjectStore, metrics: Metrics): LfsObjects {
  return {
    sizeForDownload: (repositoryId, oid) => store.size(repositoryId, oid),
    async open(repositoryId, oid) {
      const size = await store.size(repositoryId, oid);
      if (size === undefined) throw Errors.lfsObjectNotFound(oid);
      const body = store.open(repositoryId, oid);
      body.once('end', () => metrics.lfsBytes.inc({ direction: 'out', source: 'local' }, size));
      return { size, body };
    },
  };
}

interface RepoParams {
  project: string;
  repo: string;
}

interface BatchObject {
  oid: string;
  size: number;
}

function parseBatch(body: unknown): { operation: LfsOperation; objects: BatchObject[] } {
  const b = (body ?? {}) as { operation?: unknown; objects?: unknown; transfers?: unknown; hash_algo?: unknown };
  if (b.operation !== 'download' && b.operation !== 'upload') throw Errors.invalid('A Git LFS batch request needs "operation": "download" or "upload".');
  if (b.transfers !== undefined && !(Array.isArray(b.transfers) && b.transfers.includes('basic'))) {
    throw new MirrorfarmError('LFS_TRANSFER_UNSUPPORTED', 422, 'This server offers the "basic" Git LFS transfer adapter only.');
  }
  if (b.hash_algo !== undefined && b.hash_algo !== 'sha256') throw new MirrorfarmError('LFS_HASH_UNSUPPORTED', 409, 'This server stores Git LFS objects by SHA-256 only.');
  if (!Array.isArray(b.objects) || b.objects.length > MAX_BATCH_OBJECTS) throw Errors.invalid(`A Git LFS batch request needs "objects": a list of at most ${MAX_BATCH_OBJECTS} {oid, size}.`);
  const objects = b.objects.map((o: unknown) => {
    const { oid, size } = (o ?? {}) as { oid?: unknown; size?: unknown };
    if (typeof oid !== 'string' || !OID.test(oid)) throw Errors.invalid('Each Git LFS object needs "oid": 64 lowercase hex digits of SHA-256.');
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw Errors.invalid(`Git LFS object ${oid} needs "size": a whole number of bytes.`);
    return { oid, size };
  });
  return { operation: b.operation, objects };
}

export function registerLfsRoutes(app: FastifyInstance, deps: LfsRouteDeps): void {
  const { access, store, metrics } = deps;

  const base = (t: LfsTarget) => `${deps.baseUrl()}/scm/${t.view.project.key.toLowerCase()}/${t.view.repo.slug}.git/info/lfs`;
  const open = (request: FastifyRequest<{ Params: RepoParams }>, operation: LfsOperation) =>
    access.open(request.headers.authorization, request.ip, request.params.project, request.params.repo, operation);

  // Scoped so that these body parsers apply to the LFS routes only.
  void app.register(async (scope) => {
    scope.addContentTypeParser(LFS_MEDIA_TYPE, { parseAs: 'string' }, scope.getDefaultJsonParser('error', 'ignore'));
    // Object uploads stream to disk; nothing buffers them. git-lfs sends application/octet-stream, other
    // clients sometimes nothing at all.
    scope.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

    scope.post<{ Params: RepoParams }>('/scm/:project/:repo/info/lfs/objects/batch', async (request, reply) => {
      const { operation, objects } = parseBatch(request.body);
      if (operation === 'upload' && deps.forward) return deps.forward(request, reply, request.body);
      const target = await open(request, operation);
      const header = await access.actionHeader(target, operation);
      const expires_in = access.tokens.lifetimeSeconds;
      const action = (href: string) => ({ href, header, expires_in });
      // Without a header of ours, the client sends the credentials it used for this request again.
      const authenticated = Object.keys(header).length > 0 ? { authenticated: true } : {};
      const answers = [];
      const admit = operation === 'upload' ? await store.admission(target.view.repo.id) : () => {};
      for (const { oid, size } of objects) {
        const stored = operation === 'download' ? await deps.objects.sizeForDownload(target.view.repo.id, oid, size) : await store.size(target.view.repo.id, oid);
        if (operation === 'download') {
          if (stored === undefined) answers.push({ oid, size, error: { code: 404, message: Errors.lfsObjectNotFound(oid).message } });
          else answers.push({ oid, size: stored, ...authenticated, actions: { download: action(`${base(target)}/objects/${oid}`) } });
          continue;
        }
        if (stored === size) {
          answers.push({ oid, size }); // already here: no actions, nothing to send
          continue;
        }
        try {
          admit(size);
        } catch (err) {
          const e = err as MirrorfarmError;
          answers.push({ oid, size, error: { code: e.status === 507 ? 507 : 422, message: e.message } });
          continue;
        }
        answers.push({ oid, size, ...authenticated, actions: { upload: action(`${base(target)}/objects/${oid}`), verify: action(`${base(target)}/objects/verify`) } });
      }
      return reply.type(LFS_MEDIA_TYPE).send({ transfer: 'basic', objects: answers, hash_algo: 'sha256' });
    });

    scope.get<{ Params: RepoParams & { oid: string } }>('/scm/:project/:repo/info/lfs/objects/:oid', async (request, reply) => {
      const target = await open(request, 'download');
      const { oid } = request.params;
      if (!OID.test(oid)) throw Errors.lfsObjectNotFound(oid.slice(0, 80));
      const { size, body } = await deps.objects.open(target.view.repo.id, oid);
      return reply.type('application/octet-stream').header('content-length', size).send(body);
    });

    scope.put<{ Params: RepoParams & { oid: string } }>('/scm/:project/:repo/info/lfs/objects/:oid', async (request, reply) => {
      if (deps.forward) throw Errors.invalid('Upload Git LFS objects to the href the batch API answered with (the primary server).');
      const target = await open(request, 'upload');
      const length = Number(request.headers['content-length']);
      if (!Number.isSafeInteger(length) || length < 0) throw new MirrorfarmError('LENGTH_REQUIRED', 411, 'A Git LFS upload needs a Content-Length header with the object\'s size.');
      await store.write(target.view.repo.id, request.params.oid, length, request.body as Readable);
      metrics.lfsBytes.inc({ direction: 'in', source: 'local' }, length);
      return reply.status(200).type(LFS_MEDIA_TYPE).send({});
    });

    scope.post<{ Params: RepoParams }>('/scm/:project/:repo/info/lfs/objects/verify', async (request, reply) => {
      if (deps.forward) return deps.forward(request, reply, request.body);
      const target = await open(request, 'upload');
      const { oid, size } = (request.body ?? {}) as { oid?: unknown; size?: unknown };
      if (typeof oid !== 'string' || !OID.test(oid) || typeof size !== 'number') throw Errors.invalid('A Git LFS verify request needs "oid" and "size".');
      const stored = await store.size(target.view.repo.id, oid);
      if (stored === undefined) throw Errors.lfsObjectNotFound(oid);
      if (stored !== size) throw new MirrorfarmError('LFS_SIZE_MISMATCH', 422, `Git LFS object ${oid} has ${stored} bytes here, not ${size}; push it again.`);
      return reply.type(LFS_MEDIA_TYPE).send({});
    });

    if (deps.locks) registerLockRoutes(scope, { open, locks: deps.locks });
    else if (deps.forward) {
      const forward = deps.forward;
      scope.get('/scm/:project/:repo/info/lfs/locks', (request, reply) => forward(request, reply, undefined));
      for (const path of ['/scm/:project/:repo/info/lfs/locks', '/scm/:project/:repo/info/lfs/locks/verify', '/scm/:project/:repo/info/lfs/locks/:id/unlock']) {
        scope.post(path, (request, reply) => forward(request, reply, request.body));
      }
    }
  });
}
