// Composition root of a mirror node: the same HTTP(S) and SSH listeners and git service as a primary, with
// authentication delegated to the primary, pushes refused, and the controller keeping repositories in sync.
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Principal } from '../access/authorize.js';
import type { Config } from '../config/schema.js';
import type { RepositoryView } from '../domain/repositories.js';
import { Repositories } from '../domain/repositories.js';
import { Projects } from '../domain/projects.js';
import { MirrorfarmError } from '../errors.js';
import { EventLog } from '../events/log.js';
import { RefRecorder } from '../events/ref-recorder.js';
import { layoutFor, RepoStore } from '../git/repo-store.js';
import { GitRunner } from '../git/runner.js';
import { Catalog } from '../mirror/catalog.js';
import { MirrorController } from '../mirror/controller.js';
import { DelegatedAuth } from '../mirror/delegated-auth.js';
import { loadIdentity } from '../mirror/identity.js';
import { MirrorMetrics } from '../mirror/metrics.js';
import { SyncEngine } from '../mirror/sync-engine.js';
import { registerMirrorRestApi, type MirrorRestContext } from '../mirror/rest/index.js';
import { mirrorUrls, primaryCloneUrls } from '../mirror/urls.js';
import { trustedCas, Upstream } from '../mirror/upstream.js';
import { HttpPushThrough } from '../mirror/push-through/http.js';
import { SshPushThrough } from '../mirror/push-through/ssh.js';
import { pushAudience } from '../auth/push-assertion.js';
import { PublishSignal, type PublishedSource } from '../mirror/push-through/read-your-writes.js';
import { UpstreamHealth } from '../mirror/upstream-health.js';
import type { Logger } from '../obs/logger.js';
import { Metrics } from '../obs/metrics.js';
import { openDatabase } from '../store/database.js';
import { GitService, type AccessResolver, type ServingPolicy } from '../transport/git-service.js';
import { registerSmartHttp } from '../transport/http/smart-http.js';
import { attachMirrorLfs, type MirrorLfs } from '../lfs/mirror.js';
import { MIRROR_FETCH_CIPHERS } from '../transport/ssh/algorithms.js';
import type { SshKeyResolver } from '../transport/ssh/ssh-server.js';
import type { SshFrontEnd } from '../transport/ssh/front-end.js';
import { createSshFrontEnd } from './ssh-front-end.js';
import ssh2 from 'ssh2';
import { KeyedLock } from '../util/keyed-lock.js';
import { VERSION } from '../version.js';
import { writeEndpoints } from './endpoints.js';
import { preparePrivateHome } from './home.js';
import { createHttpApp } from './http-app.js';
import { registerMirrorWeb } from '../web/mirror-pages.js';

export interface RunningMirror {
  controller: MirrorController;
  mirrorId: string;
  baseUrl: string;
  httpPort: number;
  sshPort: number | undefined;
  stop(): Promise<void>;
}

export async function startMirror(config: Config, log: Logger): Promise<RunningMirror> {
  await preparePrivateHome(config.home, log);
  const upstreamUrl = config.mirror.upstreamUrl!;
  const db = await openDatabase(join(config.home, 'mirrorfarm.db'));
  const metrics = new Metrics();
  const mirrorMetrics = new MirrorMetrics(metrics.registry);
  const identity = loadIdentity(config);
  const layout = layoutFor(config.home);
  const runner = new GitRunner({ binary: config.git.binary, home: layout.gitHome, defaultTimeoutMs: config.git.timeoutSeconds * 1000 });
  const store = new RepoStore(layout, runner);
  await store.prepare();
  // The mirror's own event log stays empty; Repositories needs one for the primary's write paths only.
  const events = new EventLog(db, { days: config.events.retentionDays, maxEvents: config.events.maxEvents });
  const repositories = new Repositories(db, events, store, new RefRecorder(db, events, store, new KeyedLock<number>()), runner, config.git.defaultBranch);
  const catalog = new Catalog(db);
  // Logged once per change, not per failed call: an outage of hours is two lines.
  const health = new UpstreamHealth((from, to, detail) => {
    if (to === 'UNREACHABLE') log.warn({ upstream: upstreamUrl, code: detail.errorCode, err: detail.message }, 'cannot reach the primary; serving what this node has');
    else if (from === 'UNREACHABLE') {
      log.info({ upstream: upstreamUrl, outageSeconds: detail.outageSeconds }, 'primary reachable again');
      controller?.upstreamBack();
    }
  });
  mirrorMetrics.watchUpstream(health);
  const upstream = new Upstream(upstreamUrl, identity.key, identity.nodeId, config.trust.caFile, undefined, health);
  // Created below, once the engine it drives exists; the closures in between only run after that.
  // eslint-disable-next-line prefer-const
  let controller: MirrorController | undefined;
  const removedError = () =>
    controller?.removed()
      ? new MirrorfarmError('MIRROR_REMOVED', 503, `This mirror was removed from its primary and serves nothing: clone from the primary, ${upstreamUrl}`)
      : undefined;
  const auth = new DelegatedAuth(upstream, mirrorMetrics, { cacheSeconds: config.mirror.authCacheSeconds, graceSeconds: config.mirror.authGraceSeconds }, removedError);
  const instanceId = randomUUID();
  const primaryHttpUrl = (view: RepositoryView) => `${upstreamUrl}/scm/${view.project.key.toLowerCase()}/${view.repo.slug}.git`;
  const policy: ServingPolicy = {
    async checkAvailable(view) {
      const removed = removedError();
      if (removed) throw removed;
      const local = await catalog.repository(view.repo.id);
      if (!local || local.status === 'NEW' || !store.exists(view.repo.id)) {
        throw new MirrorfarmError(
          'REPOSITORY_NOT_SYNCHRONIZED',
          503,
          `${view.project.key}/${view.repo.slug} is not synchronized on this mirror yet; try again in a moment, or clone from the primary: ${primaryHttpUrl(view)}`,
        );
      }
    },
    refusePush(view) {
      return new MirrorfarmError('MIRROR_READ_ONLY', 403, `This is a read-only mirror. Push to the primary instead: ${primaryHttpUrl(view)}`);
    },
  };
  // An SSH key whose holder cannot be verified right now (this mirror was removed, or the primary is unreachable)
  // still completes the SSH login with a placeholder principal, so that the client is told why (over SSH there is
  // no other way to say it: a refused key only shows "Permission denied (publickey)"). The placeholder is refused
  // on every repository, before any other check, so it reads nothing. Found by mirror-security.test.ts.
  const unverified = new WeakMap<Principal, MirrorfarmError>();
  const access: AccessResolver = {
    async repositoryResource(principal, project, repo) {
      const refused = unverified.get(principal) ?? removedError();
      if (refused) throw refused;
      return auth.repositoryResource(principal, project, repo);
    },
  };
  const git = new GitService(repositories, access, store, runner, undefined, metrics, log.child({ component: 'git' }), policy);

  let sshPort: number | undefined;
  const baseUrl = config.baseUrl!;
  const ownSshBase = () => (sshPort === undefined ? undefined : { host: config.ssh.publicHost ?? new URL(baseUrl).hostname, port: config.ssh.publicPort ?? sshPort, user: config.ssh.user });
  const sshEnv = {
    GIT_SSH_COMMAND: [
      'ssh',
      '-F /dev/null',
      `-i ${identity.sshKeyFile}`,
      '-o IdentitiesOnly=yes',
      '-o IdentityAgent=none',
      `-o UserKnownHostsFile=${join(config.home, 'mirror', 'known_hosts')}`,
      '-o GlobalKnownHostsFile=/dev/null',
      '-o HostKeyAlias=mirrorfarm-primary',
      '-o StrictHostKeyChecking=yes',
      '-o BatchMode=yes',
      '-o ConnectTimeout=15',
      `-o Ciphers=${MIRROR_FETCH_CIPHERS.join(',')}`,
      '-o ServerAliveInterval=15',
      // One SSH connection is reused by every fetch, so a fetch does not pay a handshake.
      '-o ControlMaster=auto',
      `-o ControlPath=${join(config.home, 'run', 'ssh-%C')}`,
      '-o ControlPersist=300',
    ].join(' '),
  };
  // Pushes passed on to the primary wait for this node's publish of what they changed (read-your-writes).
  const publishes = new PublishSignal();
  const primarySsh = () => ({ host: controller?.primary?.sshHost ?? new URL(upstreamUrl).hostname, port: controller?.primary?.sshPort ?? 7999, user: primarySshUser() });
  // The account the primary's SSH clients log in as (its ssh.user, published with its host keys).
  const primarySshUser = () => controller?.primary?.sshUser ?? 'git';
  const engine = new SyncEngine(
    catalog,
    store,
    runner,
    {
      fetchUrl: (repo) => {
        const { host, port } = primarySsh();
        return `ssh://${primarySshUser()}@${host.includes(':') ? `[${host}]` : host}:${port}/${repo.projectKey.toLowerCase()}/${repo.slug}.git`;
      },
      fetchEnv: sshEnv,
      prepared: async (repositoryId, refStateHash) =>
        (await upstream.call<{ commit: boolean }>('POST', '/rest/mirroring/1.0/mirror/prepared', { repositoryId, refStateHash })).commit,
      removed: async (repositoryId) => lfs?.removeRepository(repositoryId),
    },
    config.mirror.syncParallelism,
    log.child({ component: 'sync' }),
    mirrorMetrics,
    (result) => {
      controller?.onSyncResult(result);
      if (result.status !== 'SYNCED') return;
      publishes.published(result.repositoryId);
      lfs?.synced(result.repositoryId);
    },
  );
  // Made below with the HTTP routes; the engine only asks once it runs.
  // eslint-disable-next-line prefer-const
  let lfs: MirrorLfs | undefined;
  // Asked only once the controller starts, after the SSH server below is listening.
  const ownSshHostKeys = () => ssh?.hostPublicKeys() ?? [];
  controller = new MirrorController({ config, identity, upstream, catalog, engine, auth, metrics: mirrorMetrics, log: log.child({ component: 'mirror' }), instanceId, ownSshBase, ownSshHostKeys, health });

  const app = createHttpApp(config, log, metrics);
  app.get('/status', async () => {
    const progress = await controller!.progress();
    // The node's own error first; otherwise, while the primary cannot be reached, that (the node still serves).
    const error = controller!.error ?? health.error();
    return {
      state: controller!.state,
      mode: 'mirror',
      version: VERSION,
      displayName: config.displayName,
      instanceId,
      mirrorId: identity.mirrorId,
      nodeId: identity.nodeId,
      publicKeyFingerprint: identity.fingerprint,
      upstream: { url: upstreamUrl, ...health.view() },
      lagSeconds: Math.round(controller!.lagSeconds() * 10) / 10,
      progress: { synced: progress.synced, total: progress.total },
      // This node's place in its farm: its membership and lease, and the farm as the primary last answered.
      farm: controller!.farm(),
      failingRepositories: progress.failing,
      // Repositories whose default branch refers to Git LFS objects this node could not get from the primary.
      ...(lfs?.missing().length ? { lfsMissing: lfs.missing() } : {}),
      ...(error ? { error } : {}),
      ...(controller!.primary?.baseUrlWarning ? { warnings: [controller!.primary.baseUrlWarning] } : {}),
      ...(controller!.guardMessage() ? { deleteGuard: controller!.guardMessage() } : {}),
      links: { primary: controller!.primaryAdminPageUrl(), primaryApi: controller!.primaryMirrorUrl() },
    };
  });
  app.get('/ready', async (_request, reply) => reply.status(controller!.ready() ? 200 : 503).send({ ready: controller!.ready(), state: controller!.state }));
  app.get('/metrics', async (_request, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
  const published: PublishedSource = {
    readRefs: (repositoryId) => store.readRefs(repositoryId),
    nextPublish: (repositoryId, ms) => publishes.next(repositoryId, ms),
    farmServing: (repositoryId, hash) =>
      upstream.call<{ members: number; serving: number }>('GET', `/rest/mirroring/1.0/mirror/repos/${repositoryId}/served?refStateHash=${encodeURIComponent(hash)}`),
  };
  const pushThrough = config.mirror.pushThrough
    ? new HttpPushThrough({ upstreamUrl, ca: trustedCas(config.trust.caFile), git, auth, published, waitMs: config.mirror.pushWaitSeconds * 1000, log: log.child({ component: 'push-through' }) })
    : undefined;
  registerSmartHttp(app, git, auth, { maxFetchRequestBytes: config.http.maxFetchRequestBytes, maxPushBytes: config.http.maxPushBytes, outputDir: join(config.home, 'run'), ...(pushThrough ? { pushThrough } : {}) });
  lfs = config.lfs.enabled
    ? await attachMirrorLfs(app, { config, repos: store, runner, git, access, auth, upstream, identity: identity.key, assertionAudience: () => pushAudience(upstream.primaryBaseUrl()), metrics, log: log.child({ component: 'lfs' }), baseUrl, refusal: removedError })
    : undefined;
  let httpPort = 0;
  const restContext: MirrorRestContext = {
    config,
    identity,
    auth,
    projects: new Projects(db, events),
    repositories,
    catalog,
    controller,
    health,
    urls: mirrorUrls(baseUrl, ownSshBase),
    primaryCloneUrls: primaryCloneUrls(upstreamUrl, () => controller?.primary && { host: controller.primary.sshHost, port: controller.primary.sshPort, user: controller.primary.sshUser }),
    checkAvailable: (view) => policy.checkAvailable(view),
    httpPort: () => httpPort,
  };
  await registerMirrorRestApi(app, restContext);
  await registerMirrorWeb(app, { log, rest: restContext, controller, error: () => controller!.error ?? health.error() });
  await app.listen({ host: config.http.host, port: config.http.port });
  httpPort = (app.server.address() as AddressInfo).port;

  let ssh: SshFrontEnd | undefined;
  if (config.ssh.enabled) {
    const keys: SshKeyResolver = {
      // The mirror has verified the signature itself; the primary says whose key it is.
      async resolve(blob) {
        const parsed = ssh2.utils.parseKey(blob);
        if (parsed instanceof Error || Array.isArray(parsed)) return undefined;
        let principal: Principal | undefined;
        try {
          principal = await auth.fromPublicKey(`${parsed.type} ${blob.toString('base64')}`);
        } catch (err) {
          if (!(err instanceof MirrorfarmError) || err.status !== 503) throw err;
          const placeholder: Principal = { kind: 'anonymous' };
          unverified.set(placeholder, err);
          return { principal: placeholder, ownerId: `unverified:${err.code}`, label: 'unverified key' };
        }
        if (principal?.kind !== 'user') return undefined;
        return { principal, ownerId: `user:${principal.userId}`, label: principal.name };
      },
    };
    ssh = createSshFrontEnd(config, {
        log,
        metrics,
        git,
        keys,
        exampleCloneUrl: () => {
          const base = ownSshBase();
          return base ? `ssh://${config.ssh.user}@${base.host}:${base.port}/proj/repo.git` : undefined;
        },
        ...(lfs ? { lfs: lfs.service } : {}),
        ...(config.mirror.pushThrough
          ? {
              pushThrough: new SshPushThrough({
                git,
                key: identity.key,
                audience: () => pushAudience(upstream.primaryBaseUrl()),
                sshCommand: sshEnv.GIT_SSH_COMMAND,
                env: { PATH: process.env.PATH, HOME: layout.gitHome, LC_ALL: 'C' },
                target: primarySsh,
                published,
                waitMs: config.mirror.pushWaitSeconds * 1000,
                log: log.child({ component: 'push-through' }),
              }),
            }
          : {}),
    });
    sshPort = await ssh.listen();
  }

  await writeEndpoints(config.home, { baseUrl, httpPort, sshPort: sshPort ?? null, sshUser: config.ssh.user, mirrorId: identity.mirrorId });
  log.info({ baseUrl, httpPort, sshPort, upstream: upstreamUrl, mirrorId: identity.mirrorId, nodeId: identity.nodeId }, 'mirrorfarm mirror started');
  // What an administrator compares with publicKeyFingerprint on the primary before authorizing this mirror.
  log.info({ mirrorId: identity.mirrorId, fingerprint: identity.fingerprint, keyFile: identity.keyFile }, `mirror identity key fingerprint ${identity.fingerprint}`);
  controller.start();

  let stopping = false;
  return {
    controller,
    mirrorId: identity.mirrorId,
    baseUrl,
    httpPort,
    sshPort,
    stop: async () => {
      if (stopping) return;
      stopping = true;
      // Out of the farm's active set at once (after the balancer had time to notice), not by eviction later.
      await controller!.leaveFarm();
      await controller!.stop();
      const closing = Promise.all([app.close(), ssh?.close()]);
      const drained = await Promise.race([git.idle().then(() => true), new Promise<false>((r) => setTimeout(() => r(false), config.shutdownTimeoutSeconds * 1000).unref())]);
      if (!drained) {
        await ssh?.close(true);
        app.server.closeAllConnections();
      }
      await closing;
      await db.destroy();
    },
  };
}
