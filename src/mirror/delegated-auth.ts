// Users log in to a mirror with their primary credentials. The mirror asks the primary (POST
// /rest/mirroring/1.0/authenticate), caches positive answers for authCacheSeconds, and drops the whole cache as
// soon as a permission, group, key, token or user event arrives on the stream. When the primary cannot be reached,
// answers verified within authGraceSeconds keep working; anything new gets a clear "primary unavailable".
// Passwords are only ever held in memory as a SHA-256 cache key, never stored or logged.
// Web sign-ins are sessions the primary keeps (so that every node of a farm accepts them): this node opens one
// with the user's password, then presents only its secret, and drops it from the cache when the primary says
// it ended (mirror.web_session_ended) or answers 401 for it.
import { createHash } from 'node:crypto';
import { ANONYMOUS, Level, type Principal, type Resource } from '../access/authorize.js';
import type { RepositoryView } from '../domain/repositories.js';
import { Errors, MirrorfarmError } from '../errors.js';
import type { AccessResolver } from '../transport/git-service.js';
import type { MirrorMetrics } from './metrics.js';
import { UpstreamError, type Upstream } from './upstream.js';

type Credentials = { type: 'basic'; username: string; password: string } | { type: 'ssh-key'; publicKey: string } | { type: 'web-session'; secret: string };

interface AuthAnswer {
  user: { id: number; name: string; sysadmin: boolean } | null;
  access: Record<string, 'READ' | 'NONE'>;
  webSession?: { id: number; createdDate: number };
}

/** A web sign-in as the primary opened it (POST mirror/web-sessions). */
export interface OpenedWebSession {
  secret: string;
  id: number;
  user: { id: number; name: string };
  createdDate: number;
}

/** A web session as a node sees it on a request: who, and since when. */
export interface VerifiedWebSession {
  principal: Principal;
  createdDate: number;
}

interface CacheEntry {
  credentials: Credentials;
  principal: Principal;
  access: Map<number, Level>;
  verifiedAt: number;
  /** What the primary says about system administration (never for tokens); only for mirror administration routes. */
  primarySysadmin: boolean;
  webSession?: { id: number; createdDate: number };
}

/** At most this many repositories per authenticate call (the primary's limit). */
const IDS_PER_CALL = 1000;

export class DelegatedAuth implements AccessResolver {
  private readonly cache = new Map<string, CacheEntry>();
  /** The credentials a principal was verified with, so that a question about more repositories can be asked. */
  private readonly credentialsOf = new WeakMap<Principal, Credentials>();
  /** Bumped by invalidate(), so that an answer asked for before an invalidation is not cached after it. */
  private generation = 0;
  /** Cache keys of web sessions by the primary's session id, so that the end of one drops just that one. */
  private readonly webSessionKeys = new Map<number, string>();
  /** Web sessions that ended while an answer about them may have been on its way (see lookup). */
  private readonly endedWebSessions = new Set<number>();

  constructor(
    private readonly upstream: Upstream,
    private readonly metrics: MirrorMetrics,
    private readonly options: { cacheSeconds: number; graceSeconds: number },
    /** Why this mirror serves nobody right now (removed from its primary), if so. */
    private readonly refusal: () => MirrorfarmError | undefined = () => undefined,
  ) {}

  /** Forgets every cached answer (a permission, key, token or user changed on the primary). */
  invalidate(): void {
    this.generation++;
    this.cache.clear();
    this.webSessionKeys.clear();
  }

  /**
   * Opens a web sign-in on the primary (which checks the password with its login throttle). Throws BAD_CREDENTIALS,
   * WEB_SIGN_IN_TOKEN or TOO_MANY_LOGIN_ATTEMPTS as the primary answers, or MIRROR_UPSTREAM_UNAVAILABLE.
   */
  async openWebSession(username: string, password: string, clientAddress: string | undefined): Promise<OpenedWebSession> {
    const refused = this.refusal();
    if (refused) throw refused;
    try {
      return await this.upstream.call<OpenedWebSession>('POST', '/rest/mirroring/1.0/mirror/web-sessions', { username, password, ...(clientAddress ? { clientAddress } : {}) });
    } catch (err) {
      if (err instanceof UpstreamError && err.status === 401 && err.code !== 'WEB_SIGN_IN_TOKEN') throw Errors.badCredentials();
      if (isUnavailable(err)) throw unavailable();
      throw err;
    }
  }

  /**
   * The user of a web session, asked of the primary unless cached; undefined once the session no longer stands.
   * Throws MIRROR_UPSTREAM_UNAVAILABLE when the primary cannot answer and this node has no recent answer.
   */
  async fromWebSession(secret: string): Promise<VerifiedWebSession | undefined> {
    const refused = this.refusal();
    if (refused) throw refused;
    const entry = await this.lookup({ type: 'web-session', secret }, []);
    if (!entry) return undefined;
    return { principal: entry.principal, createdDate: entry.webSession?.createdDate ?? entry.verifiedAt };
  }

  /** Sign-out: the primary ends the session for every node of the farm; this node forgets it at once. */
  async closeWebSession(secret: string): Promise<void> {
    const key = cacheKey({ type: 'web-session', secret });
    const id = this.cache.get(key)?.webSession?.id;
    if (id !== undefined) this.webSessionEnded(id);
    this.cache.delete(key);
    try {
      await this.upstream.call('POST', '/rest/mirroring/1.0/mirror/web-sessions/revoke', { secret });
    } catch (err) {
      if (isUnavailable(err)) throw unavailable();
      throw err;
    }
  }

  /** The primary says a web session ended (sign-out on another node): forget it, and any answer on its way. */
  webSessionEnded(id: number): void {
    const key = this.webSessionKeys.get(id);
    if (key) this.cache.delete(key);
    this.webSessionKeys.delete(id);
    if (this.endedWebSessions.size > 10_000) this.endedWebSessions.clear();
    this.endedWebSessions.add(id);
  }

  async fromAuthorizationHeader(header: string | undefined, client: { address?: string } = {}): Promise<Principal> {
    const refused = this.refusal();
    if (refused) throw refused;
    if (!header) return ANONYMOUS;
    const space = header.indexOf(' ');
    const scheme = header.slice(0, space).toLowerCase();
    const value = header.slice(space + 1).trim();
    let credentials: Credentials;
    if (scheme === 'basic') {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon <= 0) throw Errors.badCredentials();
      credentials = { type: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    } else if (scheme === 'bearer') {
      credentials = { type: 'basic', username: '', password: value };
    } else {
      throw Errors.badCredentials();
    }
    const entry = await this.lookup(credentials, [], client.address);
    if (!entry) throw Errors.badCredentials();
    return entry.principal;
  }

  /** For the SSH server, after it has verified the client's signature itself. */
  async fromPublicKey(publicKey: string): Promise<Principal | undefined> {
    const refused = this.refusal();
    if (refused) throw refused;
    return (await this.lookup({ type: 'ssh-key', publicKey }, []))?.principal;
  }

  async repositoryResource(principal: Principal, project: RepositoryView['project'], repo: RepositoryView['repo']): Promise<Resource> {
    return (await this.repositoryResources(principal, [{ project, repo }])).get(repo.id)!;
  }

  /**
   * The policy facts of many repositories at once, for listings: one call to the primary per 1000 repositories
   * not yet known for this principal, instead of one per repository.
   */
  async repositoryResources(principal: Principal, views: Array<Pick<RepositoryView, 'project' | 'repo'>>): Promise<Map<number, Resource>> {
    const levels = new Map<number, Level>();
    const credentials = principal.kind === 'user' ? this.credentialsOf.get(principal) : undefined;
    if (credentials) {
      const ids = [...new Set(views.map((v) => v.repo.id))];
      const entry = this.cache.get(cacheKey(credentials));
      const unknown = entry && Date.now() - entry.verifiedAt < this.options.cacheSeconds * 1000 ? ids.filter((id) => !entry.access.has(id)) : ids;
      const asking = new Set(unknown);
      for (const id of ids) if (!asking.has(id)) levels.set(id, entry!.access.get(id)!);
      for (let i = 0; i < unknown.length; i += IDS_PER_CALL) {
        const chunk = unknown.slice(i, i + IDS_PER_CALL);
        const answer = await this.lookup(credentials, chunk);
        for (const id of chunk) levels.set(id, answer?.access.get(id) ?? Level.NONE);
      }
    }
    const out = new Map<number, Resource>();
    for (const { project, repo } of views) {
      const isPublic = !!project.is_public || !!repo.is_public;
      // The primary already applied its policy (grants, token scope, sysadmin); the mirror only serves reads.
      out.set(repo.id, { kind: 'repository', path: `${project.key}/${repo.slug}`, facts: { isPublic, projectGrant: Level.NONE, repositoryGrant: levels.get(repo.id) ?? Level.NONE } });
    }
    return out;
  }

  /**
   * The principal as the primary sees it for system administration, for the mirror's administration routes
   * only: never passed to repository checks (a sysadmin flag there would lift READ to ADMIN).
   */
  async systemPrincipal(principal: Principal): Promise<Principal> {
    const credentials = principal.kind === 'user' ? this.credentialsOf.get(principal) : undefined;
    if (!credentials || principal.kind !== 'user') return principal;
    const entry = await this.lookup(credentials, []);
    return { ...principal, sysadmin: !!entry?.primarySysadmin };
  }

  private async lookup(credentials: Credentials, repositoryIds: number[], clientAddress?: string): Promise<CacheEntry | undefined> {
    const key = cacheKey(credentials);
    const cached = this.cache.get(key);
    const now = Date.now();
    const fresh = cached && now - cached.verifiedAt < this.options.cacheSeconds * 1000;
    if (fresh && repositoryIds.every((id) => cached.access.has(id))) {
      this.metrics.authCache.inc({ result: 'hit' });
      return cached;
    }
    const generation = this.generation;
    let answer: AuthAnswer;
    try {
      // The user's address goes along for the primary's login throttle; a 429 from it (with Retry-After) is passed
      // on to the user as it is, below.
      answer = await this.upstream.call<AuthAnswer>('POST', '/rest/mirroring/1.0/authenticate', { credentials, repositoryIds, ...(clientAddress ? { clientAddress } : {}) });
    } catch (err) {
      if (err instanceof UpstreamError && err.status === 401) {
        this.cache.delete(key);
        return undefined;
      }
      if (isUnavailable(err) && cached && now - cached.verifiedAt < this.options.graceSeconds * 1000) {
        this.metrics.authCache.inc({ result: 'grace' });
        return cached;
      }
      if (isUnavailable(err)) throw unavailable();
      throw err;
    }
    this.metrics.authCache.inc({ result: 'miss' });
    if (!answer.user) return undefined;
    const principal: Principal = {
      kind: 'user',
      userId: answer.user.id,
      name: answer.user.name,
      sysadmin: false, // never more than READ on a mirror, whatever the user is on the primary
      via: credentials.type === 'ssh-key' ? 'ssh-key' : credentials.type === 'web-session' || !credentials.password.startsWith('mft_') ? 'password' : 'token',
    };
    const entry: CacheEntry = {
      credentials,
      principal,
      access: fresh ? cached.access : new Map(),
      verifiedAt: fresh ? cached.verifiedAt : now,
      primarySysadmin: !!answer.user.sysadmin,
      ...(answer.webSession ? { webSession: answer.webSession } : {}),
    };
    for (const [id, level] of Object.entries(answer.access ?? {})) entry.access.set(Number(id), level === 'READ' ? Level.READ : Level.NONE);
    // An answer that was on its way while a permission, key, token or user event cleared the cache may predate
    // that change: use it for this one request, but do not keep it for cacheSeconds.
    const ended = answer.webSession !== undefined && this.endedWebSessions.has(answer.webSession.id);
    if (ended) return undefined;
    if (generation === this.generation) {
      this.cache.set(key, entry);
      if (answer.webSession) this.webSessionKeys.set(answer.webSession.id, key);
    }
    this.credentialsOf.set(principal, credentials);
    return entry;
  }
}

function unavailable(): MirrorfarmError {
  return new MirrorfarmError('MIRROR_UPSTREAM_UNAVAILABLE', 503, 'The primary server cannot be reached to verify your credentials right now; try again shortly, or use the primary directly.');
}

function cacheKey(credentials: Credentials): string {
  const material =
    credentials.type === 'basic'
      ? `basic\0${credentials.username.toLowerCase()}\0${credentials.password}`
      : credentials.type === 'web-session'
        ? `web\0${credentials.secret}`
        : `ssh\0${credentials.publicKey}`;
  return createHash('sha256').update(material).digest('hex');
}

function isUnavailable(err: unknown): boolean {
  if (!(err instanceof MirrorfarmError)) return false;
  return err.code.endsWith('_UNREACHABLE') || err.status >= 500;
}
