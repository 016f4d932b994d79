// JSON shapes of the mirroring API. Where Bitbucket Data Center publishes one (RestMirroringRequest,
// RestMirrorServer, RestMirroredRepositoryDescriptor) its fields come first with its names and values; our
// additions (fingerprint, selection, nodes, lag, sync counts) follow. The schemas double as serializers, so a
// field that is not declared here is never sent.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { AppContext } from '../../server/context.js';
import type { MirrorDetails } from '../../primary/mirror-state.js';
import type { Mirror, Project } from '../../store/tables.js';
import { projectJson, ProjectJson } from '../json.js';

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

export const MirroringMode = Type.Union([Type.Literal('ALL_PROJECTS'), Type.Literal('SELECTED_PROJECTS')]);
const MirrorState = Type.Union([Type.Literal('PENDING'), Type.Literal('ACTIVE'), Type.Literal('REJECTED'), Type.Literal('DELETED')]);
const SshUrlBase = Type.Object({ host: Type.String(), port: Type.Integer({ minimum: 1, maximum: 65535 }), user: Type.Optional(Type.String()) });

export const MirrorIdParams = Type.Object({ mirrorId: Type.String({ description: 'Mirror id, e.g. A1B2-C3D4-E5F6-0718 (derived from its public key).' }) });
export type MirrorIdParams = Static<typeof MirrorIdParams>;

export const MirroringRequestJson = Type.Object(
  {
    id: Type.String({ description: 'The mirror id (one request per mirror key).' }),
    mirrorId: Type.String(),
    mirrorName: Type.String(),
    mirrorBaseUrl: Type.String(),
    mirrorType: Type.Union([Type.Literal('SINGLE'), Type.Literal('FARM')]),
    productType: Type.String(),
    productVersion: Type.String(),
    state: Type.Union([Type.Literal('PENDING'), Type.Literal('ACCEPTED'), Type.Literal('REJECTED')]),
    createdDate: Type.Integer(),
    publicKey: Type.String({ description: 'The mirror\'s ed25519 public key, also its SSH key for fetching.' }),
    publicKeyFingerprint: Type.String({ description: 'SHA256 fingerprint of the key: compare it with the one the mirror shows before authorizing.' }),
  },
  { description: "Bitbucket's RestMirroringRequest plus the mirror's key." },
);

/** Bitbucket's RestMirrorServer: what any user may learn about a mirror. */
export const MirrorServerJson = Type.Object({
  id: Type.String(),
  name: Type.String(),
  baseUrl: Type.String(),
  enabled: Type.Boolean(),
  lastSeenDate: Type.Optional(Type.String({ format: 'date-time' })),
  mirrorType: Type.Union([Type.Literal('SINGLE'), Type.Literal('FARM')]),
  productType: Type.String(),
  productVersion: Type.String(),
});

export const UpstreamOutageJson = Type.Object(
  {
    errorCode: Type.String({ maxLength: 200, examples: ['MIRROR_UPSTREAM_UNREACHABLE'] }),
    message: Type.String({ maxLength: 2000 }),
    since: Type.String({ format: 'date-time', maxLength: 64 }),
    until: Type.Optional(Type.String({ format: 'date-time', maxLength: 64, description: 'Absent while the outage lasts.' })),
  },
  { description: 'The last time the node could not reach the primary, as the node reported it once it could again.' },
);

const NodeJson = Type.Object({
  id: Type.String(),
  state: Type.Union([Type.Literal('SYNCHRONIZING'), Type.Literal('SYNCHRONIZED'), Type.Literal('OUT_OF_SYNC'), Type.Literal('EVICTED'), Type.Literal('OFFLINE')], {
    description:
      'SYNCHRONIZED (serves the primary\'s state), SYNCHRONIZING (catching up), OUT_OF_SYNC (repositories fail on it, or it reports an error), ' +
      'EVICTED (did not prepare a change in time; out of the active set until it resyncs and joins again), OFFLINE (no contact for mirroring.nodeOfflineSeconds).',
  }),
  role: Type.Union([Type.Literal('ACTIVE'), Type.Literal('STANDBY'), Type.Literal('EVICTED')], {
    description: 'ACTIVE: a member of the active set, every change waits for this node; STANDBY: not a member (starting, syncing before it joins, or gone); EVICTED.',
  }),
  connection: Type.Union([Type.Literal('CONNECTED'), Type.Literal('DISCONNECTED')], { description: 'CONNECTED while the node holds an event stream.' }),
  reportedState: Type.Optional(Type.String({ description: 'What the node last reported about itself (SYNCHRONIZED, SYNCHRONIZING, ERROR, ...).' })),
  lastSeenDate: Type.String({ format: 'date-time', description: 'Last contact: a report, a call, or a ping on its stream.' }),
  cursor: Type.Integer({ description: 'The last event id the node has applied.' }),
  lagSeconds: Nullable(Type.Number()),
  version: Nullable(Type.String({ description: 'The mirrorfarm version the node runs, as it last reported.' })),
  repositories: Type.Object({
    synced: Type.Integer({ description: "Repositories this node last reported at the primary's current ref-state hash." }),
    total: Type.Integer({ description: 'Repositories the mirror carries.' }),
    failing: Type.Integer({ description: 'Repositories whose last sync failed on this node (listed in the mirror\'s repositories.failing).' }),
  }),
  lastUpstreamOutage: Type.Optional(UpstreamOutageJson),
});

const HostKeyJson = Type.Object({
  algorithm: Type.String({ examples: ['ssh-ed25519'] }),
  fingerprint: Type.String({ description: 'SHA256 fingerprint, as ssh-keygen -lf prints it.' }),
  publicKey: Type.String({ description: 'OpenSSH public key: a known_hosts line for the farm is "HOST KEY".' }),
});

export const MirrorServerDetailsJson = Type.Composite(
  [
    MirrorServerJson,
    Type.Object({
      state: MirrorState,
      mirroringMode: MirroringMode,
      publicKeyFingerprint: Type.String(),
      createdDate: Type.Integer(),
      projects: Type.Array(ProjectJson, { description: 'The selected projects (SELECTED_PROJECTS); empty with ALL_PROJECTS.' }),
      nodes: Type.Array(NodeJson),
      lagSeconds: Nullable(Type.Number({ description: 'The largest lag over the live nodes.' })),
      repositories: Type.Object({
        total: Type.Integer({ description: 'Repositories in the projects the mirror carries.' }),
        synced: Type.Integer({ description: "Repositories every live node (not evicted, seen in the last 10 minutes) reported at the primary's current ref-state hash." }),
        failing: Type.Array(Type.Object({ id: Type.Integer(), projectKey: Type.String(), slug: Type.String(), error: Type.String(), nodeId: Type.String() })),
      }),
      farm: Type.Object({
        memberCount: Type.Integer({ description: 'Nodes in contact (not OFFLINE).' }),
        activeCount: Type.Integer({ description: 'Nodes in contact that every change waits for (role ACTIVE).' }),
      }),
      sshUrlBase: Type.Optional(SshUrlBase),
      sshHostKeys: Type.Optional(
        Type.Array(HostKeyJson, { description: "The farm's SSH host keys, as its first node presented them; every node must present the same. Absent until a node registered, and after a reset (DELETE .../farmIdentity)." }),
      ),
    }),
  ],
  { description: "Bitbucket's RestMirrorServer with the mirror's selection, nodes and synchronization state." },
);

export const RegistrationJson = Type.Composite([MirrorServerJson, Type.Object({ state: MirrorState, mirroringMode: MirroringMode, publicKeyFingerprint: Type.String() })]);

export const ReportAnswerJson = Type.Object({
  farm: Type.Object({
    memberCount: Type.Integer({ description: 'Nodes of this farm in contact with the primary (this one included).' }),
    activeCount: Type.Integer({ description: 'Of those, the nodes every change waits for.' }),
    role: Type.Union([Type.Literal('ACTIVE'), Type.Literal('STANDBY'), Type.Literal('EVICTED')], { description: "This node's role, as in mirrorServers/{id} nodes[].role." }),
    nodes: Type.Array(
      Type.Object({ id: Type.String(), state: Type.String(), role: Type.String(), lastSeenDate: Type.String(), lagSeconds: Type.Union([Type.Number(), Type.Null()]) }),
      { description: "Every node of the farm as the primary sees it (state and role as in mirrorServers/{id} nodes[]), so that each node's page can list its peers." },
    ),
  }),
});

export const SelfJson = Type.Object({ id: Type.String(), state: MirrorState, mirroringMode: MirroringMode, projectIds: Type.Array(Type.Integer()) });

export const SnapshotJson = Type.Object({
  lastEventId: Type.Integer({ description: 'Open the event stream after this id.' }),
  mirroringMode: MirroringMode,
  projectIds: Type.Array(Type.Integer()),
  projects: Type.Array(Type.Object({ id: Type.Integer(), key: Type.String(), name: Type.String(), public: Type.Boolean() })),
  repositories: Type.Array(
    Type.Object({
      id: Type.Integer(),
      projectId: Type.Integer(),
      slug: Type.String(),
      name: Type.String(),
      public: Type.Boolean(),
      defaultBranch: Nullable(Type.String()),
      refStateHash: Nullable(Type.String()),
    }),
  ),
});

export const DiscoveryJson = Type.Object({
  product: Type.Literal('mirrorfarm'),
  version: Type.String(),
  baseUrl: Type.String(),
  displayName: Type.String(),
  ssh: Type.Object({
    enabled: Type.Boolean(),
    host: Type.Optional(Type.String()),
    port: Type.Optional(Type.Integer()),
    user: Type.Optional(Type.String({ description: 'The account SSH clients log in as (ssh.user): ssh://USER@HOST:PORT/...' })),
    hostKeys: Type.Array(Type.String({ description: 'OpenSSH public host keys, "ssh-ed25519 AAAA...": pin them in known_hosts.' })),
  }),
});

export const AuthenticateJson = Type.Object({
  user: Nullable(Type.Object({ id: Type.Integer(), name: Type.String(), sysadmin: Type.Boolean() })),
  access: Type.Record(Type.String(), Type.Union([Type.Literal('READ'), Type.Literal('NONE')])),
  webSession: Type.Optional(Type.Object({ id: Type.Integer(), createdDate: Type.Integer() }, { description: 'For web-session credentials.' })),
});

export const MirroredRepositoryDescriptorJson = Type.Object(
  {
    mirrorServer: MirrorServerJson,
    links: Type.Object({
      self: Type.Array(Type.Object({ href: Type.String() })),
      clone: Type.Array(Type.Object({ href: Type.String(), name: Type.String() })),
    }),
    available: Type.Boolean({ description: 'Always true: only mirrors that have the repository in sync are listed.' }),
    refStateHash: Type.String(),
  },
  { description: "Bitbucket's RestMirroredRepositoryDescriptor with the repository's clone links on the mirror." },
);

// --- mappers --------------------------------------------------------------------------------------------

const PRODUCT = 'mirrorfarm';

export function mirroringRequestJson(m: Mirror): Static<typeof MirroringRequestJson> {
  return {
    id: m.id,
    mirrorId: m.id,
    mirrorName: m.name,
    mirrorBaseUrl: m.base_url,
    mirrorType: 'SINGLE',
    productType: PRODUCT,
    productVersion: m.product_version,
    state: m.state === 'PENDING' ? 'PENDING' : m.state === 'ACTIVE' ? 'ACCEPTED' : 'REJECTED',
    createdDate: Number(m.created_at),
    publicKey: m.public_key,
    publicKeyFingerprint: m.fingerprint,
  };
}

export function mirrorServerJson(m: Mirror, details?: Pick<MirrorDetails, 'nodes'>): Static<typeof MirrorServerJson> {
  const nodeSeen = (details?.nodes ?? []).map((n) => Date.parse(n.lastSeenDate));
  const lastSeen = Math.max(Number(m.last_seen_at ?? 0), ...nodeSeen);
  return {
    id: m.id,
    name: m.name,
    baseUrl: m.base_url,
    enabled: m.state === 'ACTIVE',
    ...(lastSeen > 0 ? { lastSeenDate: new Date(lastSeen).toISOString() } : {}),
    mirrorType: (details?.nodes.length ?? 0) > 1 ? 'FARM' : 'SINGLE',
    productType: PRODUCT,
    productVersion: m.product_version,
  };
}

export function mirrorServerDetailsJson(urls: AppContext['urls'], m: Mirror, details: MirrorDetails, projects: Map<number, Project>): Static<typeof MirrorServerDetailsJson> {
  const selected = m.mirroring_mode === 'SELECTED_PROJECTS' ? details.projectIds.map((id) => projects.get(id)).filter((p): p is Project => p !== undefined) : [];
  return {
    ...mirrorServerJson(m, details),
    state: m.state,
    mirroringMode: m.mirroring_mode,
    publicKeyFingerprint: m.fingerprint,
    createdDate: Number(m.created_at),
    projects: selected.map((p) => projectJson(urls, p)),
    nodes: details.nodes,
    lagSeconds: details.lagSeconds,
    repositories: details.repositories,
    farm: details.farm,
    ...(details.sshUrlBase ? { sshUrlBase: details.sshUrlBase } : {}),
    ...(details.sshHostKeys ? { sshHostKeys: details.sshHostKeys } : {}),
  };
}
