// Git LFS on a primary: the object store under HOME/lfs, the token secret, the HTTP API and what SSH's
// git-lfs-authenticate answers. A repository's objects go when the repository is deleted.
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
import type { Principal } from '../access/authorize.js';
import { LfsAccess } from './access.js';
import { LfsLocks } from './locks.js';
import { LfsObjectStore } from './object-store.js';
import { registerLfsRoutes } from './routes.js';
import { LfsTokens, type LfsOperation } from './tokens.js';

export interface LfsAuthenticateAnswer {
  href: string;
  header: Record<string, string>;
  expires_in: number;
}

export interface LfsService {
  /** What `git-lfs-authenticate PROJ/repo.git download|upload` prints for an SSH user. */
  authenticate(principal: Principal, projectKey: string, slug: string, operation: LfsOperation): Promise<LfsAuthenticateAnswer>;
}

export interface LfsDeps {
  config: Config;
  db: Db;
  events: EventLog;
  users: Users;
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
  const access = new LfsAccess(deps.git, deps.access, deps.auth, deps.users, tokens);
  registerLfsRoutes(app, { access, store, locks: new LfsLocks(deps.db), metrics: deps.metrics, baseUrl: deps.baseUrl });
  deps.events.subscribe((events) => {
    for (const e of events) {
      if (e.type !== 'repository.deleted' || e.repositoryId === null) continue;
      store.removeRepository(e.repositoryId).catch((err: Error) => deps.log.error({ err, repositoryId: e.repositoryId }, 'could not remove the Git LFS objects of a deleted repository'));
    }
  });
  return {
    async authenticate(principal, projectKey, slug, operation) {
      const view = await deps.git.open(principal, projectKey, slug, operation === 'upload' ? 'receive-pack' : 'upload-pack');
      const header = await access.actionHeader(principal, view.repo.id, operation);
      return { href: `${deps.baseUrl()}/scm/${view.project.key.toLowerCase()}/${view.repo.slug}.git/info/lfs`, header, expires_in: tokens.lifetimeSeconds };
    },
  };
}
