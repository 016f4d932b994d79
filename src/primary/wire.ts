// Builds the primary's mirroring components (registry, node state, stream hub, publish coordinator, delegated
// authentication, optional webhook) and registers the /rest/mirroring/1.0 routes. The composition root calls
// this once after the REST API; give it the registry the SSH server uses for mirror keys (options.registry).
import type { FastifyInstance } from 'fastify';
import { registerMirroringApi } from '../api/mirroring/index.js';
import type { AppContext } from '../server/context.js';
import { PublishCoordinator } from './coordinator.js';
import { FarmMembership, leaseTiming, SOLO_LEASE_MS } from './membership.js';
import { DelegatedAuth } from './delegated-auth.js';
import { MirroringMetrics } from './metrics.js';
import { MirrorState } from './mirror-state.js';
import { DEFAULT_NODE_OFFLINE_SECONDS } from './node-status.js';
import { MirrorRegistry } from './mirrors.js';
import { DEFAULT_STREAM_OPTIONS, StreamHub, type StreamOptions } from './streams.js';
import { WebhookNotifier } from './webhook.js';
import { MirrorWebSessions } from './web-sessions.js';

export interface MirroringOptions {
  /**
   * The registry to use, when the composition root already made one (e.g. for the SSH server's key lookup).
   * Pass the same instance everywhere tokens are verified: its replay guard is per instance.
   */
  registry?: MirrorRegistry;
  /** How long a farm's other nodes have to stage a change after the first did (default: mirroring.prepareTimeoutSeconds). */
  prepareTimeoutMs?: number;
  stream?: Partial<StreamOptions>;
}

export interface Mirroring {
  registry: MirrorRegistry;
  coordinator: PublishCoordinator;
  streams: StreamHub;
  state: MirrorState;
  stop(): Promise<void>;
}

export async function attachMirroring(app: FastifyInstance, context: AppContext, options: MirroringOptions = {}): Promise<Mirroring> {
  const log = context.log.child({ component: 'mirroring' });
  const { config } = context;
  // Tokens name the primary's public base URL as their audience; it is known once the listener is up.
  const registry = options.registry ?? new MirrorRegistry(context.db, context.events, () => context.urls.base());
  // The stream hub and the coordinator (made below, from this state) are only asked once requests arrive.
  const state: MirrorState = new MirrorState(context.db, {
    nodeOfflineMs: (config.mirroring?.nodeOfflineSeconds ?? DEFAULT_NODE_OFFLINE_SECONDS) * 1000,
    isStreaming: (mirrorId: string, nodeId: string): boolean => streams.isStreaming(mirrorId, nodeId),
    isMember: (mirrorId: string, nodeId: string): boolean => coordinator.membership.members(mirrorId).has(nodeId),
  });
  const metrics = new MirroringMetrics(context.metrics.registry, state);
  const streams: StreamHub = new StreamHub(context.events, registry, state, log, metrics, { ...DEFAULT_STREAM_OPTIONS, ...options.stream });
  const prepareTimeoutMs = options.prepareTimeoutMs ?? Math.round(config.mirroring.prepareTimeoutSeconds * 1000);
  // After a restart, the nodes seen within a lone member's lease and not evicted may still be serving.
  const membership = new FarmMembership(leaseTiming(prepareTimeoutMs), (mirrorId) => state.liveNodes(mirrorId, Date.now() - SOLO_LEASE_MS));
  const coordinator: PublishCoordinator = new PublishCoordinator(
    streams,
    state,
    membership,
    log,
    { prepareTimeoutMs },
    (mirrorId, repositoryId) => {
      metrics.commits.inc({ outcome: 'committed' });
      metrics.committed(mirrorId, repositoryId);
    },
    (mirrorId, nodes) => metrics.evictions.inc({ mirror_id: mirrorId }, nodes.length),
  );
  const unsubscribe = context.events.subscribe((events) => {
    for (const event of events) {
      if ((event.type === 'mirror.deleted' || event.type === 'mirror.rejected') && typeof event.mirrorId === 'string') {
        coordinator.forget(event.mirrorId);
        state.forget(event.mirrorId);
        metrics.rounds.forget(event.mirrorId);
      }
    }
  });

  const webSessions = new MirrorWebSessions(context.db, context.events, context.authenticator, context.users, {
    idleMs: config.web.sessionIdleMinutes * 60_000,
    maxMs: config.web.sessionMaxHours * 3_600_000,
  });
  const pruneSessions = setInterval(() => {
    webSessions.prune().catch((err: Error) => log.warn({ err }, 'pruning mirror web sessions failed'));
  }, 600_000).unref();

  const webhookUrl = config.mirroring?.webhookUrl;
  const webhook = webhookUrl ? new WebhookNotifier({ url: webhookUrl, ...(config.trust?.caFile ? { caFile: config.trust.caFile } : {}) }, log.child({ webhook: 'mirror:repo_synchronized' })) : undefined;

  await registerMirroringApi(app, context, {
    registry,
    state,
    streams,
    coordinator,
    delegatedAuth: new DelegatedAuth(context.db, context.authenticator, context.users, context.permissions, webSessions),
    webSessions,
    rounds: metrics.rounds,
    onSynchronized: (mirror, repositories) => {
      for (const repo of repositories) {
        log.info({ mirrorId: mirror.id, repositoryId: repo.id, refStateHash: repo.refStateHash }, 'mirror has the repository in sync');
        webhook?.notify({
          eventKey: 'mirror:repo_synchronized',
          mirrorServer: { id: mirror.id, name: mirror.name },
          repository: { id: repo.id, slug: repo.slug, project: { key: repo.projectKey } },
          refStateHash: repo.refStateHash,
          date: new Date().toISOString(),
        });
      }
    },
  });

  // Streams never finish on their own; end them when the server starts closing so that it does not wait for
  // them (nodes reconnect to wherever the primary comes back and resume with Last-Event-ID).
  app.addHook('preClose', async () => streams.closeAll());

  return {
    registry,
    coordinator,
    streams,
    state,
    stop: async () => {
      clearInterval(pruneSessions);
      unsubscribe();
      await streams.stop();
      coordinator.stop();
      await webhook?.stop();
    },
  };
}
