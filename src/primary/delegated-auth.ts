// Delegated authentication: a mirror forwards the credentials a user presented to it (password or access token,
// or an SSH key whose signature the mirror verified itself) and the primary answers who that is and what they
// may read among the repositories asked about. The primary's own authenticator and policy decide; the answer is
// capped at READ (mirrors are read-only) and is NONE for repositories the mirror does not carry, so a mirror can
// never learn more than it may serve. A web session (web-sessions.ts) counts only for the mirror it was opened by.
import { effectiveLevel, Level, ANONYMOUS, type Principal } from '../access/authorize.js';
import { userPrincipal, type Authenticator } from '../auth/authenticator.js';
import type { Permissions } from '../domain/permissions.js';
import { parsePublicKey, type Users } from '../domain/users.js';
import { Errors, MirrorfarmError } from '../errors.js';
import type { Db } from '../store/database.js';
import type { Mirror } from '../store/tables.js';
import type { MirrorWebSessions } from './web-sessions.js';

export type DelegatedCredentials =
  | { type: 'basic'; username: string; password: string }
  | { type: 'ssh-key'; publicKey: string }
  | { type: 'web-session'; secret: string }
  | { type: 'anonymous' };

export interface DelegatedAnswer {
  user: { id: number; name: string; sysadmin: boolean } | null;
  access: Record<string, 'READ' | 'NONE'>;
  /** For web-session credentials: which session it is (named in mirror.web_session_ended) and when it began. */
  webSession?: { id: number; createdDate: number };
}

export const MAX_REPOSITORIES_PER_CALL = 1000;

export class DelegatedAuth {
  constructor(
    private readonly db: Db,
    private readonly authenticator: Authenticator,
    private readonly users: Users,
    private readonly permissions: Permissions,
    private readonly webSessions: MirrorWebSessions,
  ) {}

  private async principalFor(mirror: Mirror, credentials: DelegatedCredentials, clientAddress: string | undefined, answer: Partial<DelegatedAnswer>): Promise<Principal> {
    switch (credentials.type) {
      case 'anonymous':
        return ANONYMOUS;
      case 'basic': {
        // A mirror forwards "Authorization: Bearer TOKEN" as a token without a user name; it must work as it
        // does on the primary (found by mirror-matrix.test.ts: Bearer tokens were refused on every mirror).
        if (!credentials.username && credentials.password) return this.authenticator.fromAuthorizationHeader(`Bearer ${credentials.password}`, { address: clientAddress });
        if (!credentials.username || credentials.username.includes(':')) throw Errors.badCredentials();
        // The same path as a Basic header on the primary: passwords, and access tokens in the password field.
        const header = `Basic ${Buffer.from(`${credentials.username}:${credentials.password ?? ''}`, 'utf8').toString('base64')}`;
        return this.authenticator.fromAuthorizationHeader(header, { address: clientAddress });
      }
      case 'ssh-key': {
        const parsed = parsePublicKey(credentials.publicKey ?? '');
        const found = await this.users.userByKeyBlob(Buffer.from(parsed.publicKey.split(' ')[1] ?? '', 'base64'));
        if (!found) throw new MirrorfarmError('BAD_CREDENTIALS', 401, 'Authentication failed: this SSH key is not registered to an active user. Add it under your account settings on the primary.');
        return userPrincipal(found.user, 'ssh-key', await this.users.isSysadmin(found.user));
      }
      case 'web-session': {
        // Checked against the calling mirror: a secret another mirror handed out answers BAD_CREDENTIALS here.
        const session = await this.webSessions.verify(mirror, credentials.secret ?? '');
        answer.webSession = { id: session.id, createdDate: session.createdDate };
        return userPrincipal(session.user, 'password', await this.users.isSysadmin(session.user));
      }
      default:
        throw Errors.invalid('credentials.type must be "basic", "ssh-key", "web-session" or "anonymous".');
    }
  }

  async authenticate(mirror: Mirror, credentials: DelegatedCredentials, repositoryIds: number[], clientAddress?: string): Promise<DelegatedAnswer> {
    const ids = [...new Set(repositoryIds)];
    if (ids.length > MAX_REPOSITORIES_PER_CALL) throw Errors.invalid(`Ask about at most ${MAX_REPOSITORIES_PER_CALL} repositories per call.`);
    const extra: Partial<DelegatedAnswer> = {};
    const principal = await this.principalFor(mirror, credentials, clientAddress, extra);
    const access: Record<string, 'READ' | 'NONE'> = {};
    for (const id of ids) access[String(id)] = 'NONE';
    if (ids.length) {
      // The mirror's selection as it is now (it may have changed since the mirror last looked).
      const current = await this.db.selectFrom('mirrors').select(['state', 'mirroring_mode']).where('id', '=', mirror.id).executeTakeFirst();
      const selected = new Set(
        (await this.db.selectFrom('mirror_projects').select('project_id').where('mirror_id', '=', mirror.id).execute()).map((r) => r.project_id),
      );
      const carries = (projectId: number) => current?.state === 'ACTIVE' && (current.mirroring_mode === 'ALL_PROJECTS' || selected.has(projectId));
      const index = await this.permissions.accessIndex(principal);
      for (let i = 0; i < ids.length; i += 500) {
        const rows = await this.db
          .selectFrom('repositories as r')
          .innerJoin('projects as p', 'p.id', 'r.project_id')
          .selectAll('r')
          .select(['p.key as p_key', 'p.name as p_name', 'p.description as p_description', 'p.is_public as p_is_public', 'p.created_at as p_created_at'])
          .where('r.id', 'in', ids.slice(i, i + 500))
          .execute();
        for (const { p_key, p_name, p_description, p_is_public, p_created_at, ...repo } of rows) {
          if (!carries(repo.project_id)) continue;
          const project = { id: repo.project_id, key: p_key, name: p_name, description: p_description, is_public: p_is_public, created_at: p_created_at };
          // The primary's policy, then the mirror's ceiling: never more than READ.
          const level = effectiveLevel(principal, index.repository(project, repo));
          access[String(repo.id)] = level >= Level.READ ? 'READ' : 'NONE';
        }
      }
    }
    const user =
      principal.kind === 'user'
        ? { id: principal.userId, name: principal.name, sysadmin: effectiveLevel(principal, { kind: 'system' }) >= Level.ADMIN }
        : null;
    return { user, access, ...extra };
  }
}
