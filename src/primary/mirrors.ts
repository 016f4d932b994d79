// The primary's registry of mirrors: registration requests, authorization with a project selection, deletion,
// and what each mirror's nodes report. A mirror is identified by its ed25519 key; while it is ACTIVE that key
// may call the mirroring REST API (signed tokens) and fetch over SSH, read-only and only in its projects.
// Every change is logged, so streams, SSH sessions and the mirror itself learn of it at once.
import { Errors, MirrorfarmError } from '../errors.js';
import type { EventLog } from '../events/log.js';
import { claimedMirrorId, keyBlob, mirrorIdFor, ReplayGuard, verifyMirrorToken } from '../auth/mirror-token.js';
import { fingerprintOf } from '../domain/users.js';
import type { Db } from '../store/database.js';
import type { Mirror } from '../store/tables.js';
import { checkIdentity, farmSshUrlBase, initialIdentity } from './farm-identity.js';
import type { SshUrlBase } from './mirror-state.js';
import { DEFAULT_NODE_OFFLINE_SECONDS } from './node-status.js';

export type MirroringMode = 'ALL_PROJECTS' | 'SELECTED_PROJECTS';

export interface RegistrationRequest {
  name: string;
  baseUrl: string;
  publicKey: string;
  productVersion: string;
  /** The node's SSH host keys (OpenSSH public keys); absent from nodes that do not tell. */
  sshHostKeys?: string[];
  /** Where the node's SSH clone URLs point. */
  sshUrlBase?: SshUrlBase;
}

export interface AuthenticatedMirror {
  mirror: Mirror;
  nodeId: string;
}

const notFound = (id: string) => new MirrorfarmError('MIRROR_NOT_FOUND', 404, `Mirror ${id} does not exist.`);

export class MirrorRegistry {
  private readonly replay = new ReplayGuard();

  constructor(
    private readonly db: Db,
    private readonly events: EventLog,
    /** The primary's base URL: the audience every mirror token must name. */
    private readonly audience: () => string,
    private readonly options: { nodeOfflineMs: number } = { nodeOfflineMs: DEFAULT_NODE_OFFLINE_SECONDS * 1000 },
  ) {}

  async get(id: string): Promise<Mirror | undefined> {
    return this.db.selectFrom('mirrors').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async require(id: string): Promise<Mirror> {
    const mirror = await this.get(id);
    if (!mirror) throw notFound(id);
    return mirror;
  }

  async list(states: Mirror['state'][]): Promise<Mirror[]> {
    return this.db.selectFrom('mirrors').selectAll().where('state', 'in', states).orderBy('created_at').execute();
  }

  /**
   * A mirror node asks to be authorized. Idempotent for a pending or active mirror (a restart or a second farm
   * node asks again), as long as the node presents its farm's identity (farm-identity.ts); a rejected or
   * deleted mirror starts a new request.
   */
  async register(request: RegistrationRequest, token: string): Promise<Mirror> {
    const id = mirrorIdFor(request.publicKey);
    // Proof of possession: the request must be signed by the key it registers.
    const { nodeId } = await verifyMirrorToken(token, request.publicKey, this.audience(), this.replay);
    if (!/^https:\/\//.test(request.baseUrl)) throw Errors.invalid('The mirror base URL must be an https:// URL.');
    const node = { nodeId, baseUrl: request.baseUrl.replace(/\/+$/, ''), ...(request.sshHostKeys ? { sshHostKeys: request.sshHostKeys } : {}), ...(request.sshUrlBase ? { sshUrlBase: request.sshUrlBase } : {}) };
    const now = Date.now();
    // One transaction: two nodes of a new farm registering at once cannot both fix the farm's identity.
    const refreshed = await this.db.transaction().execute(async (trx) => {
      const existing = await trx.selectFrom('mirrors').selectAll().where('id', '=', id).executeTakeFirst();
      if (!existing || (existing.state !== 'PENDING' && existing.state !== 'ACTIVE')) return undefined;
      // Other nodes of the farm in contact are what a node must agree with.
      const others = await trx
        .selectFrom('mirror_nodes')
        .select('node_id')
        .where('mirror_id', '=', id)
        .where('node_id', '!=', nodeId)
        .where('last_seen_at', '>=', now - this.options.nodeOfflineMs)
        .executeTakeFirst();
      const identity = checkIdentity(existing, node, others !== undefined, now);
      await trx
        .updateTable('mirrors')
        .set({ name: request.name, product_version: request.productVersion, last_seen_at: now, ...identity })
        .where('id', '=', id)
        .execute();
      return trx.selectFrom('mirrors').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    });
    if (refreshed) return refreshed;
    // A new mirror: a base URL is one mirror's. Another key behind the same URL is a farm node with the wrong key.
    const publicKey = request.publicKey.trim().split(/\s+/).slice(0, 2).join(' ');
    const fingerprint = fingerprintOf(keyBlob(request.publicKey));
    const other = await this.db
      .selectFrom('mirrors')
      .selectAll()
      .where('base_url', '=', node.baseUrl)
      .where('state', 'in', ['PENDING', 'ACTIVE'])
      .where('id', '!=', id)
      .executeTakeFirst();
    if (other) throw Errors.mirrorIdentityMismatch(node.baseUrl, id, fingerprint, other.id, other.fingerprint);
    const existing = await this.get(id);
    return this.events.transact(async (trx) => {
      const row = {
        id,
        name: request.name,
        base_url: node.baseUrl,
        public_key: publicKey,
        fingerprint,
        product_version: request.productVersion,
        state: 'PENDING' as const,
        mirroring_mode: 'SELECTED_PROJECTS' as const,
        created_at: now,
        updated_at: now,
        last_seen_at: now,
        ...initialIdentity(node, now),
      };
      if (existing) {
        await trx.updateTable('mirrors').set(row).where('id', '=', id).execute();
        await trx.deleteFrom('mirror_projects').where('mirror_id', '=', id).execute();
      } else {
        await trx.insertInto('mirrors').values(row).execute();
      }
      return { result: { ...row }, events: [{ type: 'mirror.requested', data: { mirrorId: id, name: row.name, baseUrl: row.base_url, fingerprint: row.fingerprint } }] };
    });
  }

  /**
   * Opens the farm's identity again (an administrator rotates the host keys or moves the farm): the next node to
   * register fixes it. Running nodes are not affected; clone links keep the current base URL until then.
   */
  async resetIdentity(id: string): Promise<Mirror> {
    const mirror = await this.require(id);
    if (mirror.state !== 'PENDING' && mirror.state !== 'ACTIVE') throw Errors.conflict(`Mirror ${id} is ${mirror.state}; it has no farm identity to reset.`);
    await this.db
      .updateTable('mirrors')
      .set({ ssh_host_keys: null, ssh_url_base: null, identity_fixed_at: null, identity_node_id: null, updated_at: Date.now() })
      .where('id', '=', id)
      .execute();
    return this.require(id);
  }

  /**
   * A node reported where its SSH clone URLs point. Kept only when the farm's identity is fixed without one (its
   * first node did not say, e.g. an older version); otherwise the farm's stays, whatever a node reports.
   */
  async adoptSshUrlBase(mirror: Mirror, base: SshUrlBase): Promise<void> {
    if (mirror.identity_fixed_at === null || farmSshUrlBase(mirror)) return;
    await this.db.updateTable('mirrors').set({ ssh_url_base: JSON.stringify(base) }).where('id', '=', mirror.id).where('ssh_url_base', 'is', null).execute();
  }

  async accept(id: string, mode: MirroringMode, projectIds: number[]): Promise<Mirror> {
    const mirror = await this.require(id);
    if (mirror.state !== 'PENDING') throw Errors.conflict(`Mirror ${id} is ${mirror.state}, not waiting for authorization.`);
    return this.changeSelection(mirror, mode, projectIds, 'mirror.accepted');
  }

  async setMode(id: string, mode: MirroringMode, projectIds?: number[]): Promise<Mirror> {
    const mirror = await this.requireActive(id);
    return this.changeSelection(mirror, mode, projectIds ?? (await this.projectIds(id)), 'mirror.updated');
  }

  async addProject(id: string, projectId: number): Promise<Mirror> {
    const mirror = await this.requireActive(id);
    return this.changeSelection(mirror, mirror.mirroring_mode, [...new Set([...(await this.projectIds(id)), projectId])], 'mirror.updated');
  }

  async removeProject(id: string, projectId: number): Promise<Mirror> {
    const mirror = await this.requireActive(id);
    return this.changeSelection(mirror, mirror.mirroring_mode, (await this.projectIds(id)).filter((p) => p !== projectId), 'mirror.updated');
  }

  private async requireActive(id: string): Promise<Mirror> {
    const mirror = await this.require(id);
    if (mirror.state !== 'ACTIVE') throw Errors.conflict(`Mirror ${id} is ${mirror.state}; authorize it first.`);
    return mirror;
  }

  private async changeSelection(mirror: Mirror, mode: MirroringMode, projectIds: number[], type: 'mirror.accepted' | 'mirror.updated'): Promise<Mirror> {
    if (mode !== 'ALL_PROJECTS' && mode !== 'SELECTED_PROJECTS') throw Errors.invalid('mirroringMode must be ALL_PROJECTS or SELECTED_PROJECTS.');
    return this.events.transact(async (trx) => {
      const ids = [...new Set(projectIds)];
      if (ids.length) {
        const found = await trx.selectFrom('projects').select('id').where('id', 'in', ids).execute();
        if (found.length !== ids.length) throw Errors.invalid('Some of the selected projects do not exist.');
      }
      await trx.deleteFrom('mirror_projects').where('mirror_id', '=', mirror.id).execute();
      if (ids.length) await trx.insertInto('mirror_projects').values(ids.map((project_id) => ({ mirror_id: mirror.id, project_id }))).execute();
      await trx.updateTable('mirrors').set({ state: 'ACTIVE', mirroring_mode: mode, updated_at: Date.now() }).where('id', '=', mirror.id).execute();
      return {
        result: { ...mirror, state: 'ACTIVE' as const, mirroring_mode: mode },
        events: [{ type, data: { mirrorId: mirror.id, mirroringMode: mode, projectIds: ids.sort((a, b) => a - b) } }],
      };
    });
  }

  async reject(id: string): Promise<void> {
    const mirror = await this.require(id);
    if (mirror.state !== 'PENDING') throw Errors.conflict(`Mirror ${id} is ${mirror.state}; only pending requests can be rejected.`);
    await this.end(mirror, 'REJECTED', 'mirror.rejected');
  }

  /** Cuts the mirror off at once: its key stops working for REST and SSH, and its streams and sessions close. */
  async remove(id: string): Promise<void> {
    const mirror = await this.require(id);
    if (mirror.state === 'DELETED') return;
    await this.end(mirror, 'DELETED', 'mirror.deleted');
  }

  private async end(mirror: Mirror, state: 'REJECTED' | 'DELETED', type: 'mirror.rejected' | 'mirror.deleted'): Promise<void> {
    await this.events.transact(async (trx) => {
      await trx.updateTable('mirrors').set({ state, updated_at: Date.now() }).where('id', '=', mirror.id).execute();
      await trx.deleteFrom('mirror_projects').where('mirror_id', '=', mirror.id).execute();
      await trx.deleteFrom('mirror_nodes').where('mirror_id', '=', mirror.id).execute();
      await trx.deleteFrom('mirror_repo_states').where('mirror_id', '=', mirror.id).execute();
      // Its users' web sign-ins end with it (a mirror registered again with the same key starts without them).
      await trx.deleteFrom('mirror_web_sessions').where('mirror_id', '=', mirror.id).execute();
      return { result: undefined, events: [{ type, data: { mirrorId: mirror.id } }] };
    });
  }

  async projectIds(id: string): Promise<number[]> {
    const rows = await this.db.selectFrom('mirror_projects').select('project_id').where('mirror_id', '=', id).orderBy('project_id').execute();
    return rows.map((r) => r.project_id);
  }

  /** Whether an active mirror carries a project. */
  async carries(mirror: Mirror, projectId: number): Promise<boolean> {
    if (mirror.state !== 'ACTIVE') return false;
    if (mirror.mirroring_mode === 'ALL_PROJECTS') return true;
    const row = await this.db.selectFrom('mirror_projects').select('project_id').where('mirror_id', '=', mirror.id).where('project_id', '=', projectId).executeTakeFirst();
    return row !== undefined;
  }

  /**
   * Authenticates a mirror's REST call. `allow` lists the states that may call (registration status polling
   * is allowed while PENDING); anything else is told plainly what happened to it.
   */
  async authenticate(authorization: string | undefined, allow: Mirror['state'][] = ['ACTIVE']): Promise<AuthenticatedMirror> {
    const token = authorization?.startsWith('Bearer ') ? authorization.slice(7).trim() : undefined;
    if (!token) throw new MirrorfarmError('MIRROR_TOKEN_MISSING', 401, 'Mirror calls need a signed mirror token in "Authorization: Bearer ...".');
    const id = claimedMirrorId(token);
    const mirror = id ? await this.get(id) : undefined;
    if (!mirror) throw new MirrorfarmError('MIRROR_UNKNOWN', 401, 'This mirror is not registered with the primary; restart it to send a registration request.');
    const verified = await verifyMirrorToken(token, mirror.public_key, this.audience(), this.replay);
    if (!allow.includes(mirror.state)) {
      if (mirror.state === 'DELETED') throw new MirrorfarmError('MIRROR_REMOVED', 403, 'This mirror was deleted on the primary; it no longer has access.');
      if (mirror.state === 'REJECTED') throw new MirrorfarmError('MIRROR_REJECTED', 403, 'The registration of this mirror was rejected on the primary.');
      throw new MirrorfarmError('MIRROR_NOT_AUTHORIZED', 403, 'This mirror is waiting for an administrator to authorize it on the primary.');
    }
    const now = Date.now();
    if ((mirror.last_seen_at ?? 0) < now - 5000) await this.db.updateTable('mirrors').set({ last_seen_at: now }).where('id', '=', mirror.id).execute();
    return { mirror, nodeId: verified.nodeId };
  }

  /** The active mirror holding this SSH key, if any. */
  async activeByKeyBlob(blob: Buffer): Promise<Mirror | undefined> {
    return this.db.selectFrom('mirrors').selectAll().where('fingerprint', '=', fingerprintOf(blob)).where('state', '=', 'ACTIVE').executeTakeFirst();
  }
}
