// Git LFS on a primary: the object store under HOME/lfs, the token secret, the HTTP API, what SSH's
// git-lfs-authenticate answers, and the route mirrors fetch objects through. A repository's objects go when the
// repository is deleted.
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/schema.js';
import type { Users } from '../domain/users.js';
import type { EventLog } from '../events/log.js';
import type { Logger } from '../obs/logger.js';
import type { Metrics } from '../obs/metrics.js';
import type { Db } from '../store/database.js';
import type { AccessResolver, GitService } from '../transport/git-service.js';
import type { HttpAuthenticator } from '../transport/http/smart-http.js';
import { userPrincipal } from '../auth/authenticator.js';
import { Errors } from '../errors.js';
import type { Repositories } from '../domain/repositories.js';
import type { MirrorRegistry } from '../primary/mirrors.js';
import type { PushAssertions } from '../primary/push-assertions.js';
import type { LfsService } from './service.js';
import { LfsAccess } from './access.js';
import { LfsLocks } from './locks.js';
import { LfsObjectStore } from './object-store.js';
import { registerLfsRoutes, storedObjects } from './routes.js';
import { LfsTokens } from './tokens.js';
import { OID } from './object-store.js';

export interface LfsDeps {
  config: Config;
  db: Db;
  events: EventLog;
  users: Users;
  repositories: Repositories;
  mirrors: MirrorRegistry;
  /** Turns a mirror's signed assertion of an SSH user into that user (src/auth/push-assertion.ts). */
  pushAssertions: PushAssertions;
  git: GitService;
  access: AccessResolver;
  auth: HttpAuthenticator;
  metrics: Metrics;
  log: Logger;
  baseUrl: () => string;
}

export async function attachLfs(app: FastifyInstance, deps: LfsDeps): Promise<LfsService> {
  const { config } = deps;
  const store = new LfsObjectStore(join(config.home, 'lfs'), { maxObjectBytes: config.lfs.maxObjectBytes, maxRepositoryBytes: config.lfs.maxRepositoryBytes });
  await store.prepare();
  const tokens = await LfsTokens.load(join(config.home, 'lfs-token.key'), config.lfs.tokenLifetimeSeconds);
  const access = new LfsAccess(deps.git, deps.access, deps.auth, tokens, {
    subjectOf: (target) => (target.principal.kind === 'user' ? `user:${target.principal.userId}` : undefined),
    async resolve(subject, cap) {
      const id = /^user:(\d+)$/.exec(subject)?.[1];
      const user = id ? await deps.users.byId(Number(id)) : undefined;
      if (!user || !user.active) throw Errors.lfsTokenInvalid('its user no longer exists or was deactivated');
      return { ...userPrincipal(user, 'token', await deps.users.isSysadmin(user)), tokenCap: { project: cap, repository: cap } };
    },
  });
  registerLfsRoutes(app, { access, store, objects: storedObjects(store, deps.metrics), locks: new LfsLocks(deps.db), metrics: deps.metrics, baseUrl: deps.baseUrl });
  deps.events.subscribe((events) => {
    for (const e of events) {
      if (e.type !== 'repository.deleted' || e.repositoryId === null) continue;
      store.removeRepository(e.repositoryId).catch((err: Error) => deps.log.error({ err, repositoryId: e.repositoryId }, 'could not remove the Git LFS objects of a deleted repository'));
    }
  });
  const service: LfsService = {
    async authenticate({ principal }, projectKey, slug, operation) {
      const view = await deps.git.open(principal, projectKey, slug, operation === 'upload' ? 'receive-pack' : 'upload-pack');
      const header = await access.actionHeader({ principal, view, resource: await deps.access.repositoryResource(principal, view.project, view.repo) }, operation);
      return { href: `${deps.baseUrl()}/scm/${view.project.key.toLowerCase()}/${view.repo.slug}.git/info/lfs`, header, expires_in: tokens.lifetimeSeconds };
    },
  };
  registerMirrorFetchRoute(app, deps, store);
  registerMirrorUploadAuthRoute(app, deps, service);
  return service;
}

/**
 * A mirror asking, for an SSH user it verified, what `git-lfs-authenticate ... upload` answers on the primary:
 * the primary's LFS URL and an upload token for that user. The user comes from the mirror's signed assertion,
 * under the same rules as a push through the mirror over SSH; their own permissions then decide.
 */
function registerMirrorUploadAuthRoute(app: FastifyInstance, deps: LfsDeps, service: LfsService): void {
  app.post<{ Body: { assertion?: unknown; projectKey?: unknown; slug?: unknown } }>('/rest/mirroring/1.0/mirror/lfs/authenticate', async (request) => {
    const { mirror } = await deps.mirrors.authenticate(request.headers.authorization);
    const { assertion, projectKey, slug } = request.body ?? {};
    if (typeof assertion !== 'string' || typeof projectKey !== 'string' || typeof slug !== 'string') throw Errors.invalid('Needs "assertion", "projectKey" and "slug".');
    const principal = await deps.pushAssertions.userFor({ kind: 'mirror', mirrorId: mirror.id }, assertion, projectKey, slug);
    return service.authenticate({ principal, publicKey: '' }, projectKey, slug, 'upload');
  });
}

/**
 * Mirrors fetch the LFS objects they do not have from here, with their own signed token: an active mirror, for
 * a repository in a project it carries; anything else is not found.
 */
function registerMirrorFetchRoute(app: FastifyInstance, deps: LfsDeps, store: LfsObjectStore): void {
  app.get<{ Params: { repositoryId: string; oid: string } }>('/rest/mirroring/1.0/mirror/lfs/objects/:repositoryId/:oid', async (request, reply) => {
    const { mirror } = await deps.mirrors.authenticate(request.headers.authorization);
    const { repositoryId, oid } = request.params;
    const repo = /^\d{1,15}$/.test(repositoryId) ? await deps.repositories.byId(Number(repositoryId)) : undefined;
    if (!repo || !(await deps.mirrors.carries(mirror, repo.project_id))) throw Errors.repoNotFound(repositoryId);
    if (!OID.test(oid)) throw Errors.invalid('Not a Git LFS object id.');
    const size = await store.size(repo.id, oid);
    if (size === undefined) throw Errors.lfsObjectNotFound(oid);
    const body = store.open(repo.id, oid);
    body.once('end', () => deps.metrics.lfsBytes.inc({ direction: 'out', source: 'local' }, size));
    return reply.type('application/octet-stream').header('content-length', size).send(body);
  });
}
