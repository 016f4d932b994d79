// Web sign-ins on mirrors, kept by the primary. A farm's nodes share no state and its balancer has no affinity,
// so a session made on one node must stand on every other: the node asks the primary to open it (the password
// is checked here, with the same login throttle as everywhere), the primary hands back a random 256-bit secret
// that only the browser keeps (in its cookie; this table holds the SHA-256), and every node presents that secret
// with delegated authentication (`{type: "web-session"}`). The session is the mirror's: another mirror, or the
// primary's own pages, get nothing from it. It ends after the primary's `web.sessionIdleMinutes` without use and
// `web.sessionMaxHours` after it began, at sign-out (an event tells the mirror's nodes to drop what they cached),
// when the user is deactivated or deleted or changes their password, and when the mirror is deleted.
import { createHash, randomBytes } from 'node:crypto';
import type { Authenticator } from '../auth/authenticator.js';
import type { Users } from '../domain/users.js';
import { Errors } from '../errors.js';
import type { EventLog } from '../events/log.js';
import type { Db } from '../store/database.js';
import type { Mirror, User } from '../store/tables.js';

export interface SessionTimeouts {
  idleMs: number;
  maxMs: number;
}

export interface OpenedWebSession {
  /** Given once, to the node that opened the session, for the browser's cookie. */
  secret: string;
  id: number;
  user: { id: number; name: string };
  createdDate: number;
}

export interface VerifiedWebSession {
  id: number;
  user: User;
  createdDate: number;
}

/** Touching last_seen_at on every check would write once per page; once a minute is exact enough for an idle timeout. */
const TOUCH_EVERY_MS = 60_000;

const hash = (secret: string) => createHash('sha256').update(secret).digest('hex');
/** Changes whenever the password does (a new salt each time); reveals nothing of the hash it is made from. */
const passwordMark = (user: User) => createHash('sha256').update(`mirror-web-session\0${user.password_hash ?? ''}`).digest('hex');

export class MirrorWebSessions {
  constructor(
    private readonly db: Db,
    private readonly events: EventLog,
    private readonly authenticator: Authenticator,
    private readonly users: Users,
    private readonly timeouts: SessionTimeouts,
    private readonly clock: () => number = Date.now,
  ) {}

  get idleMs(): number {
    return this.timeouts.idleMs;
  }

  get maxMs(): number {
    return this.timeouts.maxMs;
  }

  /** Checks the password (throttled by the user's own address, which the node passes on) and opens a session. */
  async open(mirror: Mirror, username: string, password: string, clientAddress: string): Promise<OpenedWebSession> {
    // Tokens are for git and the REST API: a web session has the user's full rights, a token may have less.
    if (password.startsWith('mft_')) throw Errors.webTokenSignIn();
    if (!username || username.includes(':')) throw Errors.badCredentials();
    const header = `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
    const principal = await this.authenticator.fromAuthorizationHeader(header, { address: clientAddress });
    if (principal.kind !== 'user' || principal.via !== 'password') throw Errors.webTokenSignIn();
    const user = await this.users.byId(principal.userId);
    if (!user?.active) throw Errors.badCredentials();
    const secret = randomBytes(32).toString('base64url');
    const now = this.clock();
    const row = await this.db
      .insertInto('mirror_web_sessions')
      .values({ secret_hash: hash(secret), mirror_id: mirror.id, user_id: user.id, password_mark: passwordMark(user), created_at: now, last_seen_at: now })
      .returning('id')
      .executeTakeFirstOrThrow();
    return { secret, id: row.id, user: { id: user.id, name: user.name }, createdDate: now };
  }

  /**
   * The live session of this mirror with this secret, touched. Anything else (unknown, another mirror's, past a
   * timeout, its user deactivated or with a new password) is the same BAD_CREDENTIALS, and a dead row goes.
   */
  async verify(mirror: Mirror, secret: string): Promise<VerifiedWebSession> {
    if (!secret || secret.length > 100) throw Errors.badCredentials();
    const row = await this.db.selectFrom('mirror_web_sessions').selectAll().where('secret_hash', '=', hash(secret)).executeTakeFirst();
    // Another mirror's session is not touched, not ended: that mirror's user keeps it, this mirror learns nothing.
    if (!row || row.mirror_id !== mirror.id) throw Errors.badCredentials();
    const now = this.clock();
    const user = await this.users.byId(row.user_id);
    const expired = now - Number(row.last_seen_at) > this.timeouts.idleMs || now - Number(row.created_at) > this.timeouts.maxMs;
    if (expired || !user?.active || passwordMark(user) !== row.password_mark) {
      await this.db.deleteFrom('mirror_web_sessions').where('id', '=', row.id).execute();
      throw Errors.badCredentials();
    }
    if (now - Number(row.last_seen_at) > TOUCH_EVERY_MS) await this.db.updateTable('mirror_web_sessions').set({ last_seen_at: now }).where('id', '=', row.id).execute();
    return { id: row.id, user, createdDate: Number(row.created_at) };
  }

  /** Sign-out: the session ends for every node at once (they drop what they cached on the event). Idempotent. */
  async revoke(mirror: Mirror, secret: string): Promise<void> {
    if (!secret || secret.length > 100) return;
    await this.events.transact(async (trx) => {
      const row = await trx.selectFrom('mirror_web_sessions').select(['id', 'user_id']).where('secret_hash', '=', hash(secret)).where('mirror_id', '=', mirror.id).executeTakeFirst();
      if (!row) return { result: undefined, events: [] };
      await trx.deleteFrom('mirror_web_sessions').where('id', '=', row.id).execute();
      return { result: undefined, events: [{ type: 'mirror.web_session_ended', data: { mirrorId: mirror.id, sessionId: row.id, userId: row.user_id } }] };
    });
  }

  /** Deletes sessions past either timeout; returns how many. */
  async prune(): Promise<number> {
    const now = this.clock();
    const result = await this.db
      .deleteFrom('mirror_web_sessions')
      .where((eb) => eb.or([eb('last_seen_at', '<', now - this.timeouts.idleMs), eb('created_at', '<', now - this.timeouts.maxMs)]))
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
