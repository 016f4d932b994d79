// Turns ref changes into events by comparing git's refs with the last state the log recorded (the "refs"
// table), under a per-repository lock. Because the log is derived from snapshots rather than from what a hook
// or git's output claims, old/new values are exact for force pushes and deletes, and a change made by any
// route (push over either transport, REST) is recorded once. Ref-changing git processes register a pending
// row first; rows left over by a crash are reconciled at startup.
import type { Transaction } from 'kysely';
import type { RepoStore, RefState } from '../git/repo-store.js';
import { ZERO_OID } from '../git/repo-store.js';
import { refStateHash } from '../git/ref-hash.js';
import type { Db } from '../store/database.js';
import type { Database } from '../store/tables.js';
import type { KeyedLock } from '../util/keyed-lock.js';
import type { EventLog, LoggedEvent, NewEvent } from './log.js';

export interface RefChangeCause {
  actor?: string;
  via?: 'http' | 'ssh' | 'rest' | 'reconcile';
}

export class RefRecorder {
  constructor(
    private readonly db: Db,
    private readonly events: EventLog,
    private readonly repos: RepoStore,
    private readonly lock: KeyedLock<number>,
  ) {}

  /** Durably notes that a git process may change this repository's refs. */
  async markPending(token: string, repositoryId: number): Promise<void> {
    await this.db
      .insertInto('pending_ref_changes')
      .values({ token, repository_id: repositoryId, created_at: Date.now() })
      .onConflict((oc) => oc.column('token').doNothing())
      .execute();
  }

  /** Runs a ref-changing operation under the repository's lock and records what it changed. */
  async change<T>(repositoryId: number, cause: RefChangeCause, operation: () => Promise<T>): Promise<T> {
    return this.lock.run(repositoryId, async () => {
      try {
        return await operation();
      } finally {
        await this.recordLocked(repositoryId, cause);
      }
    });
  }

  /** Records whatever changed since the last record, and clears the pending row of `token`. */
  async record(repositoryId: number, cause: RefChangeCause, token?: string): Promise<LoggedEvent[]> {
    return this.lock.run(repositoryId, () => this.recordLocked(repositoryId, cause, token));
  }

  private async recordLocked(repositoryId: number, cause: RefChangeCause, token?: string): Promise<LoggedEvent[]> {
    const repo = await this.db.selectFrom('repositories').select(['id', 'project_id']).where('id', '=', repositoryId).executeTakeFirst();
    if (!repo || !this.repos.exists(repositoryId)) {
      if (token) await this.db.deleteFrom('pending_ref_changes').where('token', '=', token).execute();
      return [];
    }
    const actual = await this.repos.readRefs(repositoryId);
    const logged = await this.db.transaction().execute(async (trx) => {
      const recorded = await loadRecorded(trx, repositoryId);
      const events = diffToEvents(recorded, actual, repo.project_id, repositoryId, cause);
      await applyProjection(trx, repositoryId, recorded, actual);
      await trx.updateTable('repositories').set({ ref_state_hash: refStateHash(actual) }).where('id', '=', repositoryId).execute();
      if (token) await trx.deleteFrom('pending_ref_changes').where('token', '=', token).execute();
      return this.events.append(trx, events);
    });
    this.events.published(logged);
    return logged;
  }

  /** After a crash: records the changes of git processes that ran while the server died. */
  async reconcilePending(): Promise<number> {
    const rows = await this.db.selectFrom('pending_ref_changes').select(['token', 'repository_id']).execute();
    for (const row of rows) await this.record(row.repository_id, { via: 'reconcile' }, row.token);
    return rows.length;
  }

  /** Sets the recorded state of a new repository without logging ref events (the creation event covers it). */
  async initialize(trx: Transaction<Database>, repositoryId: number, state: RefState): Promise<void> {
    await applyProjection(trx, repositoryId, new Map(), state);
    await trx.updateTable('repositories').set({ ref_state_hash: refStateHash(state) }).where('id', '=', repositoryId).execute();
  }
}

async function loadRecorded(trx: Transaction<Database>, repositoryId: number): Promise<RefState> {
  const rows = await trx.selectFrom('refs').select(['ref', 'target']).where('repository_id', '=', repositoryId).execute();
  return new Map(rows.map((r) => [r.ref, r.target]));
}

export function diffToEvents(before: RefState, after: RefState, projectId: number, repositoryId: number, cause: RefChangeCause): NewEvent[] {
  const names = [...new Set([...before.keys(), ...after.keys()])].filter((n) => n !== 'HEAD').sort();
  const base = { projectId, repositoryId };
  const extra = { ...(cause.actor ? { actor: cause.actor } : {}), ...(cause.via ? { via: cause.via } : {}) };
  const events: NewEvent[] = [];
  for (const ref of names) {
    const fromHash = before.get(ref) ?? ZERO_OID;
    const toHash = after.get(ref) ?? ZERO_OID;
    if (fromHash === toHash) continue;
    const changeType = fromHash === ZERO_OID ? 'ADD' : toHash === ZERO_OID ? 'DELETE' : 'UPDATE';
    events.push({ ...base, type: 'ref.updated', data: { refId: ref, fromHash, toHash, changeType, ...extra } });
  }
  const headBefore = before.get('HEAD');
  const headAfter = after.get('HEAD');
  if (headBefore !== headAfter) {
    const strip = (v: string | undefined) => (v?.startsWith('ref: ') ? v.slice(5) : null);
    events.push({ ...base, type: 'repository.head_changed', data: { from: strip(headBefore), to: strip(headAfter), ...extra } });
  }
  return events;
}

async function applyProjection(trx: Transaction<Database>, repositoryId: number, before: RefState, after: RefState): Promise<void> {
  const removed = [...before.keys()].filter((ref) => !after.has(ref));
  for (let i = 0; i < removed.length; i += 500) {
    await trx.deleteFrom('refs').where('repository_id', '=', repositoryId).where('ref', 'in', removed.slice(i, i + 500)).execute();
  }
  const changed = [...after].filter(([ref, target]) => before.get(ref) !== target).map(([ref, target]) => ({ repository_id: repositoryId, ref, target }));
  for (let i = 0; i < changed.length; i += 300) {
    await trx
      .insertInto('refs')
      .values(changed.slice(i, i + 300))
      .onConflict((oc) => oc.columns(['repository_id', 'ref']).doUpdateSet((eb) => ({ target: eb.ref('excluded.target') })))
      .execute();
  }
}
