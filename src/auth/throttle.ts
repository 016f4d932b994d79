// Throttling of password guessing, per client address and per account. Every password attempt asks `begin`
// first; a throttled attempt is refused before any password hash is computed (scrypt costs tens of ms of CPU,
// so an unthrottled guesser is also a denial of service).
//
// Design (the README's "Login throttling" says the same for operators):
// - Per address: after `addressMaxFailures` failures from one address (within `windowSeconds` of the last one),
//   that address waits before its next attempt, 1 s and doubling with every further failure, capped at
//   `addressMaxBlockSeconds`. A successful login from the address clears the failures it made on that
//   account, so a user who mistyped a few times is not punished once they get it right (and a guesser cannot
//   wipe its record by logging in to an account of its own in between).
// - Per account: a higher limit (`accountMaxFailures`) and a shorter cap (`accountMaxBlockSeconds`). It stops
//   guessing spread over many addresses, and it is what an attacker could use to lock a real user out, so it
//   never blocks for long, and it does not apply at all from an address the user logged in from successfully in
//   the last `trustedAddressSeconds` (their office, their CI runner): they keep working while someone else
//   guesses.
// - Attempts under way count as failures until they finish, so that a burst of parallel guesses cannot all
//   pass the check before the first one fails.
// - In memory, per server process: the state is small and short-lived, and a restart forgetting it only
//   gives a guesser one more window. No throttling library is among this project's dependencies (the
//   well-known one, rate-limiter-flexible, would be a new dependency for a few dozen lines), hence this module.
//   Sizes are bounded: the oldest records are dropped beyond `maxTracked`.
import type { Config } from '../config/schema.js';
import { Errors, type MirrorfarmError } from '../errors.js';

/** `loginThrottle` in the configuration schema, where the defaults live. */
export type ThrottleSettings = Config['loginThrottle'];

export type ThrottleScope = 'address' | 'account';

interface Tracked {
  failures: number;
  pending: number;
  lastFailureAt: number;
  blockedUntil: number;
  /** Per-address records: failures by account, so that a success forgives only its own account's. */
  byAccount?: Map<string, number>;
}

const MAX_ACCOUNTS_PER_ADDRESS = 1000;

/** One attempt that passed the check; exactly one of its methods must be called when it is decided. */
export interface Attempt {
  succeeded(): void;
  failed(): void;
  /** Neither (an error before the password was checked): the attempt does not count. */
  abandoned(): void;
}

export type Admission = { ok: true; attempt: Attempt } | { ok: false; scope: ThrottleScope; retryAfterSeconds: number };

const NO_OP: Attempt = { succeeded() {}, failed() {}, abandoned() {} };

class Limiter {
  private readonly records = new Map<string, Tracked>();

  constructor(
    private readonly maxFailures: number,
    private readonly maxBlockMs: number,
    private readonly windowMs: number,
    private readonly maxTracked: number,
  ) {}

  private current(key: string, now: number): Tracked | undefined {
    const r = this.records.get(key);
    if (r && r.pending === 0 && r.blockedUntil <= now && now - r.lastFailureAt > this.windowMs) {
      this.records.delete(key);
      return undefined;
    }
    return r;
  }

  /** Milliseconds until the key may try again; 0 when it may now. */
  waitMs(key: string, now: number): number {
    const r = this.current(key, now);
    if (!r) return 0;
    if (r.blockedUntil > now) return r.blockedUntil - now;
    // Past the limit, one attempt at a time once the block is over (its failure doubles the next block).
    if (r.failures >= this.maxFailures) return r.pending > 0 ? 1000 : 0;
    // Attempts in flight take their places in the budget, so a parallel burst stops at the limit too.
    return r.failures + r.pending >= this.maxFailures ? 1000 : 0;
  }

  private record(key: string, now: number): Tracked {
    let r = this.current(key, now);
    if (!r) {
      if (this.records.size >= this.maxTracked) this.records.delete(this.records.keys().next().value!);
      r = { failures: 0, pending: 0, lastFailureAt: now, blockedUntil: 0 };
      this.records.set(key, r);
    }
    return r;
  }

  begin(key: string, now: number): void {
    this.record(key, now).pending++;
  }

  /** `account` is given for per-address records: a success then forgives only that account's failures. */
  end(key: string, outcome: 'failed' | 'succeeded' | 'abandoned', now: number, account?: string): void {
    const r = this.records.get(key);
    if (r) r.pending = Math.max(0, r.pending - 1);
    if (outcome === 'succeeded') {
      if (!r) return;
      if (account === undefined) {
        this.records.delete(key);
        return;
      }
      r.failures -= r.byAccount?.get(account) ?? 0;
      r.byAccount?.delete(account);
      if (r.failures <= 0 && r.pending === 0) this.records.delete(key);
      else if (r.failures < this.maxFailures) r.blockedUntil = 0;
      return;
    }
    if (outcome === 'abandoned') return;
    const t = this.record(key, now);
    t.failures++;
    t.lastFailureAt = now;
    if (account !== undefined) {
      t.byAccount ??= new Map();
      if (t.byAccount.has(account) || t.byAccount.size < MAX_ACCOUNTS_PER_ADDRESS) t.byAccount.set(account, (t.byAccount.get(account) ?? 0) + 1);
    }
    const over = t.failures - this.maxFailures;
    // 1 s at the limit, doubling with each failure beyond it, never longer than the cap.
    if (over >= 0) t.blockedUntil = now + Math.min(this.maxBlockMs, 1000 * 2 ** Math.min(over, 30));
  }

  get size(): number {
    return this.records.size;
  }
}

export class LoginThrottle {
  private readonly addresses: Limiter;
  private readonly accounts: Limiter;
  /** "account\0address" -> when the trust in that address for that account ends. */
  private readonly trusted = new Map<string, number>();

  constructor(
    private readonly settings: ThrottleSettings,
    private readonly onThrottled: (scope: ThrottleScope) => void = () => {},
    private readonly clock: () => number = Date.now,
    private readonly maxTracked = 100_000,
  ) {
    const window = settings.windowSeconds * 1000;
    this.addresses = new Limiter(settings.addressMaxFailures, settings.addressMaxBlockSeconds * 1000, window, maxTracked);
    this.accounts = new Limiter(settings.accountMaxFailures, settings.accountMaxBlockSeconds * 1000, window, maxTracked);
  }

  /**
   * Asks to try a password for `account` from `address`. `address` is undefined when the caller cannot be told
   * apart by address (then only the account limit applies).
   */
  begin(account: string, address: string | undefined): Admission {
    if (!this.settings.enabled) return { ok: true, attempt: NO_OP };
    const now = this.clock();
    const name = account.toLowerCase();
    const addressWait = address === undefined ? 0 : this.addresses.waitMs(address, now);
    if (addressWait > 0) return this.refuse('address', addressWait);
    const trustedAddress = address !== undefined && (this.trusted.get(`${name}\0${address}`) ?? 0) > now;
    if (!trustedAddress) {
      const accountWait = this.accounts.waitMs(name, now);
      if (accountWait > 0) return this.refuse('account', accountWait);
    }
    if (address !== undefined) this.addresses.begin(address, now);
    if (!trustedAddress) this.accounts.begin(name, now);
    let decided = false;
    const end = (outcome: 'failed' | 'succeeded' | 'abandoned') => {
      if (decided) return;
      decided = true;
      const at = this.clock();
      if (address !== undefined) this.addresses.end(address, outcome, at, name);
      if (!trustedAddress) this.accounts.end(name, outcome, at);
      if (outcome === 'succeeded' && address !== undefined) this.trust(name, address, at);
    };
    return { ok: true, attempt: { succeeded: () => end('succeeded'), failed: () => end('failed'), abandoned: () => end('abandoned') } };
  }

  private trust(account: string, address: string, now: number): void {
    const key = `${account}\0${address}`;
    this.trusted.delete(key); // re-inserted last, so the oldest entries are the ones dropped
    if (this.trusted.size >= this.maxTracked) this.trusted.delete(this.trusted.keys().next().value!);
    this.trusted.set(key, now + this.settings.trustedAddressSeconds * 1000);
  }

  private refuse(scope: ThrottleScope, waitMs: number): Admission {
    this.onThrottled(scope);
    return { ok: false, scope, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  /** For tests and metrics: how many addresses and accounts are being tracked. */
  tracked(): { addresses: number; accounts: number; trusted: number } {
    return { addresses: this.addresses.size, accounts: this.accounts.size, trusted: this.trusted.size };
  }
}

/** The error for a throttled attempt: HTTP 429 with Retry-After, and a message git prints as it is. */
export function throttledError(admission: Extract<Admission, { ok: false }>): MirrorfarmError {
  const err = Errors.tooManyLoginAttempts(admission.retryAfterSeconds, admission.scope);
  err.retryAfterSeconds = admission.retryAfterSeconds;
  return err;
}
