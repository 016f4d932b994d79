// Web UI sign-ins: server-side session records and the cookie that names one. The browser holds only a random
// 256-bit id; the database keeps its SHA-256, so reading the database (or a backup of it) signs nobody in. A
// session ends after `web.sessionIdleMinutes` without a request and `web.sessionMaxHours` after it began,
// whichever comes first; signing in always makes a new id (an id planted before the sign-in is worth nothing).
// Each session has its own CSRF token, compared in constant time on every state-changing form.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Db } from '../store/database.js';

/**
 * `__Host-` makes the browser refuse the cookie unless it is Secure, for this host only and for every path. A
 * mirror's cookie has its own name: cookies ignore ports, so a primary and a mirror on one host (a laptop) would
 * otherwise overwrite each other's.
 */
export const sessionCookie = (mode: 'primary' | 'mirror') => (mode === 'primary' ? '__Host-mf_session' : '__Host-mf_mirror_session');
/** Before sign-in there is no session: the sign-in form is protected by a double-submit cookie instead. */
export const LOGIN_CSRF_COOKIE = '__Host-mf_login';

/** Touching last_seen_at on every request would write once per page; once a minute is exact enough for an idle timeout. */
const TOUCH_EVERY_MS = 60_000;

export interface WebSession {
  /** The cookie's value; never stored. */
  id: string;
  userId: number;
  userName: string;
  csrfToken: string;
  createdAt: number;
  lastSeenAt: number;
}

export interface SessionTimeouts {
  idleMs: number;
  maxMs: number;
}

const hash = (id: string) => createHash('sha256').update(id).digest('hex');
export const randomToken = () => randomBytes(32).toString('base64url');

/** Constant-time comparison of two secrets of any length (a length mismatch is no shortcut either). */
export function sameSecret(a: string | undefined, b: string | undefined): boolean {
  if (typeof a !== 'string' || typeof b !== 'string' || !a || !b) return false;
  const x = createHash('sha256').update(a).digest();
  const y = createHash('sha256').update(b).digest();
  return timingSafeEqual(x, y) && a.length === b.length;
}

export class WebSessions {
  constructor(
    private readonly db: Db,
    private readonly timeouts: SessionTimeouts,
    private readonly clock: () => number = Date.now,
  ) {}

  async create(user: { id: number; name: string }): Promise<WebSession> {
    const now = this.clock();
    const session: WebSession = { id: randomToken(), userId: user.id, userName: user.name, csrfToken: randomToken(), createdAt: now, lastSeenAt: now };
    await this.db
      .insertInto('web_sessions')
      .values({ id_hash: hash(session.id), user_id: user.id, user_name: user.name, csrf_token: session.csrfToken, created_at: now, last_seen_at: now })
      .execute();
    return session;
  }

  /** The live session with this id, touched; an expired one is deleted and not returned. */
  async find(id: string | undefined): Promise<WebSession | undefined> {
    if (!id || id.length > 100) return undefined;
    const idHash = hash(id);
    const row = await this.db.selectFrom('web_sessions').selectAll().where('id_hash', '=', idHash).executeTakeFirst();
    if (!row) return undefined;
    const now = this.clock();
    if (now - Number(row.last_seen_at) > this.timeouts.idleMs || now - Number(row.created_at) > this.timeouts.maxMs) {
      await this.db.deleteFrom('web_sessions').where('id_hash', '=', idHash).execute();
      return undefined;
    }
    if (now - Number(row.last_seen_at) > TOUCH_EVERY_MS) await this.db.updateTable('web_sessions').set({ last_seen_at: now }).where('id_hash', '=', idHash).execute();
    return { id, userId: row.user_id, userName: row.user_name, csrfToken: row.csrf_token, createdAt: Number(row.created_at), lastSeenAt: now };
  }

  async destroy(id: string): Promise<void> {
    await this.db.deleteFrom('web_sessions').where('id_hash', '=', hash(id)).execute();
  }

  /** Ends every session of a user; returns how many. */
  async destroyForUser(userId: number): Promise<number> {
    const result = await this.db.deleteFrom('web_sessions').where('user_id', '=', userId).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /** Deletes sessions past either timeout; returns how many. */
  async prune(): Promise<number> {
    const now = this.clock();
    const result = await this.db
      .deleteFrom('web_sessions')
      .where((eb) => eb.or([eb('last_seen_at', '<', now - this.timeouts.idleMs), eb('created_at', '<', now - this.timeouts.maxMs)]))
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}

/** The value of one cookie of the request, if sent. */
export function cookieOf(request: FastifyRequest, name: string): string | undefined {
  const header = request.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

/**
 * HttpOnly (no script reads it), Secure (HTTPS only), SameSite=Lax (not sent with cross-site form posts, still
 * sent when a link from elsewhere is followed, so a deep link from a mirror arrives signed in).
 */
export function setCookie(reply: FastifyReply, name: string, value: string, options: { maxAgeSeconds?: number; sameSite?: 'Lax' | 'Strict' } = {}): void {
  const parts = [`${name}=${encodeURIComponent(value)}`, 'Path=/', 'HttpOnly', 'Secure', `SameSite=${options.sameSite ?? 'Lax'}`];
  if (options.maxAgeSeconds !== undefined) parts.push(`Max-Age=${options.maxAgeSeconds}`);
  const existing = reply.getHeader('set-cookie');
  const list = existing === undefined ? [] : Array.isArray(existing) ? existing.map(String) : [String(existing)];
  reply.header('set-cookie', [...list, parts.join('; ')]);
}

export function clearCookie(reply: FastifyReply, name: string): void {
  setCookie(reply, name, '', { maxAgeSeconds: 0 });
}
