// Git LFS on a mirror. Downloads are served from the mirror's own store; a miss is fetched from the primary
// once (src/lfs/fetch-through.ts) with the mirror's signed identity, for repositories it carries. Everything that
// writes (batch uploads, verify, locks) is forwarded to the primary with the user's own credentials, so the
// primary's authorize() decides and its messages reach the client unchanged; the batch answer for an upload
// points at the primary, where the client then sends the objects. Over SSH, git-lfs-authenticate answers
// downloads with a token for the key the SSH server verified, and uploads with the primary's own answer for
// that user (asked with the mirror's signed assertion of the key, as for a push through the mirror).
import { createHmac } from 'node:crypto';
import type { MirrorKey } from '../auth/mirror-token.js';
import { signPushAssertion } from '../auth/push-assertion.js';
import { join } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config/schema.js';
import { Errors, MirrorfarmError } from '../errors.js';
import type { DelegatedAuth } from '../mirror/delegated-auth.js';
import { answerHeaders, forwardToPrimary } from '../mirror/forward.js';
import { trustedCas, type Upstream } from '../mirror/upstream.js';
import type { Logger } from '../obs/logger.js';
import type { Metrics } from '../obs/metrics.js';
import type { AccessResolver, GitService } from '../transport/git-service.js';
import { LfsAccess } from './access.js';
import { LfsFetchThrough } from './fetch-through.js';
import { LfsObjectStore } from './object-store.js';
import { LFS_MEDIA_TYPE } from './media-type.js';
import { registerLfsRoutes } from './routes.js';
import type { LfsAuthenticateAnswer, LfsService } from './service.js';
import { LfsTokens } from './tokens.js';
import { LfsPrefetcher, type MissingLfsObjects } from './prefetch.js';
import type { RepoStore } from '../git/repo-store.js';
import type { GitRunner } from '../git/runner.js';

export interface MirrorLfsDeps {
  config: Config;
  repos: RepoStore;
  runner: GitRunner;
  git: GitService;
  access: AccessResolver;
  auth: DelegatedAuth;
  upstream: Upstream;
  /** The farm's identity: every node derives the same token secret from its key, and signs assertions with it. */
  identity: MirrorKey;
  /** The audience of push assertions (the primary's base URL + "#ssh-push"). */
  assertionAudience: () => string;
  metrics: Metrics;
  log: Logger;
  baseUrl: string;
  /** Why this mirror serves nobody (removed from its primary), if so. */
  refusal: () => MirrorfarmError | undefined;
}

export interface MirrorLfs {
  service: LfsService;
  /** A repository synced: prefetch what its default branch refers to (mirror.lfsPrefetch). */
  synced(repositoryId: number): void;
  /** Repositories whose default branch refers to LFS objects this mirror could not get. */
  missing(): MissingLfsObjects[];
  /** Removes a repository's objects (the repository left this mirror). */
  removeRepository(repositoryId: number): Promise<void>;
}

/** Headers passed on to the primary and back. Nothing else crosses, in either direction. */
const FORWARDED_REQUEST_HEADERS = ['authorization', 'content-type', 'user-agent'];
const FORWARDED_RESPONSE_HEADERS = ['content-type', 'lfs-authenticate', 'www-authenticate', 'retry-after'];

export async function attachMirrorLfs(app: FastifyInstance, deps: MirrorLfsDeps): Promise<MirrorLfs> {
  const { config } = deps;
  const upstreamUrl = config.mirror.upstreamUrl!;
  const store = new LfsObjectStore(join(config.home, 'lfs'), { maxObjectBytes: config.lfs.maxObjectBytes, maxRepositoryBytes: 0 });
  await store.prepare();
  const secret = createHmac('sha256', deps.identity.privateKey.export({ format: 'der', type: 'pkcs8' })).update('mirrorfarm git-lfs tokens v1').digest();
  const tokens = new LfsTokens(secret, config.lfs.tokenLifetimeSeconds);
  const access = new LfsAccess(deps.git, deps.access, deps.auth, tokens, {
    // Users who came with a password or access token send it again; SSH users carry the token for their key.
    subjectOf: (target) => target.tokenSubject,
    // A mirror serves reads only, and the primary's answer for the key is at most READ: no cap to add. The
    // principal must stay the object delegated authentication made, which knows how it was verified.
    async resolve(subject) {
      const publicKey = subject.startsWith('key:') ? subject.slice(4) : undefined;
      const principal = publicKey ? await deps.auth.fromPublicKey(publicKey) : undefined;
      if (!principal) throw Errors.lfsTokenInvalid('its SSH key is no longer registered');
      return principal;
    },
  });
  const fetcher = new LfsFetchThrough(store, (repositoryId, oid) => deps.upstream.open('GET', `/rest/mirroring/1.0/mirror/lfs/objects/${repositoryId}/${oid}`), deps.metrics, deps.log);
  const ca = trustedCas(config.trust.caFile);
  const prefetcher = new LfsPrefetcher(deps.repos, deps.runner, store, fetcher, deps.log);

  const forward = async (request: FastifyRequest, reply: FastifyReply, body: unknown): Promise<FastifyReply> => {
    const refused = deps.refusal();
    if (refused) throw refused;
    // Only for a repository this mirror serves and the caller may read here (else the answer a download gets), and
    // to the primary's path of that repository: the raw URL is never passed on.
    const { project, repo } = request.params as { project: string; repo: string };
    const target = await access.open(request.headers.authorization, request.ip, project, repo, 'download');
    const suffix = request.url.slice(request.url.indexOf('/info/lfs/'));
    if (suffix.split('?')[0]!.split('/').some((segment) => segment === '.' || segment === '..')) throw Errors.invalid('"." and ".." are not allowed in a Git LFS path.');
    const res = await forwardToPrimary(upstreamUrl, ca, {
      method: request.method,
      path: `/scm/${target.view.project.key.toLowerCase()}/${target.view.repo.slug}.git${suffix}`,
      headers: request.headers,
      pass: FORWARDED_REQUEST_HEADERS,
      extraHeaders: { accept: LFS_MEDIA_TYPE },
      ...(body === undefined ? {} : { body: Buffer.from(JSON.stringify(body)) }),
      what: 'Git LFS uploads and locks',
    });
    return reply.status(res.statusCode ?? 502).headers(answerHeaders(res, FORWARDED_RESPONSE_HEADERS)).send(res);
  };

  registerLfsRoutes(app, {
    access,
    store,
    objects: {
      // A miss is answered with the client's size; the download then fetches it through (or says it is missing).
      sizeForDownload: async (repositoryId, oid, claimedSize) => (await store.size(repositoryId, oid)) ?? claimedSize,
      open: (repositoryId, oid) => fetcher.open(repositoryId, oid),
    },
    metrics: deps.metrics,
    baseUrl: () => deps.baseUrl,
    forward,
  });

  return {
    service: {
      async authenticate({ principal, publicKey }, projectKey, slug, operation) {
        const view = await deps.git.open(principal, projectKey, slug, 'upload-pack');
        if (operation === 'upload') {
          // Uploads go to the primary: it answers for the user this node verified (the mirror's signed
          // assertion, as for a push over SSH), with its own LFS URL and an upload token of its own.
          const assertion = await signPushAssertion(deps.identity, deps.assertionAudience(), publicKey, `${view.project.key}/${view.repo.slug}`);
          return deps.upstream.call<LfsAuthenticateAnswer>('POST', '/rest/mirroring/1.0/mirror/lfs/authenticate', { assertion, projectKey: view.project.key, slug: view.repo.slug });
        }
        const resource = await deps.access.repositoryResource(principal, view.project, view.repo);
        const header = await access.actionHeader({ principal, view, resource, tokenSubject: `key:${publicKey}` }, operation);
        return { href: `${deps.baseUrl}/scm/${view.project.key.toLowerCase()}/${view.repo.slug}.git/info/lfs`, header, expires_in: tokens.lifetimeSeconds };
      },
    },
    synced: (repositoryId) => {
      if (config.mirror.lfsPrefetch) prefetcher.request(repositoryId);
    },
    missing: () => prefetcher.report(),
    removeRepository: async (repositoryId) => {
      prefetcher.forget(repositoryId);
      await store.removeRepository(repositoryId);
    },
  };
}
