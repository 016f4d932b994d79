// The login throttle's rules, on a fake clock: per-address and per-account limits, capped doubling waits,
// parallel attempts counted while in flight, and what a success forgives.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LoginThrottle, type Admission, type ThrottleSettings } from '../../src/auth/throttle.js';

const SETTINGS: ThrottleSettings = {
  enabled: true,
  addressMaxFailures: 3,
  addressMaxBlockSeconds: 10,
  accountMaxFailures: 5,
  accountMaxBlockSeconds: 4,
  windowSeconds: 60,
  trustedAddressSeconds: 3600,
};

function setup(settings: Partial<ThrottleSettings> = {}) {
  let now = 1_000_000;
  const throttled: string[] = [];
  const throttle = new LoginThrottle({ ...SETTINGS, ...settings }, (scope) => throttled.push(scope), () => now);
  const tick = (ms: number) => (now += ms);
  const fail = (account: string, address: string | undefined): Admission => {
    const a = throttle.begin(account, address);
    if (a.ok) a.attempt.failed();
    return a;
  };
  return { throttle, tick, fail, throttled };
}

const refused = (a: Admission) => (a.ok ? 'allowed' : `${a.scope} ${a.retryAfterSeconds}`);

describe('login throttle', () => {
  it('throttles an address after its limit with a capped doubling wait, and forgets after the window', () => {
    const { fail, tick, throttled } = setup();
    for (let i = 0; i < 3; i++) assert.equal(refused(fail('alice', '10.0.0.1')), 'allowed');
    assert.equal(refused(fail('alice', '10.0.0.1')), 'address 1');
    assert.deepEqual(throttled, ['address']);
    tick(1000);
    assert.equal(refused(fail('alice', '10.0.0.1')), 'allowed', 'one attempt once the wait is over');
    assert.equal(refused(fail('alice', '10.0.0.1')), 'address 2', 'and the next wait doubles');
    for (const wait of [2, 4, 8, 10, 10]) {
      tick(wait * 1000);
      assert.equal(refused(fail('alice', '10.0.0.1')), 'allowed');
    }
    assert.equal(refused(fail('alice', '10.0.0.1')), 'address 10', 'capped at addressMaxBlockSeconds');
    assert.equal(refused(fail('bob', '10.0.0.2')), 'allowed', 'other addresses are not affected');
    tick(71_000);
    assert.equal(refused(fail('carol', '10.0.0.1')), 'allowed', 'forgotten windowSeconds after the last failure');
  });

  it('counts attempts in flight, so that a parallel burst stops at the limit', () => {
    const { throttle } = setup();
    const burst = Array.from({ length: 10 }, () => throttle.begin('alice', '10.0.0.1'));
    assert.equal(burst.filter((a) => a.ok).length, 3);
    for (const a of burst) if (a.ok) a.attempt.failed();
    assert.equal(refused(throttle.begin('alice', '10.0.0.1')), 'address 1');
  });

  it('a success forgives the address its failures on that account only', () => {
    const { throttle, fail } = setup();
    fail('alice', '10.0.0.1');
    fail('alice', '10.0.0.1');
    const ok = throttle.begin('alice', '10.0.0.1');
    assert.ok(ok.ok);
    ok.attempt.succeeded();
    for (let i = 0; i < 3; i++) assert.equal(refused(fail('alice', '10.0.0.1')), 'allowed', 'the mistypes were forgiven');
    assert.equal(refused(fail('alice', '10.0.0.1')), 'address 1');

    // A guesser logging in to its own account in between does not wipe its record.
    const { throttle: t2, fail: fail2 } = setup();
    fail2('victim1', '10.0.0.9');
    fail2('victim2', '10.0.0.9');
    const own = t2.begin('mallory', '10.0.0.9');
    assert.ok(own.ok);
    own.attempt.succeeded();
    assert.equal(refused(fail2('victim3', '10.0.0.9')), 'allowed');
    assert.equal(refused(fail2('victim4', '10.0.0.9')), 'address 1');
  });

  it('throttles an account guessed from many addresses, briefly, except from addresses its user logged in from', () => {
    const { throttle, fail, tick } = setup();
    const home = throttle.begin('alice', '192.0.2.1');
    assert.ok(home.ok);
    home.attempt.succeeded();
    for (let i = 0; i < 5; i++) assert.equal(refused(fail('alice', `10.0.1.${i}`)), 'allowed');
    assert.equal(refused(throttle.begin('alice', '10.0.2.1')), 'account 1', 'a fresh address is refused: the account is throttled');
    for (let i = 0; i < 4; i++) {
      tick(4000);
      fail('alice', `10.0.3.${i}`);
    }
    assert.equal(refused(throttle.begin('alice', '10.0.2.1')), 'account 4', 'capped at accountMaxBlockSeconds');
    const fromHome = throttle.begin('alice', '192.0.2.1');
    assert.ok(fromHome.ok, 'the address alice logged in from before is not held by her account\'s limit');
    fromHome.attempt.succeeded();
  });

  it('an abandoned attempt does not count; disabled, nothing is throttled', () => {
    const { throttle } = setup();
    for (let i = 0; i < 10; i++) {
      const a = throttle.begin('alice', '10.0.0.1');
      assert.ok(a.ok);
      a.attempt.abandoned();
    }
    const { fail } = setup({ enabled: false });
    for (let i = 0; i < 20; i++) assert.equal(refused(fail('alice', '10.0.0.1')), 'allowed');
  });
});
