// The Git LFS file-locking API under .../info/lfs/locks: create, list, verify (what git-lfs asks before a
// push: which locks are the pusher's and which are others') and unlock. Listing needs read access; locking,
// verifying and unlocking need write access, and unlocking someone else's lock needs --force and repository
// admin, decided by authorize().
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { authorize } from '../access/authorize.js';
import { Errors, MirrorfarmError } from '../errors.js';
import type { LfsTarget } from './access.js';
import { checkLockPath, type LfsLocks } from './locks.js';
import type { LfsOperation } from './tokens.js';

import { LFS_MEDIA_TYPE } from './media-type.js';
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

interface RepoParams {
  project: string;
  repo: string;
}

export interface LockRouteDeps {
  open(request: FastifyRequest<{ Params: RepoParams }>, operation: LfsOperation): Promise<LfsTarget>;
  locks: LfsLocks;
}

function limitOf(raw: unknown): number {
  if (raw === undefined || raw === '') return DEFAULT_LIMIT;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw Errors.invalid('"limit" must be a positive whole number.');
  return Math.min(n, MAX_LIMIT);
}

function cursorOf(raw: unknown): string | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (typeof raw !== 'string' || !/^[0-9]{1,15}$/.test(raw)) throw Errors.invalid('"cursor" must be the next_cursor of an earlier answer.');
  return raw;
}

function userOf(target: LfsTarget): number {
  // Locks belong to users; open() has already refused anonymous writers.
  if (target.principal.kind !== 'user') throw Errors.authenticationRequired();
  return target.principal.userId;
}

export function registerLockRoutes(app: FastifyInstance, deps: LockRouteDeps): void {
  const { locks } = deps;
  const strip = <T extends { ownerId: number }>({ ownerId: _o, ...lock }: T) => lock;

  app.post<{ Params: RepoParams }>('/scm/:project/:repo/info/lfs/locks', async (request, reply) => {
    const target = await deps.open(request, 'upload');
    const body = (request.body ?? {}) as { path?: unknown; ref?: { name?: unknown } };
    const path = checkLockPath(body.path);
    const refName = typeof body.ref?.name === 'string' ? body.ref.name : undefined;
    try {
      const lock = await locks.create(target.view.repo.id, path, userOf(target), refName);
      return reply.status(201).type(LFS_MEDIA_TYPE).send({ lock });
    } catch (err) {
      const lock = (err as { lock?: unknown }).lock;
      if (err instanceof MirrorfarmError && lock) return reply.status(409).type(LFS_MEDIA_TYPE).send({ lock, message: err.message, code: err.code, request_id: request.id });
      throw err;
    }
  });

  app.get<{ Params: RepoParams; Querystring: Record<string, string | undefined> }>('/scm/:project/:repo/info/lfs/locks', async (request, reply) => {
    const target = await deps.open(request, 'download');
    const q = request.query;
    const page = await locks.list(target.view.repo.id, {
      ...(q.path ? { path: q.path } : {}),
      ...(q.id ? { id: q.id } : {}),
      ...(cursorOf(q.cursor) ? { cursor: q.cursor! } : {}),
      limit: limitOf(q.limit),
    });
    return reply.type(LFS_MEDIA_TYPE).send({ locks: page.locks.map(strip), ...(page.nextCursor ? { next_cursor: page.nextCursor } : {}) });
  });

  app.post<{ Params: RepoParams }>('/scm/:project/:repo/info/lfs/locks/verify', async (request, reply) => {
    const target = await deps.open(request, 'upload');
    const body = (request.body ?? {}) as { cursor?: unknown; limit?: unknown };
    const me = userOf(target);
    const cursor = cursorOf(body.cursor);
    const page = await locks.list(target.view.repo.id, { ...(cursor ? { cursor } : {}), limit: limitOf(body.limit) });
    const ours = page.locks.filter((l) => l.ownerId === me).map(strip);
    const theirs = page.locks.filter((l) => l.ownerId !== me).map(strip);
    return reply.type(LFS_MEDIA_TYPE).send({ ours, theirs, ...(page.nextCursor ? { next_cursor: page.nextCursor } : {}) });
  });

  app.post<{ Params: RepoParams & { id: string } }>('/scm/:project/:repo/info/lfs/locks/:id/unlock', async (request, reply) => {
    const target = await deps.open(request, 'upload');
    const lock = await locks.get(target.view.repo.id, request.params.id);
    if (!lock) throw Errors.notFound(`Lock ${request.params.id.slice(0, 20)}`);
    const force = (request.body as { force?: unknown } | undefined)?.force === true;
    if (lock.ownerId !== userOf(target)) {
      if (!force) throw Errors.lfsLockNotOwned(lock.path, lock.owner.name);
      // Breaking someone else's lock is a repository administrator's call.
      authorize(target.principal, target.resource, 'admin');
    }
    await locks.remove(target.view.repo.id, lock.id);
    return reply.type(LFS_MEDIA_TYPE).send({ lock: strip(lock) });
  });
}
