// Turns presented credentials into a principal: HTTP Basic with a password or a personal access token
// (Bitbucket habit: the token goes where the password would), or a Bearer token. SSH keys are resolved by the
// SSH transport after the signature has been verified.
import { createHmac, randomBytes } from 'node:crypto';
import { ANONYMOUS, type Principal } from '../access/authorize.js';
import type { EventLog } from '../events/log.js';
import { tokenCap, type Users } from '../domain/users.js';
import { Errors } from '../errors.js';
import type { Metrics } from '../obs/metrics.js';
import type { User } from '../store/tables.js';
import { throttledError, type LoginThrottle } from './throttle.js';

/** Where a request comes from, for the login throttle. */
export interface ClientInfo {
  /** The client's IP address (as the listener sees it, or from X-Forwarded-For with http.trustProxy). */
  address?: string;
}

/** `sysadmin` is Users.isSysadmin(user): the user's own flag or a group holding SYS_ADMIN. */
export function userPrincipal(user: User, via: 'password' | 'token' | 'ssh-key', sysadmin: boolean, permissions?: string[]): Principal {
  return {
    kind: 'user',
    userId: user.id,
    name: user.name,
    sysadmin,
    via,
    ...(permissions ? { tokenCap: tokenCap(permissions) } : {}),
  };
}

/** How long a verified password is remembered (git sends it with each of the 2-3 requests of one clone). */
const PASSWORD_CACHE_MS = 60_000;

export class Authenticator {
  // scrypt is deliberately slow (tens of ms of CPU); re-running it for every request of every clone would
  // dominate the server's CPU. Verified passwords are remembered briefly under an HMAC with a per-process key,
  // and forgotten at once when any user changes (password, deactivation, deletion).
  private readonly verified = new Map<string, { userId: number; until: number }>();
  private readonly cacheKey = randomBytes(32);

  constructor(
    private readonly users: Users,
    private readonly metrics: Metrics,
    events: EventLog,
    private readonly throttle: LoginThrottle,
  ) {
    events.subscribe((appended) => {
      if (appended.some((e) => e.type.startsWith('user.'))) this.verified.clear();
    });
  }

  /** Anonymous when there is no Authorization header; throws BAD_CREDENTIALS when credentials are wrong. */
  async fromAuthorizationHeader(header: string | undefined, client: ClientInfo = {}): Promise<Principal> {
    if (!header) return ANONYMOUS;
    const space = header.indexOf(' ');
    const scheme = header.slice(0, space).toLowerCase();
    const value = header.slice(space + 1).trim();
    if (scheme === 'bearer') return this.record(await this.byToken(value));
    if (scheme !== 'basic') throw Errors.badCredentials();
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw Errors.badCredentials();
    return this.record(await this.byPassword(decoded.slice(0, colon), decoded.slice(colon + 1), client));
  }

  private record(principal: Principal | undefined): Principal {
    this.metrics.authentications.inc({ outcome: principal ? 'success' : 'failure' });
    if (!principal) throw Errors.badCredentials();
    return principal;
  }

  private async byToken(secret: string, expectedUser?: string): Promise<Principal | undefined> {
    const found = await this.users.verifyToken(secret);
    if (!found || (expectedUser !== undefined && found.user.name !== expectedUser.toLowerCase())) return undefined;
    return userPrincipal(found.user, 'token', await this.users.isSysadmin(found.user), JSON.parse(found.token.permissions) as string[]);
  }

  private async byPassword(name: string, secret: string, client: ClientInfo): Promise<Principal | undefined> {
    // Access tokens are random 256-bit secrets checked by a hash lookup: nothing to guess, nothing expensive.
    if (secret.startsWith('mft_')) return this.byToken(secret, name);
    // Asked before anything else, the cache included: a throttled address gets nothing checked, not even a
    // right password, and never costs an scrypt.
    const admission = this.throttle.begin(name, client.address);
    if (!admission.ok) throw throttledError(admission);
    const { attempt } = admission;
    try {
      const key = createHmac('sha256', this.cacheKey).update(`${name.toLowerCase()}\0${secret}`).digest('hex');
      const hit = this.verified.get(key);
      if (hit && hit.until > Date.now()) {
        const user = await this.users.byId(hit.userId);
        if (user?.active) {
          attempt.succeeded();
          return userPrincipal(user, 'password', await this.users.isSysadmin(user));
        }
      }
      this.metrics.passwordVerifications.inc();
      const user = await this.users.verifyPassword(name, secret);
      if (!user) {
        attempt.failed();
        return undefined;
      }
      attempt.succeeded();
      if (this.verified.size > 10_000) this.verified.clear();
      this.verified.set(key, { userId: user.id, until: Date.now() + PASSWORD_CACHE_MS });
      return userPrincipal(user, 'password', await this.users.isSysadmin(user));
    } catch (err) {
      attempt.abandoned();
      throw err;
    }
  }
}
