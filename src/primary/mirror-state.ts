// What the primary knows about each mirror's nodes and their copies: which nodes exist, whether they hold an
// event stream, how far behind they are, and per repository the ref-state hash each node last reported. Also
// the mirror's snapshot (everything it carries, read in one transaction). Every query here costs O(1)
// statements whatever the number of repositories, so a mirror carrying 10,000 repositories is one round trip.
//
// Stored node states (mirror_nodes.state): CONNECTED (holds an event stream), DISCONNECTED (does not), OUT_OF_SYNC
// (evicted from the farm's active set because it did not prepare in time; it stays so, stream or not, until it
// joins again). What administrators see is derived from these and the node's reports (node-status.ts).
// A repository is "in sync" on a mirror when every live node (not OUT_OF_SYNC, and seen within NODE_STALE_MS, so
// that a node scaled away does not hold its farm back forever) last reported it SYNCED at the primary's current
// ref-state hash, and there is at least one: that is what a client reaching any node behind the load balancer
// gets. Nodes of a live farm are seen all the time (stream pings every 15 s, periodic reports).
import { sql, type Transaction } from 'kysely';
import type { Db } from '../store/database.js';
import type { Database, Mirror, MirrorRepoStatesTable } from '../store/tables.js';
import { farmHostKeys, farmSshUrlBase, hostKeyFingerprint } from './farm-identity.js';
import type { MirroringMode } from './mirrors.js';
import { DEFAULT_NODE_OFFLINE_SECONDS, nodeRole, nodeState, type FarmNodeRole, type FarmNodeState } from './node-status.js';

export type NodeState = 'CONNECTED' | 'DISCONNECTED' | 'OUT_OF_SYNC';
export const EVICTED: NodeState = 'OUT_OF_SYNC';

export interface SshUrlBase {
  host: string;
  port: number;
  /** The login name (the node's ssh.user); "git" when absent (older nodes). */
  user?: string;
}

export interface ReportedRepository {
  id: number;
  status: MirrorRepoStatesTable['status'];
  refStateHash?: string | null;
  error?: string | null;
}

/** The last time a node could not reach the primary, as the node tells it once it can again. */
export interface UpstreamOutage {
  errorCode: string;
  message: string;
  since: string;
  until?: string;
}

export interface NodeReport {
  cursor?: number;
  lagSeconds?: number;
  /** The node's own view (SYNCHRONIZED, SYNCHRONIZING, ...); shown, never acted on. */
  state?: string;
  repositories?: ReportedRepository[];
  /** Where clients reach the mirror's SSH server, for clone links. */
  sshUrlBase?: SshUrlBase;
  /** The node's own URL, when it has one besides the farm's. */
  baseUrl?: string;
  /** The node's view of its connection to the primary, with the last outage it went through. */
  upstream?: { state?: string; lastOutage?: UpstreamOutage };
  /** The mirrorfarm version the node runs. */
  version?: string;
}

export interface NodeView {
  id: string;
  state: FarmNodeState;
  role: FarmNodeRole;
  /** CONNECTED while the node holds an event stream. */
  connection: 'CONNECTED' | 'DISCONNECTED';
  reportedState?: string;
  lastSeenDate: string;
  cursor: number;
  lagSeconds: number | null;
  version: string | null;
  repositories: { synced: number; total: number; failing: number };
  lastUpstreamOutage?: UpstreamOutage;
}

/** The farm as a whole: nodes in contact, and those the coordinator waits for. */
export interface FarmView {
  memberCount: number;
  activeCount: number;
}

/** One node as the other nodes of its farm see it (their web page and /status). */
export interface FarmPeer {
  id: string;
  state: string;
  role: string;
  lastSeenDate: string;
  lagSeconds: number | null;
}

export interface HostKeyView {
  algorithm: string;
  fingerprint: string;
  publicKey: string;
}

export interface FailingRepository {
  id: number;
  projectKey: string;
  slug: string;
  error: string;
  nodeId: string;
}

export interface MirrorDetails {
  projectIds: number[];
  nodes: NodeView[];
  lagSeconds: number | null;
  repositories: { total: number; synced: number; failing: FailingRepository[] };
  farm: FarmView;
  sshUrlBase?: SshUrlBase;
  /** The farm's SSH host keys, once a node fixed them. */
  sshHostKeys?: HostKeyView[];
}

export interface MirrorStateOptions {
  /** A node not heard from for this long shows as OFFLINE and no longer counts as a farm member. */
  nodeOfflineMs: number;
  /** Whether the node holds an event stream right now (the stream hub knows). */
  isStreaming: (mirrorId: string, nodeId: string) => boolean;
  /** Whether the node is in its farm's active set (the coordinator's membership knows). */
  isMember: (mirrorId: string, nodeId: string) => boolean;
}

export interface SyncedRepository {
  id: number;
  slug: string;
  projectId: number;
  projectKey: string;
  refStateHash: string;
}

export interface Snapshot {
  lastEventId: number;
  mirroringMode: MirroringMode;
  projectIds: number[];
  projects: Array<{ id: number; key: string; name: string; public: boolean }>;
  repositories: Array<{ id: number; projectId: number; slug: string; name: string; public: boolean; defaultBranch: string | null; refStateHash: string | null }>;
}

/** Ids per `in (...)` list and rows per insert: well under SQLite's 32,766 bound variables. */
const CHUNK = 900;
/** A node not heard from for this long no longer counts when deciding whether its mirror is in sync. */
export const NODE_STALE_MS = 10 * 60_000;
const MAX_FAILING = 100;

function chunks<T>(items: T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export class MirrorState {
  /** Not persisted (no column for them yet): refreshed by every report. */
  private readonly volatile = new Map<string, { reportedState: Map<string, string>; outages: Map<string, UpstreamOutage> }>();
  private readonly options: MirrorStateOptions;

  constructor(
    private readonly db: Db,
    options: Partial<MirrorStateOptions> = {},
  ) {
    this.options = { nodeOfflineMs: DEFAULT_NODE_OFFLINE_SECONDS * 1000, isStreaming: () => false, isMember: () => false, ...options };
  }

  private volatileOf(mirrorId: string) {
    let v = this.volatile.get(mirrorId);
    if (!v) this.volatile.set(mirrorId, (v = { reportedState: new Map(), outages: new Map() }));
    return v;
  }

  forget(mirrorId: string): void {
    this.volatile.delete(mirrorId);
  }

  /** The farm's nodes in contact and in its active set, for the node's own /status (answered to each report). */
  async farmOf(mirrorId: string): Promise<FarmView> {
    const rows = await this.db.selectFrom('mirror_nodes').select(['node_id', 'state', 'last_seen_at']).where('mirror_id', '=', mirrorId).execute();
    const now = Date.now();
    const members = rows.filter((n) => now - Number(n.last_seen_at) <= this.options.nodeOfflineMs);
    const active = members.filter((n) => nodeRole({ evicted: n.state === EVICTED, member: this.options.isMember(mirrorId, n.node_id) }) === 'ACTIVE');
    return { memberCount: members.length, activeCount: active.length };
  }

  /** Every node of the farm, without per-repository counts (cheap enough for every report). */
  async peersOf(mirrorId: string): Promise<FarmPeer[]> {
    const rows = await this.db.selectFrom('mirror_nodes').select(['node_id', 'state', 'last_seen_at', 'lag_seconds']).where('mirror_id', '=', mirrorId).orderBy('node_id').execute();
    const reported = this.volatile.get(mirrorId)?.reportedState;
    const now = Date.now();
    return rows.map((n) => {
      const facts = { lastSeenAt: Number(n.last_seen_at), evicted: n.state === EVICTED, member: this.options.isMember(mirrorId, n.node_id), failing: 0, ...(reported?.has(n.node_id) ? { reportedState: reported.get(n.node_id)! } : {}) };
      return { id: n.node_id, state: nodeState(facts, this.options.nodeOfflineMs, now), role: nodeRole(facts), lastSeenDate: new Date(facts.lastSeenAt).toISOString(), lagSeconds: n.lag_seconds };
    });
  }

  /** This node's role in its farm, as the coordinator sees it. */
  async roleOf(mirrorId: string, nodeId: string): Promise<FarmNodeRole> {
    const row = await this.db.selectFrom('mirror_nodes').select('state').where('mirror_id', '=', mirrorId).where('node_id', '=', nodeId).executeTakeFirst();
    return nodeRole({ evicted: row?.state === EVICTED, member: this.options.isMember(mirrorId, nodeId) });
  }

  /** Nodes in contact per active mirror, and those in its active set: the farm size metrics. */
  async farmSizes(): Promise<Array<{ mirrorId: string } & FarmView>> {
    const mirrors = await this.db.selectFrom('mirrors').select('id').where('state', '=', 'ACTIVE').execute();
    return Promise.all(mirrors.map(async (m) => ({ mirrorId: m.id, ...(await this.farmOf(m.id)) })));
  }

  /**
   * Records that a node was seen, optionally with its connection state (an eviction is kept). Does nothing
   * for a mirror that is no longer active, so a request racing a deletion leaves no node behind.
   */
  async touchNode(mirrorId: string, nodeId: string, connection?: 'CONNECTED' | 'DISCONNECTED', trx?: Transaction<Database>): Promise<void> {
    const run = async (t: Transaction<Database>) => {
      const mirror = await t.selectFrom('mirrors').select('state').where('id', '=', mirrorId).executeTakeFirst();
      if (mirror?.state !== 'ACTIVE') return;
      const now = Date.now();
      await t
        .insertInto('mirror_nodes')
        .values({ mirror_id: mirrorId, node_id: nodeId, base_url: null, cursor: 0, lag_seconds: null, state: connection ?? 'DISCONNECTED', last_seen_at: now })
        .onConflict((oc) =>
          oc.columns(['mirror_id', 'node_id']).doUpdateSet({
            last_seen_at: now,
            ...(connection ? { state: sql<string>`case when mirror_nodes.state = ${EVICTED} then mirror_nodes.state else ${connection} end` } : {}),
          }),
        )
        .execute();
    };
    if (trx) return run(trx);
    return this.db.transaction().execute(run);
  }

  async evict(mirrorId: string, nodeIds: string[]): Promise<void> {
    if (nodeIds.length === 0) return;
    await this.db.updateTable('mirror_nodes').set({ state: EVICTED }).where('mirror_id', '=', mirrorId).where('node_id', 'in', nodeIds).execute();
  }

  /** A node joined its farm's active set again (src/primary/coordinator.ts): the eviction is over. */
  async clearEviction(mirrorId: string, nodeId: string): Promise<void> {
    await this.db.updateTable('mirror_nodes').set({ state: 'CONNECTED' }).where('mirror_id', '=', mirrorId).where('node_id', '=', nodeId).where('state', '=', EVICTED).execute();
  }

  /** Node id -> the ref-state hash each node of the mirror last reported serving (SYNCED) for a repository. */
  async servedHashes(mirrorId: string, repositoryId: number): Promise<Map<string, string>> {
    const rows = await this.db
      .selectFrom('mirror_repo_states')
      .select(['node_id', 'ref_state_hash'])
      .where('mirror_id', '=', mirrorId)
      .where('repository_id', '=', repositoryId)
      .where('status', '=', 'SYNCED')
      .execute();
    return new Map(rows.flatMap((r) => (r.ref_state_hash ? [[r.node_id, r.ref_state_hash] as const] : [])));
  }

  /** Nodes seen since `since` (ms) and not evicted: the members a farm is presumed to have after a primary restart. */
  async liveNodes(mirrorId: string, since: number): Promise<string[]> {
    const rows = await this.db.selectFrom('mirror_nodes').select('node_id').where('mirror_id', '=', mirrorId).where('state', '!=', EVICTED).where('last_seen_at', '>=', since).execute();
    return rows.map((r) => r.node_id);
  }

  /** Node ids of this mirror that are evicted. */
  async evicted(mirrorId: string): Promise<Set<string>> {
    const rows = await this.db.selectFrom('mirror_nodes').select('node_id').where('mirror_id', '=', mirrorId).where('state', '=', EVICTED).execute();
    return new Set(rows.map((r) => r.node_id));
  }

  /**
   * Stores a node's report. Answers the repositories this report made in sync on the mirror as a whole (every
   * active node now has them at the primary's current hash), for the "synchronized" webhook.
   */
  async applyReport(mirror: Mirror, nodeId: string, report: NodeReport, streaming: boolean): Promise<SyncedRepository[]> {
    const v = this.volatileOf(mirror.id);
    if (report.state) v.reportedState.set(nodeId, report.state);
    if (report.upstream?.lastOutage) v.outages.set(nodeId, report.upstream.lastOutage);
    const now = Date.now();
    return this.db.transaction().execute(async (trx) => {
      const current = await trx.selectFrom('mirrors').select(['state', 'mirroring_mode']).where('id', '=', mirror.id).executeTakeFirst();
      if (current?.state !== 'ACTIVE') return [];
      await this.touchNode(mirror.id, nodeId, streaming ? 'CONNECTED' : 'DISCONNECTED', trx);
      await trx
        .updateTable('mirror_nodes')
        .set({
          last_seen_at: now,
          ...(report.cursor !== undefined ? { cursor: report.cursor } : {}),
          ...(report.lagSeconds !== undefined ? { lag_seconds: report.lagSeconds } : {}),
          ...(report.baseUrl !== undefined ? { base_url: report.baseUrl } : {}),
          ...(report.version !== undefined ? { version: report.version } : {}),
          // An eviction ends only when the node joins its farm again (POST mirror/membership), never by a report:
          // a report may have been sent before the node learnt that it was evicted.
        })
        .where('mirror_id', '=', mirror.id)
        .where('node_id', '=', nodeId)
        .execute();

      // Only repositories that exist and that the mirror carries are recorded; anything else is ignored.
      const reported = new Map<number, ReportedRepository>();
      for (const r of report.repositories ?? []) reported.set(r.id, r);
      const known: Array<{ id: number; slug: string; project_id: number; key: string; ref_state_hash: string | null }> = [];
      for (const ids of chunks([...reported.keys()])) {
        let q = trx
          .selectFrom('repositories as r')
          .innerJoin('projects as p', 'p.id', 'r.project_id')
          .select(['r.id', 'r.slug', 'r.project_id', 'p.key', 'r.ref_state_hash'])
          .where('r.id', 'in', ids);
        if (current.mirroring_mode !== 'ALL_PROJECTS') {
          q = q.where('r.project_id', 'in', (eb) => eb.selectFrom('mirror_projects').select('project_id').where('mirror_id', '=', mirror.id));
        }
        known.push(...(await q.execute()));
      }
      if (known.length === 0) return [];

      const previous = new Map<number, { status: string; ref_state_hash: string | null }>();
      for (const ids of chunks(known.map((k) => k.id))) {
        const rows = await trx
          .selectFrom('mirror_repo_states')
          .select(['repository_id', 'status', 'ref_state_hash'])
          .where('mirror_id', '=', mirror.id)
          .where('node_id', '=', nodeId)
          .where('repository_id', 'in', ids)
          .execute();
        for (const row of rows) previous.set(row.repository_id, row);
      }
      const rows = known.map((k) => {
        const r = reported.get(k.id)!;
        return {
          mirror_id: mirror.id,
          node_id: nodeId,
          repository_id: k.id,
          status: r.status,
          ref_state_hash: r.refStateHash ?? null,
          error: r.status === 'FAILED' ? (r.error ?? 'unknown error').slice(0, 2000) : null,
          updated_at: now,
        };
      });
      for (const part of chunks(rows, 500)) {
        await trx
          .insertInto('mirror_repo_states')
          .values(part)
          .onConflict((oc) =>
            oc.columns(['mirror_id', 'node_id', 'repository_id']).doUpdateSet((eb) => ({
              status: eb.ref('excluded.status'),
              ref_state_hash: eb.ref('excluded.ref_state_hash'),
              error: eb.ref('excluded.error'),
              updated_at: eb.ref('excluded.updated_at'),
            })),
          )
          .execute();
      }

      // Repositories this node just brought to the primary's current state.
      const turned = known.filter((k) => {
        const r = reported.get(k.id)!;
        const before = previous.get(k.id);
        const syncedNow = r.status === 'SYNCED' && k.ref_state_hash !== null && r.refStateHash === k.ref_state_hash;
        return syncedNow && !(before?.status === 'SYNCED' && before.ref_state_hash === k.ref_state_hash);
      });
      if (turned.length === 0) return [];
      const active = await this.activeNodeCount(trx, mirror.id);
      const counts = new Map<number, number>();
      for (const ids of chunks(turned.map((t) => t.id))) {
        const rows = await trx
          .selectFrom('mirror_repo_states as s')
          .innerJoin('mirror_nodes as n', (j) => j.onRef('n.mirror_id', '=', 's.mirror_id').onRef('n.node_id', '=', 's.node_id'))
          .innerJoin('repositories as r', 'r.id', 's.repository_id')
          .select(['s.repository_id', (eb) => eb.fn.countAll<number>().as('n')])
          .where('s.mirror_id', '=', mirror.id)
          .where('s.repository_id', 'in', ids)
          .where('s.status', '=', 'SYNCED')
          .whereRef('s.ref_state_hash', '=', 'r.ref_state_hash')
          .where('n.state', '!=', EVICTED)
          .where('n.last_seen_at', '>=', Date.now() - NODE_STALE_MS)
          .groupBy('s.repository_id')
          .execute();
        for (const row of rows) counts.set(row.repository_id, Number(row.n));
      }
      return turned
        .filter((t) => active > 0 && counts.get(t.id) === active)
        .map((t) => ({ id: t.id, slug: t.slug, projectId: t.project_id, projectKey: t.key, refStateHash: t.ref_state_hash! }));
    });
  }

  private async activeNodeCount(db: Db | Transaction<Database>, mirrorId: string): Promise<number> {
    const row = await db
      .selectFrom('mirror_nodes')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('mirror_id', '=', mirrorId)
      .where('state', '!=', EVICTED)
      .where('last_seen_at', '>=', Date.now() - NODE_STALE_MS)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Everything the mirror carries, in one transaction so that `lastEventId` matches the lists exactly. */
  async snapshot(mirrorId: string): Promise<Snapshot | undefined> {
    return this.db.transaction().execute(async (trx) => {
      const mirror = await trx.selectFrom('mirrors').select(['state', 'mirroring_mode']).where('id', '=', mirrorId).executeTakeFirst();
      if (mirror?.state !== 'ACTIVE') return undefined;
      const all = mirror.mirroring_mode === 'ALL_PROJECTS';
      const { last } = await trx.selectFrom('events').select((eb) => eb.fn.max('seq').as('last')).executeTakeFirstOrThrow();
      let projectsQuery = trx.selectFrom('projects').select(['id', 'key', 'name', 'is_public']).orderBy('id');
      let reposQuery = trx
        .selectFrom('repositories as r')
        .leftJoin('refs as h', (j) => j.onRef('h.repository_id', '=', 'r.id').on('h.ref', '=', 'HEAD'))
        .select(['r.id', 'r.project_id', 'r.slug', 'r.name', 'r.is_public', 'r.ref_state_hash', 'h.target as head'])
        .orderBy('r.id');
      if (!all) {
        projectsQuery = projectsQuery.where('id', 'in', (eb) => eb.selectFrom('mirror_projects').select('project_id').where('mirror_id', '=', mirrorId));
        reposQuery = reposQuery.where('r.project_id', 'in', (eb) => eb.selectFrom('mirror_projects').select('project_id').where('mirror_id', '=', mirrorId));
      }
      const projects = await projectsQuery.execute();
      const repos = await reposQuery.execute();
      return {
        lastEventId: Number(last ?? 0),
        mirroringMode: mirror.mirroring_mode,
        projectIds: projects.map((p) => p.id),
        projects: projects.map((p) => ({ id: p.id, key: p.key, name: p.name, public: !!p.is_public })),
        repositories: repos.map((r) => ({
          id: r.id,
          projectId: r.project_id,
          slug: r.slug,
          name: r.name,
          public: !!r.is_public,
          defaultBranch: r.head?.startsWith('ref: ') ? r.head.slice(5) : null,
          refStateHash: r.ref_state_hash,
        })),
      };
    });
  }

  /** Nodes, lag and repository counts of these mirrors, for the administration API. */
  async describe(mirrors: Mirror[]): Promise<Map<string, MirrorDetails>> {
    const out = new Map<string, MirrorDetails>();
    if (mirrors.length === 0) return out;
    const ids = mirrors.map((m) => m.id);
    const nodeRows = await this.db.selectFrom('mirror_nodes').selectAll().where('mirror_id', 'in', ids).orderBy('node_id').execute();
    const selection = await this.db.selectFrom('mirror_projects').select(['mirror_id', 'project_id']).where('mirror_id', 'in', ids).orderBy('project_id').execute();
    const now = Date.now();
    for (const mirror of mirrors) {
      const nodes = nodeRows.filter((n) => n.mirror_id === mirror.id);
      const reported = this.volatile.get(mirror.id)?.reportedState;
      const outages = this.volatile.get(mirror.id)?.outages;
      const live = nodes.filter((n) => n.state !== EVICTED && Number(n.last_seen_at) >= now - NODE_STALE_MS);
      const lags = live.map((n) => n.lag_seconds).filter((l): l is number => l !== null);
      const active = live.length;
      const repositories = mirror.state === 'ACTIVE' ? await this.repositoryCounts(mirror, active) : { total: 0, synced: 0, failing: [] };
      const perNode = mirror.state === 'ACTIVE' ? await this.nodeCounts(mirror) : new Map<string, { synced: number; failing: number }>();
      const nodeViews: NodeView[] = nodes.map((n) => {
        const counts = perNode.get(n.node_id) ?? { synced: 0, failing: 0 };
        const streaming = this.options.isStreaming(mirror.id, n.node_id);
        const facts = { lastSeenAt: Number(n.last_seen_at), evicted: n.state === EVICTED, member: this.options.isMember(mirror.id, n.node_id), failing: counts.failing, ...(reported?.has(n.node_id) ? { reportedState: reported.get(n.node_id)! } : {}) };
        return {
          id: n.node_id,
          state: nodeState(facts, this.options.nodeOfflineMs, now),
          role: nodeRole(facts),
          connection: streaming ? 'CONNECTED' : 'DISCONNECTED',
          ...(facts.reportedState !== undefined ? { reportedState: facts.reportedState } : {}),
          lastSeenDate: new Date(Number(n.last_seen_at)).toISOString(),
          cursor: Number(n.cursor),
          lagSeconds: n.lag_seconds,
          version: n.version,
          repositories: { synced: counts.synced, total: repositories.total, failing: counts.failing },
          ...(outages?.has(n.node_id) ? { lastUpstreamOutage: outages.get(n.node_id)! } : {}),
        };
      });
      const members = nodeViews.filter((n) => n.state !== 'OFFLINE');
      const ssh = farmSshUrlBase(mirror);
      const hostKeys = farmHostKeys(mirror);
      out.set(mirror.id, {
        projectIds: selection.filter((s) => s.mirror_id === mirror.id).map((s) => s.project_id),
        nodes: nodeViews,
        lagSeconds: lags.length ? Math.max(...lags) : null,
        repositories,
        farm: { memberCount: members.length, activeCount: members.filter((n) => n.role === 'ACTIVE').length },
        ...(ssh ? { sshUrlBase: ssh } : {}),
        ...(hostKeys ? { sshHostKeys: hostKeys.map((k) => ({ algorithm: k.split(' ')[0]!, fingerprint: hostKeyFingerprint(k), publicKey: k })) } : {}),
      });
    }
    return out;
  }

  /** Per node of the mirror: repositories it has at the primary's current state, and those failing on it. */
  private async nodeCounts(mirror: Mirror): Promise<Map<string, { synced: number; failing: number }>> {
    const carried = mirror.mirroring_mode === 'ALL_PROJECTS' ? sql`1 = 1` : sql`r.project_id in (select project_id from mirror_projects where mirror_id = ${mirror.id})`;
    const rows = await sql<{ node_id: string; synced: number; failing: number }>`
      select s.node_id as node_id,
        sum(case when s.status = 'SYNCED' and s.ref_state_hash = r.ref_state_hash then 1 else 0 end) as synced,
        sum(case when s.status = 'FAILED' then 1 else 0 end) as failing
      from mirror_repo_states s
      join repositories r on r.id = s.repository_id
      where s.mirror_id = ${mirror.id} and ${carried}
      group by s.node_id`.execute(this.db);
    return new Map(rows.rows.map((r) => [r.node_id, { synced: Number(r.synced ?? 0), failing: Number(r.failing ?? 0) }]));
  }

  private async repositoryCounts(mirror: Mirror, activeNodes: number): Promise<MirrorDetails['repositories']> {
    const carried = mirror.mirroring_mode === 'ALL_PROJECTS' ? sql`1 = 1` : sql`r.project_id in (select project_id from mirror_projects where mirror_id = ${mirror.id})`;
    const total = await sql<{ n: number }>`select count(*) as n from repositories r where ${carried}`.execute(this.db);
    let synced = 0;
    if (activeNodes > 0) {
      const rows = await sql<{ n: number }>`
        select count(*) as n from (
          select s.repository_id
          from mirror_repo_states s
          join mirror_nodes n on n.mirror_id = s.mirror_id and n.node_id = s.node_id
          join repositories r on r.id = s.repository_id
          where s.mirror_id = ${mirror.id} and s.status = 'SYNCED' and s.ref_state_hash = r.ref_state_hash and n.state <> ${EVICTED}
            and n.last_seen_at >= ${Date.now() - NODE_STALE_MS} and ${carried}
          group by s.repository_id
          having count(*) = ${activeNodes}
        ) synced`.execute(this.db);
      synced = Number(rows.rows[0]?.n ?? 0);
    }
    const failingRows = await sql<{ id: number; key: string; slug: string; error: string | null; node_id: string }>`
      select r.id as id, p.key as key, r.slug as slug, s.error as error, s.node_id as node_id
      from mirror_repo_states s
      join repositories r on r.id = s.repository_id
      join projects p on p.id = r.project_id
      where s.mirror_id = ${mirror.id} and s.status = 'FAILED' and ${carried}
      order by s.updated_at desc
      limit ${MAX_FAILING * 4}`.execute(this.db);
    const failing: FailingRepository[] = [];
    const seen = new Set<number>();
    for (const row of failingRows.rows) {
      if (seen.has(row.id) || failing.length >= MAX_FAILING) continue;
      seen.add(row.id);
      failing.push({ id: row.id, projectKey: row.key, slug: row.slug, error: row.error ?? 'unknown error', nodeId: row.node_id });
    }
    return { total: Number(total.rows[0]?.n ?? 0), synced, failing };
  }

  /** Active mirrors that carry the repository and have it in sync at `hash` on every active node. */
  async mirrorsInSync(repositoryId: number, projectId: number, hash: string | null): Promise<Mirror[]> {
    if (hash === null) return [];
    const since = Date.now() - NODE_STALE_MS;
    const rows = await sql<Mirror & { active: number; synced: number }>`
      select m.*,
        (select count(*) from mirror_nodes n where n.mirror_id = m.id and n.state <> ${EVICTED} and n.last_seen_at >= ${since}) as active,
        (select count(*) from mirror_repo_states s join mirror_nodes n on n.mirror_id = s.mirror_id and n.node_id = s.node_id
          where s.mirror_id = m.id and s.repository_id = ${repositoryId} and s.status = 'SYNCED' and s.ref_state_hash = ${hash}
            and n.state <> ${EVICTED} and n.last_seen_at >= ${since}) as synced
      from mirrors m
      where m.state = 'ACTIVE'
        and (m.mirroring_mode = 'ALL_PROJECTS' or exists (select 1 from mirror_projects mp where mp.mirror_id = m.id and mp.project_id = ${projectId}))
      order by m.name, m.id`.execute(this.db);
    return rows.rows.filter((r) => Number(r.active) > 0 && Number(r.synced) === Number(r.active)).map(({ active: _a, synced: _s, ...mirror }) => mirror);
  }
}
