// Shared by the mirroring routes: path prefix, the services they use, and how a user caller is identified.
import type { FastifyRequest } from 'fastify';
import type { Principal } from '../../access/authorize.js';
import type { PublishCoordinator } from '../../primary/coordinator.js';
import type { DelegatedAuth } from '../../primary/delegated-auth.js';
import type { PublishRounds } from '../../primary/metrics.js';
import type { MirrorState, SyncedRepository } from '../../primary/mirror-state.js';
import type { MirrorRegistry } from '../../primary/mirrors.js';
import type { StreamHub } from '../../primary/streams.js';
import type { MirrorWebSessions } from '../../primary/web-sessions.js';
import type { AppContext } from '../../server/context.js';
import type { Mirror } from '../../store/tables.js';

export const PREFIX = '/rest/mirroring/1.0';
export const TAGS = ['Mirroring'];

export interface MirroringServices {
  registry: MirrorRegistry;
  state: MirrorState;
  streams: StreamHub;
  coordinator: PublishCoordinator;
  delegatedAuth: DelegatedAuth;
  /** Web sign-ins on mirrors, valid on every node of the mirror's farm. */
  webSessions: MirrorWebSessions;
  /** Called when a report brought repositories in sync on a whole mirror (webhook). */
  onSynchronized?: (mirror: Mirror, repositories: SyncedRepository[]) => void;
  /** Publish rounds in progress, for the prepare-to-commit metrics. */
  rounds?: PublishRounds;
  /** Largest accepted `report` body: a full report of a large mirror is bigger than ordinary REST bodies. */
  maxReportBytes?: number;
}

/** The user behind a request (anonymous without credentials); wrong credentials are refused here. */
export function callerOf(context: AppContext, request: FastifyRequest): Promise<Principal> {
  return context.authenticator.fromAuthorizationHeader(request.headers.authorization, { address: request.ip });
}
