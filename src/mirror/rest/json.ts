// Bitbucket Data Center's mirror-side JSON shapes (RestMirroredRepository, RestUpstreamServer, RestSyncProgress,
// RestUpstreamSettings, RestClusterNode), field for field, plus mirrorfarm's additions at the end of an object
// where noted. The schemas double as serializers: a field not declared here is never sent.
import { createHash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import type { LocalRepository } from '../catalog.js';
import type { MirrorState } from '../controller.js';

const NamedLink = Type.Object({ href: Type.String(), name: Type.String() });

export const MirrorRepoStatus = Type.Union([
  Type.Literal('NOT_MIRRORED'),
  Type.Literal('INITIALIZING'),
  Type.Literal('AVAILABLE'),
  Type.Literal('ERROR_INITIALIZING'),
  Type.Literal('ERROR_AVAILABLE'),
]);

export const MirroredRepositoryJson = Type.Object(
  {
    available: Type.Boolean({ description: 'Whether this mirror serves the repository (it was synchronized at least once).' }),
    cloneUrls: Type.Array(NamedLink, { description: "Clone URLs on this mirror (HTTPS and, when enabled, SSH)." }),
    lastUpdated: Type.Optional(Type.String({ format: 'date-time', description: 'When this node last synchronized the repository, or failed to.' })),
    mirrorName: Type.String(),
    pushUrls: Type.Array(NamedLink, { description: "The primary's URLs: a mirror is read-only, pushes go there." }),
    repositoryId: Type.String({ description: "The repository's id on the primary (the same id on every mirror)." }),
    status: MirrorRepoStatus,
  },
  { description: "Bitbucket's RestMirroredRepository." },
);

export const UpstreamServerJson = Type.Object(
  {
    apiBaseUrl: Type.String(),
    baseUrl: Type.String(),
    id: Type.String({ description: "Derived from the primary's base URL: the same on every node and across restarts." }),
    state: Type.Union([Type.Literal('INITIALIZING'), Type.Literal('PENDING'), Type.Literal('INSTALLED'), Type.Literal('UNKNOWN'), Type.Literal('REMOVED')]),
    connection: Type.Object(
      {
        state: Type.Union([Type.Literal('UNKNOWN'), Type.Literal('CONNECTED'), Type.Literal('UNREACHABLE')]),
        errorCode: Type.Union([Type.String(), Type.Null()]),
        since: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
        lastContact: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
      },
      { description: 'mirrorfarm: whether this node reaches the primary right now (as in /status `upstream`).' },
    ),
  },
  { description: "Bitbucket's RestUpstreamServer, plus this node's connection to it." },
);

export const SyncProgressJson = Type.Object(
  {
    discovering: Type.Boolean({ description: 'True until the first comparison with the primary has listed every repository.' }),
    syncedRepos: Type.Integer(),
    totalRepos: Type.Integer(),
  },
  { description: "Bitbucket's RestSyncProgress." },
);

export const UpstreamSettingsJson = Type.Object(
  {
    mode: Type.Union([Type.Literal('ALL_PROJECTS'), Type.Literal('SELECTED_PROJECTS')]),
    projectIds: Type.Array(Type.String(), { description: "The primary's project ids this mirror carries (empty with ALL_PROJECTS)." }),
  },
  { description: "Bitbucket's RestUpstreamSettings. Set on the primary (mirrorServers/{mirrorId}); read-only here." },
);

export const ClusterNodeJson = Type.Object(
  {
    address: Type.Object({ address: Type.String(), port: Type.Integer() }),
    buildVersion: Type.String(),
    id: Type.String(),
    local: Type.Boolean(),
    name: Type.String(),
  },
  { description: "Bitbucket's RestClusterNode." },
);

/** Bitbucket's repository status on a mirror, from this node's catalog row. */
export function mirrorRepoStatus(local: LocalRepository | undefined): Static<typeof MirrorRepoStatus> {
  if (!local) return 'NOT_MIRRORED';
  if (local.status === 'SYNCED') return 'AVAILABLE';
  if (local.status === 'NEW') return 'INITIALIZING';
  // FAILED: still served if an earlier sync published it.
  return local.refStateHash ? 'ERROR_AVAILABLE' : 'ERROR_INITIALIZING';
}

/** Bitbucket's upstream server states, from the node's own state. */
export function upstreamServerState(state: MirrorState): Static<typeof UpstreamServerJson>['state'] {
  switch (state) {
    case 'INITIALIZING':
      return 'INITIALIZING';
    case 'PENDING':
      return 'PENDING';
    case 'SYNCHRONIZING':
    case 'SYNCHRONIZED':
      return 'INSTALLED';
    case 'REJECTED':
    case 'REMOVED':
      return 'REMOVED';
    default:
      return 'UNKNOWN';
  }
}

/** A stable, UUID-formatted id for the primary, from its base URL (the primary publishes no server id). */
export function upstreamServerId(upstreamUrl: string): string {
  const hex = createHash('sha256').update(`mirrorfarm upstream ${upstreamUrl.replace(/\/+$/, '')}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
