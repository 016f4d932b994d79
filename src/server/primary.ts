// Composition root of a primary: builds every component from the configuration, starts the HTTP(S) and SSH
// listeners, and stops them gracefully (running clones and pushes may finish within shutdownTimeoutSeconds).
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { registerRestApi } from '../api/index.js';
import { Level } from '../access/authorize.js';
import { Authenticator, userPrincipal } from '../auth/authenticator.js';
import { LoginThrottle } from '../auth/throttle.js';
import type { Config } from '../config/schema.js';
import { Groups } from '../domain/groups.js';
import { Permissions } from '../domain/permissions.js';
import { Projects } from '../domain/projects.js';
import { Repositories } from '../domain/repositories.js';
import { Users } from '../domain/users.js';
import { EventLog } from '../events/log.js';
import { RefRecorder } from '../events/ref-recorder.js';
import { HookEndpoint } from '../git/hook-endpoint.js';
import { RepoBrowser } from '../git/browse.js';
import { layoutFor, RepoStore } from '../git/repo-store.js';
import { GitRunner } from '../git/runner.js';
import type { Logger } from '../obs/logger.js';
import { Metrics } from '../obs/metrics.js';
import { openDatabase } from '../store/database.js';
import { GitService, type AccessResolver } from '../transport/git-service.js';
import { MirrorRegistry } from '../primary/mirrors.js';
import { PushAssertions } from '../primary/push-assertions.js';
import { DEFAULT_NODE_OFFLINE_SECONDS } from '../primary/node-status.js';
import { registerSmartHttp } from '../transport/http/smart-http.js';
import { attachLfs } from '../lfs/primary.js';
import { attachMirroring } from '../primary/wire.js';
import type { SshKeyResolver } from '../transport/ssh/ssh-server.js';
import type { SshFrontEnd } from '../transport/ssh/front-end.js';
import { createSshFrontEnd } from './ssh-front-end.js';
import { KeyedLock } from '../util/keyed-lock.js';
import { VERSION } from '../version.js';
import type { AppContext, Urls } from './context.js';
import { writeEndpoints } from './endpoints.js';
import { preparePrivateHome } from './home.js';
import { createHttpApp } from './http-app.js';
import { registerPrimaryWeb } from '../web/primary-pages.js';

export interface RunningServer {
  context: AppContext;
  baseUrl: string;
  httpPort: number;
  sshPort: number | undefined;
  /** Present when the admin password was generated on this start. */
  generatedAdminPasswordFile?: string;
  stop(): Promise<void>;
}

export const ADMIN_PASSWORD_FILE = 'admin-password.txt';

export async function startPrimary(config: Config, log: Logger): Promise<RunningServer> {
  await preparePrivateHome(config.home, log);
  const db = await openDatabase(join(config.home, 'mirrorfarm.db'));
  const metrics = new Metrics();
  const events = new EventLog(db, { days: config.events.retentionDays, maxEvents: config.events.maxEvents });
  events.subscribe((appended) => metrics.events.inc(appended.length));
  const layout = layoutFor(config.home);
  const runner = new GitRunner({ binary: config.git.binary, home: layout.gitHome, defaultTimeoutMs: config.git.timeoutSeconds * 1000 });
  const store = new RepoStore(layout, runner);
  await store.prepare();
  const recorder = new RefRecorder(db, events, store, new KeyedLock<number>());
  const users = new Users(db, events);
  const projects = new Projects(db, events);
  const repositories = new Repositories(db, events, store, recorder, runner, config.git.defaultBranch);
  const permissions = new Permissions(db, events);
  const groups = new Groups(db, events);
  const generatedAdminPasswordFile = await bootstrapAdmin(config, users, log);

  const hooks = new HookEndpoint(layout.hookSocket, recorder, log.child({ component: 'hooks' }));
  await hooks.listen();
  const reconciled = await recorder.reconcilePending();
  if (reconciled) log.warn({ repositories: reconciled }, 'recorded ref changes of pushes interrupted by the previous shutdown');
  // Mirror keys fetch over SSH; the registry decides which projects they may read.
  let baseUrl = config.baseUrl ?? '';
  const mirrors = new MirrorRegistry(db, events, () => baseUrl, { nodeOfflineMs: (config.mirroring?.nodeOfflineSeconds ?? DEFAULT_NODE_OFFLINE_SECONDS) * 1000 });
  const access: AccessResolver = {
    async repositoryResource(principal, project, repo) {
      if (principal.kind !== 'mirror') return permissions.repositoryResource(principal, project, repo);
      const mirror = await mirrors.get(principal.mirrorId);
      const mirrorCarries = mirror ? await mirrors.carries(mirror, project.id) : false;
      return { kind: 'repository', path: `${project.key}/${repo.slug}`, facts: { isPublic: false, projectGrant: Level.NONE, repositoryGrant: Level.NONE, mirrorCarries } };
    },
  };
  const git = new GitService(repositories, access, store, runner, hooks, metrics, log.child({ component: 'git' }));
  const throttle = new LoginThrottle(config.loginThrottle, (scope) => metrics.loginThrottled.inc({ scope }));
  const authenticator = new Authenticator(users, metrics, events, throttle);

  let sshPort: number | undefined;
  const urls: Urls = {
    base: () => baseUrl,
    httpClone: (key, slug) => `${baseUrl}/scm/${key.toLowerCase()}/${slug}.git`,
    sshClone: (key, slug) => {
      const base = sshUrlBase();
      if (!base) return undefined;
      return `ssh://${config.ssh.user}@${base.host.includes(':') ? `[${base.host}]` : base.host}:${base.port}/${key.toLowerCase()}/${slug}.git`;
    },
  };
  let ssh: SshFrontEnd | undefined;
  const sshUrlBase = () => (sshPort === undefined ? undefined : { host: config.ssh.publicHost ?? new URL(baseUrl).hostname, port: config.ssh.publicPort ?? sshPort });
  const context: AppContext = {
    config,
    log,
    metrics,
    db,
    events,
    users,
    groups,
    projects,
    repositories,
    permissions,
    authenticator,
    store,
    browser: new RepoBrowser(runner),
    git,
    urls,
    version: VERSION,
    sshHostKeys: () => ssh?.hostPublicKeys() ?? [],
    sshUrlBase,
  };

  let stopping = false;
  const app = createHttpApp(config, log, metrics);
  app.get('/status', async (_request, reply) => {
    const body = { state: stopping ? 'STOPPING' : 'RUNNING', mode: config.mode, version: VERSION, displayName: config.displayName };
    return reply.status(stopping ? 503 : 200).send(body);
  });
  app.get('/metrics', async (_request, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
  registerSmartHttp(app, git, authenticator, { maxFetchRequestBytes: config.http.maxFetchRequestBytes, maxPushBytes: config.http.maxPushBytes, outputDir: join(config.home, 'run') });
  const pushAssertions = new PushAssertions(mirrors, users, repositories, () => baseUrl);
  const lfs = config.lfs.enabled
    ? await attachLfs(app, { config, db, events, users, repositories, mirrors, pushAssertions, git, access, auth: authenticator, metrics, log: log.child({ component: 'lfs' }), baseUrl: () => baseUrl })
    : undefined;
  await registerRestApi(app, context);
  const mirroring = await attachMirroring(app, context, { registry: mirrors });
  await registerPrimaryWeb(app, context, mirroring);

  await app.listen({ host: config.http.host, port: config.http.port });
  const httpPort = (app.server.address() as AddressInfo).port;
  if (!baseUrl) {
    const host = ['0.0.0.0', '::'].includes(config.http.host) ? 'localhost' : config.http.host;
    baseUrl = `${config.http.tls.cert ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${httpPort}`;
  }

  if (config.ssh.enabled) {
    const keys: SshKeyResolver = {
      async resolve(blob) {
        const owner = await users.userByKeyBlob(blob);
        if (owner) return { principal: userPrincipal(owner.user, 'ssh-key', await users.isSysadmin(owner.user)), ownerId: `user:${owner.user.id}`, label: owner.user.name, keyId: owner.key.id };
        const mirror = await mirrors.activeByKeyBlob(blob);
        if (mirror) return { principal: { kind: 'mirror', mirrorId: mirror.id }, ownerId: `mirror:${mirror.id}`, label: `mirror ${mirror.name} (${mirror.id})` };
        return undefined;
      },
    };
    ssh = createSshFrontEnd(config, { log, metrics, git, keys, events, exampleCloneUrl: () => urls.sshClone('PROJ', 'repo'), ...(lfs ? { lfs } : {}), pushAssertions });
    sshPort = await ssh.listen();
  }

  const pruneTimer = setInterval(() => {
    events.prune().catch((err: Error) => log.error({ err }, 'event log pruning failed'));
  }, 3_600_000).unref();
  await events.prune();

  await writeEndpoints(config.home, { baseUrl, httpPort, sshPort: sshPort ?? null, sshUser: config.ssh.user });
  log.info({ baseUrl, httpPort, sshPort, home: config.home, version: VERSION }, 'mirrorfarm primary started');

  const stop = async () => {
    if (stopping) return;
    stopping = true;
    clearInterval(pruneTimer);
    log.info('shutting down: refusing new connections, letting running transfers finish');
    const closing = Promise.all([app.close(), ssh?.close()]);
    const drained = await Promise.race([
      git.idle().then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), config.shutdownTimeoutSeconds * 1000).unref()),
    ]);
    if (!drained) {
      log.warn('shutdown timeout reached; interrupting running transfers');
      await ssh?.close(true);
      app.server.closeAllConnections();
    }
    await closing;
    await mirroring.stop();
    await git.idle();
    await hooks.close();
    await db.destroy();
    log.info('mirrorfarm stopped');
  };

  return { context, baseUrl, httpPort, sshPort, ...(generatedAdminPasswordFile ? { generatedAdminPasswordFile } : {}), stop };
}

/** First start: the sysadmin "admin", with the configured password or a generated one written once to a file. */
async function bootstrapAdmin(config: Config, users: Users, log: Logger): Promise<string | undefined> {
  if (await users.byName('admin')) return undefined;
  const existing = await users.list(undefined, 0, 1);
  if (existing.length) return undefined;
  let password = config.admin.password;
  let file: string | undefined;
  if (!password) {
    password = randomBytes(18).toString('base64url');
    file = join(config.home, ADMIN_PASSWORD_FILE);
    await writeFile(file, `${password}\n`, { mode: 0o600, flag: 'wx' });
  }
  await users.create({ name: 'admin', displayName: 'Administrator', password, sysadmin: true });
  log.info({ user: 'admin', ...(file ? { passwordFile: file } : { passwordFrom: 'MIRRORFARM_ADMIN_PASSWORD' }) }, 'created the sysadmin account');
  return file;
}

