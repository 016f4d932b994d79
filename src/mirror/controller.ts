// A mirror node's life: preflight, registration, waiting for authorization, then staying in sync: a snapshot
// pass at start and every snapshotIntervalSeconds, the event stream in between, and reports to the primary.
// State changes are logged once, not per retry.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { MirrorfarmError } from '../errors.js';
import type { Logger } from '../obs/logger.js';
import type { Catalog, UpstreamProject, UpstreamRepository } from './catalog.js';
import type { DelegatedAuth } from './delegated-auth.js';
import { EventStreamClient, type StreamMessage } from './event-stream.js';
import { FarmMember, type FarmMemberView } from './farm-member.js';
import type { MirrorIdentity } from './identity.js';
import type { MirrorMetrics } from './metrics.js';
import { preflight, type PreflightResult } from './preflight.js';
import type { SyncEngine, SyncResult } from './sync-engine.js';
import { UpstreamError, type Upstream } from './upstream.js';
import type { UpstreamHealth } from './upstream-health.js';
import { VERSION } from '../version.js';

export type MirrorState = 'INITIALIZING' | 'ERROR' | 'PENDING' | 'SYNCHRONIZING' | 'SYNCHRONIZED' | 'REJECTED' | 'REMOVED';

interface Snapshot {
  lastEventId: number;
  mirroringMode: string;
  projectIds: number[];
  projects: UpstreamProject[];
  repositories: UpstreamRepository[];
}

interface StreamEvent {
  id: number;
  type: string;
  createdDate?: number;
  projectId?: number | null;
  repositoryId?: number | null;
  [field: string]: unknown;
}

const AUTH_EVENTS = /^(permission|user|group|ssh_key|access_token)\./;
/** A node joins its farm only when no change has waited longer than this for it. */
const JOIN_MAX_BEHIND_MS = 2_000;
/** How many repositories a snapshot pass reads from disk to verify (see verificationBatch). */
const VERIFY_PER_PASS = 500;

export interface MirrorControllerDeps {
  config: Config;
  identity: MirrorIdentity;
  upstream: Upstream;
  catalog: Catalog;
  engine: SyncEngine;
  auth: DelegatedAuth;
  metrics: MirrorMetrics;
  log: Logger;
  instanceId: string;
  ownSshBase: () => { host: string; port: number; user?: string } | undefined;
  /** This node's SSH host public keys: the primary checks that every node of the farm presents the same. */
  ownSshHostKeys?: () => string[];
  health: UpstreamHealth;
}

/** What the primary lets this mirror carry, as of the last snapshot (Bitbucket's RestUpstreamSettings). */
export interface Selection {
  mode: string;
  projectIds: number[];
}

/** The farm as the primary sees it, from its answer to this node's last report. */
export interface FarmSeen {
  memberCount: number;
  activeCount: number;
  role: string;
  /** Every node of the farm, as the primary last answered (older primaries send none). */
  nodes?: Array<{ id: string; state: string; role: string; lastSeenDate: string; lagSeconds: number | null }>;
}

export class MirrorController {
  state: MirrorState = 'INITIALIZING';
  /** The primary's answer to the last report: nodes in contact, members of the active set, this node's role. */
  farmSeen: FarmSeen | undefined;
  error: { code: string; message: string } | undefined;
  primary: PreflightResult | undefined;
  private stream: EventStreamClient | undefined;
  private cursor = 0;
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;
  private snapshotRunning: Promise<void> | undefined;
  private deleteGuard: string | undefined;
  private readonly reportQueue = new Map<number, SyncResult>();
  private reporting = false;
  private lastReport = 0;
  private verifyOffset = 0;
  private passesDone = 0;
  private selected: Selection | undefined;
  private readonly member: FarmMember;
  private reannouncing = false;

  constructor(private readonly deps: MirrorControllerDeps) {
    this.member = new FarmMember(
      deps.upstream,
      {
        canJoin: () => this.canJoin(),
        cursor: () => this.cursor,
        generation: () => this.deps.engine.generation(),
        servedUpTo: (g) => this.deps.engine.servedUpTo(g),
        reported: () => this.reportQueue.size === 0 && !this.reporting,
        resync: () => void this.snapshot().catch((err: Error) => this.deps.log.warn({ err: err.message }, 'snapshot pass after an eviction failed')),
        restageAll: () => void this.restageAll(),
        changed: () => this.evaluate(),
        servesBeyondLease: () => deps.config.mirror.farmAvailability === 'available' && !deps.health.up(),
      },
      deps.log.child({ component: 'farm' }),
    );
  }

  /** Runs in the background; the HTTP and SSH listeners are already up so preflight can reach them. */
  start(): void {
    void this.run().catch((err: Error) => this.setError('MIRROR_INTERNAL_ERROR', err.message));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.member.stop();
    this.stream?.stop();
    this.timers.forEach((t) => clearInterval(t));
    this.deps.engine.stop();
  }

  /**
   * Ready for the load balancer: a member of the farm's active set, caught up, within its lease (so not while it
   * is cut off from the primary or keeps the farm waiting). A member staging a new push stays ready: it serves
   * the state the farm agreed on, which is the point of the two-phase publish.
   */
  ready(): boolean {
    // A node cut off from its primary stays ready until its lease runs out (a third of the prepare timeout),
    // not from the first failed call: a primary restart of a few seconds must not empty every farm's rotation.
    return !this.removed() && this.state !== 'ERROR' && this.member.ready();
  }

  /** The primary answers again after an outage: resume the event stream at once. */
  upstreamBack(): void {
    this.stream?.nudge();
  }

  /**
   * This node's place in its farm, for /status: its own membership and lease, and the primary's view (Bitbucket's
   * `memberCount`: the farm's nodes in contact; `activeCount`: those in the active set; `role`).
   */
  farm(): FarmMemberView & { activeCount?: number; role?: string; nodes?: FarmSeen['nodes'] } {
    return { ...this.member.view(), ...(this.farmSeen ?? {}) };
  }

  /** Graceful shutdown: leave the farm's active set (after the balancer has had time to notice). */
  async leaveFarm(): Promise<void> {
    await this.member.leave();
  }

  /**
   * Close enough to the primary to join the farm: the first pass done, every repository synced once, and no
   * change waiting longer than JOIN_MAX_BEHIND_MS (under continuous pushes a node is never idle; what it joins
   * with is a state the farm agreed on anyway, and it is ready only once it has caught up with the join).
   */
  private async canJoin(): Promise<boolean> {
    if (this.passesDone === 0 || this.removed() || this.deps.engine.behindMs() > JOIN_MAX_BEHIND_MS) return false;
    return this.deps.catalog.allSynced();
  }

  private async restageAll(): Promise<void> {
    for (const repo of await this.deps.catalog.repositories()) this.deps.engine.request(repo.id);
    this.evaluate();
  }

  removed(): boolean {
    return this.state === 'REMOVED' || this.state === 'REJECTED';
  }

  async progress(): Promise<{ synced: number; total: number; failing: Array<{ repository: string; error: string | null }> }> {
    const repos = await this.deps.catalog.repositories();
    return {
      synced: repos.filter((r) => r.status === 'SYNCED').length,
      total: repos.length,
      failing: repos.filter((r) => r.status === 'FAILED').map((r) => ({ repository: `${r.projectKey}/${r.slug}`, error: r.error })),
    };
  }

  /** True until the first snapshot pass has told this node everything it carries. */
  discovering(): boolean {
    return this.passesDone === 0;
  }

  /** The project selection of the last snapshot (kept across restarts, so it is known while the primary is away). */
  async selection(): Promise<Selection | undefined> {
    if (this.selected) return this.selected;
    const stored = await this.deps.catalog.getState('selection');
    return stored ? (JSON.parse(stored) as Selection) : undefined;
  }

  /**
   * Seconds behind the primary: the oldest change not yet published, or, while the primary cannot be reached,
   * the time since it was last heard from (nothing newer can be known), whichever is larger.
   */
  lagSeconds(): number {
    const engine = this.deps.engine.lagSeconds();
    const silent = this.deps.health.up() ? 0 : (this.deps.health.secondsSinceContact() ?? 0);
    return Math.max(engine, silent);
  }

  /** This mirror's REST resource on the primary (where its project selection is changed). */
  primaryMirrorUrl(): string {
    return `${this.deps.config.mirror.upstreamUrl}/rest/mirroring/1.0/mirrorServers/${this.deps.identity.mirrorId}`;
  }

  /** This mirror's page in the primary's administration: where an administrator authorizes it (links.primary). */
  primaryAdminPageUrl(): string {
    return `${this.deps.config.mirror.upstreamUrl}/admin/mirrors/${this.deps.identity.mirrorId}`;
  }

  private setState(state: MirrorState): void {
    if (state === this.state) return;
    this.deps.log.info({ from: this.state, to: state, mirrorId: this.deps.identity.mirrorId }, 'mirror state changed');
    this.state = state;
    if (state !== 'ERROR') this.error = undefined;
  }

  private setError(code: string, message: string): void {
    if (this.error?.code !== code) this.deps.log.error({ code, message }, 'mirror cannot proceed');
    this.error = { code, message };
    this.state = 'ERROR';
  }

  private async sleep(ms: number): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, ms).unref());
  }

  private async run(): Promise<void> {
    const { config, identity, upstream } = this.deps;
    // 1. Preflight, retried until it passes: each failure is one clear message in /status and the log.
    let delay = 1000;
    while (!this.stopped) {
      try {
        this.primary = await preflight({ upstreamUrl: config.mirror.upstreamUrl!, baseUrl: config.baseUrl!, caFile: config.trust.caFile, instanceId: this.deps.instanceId, mirrorId: identity.mirrorId });
        if (config.mirror.upstreamSshHost) this.primary.sshHost = config.mirror.upstreamSshHost;
        if (config.mirror.upstreamSshPort) this.primary.sshPort = config.mirror.upstreamSshPort;
        upstream.setAudience(this.primary.primary.baseUrl);
        this.deps.health.contact();
        if (this.primary.baseUrlWarning) this.deps.log.warn(this.primary.baseUrlWarning, 'baseUrl could not be checked; going on');
        break;
      } catch (err) {
        const e = err as MirrorfarmError;
        if (e instanceof UpstreamError && e.code.startsWith('MIRROR_UPSTREAM_')) this.deps.health.failure(e.code, e.message);
        this.setError(e.code ?? 'MIRROR_PREFLIGHT_FAILED', e.message);
        await this.sleep(delay);
        delay = Math.min(delay * 2, 30_000);
      }
    }
    if (this.stopped || !this.primary) return;
    await this.pinHostKeys(this.primary);

    // 2. Registration, then wait for an administrator.
    delay = 1000;
    while (!this.stopped) {
      try {
        const mirror = await upstream.call<{ state: string }>('POST', '/rest/mirroring/1.0/requests', {
          mirrorName: config.displayName,
          baseUrl: config.baseUrl,
          publicKey: identity.key.publicKey,
          productVersion: VERSION,
          // What the primary compares with the farm's (MIRROR_HOST_KEY_MISMATCH, MIRROR_SSH_URL_MISMATCH).
          ...(this.deps.ownSshHostKeys ? { sshHostKeys: this.deps.ownSshHostKeys() } : {}),
          ...(this.deps.ownSshBase() ? { sshUrlBase: this.deps.ownSshBase() } : {}),
        });
        if (mirror.state === 'ACTIVE') break;
        this.setState('PENDING');
        const state = await this.waitForAuthorization();
        if (state === 'ACTIVE') break;
        return;
      } catch (err) {
        const e = err as MirrorfarmError;
        if (this.refused(e)) return;
        this.setError(e.code ?? 'MIRROR_REGISTRATION_FAILED', e.message);
        await this.sleep(delay);
        delay = Math.min(delay * 2, 30_000);
      }
    }
    if (this.stopped) return;

    // 3. In sync: snapshot, then the stream; snapshots repeat to repair anything the stream missed. A node
    // (re)starting is no member of its farm until it has caught up, whatever the primary remembers of it.
    this.setState('SYNCHRONIZING');
    await this.member.reset();
    const stored = await this.deps.catalog.getState('cursor');
    this.cursor = stored ? Number(stored) : 0;
    await this.snapshotWithRetry(stored === undefined);
    if (this.stopped || this.removed()) return;
    this.stream = new EventStreamClient(upstream, () => this.cursor, {
      onMessage: (m) => this.onMessage(m),
      onCursor: (id) => this.advance(id),
      onRefused: (err) => void this.refused(err),
      onConnected: () => {
        this.deps.log.debug('event stream connected');
        void this.deps.engine.reannounce();
      },
      onDisconnected: (err) => {
        if (err) this.deps.log.debug({ err: err.message }, 'event stream interrupted; resuming');
        this.member.probeSoon();
      },
    }, this.deps.log);
    this.stream.start();
    this.member.start();
    this.timers.push(setInterval(() => void this.snapshot().catch((err: Error) => this.deps.log.warn({ err: err.message }, 'snapshot pass failed')), config.mirror.snapshotIntervalSeconds * 1000).unref());
    this.timers.push(setInterval(() => void this.tick(), 500).unref());
  }

  private async waitForAuthorization(): Promise<string> {
    while (!this.stopped) {
      try {
        const self = await this.deps.upstream.call<{ state: string }>('GET', '/rest/mirroring/1.0/mirror/self');
        if (self.state === 'ACTIVE') return 'ACTIVE';
      } catch (err) {
        if (this.refused(err as MirrorfarmError)) return 'REFUSED';
      }
      await this.sleep(1000);
    }
    return 'STOPPED';
  }

  /** The primary no longer accepts this mirror: stop syncing and serving. */
  private refused(err: MirrorfarmError): boolean {
    if (err.code === 'MIRROR_REMOVED' || err.code === 'MIRROR_REJECTED') {
      this.setState(err.code === 'MIRROR_REMOVED' ? 'REMOVED' : 'REJECTED');
      void this.stop();
      return true;
    }
    return false;
  }

  private async pinHostKeys(primary: PreflightResult): Promise<void> {
    const dir = join(this.deps.config.home, 'mirror');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // Pinned under an alias, so the pin holds whatever name or address the primary is reached by.
    await writeFile(join(dir, 'known_hosts'), primary.hostKeys.map((k) => `mirrorfarm-primary ${k}\n`).join(''), { mode: 0o600 });
  }

  private async snapshotWithRetry(first: boolean): Promise<void> {
    let delay = 1000;
    while (!this.stopped) {
      try {
        await this.snapshot(first);
        return;
      } catch (err) {
        const e = err as MirrorfarmError;
        if (this.refused(e)) return;
        this.deps.log.warn({ err: e.message }, 'snapshot pass failed; retrying');
        await this.sleep(delay);
        delay = Math.min(delay * 2, 30_000);
      }
    }
  }

  /** Compares the primary's list of (repository, ref-state hash) with ours and repairs every difference. */
  async snapshot(adoptCursor = false): Promise<void> {
    if (this.snapshotRunning) return this.snapshotRunning;
    this.snapshotRunning = this.snapshotPass(adoptCursor).finally(() => (this.snapshotRunning = undefined));
    return this.snapshotRunning;
  }

  private async snapshotPass(adoptCursor: boolean): Promise<void> {
    const { catalog, engine, config } = this.deps;
    const started = Date.now();
    let requested = 0;
    const snap = await this.deps.upstream.call<Snapshot>('GET', '/rest/mirroring/1.0/mirror/snapshot');
    const selection: Selection = { mode: snap.mirroringMode, projectIds: snap.projectIds };
    if (JSON.stringify(selection) !== JSON.stringify(this.selected)) await catalog.setState('selection', JSON.stringify(selection));
    this.selected = selection;
    for (const p of snap.projects) await catalog.upsertProject(p);
    const wanted = new Map(snap.repositories.map((r) => [r.id, r]));
    const local = await catalog.repositories();
    const extra = local.filter((r) => !wanted.has(r.id));
    // A purge guard: a short list is more likely a fault than an instruction to drop most of the mirror.
    const share = local.length ? extra.length / local.length : 0;
    if (extra.length > 1 && share > config.mirror.maxDeleteShare) {
      const message = `refusing to delete ${extra.length} of ${local.length} repositories in one snapshot pass (more than mirror.maxDeleteShare = ${config.mirror.maxDeleteShare}); check the primary, or raise the setting`;
      if (this.deleteGuard !== message) this.deps.log.error({ delete: extra.length, total: local.length }, message);
      this.deleteGuard = message;
    } else {
      this.deleteGuard = undefined;
      for (const r of extra) await this.dropRepository(r.id);
    }
    const projectIds = new Set(snap.projects.map((p) => p.id));
    for (const id of await catalog.projectIds()) {
      if (!projectIds.has(id) && !(await catalog.repositories()).some((r) => r.projectId === id)) await catalog.removeProject(id);
    }
    const mineById = new Map(local.map((l) => [l.id, l]));
    const verify = this.verificationBatch(snap.repositories.map((r) => r.id));
    const metadata = new Map((await catalog.metadata()).map((m) => [m.id, m]));
    for (const r of snap.repositories) {
      // Only what changed is written: with thousands of repositories, rewriting every row made up most of a pass.
      const known = metadata.get(r.id);
      if (!known || known.projectId !== r.projectId || known.slug !== r.slug || known.name !== r.name || known.public !== r.public || known.defaultBranch !== r.defaultBranch) {
        await catalog.upsertRepository(r);
      }
      const mine = mineById.get(r.id);
      let drifted = !mine || mine.status !== 'SYNCED' || mine.refStateHash !== r.refStateHash;
      // `local` was read when the pass began; the engine may have synced the repository since (a pass during an
      // initial sync takes a while): look again before asking for another fetch.
      if (drifted && mine) {
        const now = await catalog.repository(r.id);
        drifted = !now || now.status !== 'SYNCED' || now.refStateHash !== r.refStateHash;
      }
      // What the database says was published is checked against the disk, so a repository changed or
      // damaged behind the mirror's back is repaired too.
      if (!drifted && verify.has(r.id)) drifted = (await engine.diskHash(r.id)) !== r.refStateHash;
      if (drifted) {
        engine.request(r.id);
        requested++;
      }
    }
    // The snapshot covers everything up to lastEventId: a new node, or one whose cursor fell out of the
    // primary's retention, continues the stream from there.
    if (adoptCursor) await this.advance(snap.lastEventId);
    const seconds = (Date.now() - started) / 1000;
    this.deps.metrics.snapshotDuration.observe(seconds);
    this.deps.log.info({ repositories: snap.repositories.length, verifiedOnDisk: verify.size, requested, deleted: this.deleteGuard ? 0 : extra.length, seconds }, 'snapshot pass finished');
    this.passesDone++;
    this.evaluate();
  }

  /**
   * The repositories whose disk state this pass verifies: all of them up to VERIFY_PER_PASS, otherwise a
   * window that moves on each pass, so that a pass stays fast with many repositories and every repository is
   * still verified every few passes.
   */
  private verificationBatch(ids: number[]): Set<number> {
    if (ids.length <= VERIFY_PER_PASS) return new Set(ids);
    const start = this.verifyOffset % ids.length;
    this.verifyOffset = start + VERIFY_PER_PASS;
    const window = ids.slice(start, start + VERIFY_PER_PASS);
    if (window.length < VERIFY_PER_PASS) window.push(...ids.slice(0, VERIFY_PER_PASS - window.length));
    return new Set(window);
  }

  private async dropRepository(id: number): Promise<void> {
    await this.deps.engine.remove(id);
    await this.deps.catalog.removeRepository(id);
  }

  private async advance(id: number): Promise<void> {
    if (id <= this.cursor) return;
    this.cursor = id;
    await this.deps.catalog.setState('cursor', String(id));
  }

  private async onMessage(message: StreamMessage): Promise<void> {
    this.deps.metrics.streamEvents.inc();
    const { catalog, engine, auth } = this.deps;
    const data = message.data as StreamEvent;
    switch (message.event) {
      case 'commit': {
        const { repositoryId, refStateHash } = message.data as { repositoryId: number; refStateHash: string };
        await engine.commitStaged(repositoryId, refStateHash);
        return;
      }
      case 'snapshot-required':
        await this.snapshot(true);
        return;
      case 'removed':
        this.refused(new MirrorfarmError('MIRROR_REMOVED', 403, 'removed'));
        return;
    }
    const seenAt = typeof data.createdDate === 'number' ? data.createdDate : Date.now();
    if (AUTH_EVENTS.test(data.type)) auth.invalidate();
    switch (data.type) {
      case 'ref.updated':
        if (data.repositoryId && (await catalog.repository(data.repositoryId))) engine.request(data.repositoryId, seenAt);
        else if (data.repositoryId) await this.snapshot();
        break;
      case 'repository.head_changed':
        if (data.repositoryId) {
          await catalog.setDefaultBranch(data.repositoryId, typeof data.to === 'string' ? data.to : null);
          engine.request(data.repositoryId, seenAt);
        }
        break;
      case 'repository.created':
        if (data.repositoryId && data.projectId && typeof data.slug === 'string') {
          await this.ensureProject(data.projectId, data.projectKey);
          await catalog.upsertRepository({
            id: data.repositoryId,
            projectId: data.projectId,
            slug: data.slug,
            name: String(data.name ?? data.slug),
            public: !!data.public,
            defaultBranch: typeof data.defaultBranch === 'string' ? data.defaultBranch : null,
            refStateHash: null,
          });
          engine.request(data.repositoryId, seenAt);
        }
        break;
      case 'repository.updated':
        if (data.repositoryId) {
          if (typeof data.slug !== 'string') {
            // Moved to a project this mirror does not carry: the event is stripped, the repository goes.
            if (await catalog.repository(data.repositoryId)) await this.dropRepository(data.repositoryId);
          } else {
            await this.ensureProject(data.projectId!, data.projectKey);
            const existed = await catalog.repository(data.repositoryId);
            await catalog.upsertRepository({
              id: data.repositoryId,
              projectId: data.projectId!,
              slug: data.slug,
              name: String(data.name ?? data.slug),
              public: !!data.public,
              defaultBranch: existed?.defaultBranch ?? null,
              refStateHash: null,
            });
            if (!existed) engine.request(data.repositoryId, seenAt);
          }
        }
        break;
      case 'repository.deleted':
        if (data.repositoryId && (await catalog.repository(data.repositoryId))) await this.dropRepository(data.repositoryId);
        break;
      case 'project.created':
      case 'project.updated':
        if (data.projectId && typeof data.key === 'string') await catalog.upsertProject({ id: data.projectId, key: data.key, name: String(data.name ?? data.key), public: !!data.public });
        break;
      case 'project.deleted':
        if (data.projectId) for (const id of await catalog.removeProject(data.projectId)) await this.deps.engine.remove(id);
        break;
      case 'mirror.updated': {
        // An administrator changed what this mirror carries: drop what left the selection at once (an
        // explicit instruction, not subject to the purge guard), then fetch what was added.
        const ids = Array.isArray(data.projectIds) ? (data.projectIds as number[]) : [];
        if (data.mirroringMode === 'SELECTED_PROJECTS') {
          for (const pid of await catalog.projectIds()) {
            if (!ids.includes(pid)) for (const id of await catalog.removeProject(pid)) await this.deps.engine.remove(id);
          }
        }
        await this.snapshot();
        break;
      }
      case 'mirror.web_session_ended':
        // A user signed out on some node of this farm: no node may keep honouring that session.
        if (typeof data.sessionId === 'number') auth.webSessionEnded(data.sessionId);
        break;
      case 'mirror.deleted':
      case 'mirror.rejected':
        this.refused(new MirrorfarmError(data.type === 'mirror.deleted' ? 'MIRROR_REMOVED' : 'MIRROR_REJECTED', 403, 'removed'));
        break;
    }
    if (message.id !== undefined) await this.advance(message.id);
  }

  private async ensureProject(projectId: number, key: unknown): Promise<void> {
    const known = (await this.deps.catalog.projectIds()).includes(projectId);
    if (!known && typeof key === 'string') await this.deps.catalog.upsertProject({ id: projectId, key, name: key, public: false });
    else if (!known) await this.snapshot();
  }

  /** Called with every sync result: remembered for the next report to the primary. */
  onSyncResult(result: SyncResult): void {
    this.reportQueue.set(result.repositoryId, result);
    this.evaluate();
  }

  private evaluate(): void {
    if (this.removed() || this.state === 'ERROR' || this.state === 'PENDING' || this.state === 'INITIALIZING') return;
    // Called after every sync result: while work is queued or a pass runs the answer is known without reading
    // the catalog, and otherwise one indexed query answers it (reading every row here cost O(repositories)
    // per result, O(n^2) over an initial sync).
    // Only the first pass after start holds the state back: a routine pass that finds nothing to repair must not
    // make an in-sync node report not ready (what it finds drifted shows up in engine.pending()).
    const firstPassRunning = !!this.snapshotRunning && this.passesDone === 0;
    if (this.deps.engine.pending() > 0 || firstPassRunning) {
      this.setState('SYNCHRONIZING');
      return;
    }
    void this.deps.catalog.allSynced().then((allSynced) => {
      const inSync = this.deps.engine.pending() === 0 && allSynced && !(this.snapshotRunning && this.passesDone === 0);
      // SYNCHRONIZED also means counted by the farm: a node that is in sync but not (yet, or no longer) a member
      // of the active set serves nothing the balancer should send it.
      if (!this.removed()) this.setState(inSync && this.member.established() ? 'SYNCHRONIZED' : 'SYNCHRONIZING');
    });
  }

  private async tick(): Promise<void> {
    this.deps.metrics.lag.set(this.lagSeconds());
    this.evaluate();
    if (this.deps.engine.awaiting() > 0 && !this.reannouncing) {
      this.reannouncing = true;
      void this.deps.engine.reannounceStale().finally(() => (this.reannouncing = false));
    }
    // Results are reported as they come; otherwise a heartbeat every 5 s carries lag and state.
    if (this.reporting || this.removed() || (this.reportQueue.size === 0 && Date.now() - this.lastReport < 5000)) return;
    this.reporting = true;
    this.lastReport = Date.now();
    const batch = [...this.reportQueue.values()];
    this.reportQueue.clear();
    const outage = this.deps.health.report().lastOutage;
    try {
      const answer = await this.deps.upstream.call<{ farm?: FarmSeen } | undefined>('POST', '/rest/mirroring/1.0/mirror/report', {
        cursor: this.cursor,
        version: VERSION,
        lagSeconds: this.lagSeconds(),
        state: this.state,
        sshUrlBase: this.deps.ownSshBase(),
        // The outage this node went through, told once the primary can hear it again (and on every report after).
        upstream: this.deps.health.report(),
        repositories: batch.map((r) => ({ id: r.repositoryId, status: r.status, refStateHash: r.refStateHash, ...(r.error ? { error: r.error } : {}) })),
      });
      if (answer?.farm) this.farmSeen = answer.farm;
      // This report ended an outage (its answer was the first contact): tell the primary about it at once.
      if (this.deps.health.report().lastOutage !== outage) this.lastReport = 0;
    } catch (err) {
      for (const r of batch) if (!this.reportQueue.has(r.repositoryId)) this.reportQueue.set(r.repositoryId, r);
      this.refused(err as MirrorfarmError);
    } finally {
      this.reporting = false;
    }
  }

  /** Why the last snapshot refused to delete, for /status. */
  guardMessage(): string | undefined {
    return this.deleteGuard;
  }
}
