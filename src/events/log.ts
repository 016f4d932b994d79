// The durable, sequence-numbered event log: every ref change and every change that decides what a mirror may
// serve (repositories, projects, permissions, keys, tokens, users, groups). Events are appended inside the same
// database transaction as the change they describe, so the log has no gaps and no duplicates; sequence
// numbers are assigned as max+1 under the writer lock rather than by an auto-increment, which keeps them dense
// on databases whose sequences skip numbers on rollback.
import type { Transaction } from 'kysely';
import type { Db } from '../store/database.js';
import type { Database, EventRow } from '../store/tables.js';

export type EventType =
  | 'ref.updated'
  | 'repository.head_changed'
  | 'repository.created'
  | 'repository.updated'
  | 'repository.deleted'
  | 'project.created'
  | 'project.updated'
  | 'project.deleted'
  | 'permission.changed'
  | 'user.created'
  | 'user.updated'
  | 'user.deleted'
  | 'group.created'
  | 'group.deleted'
  | 'group.user_added'
  | 'group.user_removed'
  | 'ssh_key.added'
  | 'ssh_key.removed'
  | 'access_token.created'
  | 'access_token.revoked'
  | 'mirror.requested'
  | 'mirror.accepted'
  | 'mirror.updated'
  | 'mirror.rejected'
  | 'mirror.deleted'
  | 'mirror.web_session_ended';

export interface NewEvent {
  type: EventType;
  projectId?: number | null;
  repositoryId?: number | null;
  /** Event-specific fields. Never secrets. */
  data: Record<string, unknown>;
}

export interface LoggedEvent {
  id: number;
  type: EventType;
  createdDate: number;
  projectId: number | null;
  repositoryId: number | null;
  [field: string]: unknown;
}

export function toLoggedEvent(row: EventRow): LoggedEvent {
  return {
    ...(JSON.parse(row.data) as Record<string, unknown>),
    id: Number(row.seq),
    type: row.type as EventType,
    createdDate: Number(row.created_at),
    projectId: row.project_id,
    repositoryId: row.repository_id,
  };
}

export type EventListener = (events: LoggedEvent[]) => void;

export class EventLog {
  private readonly listeners = new Set<EventListener>();

  constructor(
    private readonly db: Db,
    private readonly retention: { days: number; maxEvents: number },
  ) {}

  /** Appends within the caller's transaction. Call `published` with the result after the commit. */
  async append(trx: Transaction<Database>, events: NewEvent[]): Promise<LoggedEvent[]> {
    if (events.length === 0) return [];
    const { last } = await trx.selectFrom('events').select((eb) => eb.fn.max('seq').as('last')).executeTakeFirstOrThrow();
    let seq = Number(last ?? 0);
    const now = Date.now();
    const rows = events.map((e) => ({
      seq: ++seq,
      created_at: now,
      type: e.type,
      project_id: e.projectId ?? null,
      repository_id: e.repositoryId ?? null,
      data: JSON.stringify(e.data),
    }));
    await trx.insertInto('events').values(rows).execute();
    return rows.map(toLoggedEvent);
  }

  /** Tells in-process subscribers (event streams) about events that are now committed. */
  published(events: LoggedEvent[]): void {
    if (events.length === 0) return;
    for (const listener of this.listeners) listener(events);
  }

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Runs `work` in a transaction, appends the events it returns, and publishes them after the commit. */
  async transact<T>(work: (trx: Transaction<Database>) => Promise<{ result: T; events: NewEvent[] }>): Promise<T> {
    const { result, logged } = await this.db.transaction().execute(async (trx) => {
      const { result, events } = await work(trx);
      return { result, logged: await this.append(trx, events) };
    });
    this.published(logged);
    return result;
  }

  async read(after: number, limit: number): Promise<LoggedEvent[]> {
    const rows = await this.db.selectFrom('events').selectAll().where('seq', '>', after).orderBy('seq').limit(limit).execute();
    return rows.map(toLoggedEvent);
  }

  async bounds(): Promise<{ first: number; last: number }> {
    const row = await this.db
      .selectFrom('events')
      .select((eb) => [eb.fn.min('seq').as('first'), eb.fn.max('seq').as('last')])
      .executeTakeFirstOrThrow();
    return { first: Number(row.first ?? 0), last: Number(row.last ?? 0) };
  }

  /** Drops events past retention, always keeping the newest so that numbering continues after it. */
  async prune(now = Date.now()): Promise<number> {
    const { last } = await this.bounds();
    if (last === 0) return 0;
    const cutoff = now - this.retention.days * 86_400_000;
    const result = await this.db
      .deleteFrom('events')
      .where('seq', '<', last)
      .where((eb) => eb.or([eb('created_at', '<', cutoff), eb('seq', '<=', last - this.retention.maxEvents)]))
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
