// Users, their SSH keys and personal access tokens. Every change that affects what someone may do is logged
// as an event (mirrors drop cached answers on it); no event carries a secret.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import ssh2 from 'ssh2';
import { Level, PERMISSION_LEVELS } from '../access/authorize.js';
import { hashPassword, verifyAgainstDummy, verifyPassword } from '../auth/passwords.js';
import { Errors } from '../errors.js';
import type { EventLog } from '../events/log.js';
import type { Db } from '../store/database.js';
import type { AccessToken, SshKey, User } from '../store/tables.js';
import { isSysadmin } from './groups.js';
import { columnContains } from './like.js';

const USER_NAME = /^[a-z0-9][a-z0-9._@+-]{0,63}$/;
const MIN_PASSWORD = 8;

export function normalizeUserName(name: string): string {
  const lower = name.trim().toLowerCase();
  if (!USER_NAME.test(lower)) throw Errors.invalid(`"${name}" is not a valid user name: use 1-64 letters, digits, ".", "_", "@", "+" or "-", starting with a letter or digit.`);
  return lower;
}

function checkPassword(password: string): void {
  if (password.length < MIN_PASSWORD) throw Errors.invalid(`The password must have at least ${MIN_PASSWORD} characters.`);
}

export interface ParsedKey {
  algorithm: string;
  publicKey: string;
  fingerprint: string;
  comment: string;
}

/** Parses an OpenSSH public key line ("ssh-ed25519 AAAA... comment"). */
export function parsePublicKey(text: string): ParsedKey {
  const trimmed = text.trim();
  const parsed = ssh2.utils.parseKey(trimmed);
  if (parsed instanceof Error || Array.isArray(parsed) || parsed.isPrivateKey()) {
    throw Errors.invalid('The SSH key is not a valid OpenSSH public key: paste one line such as "ssh-ed25519 AAAA... you@host" (the contents of ~/.ssh/id_ed25519.pub).');
  }
  const blob = parsed.getPublicSSH();
  return {
    algorithm: parsed.type,
    publicKey: `${parsed.type} ${blob.toString('base64')}`,
    fingerprint: fingerprintOf(blob),
    comment: trimmed.split(/\s+/).slice(2).join(' '),
  };
}

export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

const TOKEN_FORMAT = /^mft_(\d{1,15})_([A-Za-z0-9_-]{43})$/;

function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

export class Users {
  constructor(
    private readonly db: Db,
    private readonly events: EventLog,
  ) {}

  async byName(name: string): Promise<User | undefined> {
    return this.db.selectFrom('users').selectAll().where('name', '=', name.toLowerCase()).executeTakeFirst();
  }

  async byId(id: number): Promise<User | undefined> {
    return this.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** The user's own SYS_ADMIN flag, or membership of a group that holds SYS_ADMIN. */
  async isSysadmin(user: User): Promise<boolean> {
    return isSysadmin(this.db, user);
  }

  async require(name: string): Promise<User> {
    const user = await this.byName(name);
    if (!user) throw Errors.userNotFound(name);
    return user;
  }

  async list(filter: string | undefined, start: number, limit: number): Promise<User[]> {
    let q = this.db.selectFrom('users').selectAll().orderBy('name').offset(start).limit(limit);
    if (filter) q = q.where((eb) => eb.or([eb('name', 'like', `%${filter.toLowerCase()}%`), eb('display_name', 'like', `%${filter}%`)]));
    return q.execute();
  }

  /**
   * A page of users ordered by name; `filter` matches name, display name or e-mail address anywhere, case
   * insensitively, with LIKE wildcards taken literally.
   */
  async page(options: { filter?: string; sysadminOnly?: boolean }, offset: number, limit: number): Promise<User[]> {
    let q = this.db.selectFrom('users').selectAll().orderBy('name').offset(offset).limit(limit);
    if (options.sysadminOnly) q = q.where('is_sysadmin', '=', 1);
    if (options.filter) {
      const text = options.filter;
      q = q.where(({ or }) => or([columnContains('name', text), columnContains('display_name', text), columnContains('email', text)]));
    }
    return q.execute();
  }

  async create(input: { name: string; displayName?: string; email?: string | null; password?: string; sysadmin?: boolean }): Promise<User> {
    const name = normalizeUserName(input.name);
    if (input.password !== undefined) checkPassword(input.password);
    const password_hash = input.password === undefined ? null : await hashPassword(input.password);
    return this.events.transact(async (trx) => {
      const exists = await trx.selectFrom('users').select('id').where('name', '=', name).executeTakeFirst();
      if (exists) throw Errors.conflict(`A user named "${name}" already exists.`);
      const user = await trx
        .insertInto('users')
        .values({ name, display_name: input.displayName?.trim() || name, email: input.email ?? null, password_hash, is_sysadmin: input.sysadmin ? 1 : 0, active: 1, created_at: Date.now() })
        .returningAll()
        .executeTakeFirstOrThrow();
      return { result: user, events: [{ type: 'user.created', data: { userId: user.id, name, sysadmin: !!input.sysadmin } }] };
    });
  }

  async update(name: string, changes: { displayName?: string; email?: string | null; sysadmin?: boolean; active?: boolean }): Promise<User> {
    const user = await this.require(name);
    return this.events.transact(async (trx) => {
      const updated = await trx
        .updateTable('users')
        .set({
          ...(changes.displayName !== undefined ? { display_name: changes.displayName } : {}),
          ...(changes.email !== undefined ? { email: changes.email } : {}),
          ...(changes.sysadmin !== undefined ? { is_sysadmin: changes.sysadmin ? 1 : 0 } : {}),
          ...(changes.active !== undefined ? { active: changes.active ? 1 : 0 } : {}),
        })
        .where('id', '=', user.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      return { result: updated, events: [{ type: 'user.updated', data: { userId: user.id, name: user.name, sysadmin: !!updated.is_sysadmin, active: !!updated.active } }] };
    });
  }

  async setPassword(name: string, password: string): Promise<void> {
    checkPassword(password);
    const user = await this.require(name);
    const password_hash = await hashPassword(password);
    await this.events.transact(async (trx) => {
      await trx.updateTable('users').set({ password_hash }).where('id', '=', user.id).execute();
      return { result: undefined, events: [{ type: 'user.updated', data: { userId: user.id, name: user.name, credentials: 'password' } }] };
    });
  }

  async remove(name: string): Promise<void> {
    const user = await this.require(name);
    await this.events.transact(async (trx) => {
      await trx.deleteFrom('users').where('id', '=', user.id).execute();
      return { result: undefined, events: [{ type: 'user.deleted', data: { userId: user.id, name: user.name } }] };
    });
  }

  /** What goes with a user when they are deleted: how many keys, tokens, permissions and group memberships. */
  async holdings(user: User): Promise<{ keys: number; tokens: number; grants: number; groups: number }> {
    const count = async (table: 'ssh_keys' | 'access_tokens' | 'permissions' | 'group_members') =>
      Number((await this.db.selectFrom(table).select((eb) => eb.fn.countAll().as('n')).where('user_id', '=', user.id).executeTakeFirstOrThrow()).n);
    return { keys: await count('ssh_keys'), tokens: await count('access_tokens'), grants: await count('permissions'), groups: await count('group_members') };
  }

  /** Checks a password in constant time per attempt; unknown and inactive users cost the same as wrong passwords. */
  async verifyPassword(name: string, password: string): Promise<User | undefined> {
    const user = USER_NAME.test(name.toLowerCase()) ? await this.byName(name) : undefined;
    if (!user?.password_hash) return verifyAgainstDummy(password).then(() => undefined);
    const ok = await verifyPassword(password, user.password_hash);
    return ok && user.active ? user : undefined;
  }

  // --- SSH keys -------------------------------------------------------------------------------------------

  async keys(userId: number): Promise<SshKey[]> {
    return this.db.selectFrom('ssh_keys').selectAll().where('user_id', '=', userId).orderBy('id').execute();
  }

  async keyById(id: number): Promise<SshKey | undefined> {
    return this.db.selectFrom('ssh_keys').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async addKey(user: User, text: string, label?: string): Promise<SshKey> {
    const key = parsePublicKey(text);
    return this.events.transact(async (trx) => {
      const taken = await trx.selectFrom('ssh_keys').select('id').where('fingerprint', '=', key.fingerprint).executeTakeFirst();
      if (taken) throw Errors.conflict('This SSH key is already registered. A key can belong to one user only; generate a new key pair.');
      const row = await trx
        .insertInto('ssh_keys')
        .values({ user_id: user.id, label: label?.trim() || key.comment, algorithm: key.algorithm, public_key: key.publicKey, fingerprint: key.fingerprint, created_at: Date.now() })
        .returningAll()
        .executeTakeFirstOrThrow();
      return { result: row, events: [{ type: 'ssh_key.added', data: { keyId: row.id, userId: user.id, fingerprint: key.fingerprint } }] };
    });
  }

  async removeKey(key: SshKey): Promise<void> {
    await this.events.transact(async (trx) => {
      await trx.deleteFrom('ssh_keys').where('id', '=', key.id).execute();
      return { result: undefined, events: [{ type: 'ssh_key.removed', data: { keyId: key.id, userId: key.user_id, fingerprint: key.fingerprint } }] };
    });
  }

  async userByKeyBlob(blob: Buffer): Promise<{ user: User; key: SshKey } | undefined> {
    const key = await this.db.selectFrom('ssh_keys').selectAll().where('fingerprint', '=', fingerprintOf(blob)).executeTakeFirst();
    if (!key) return undefined;
    const user = await this.byId(key.user_id);
    return user && user.active ? { user, key } : undefined;
  }

  // --- Personal access tokens -----------------------------------------------------------------------------

  async tokens(userId: number): Promise<AccessToken[]> {
    return this.db.selectFrom('access_tokens').selectAll().where('user_id', '=', userId).orderBy('id').execute();
  }

  async tokenById(userId: number, id: number): Promise<AccessToken | undefined> {
    return this.db.selectFrom('access_tokens').selectAll().where('user_id', '=', userId).where('id', '=', id).executeTakeFirst();
  }

  /** Creates a token; the returned secret is shown once and only its hash is kept. */
  async createToken(user: User, input: { name: string; permissions: string[]; expiryDays?: number | null }): Promise<{ token: AccessToken; secret: string }> {
    if (!input.name?.trim()) throw Errors.invalid('A token needs a name.');
    const permissions = [...new Set(input.permissions)];
    if (permissions.length === 0) throw Errors.invalid('A token needs at least one permission, e.g. ["REPO_READ"] or ["PROJECT_READ","REPO_WRITE"].');
    for (const p of permissions) {
      if (!PERMISSION_LEVELS[p]) throw Errors.invalid(`Unknown token permission "${p}": use PROJECT_READ, PROJECT_WRITE, PROJECT_ADMIN, REPO_READ, REPO_WRITE or REPO_ADMIN.`);
    }
    if (input.expiryDays != null && (!Number.isInteger(input.expiryDays) || input.expiryDays < 1)) throw Errors.invalid('expiryDays must be a whole number of days, at least 1.');
    const secret = randomBytes(32).toString('base64url');
    const now = Date.now();
    return this.events.transact(async (trx) => {
      const token = await trx
        .insertInto('access_tokens')
        .values({
          user_id: user.id,
          name: input.name.trim(),
          secret_hash: hashSecret(secret).toString('hex'),
          permissions: JSON.stringify(permissions),
          expires_at: input.expiryDays ? now + input.expiryDays * 86_400_000 : null,
          created_at: now,
          last_used_at: null,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return {
        result: { token, secret: `mft_${token.id}_${secret}` },
        events: [{ type: 'access_token.created', data: { tokenId: token.id, userId: user.id, permissions } }],
      };
    });
  }

  async updateToken(token: AccessToken, changes: { name?: string; permissions?: string[] }): Promise<AccessToken> {
    for (const p of changes.permissions ?? []) if (!PERMISSION_LEVELS[p]) throw Errors.invalid(`Unknown token permission "${p}".`);
    return this.events.transact(async (trx) => {
      const updated = await trx
        .updateTable('access_tokens')
        .set({ ...(changes.name ? { name: changes.name } : {}), ...(changes.permissions ? { permissions: JSON.stringify([...new Set(changes.permissions)]) } : {}) })
        .where('id', '=', token.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      return { result: updated, events: [{ type: 'access_token.revoked', data: { tokenId: token.id, userId: token.user_id, reason: 'updated' } }] };
    });
  }

  async revokeToken(token: AccessToken): Promise<void> {
    await this.events.transact(async (trx) => {
      await trx.deleteFrom('access_tokens').where('id', '=', token.id).execute();
      return { result: undefined, events: [{ type: 'access_token.revoked', data: { tokenId: token.id, userId: token.user_id } }] };
    });
  }

  /** Resolves a presented token; the secret part is compared in constant time. */
  async verifyToken(presented: string): Promise<{ user: User; token: AccessToken } | undefined> {
    const match = TOKEN_FORMAT.exec(presented);
    if (!match) return undefined;
    const token = await this.db.selectFrom('access_tokens').selectAll().where('id', '=', Number(match[1])).executeTakeFirst();
    if (!token) return undefined;
    const expected = Buffer.from(token.secret_hash, 'hex');
    const actual = hashSecret(match[2]!);
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) return undefined;
    if (token.expires_at !== null && token.expires_at <= Date.now()) return undefined;
    const user = await this.byId(token.user_id);
    if (!user?.active) return undefined;
    // Written at most once a minute, so that a busy CI token does not turn every fetch into a database write.
    if ((token.last_used_at ?? 0) < Date.now() - 60_000) {
      await this.db.updateTable('access_tokens').set({ last_used_at: Date.now() }).where('id', '=', token.id).execute();
    }
    return { user, token };
  }
}

/** The most a token allows, per scope. */
export function tokenCap(permissions: string[]): { project: Level; repository: Level } {
  const cap = { project: Level.NONE, repository: Level.NONE };
  for (const p of permissions) {
    const def = PERMISSION_LEVELS[p];
    if (def) cap[def.scope] = Math.max(cap[def.scope], def.level);
  }
  return cap;
}
