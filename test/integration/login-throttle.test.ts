// Regression test for password guessing (160 wrong passwords, sequential and parallel, all got 401 at ~20/s and
// each cost an scrypt): failed password attempts are throttled per client address and per account with 429 and
// Retry-After, over REST, git over HTTPS and through a mirror; no password is hashed while throttled; the
// right password works again once the wait is over; and the metric counts throttled attempts. Low limits are
// set through the environment; 127.0.0.x addresses stand in for different client machines.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createProject, createRepo, createUser, grantProject } from '../helpers/fixtures.js';
import { metricValue, rawRequest, type RawResponse } from '../helpers/http.js';
import { authorizeMirror } from '../helpers/mirror.js';
import { git, startMirror, startServer, type Credentials, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

const LIMITS = {
  MIRRORFARM_LOGIN_THROTTLE_ADDRESS_MAX_FAILURES: '5',
  MIRRORFARM_LOGIN_THROTTLE_ADDRESS_MAX_BLOCK_SECONDS: '3',
  MIRRORFARM_LOGIN_THROTTLE_ACCOUNT_MAX_FAILURES: '8',
  MIRRORFARM_LOGIN_THROTTLE_ACCOUNT_MAX_BLOCK_SECONDS: '2',
  MIRRORFARM_LOGIN_THROTTLE_WINDOW_SECONDS: '60',
};
const PROTECTED = '/rest/api/1.0/projects';

let primary: TestServer;
let mirror: TestServer | undefined;
const people: Record<string, Credentials> = {};

const wrong = (who: Credentials): Credentials => ({ user: who.user, secret: `not-${who.secret}` });
const as = (creds: Credentials, address: string, server: TestServer = primary, path = PROTECTED) => rawRequest(server, 'GET', path, { creds, localAddress: address });
const metrics = async () => (await rawRequest(primary, 'GET', '/metrics')).text;
const verifications = async () => metricValue(await metrics(), 'mirrorfarm_password_verifications_total');
const throttledCount = async (scope: string) => metricValue(await metrics(), 'mirrorfarm_login_throttled_total', { scope });

function assertThrottled(r: RawResponse, scope: 'address' | 'account', what: string): number {
  assert.equal(r.status, 429, `${what}: ${r.status} ${r.text}`);
  const retryAfter = Number(r.headers['retry-after']);
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `${what}: Retry-After ${String(r.headers['retry-after'])}`);
  const body = JSON.parse(r.text) as { errors: Array<{ message: string; exceptionName: string }> };
  assert.equal(body.errors[0]!.exceptionName, 'TOO_MANY_LOGIN_ATTEMPTS');
  assert.match(body.errors[0]!.message, new RegExp(`^Too many failed login attempts ${scope === 'address' ? 'from your address' : 'for this account'}: wait ${retryAfter} s before trying again`));
  return retryAfter;
}

before(async () => {
  primary = await startServer({ env: LIMITS });
  const mirrorStarting = startMirror(primary);
  mirrorStarting.catch(() => {}); // awaited below
  await createProject(primary, 'THR');
  await createRepo(primary, 'THR', 'code');
  for (const name of ['alice', 'bob', 'carol', 'gitty', 'mira']) people[name] = await createUser(primary, name);
  await grantProject(primary, 'THR', 'gitty', 'PROJECT_READ');
  mirror = await mirrorStarting;
  await authorizeMirror(primary, mirror, ['THR']);
});

after(async () => {
  await Promise.all([primary?.stop(), mirror?.stop()]);
  removeTempDirs();
});

describe('login throttle', () => {
  it('wrong passwords in sequence: 429 with Retry-After after the limit, no scrypt while throttled, the right password refused from that address until the wait is over', async () => {
    const alice = people.alice!;
    const hashedBefore = await verifications();
    const throttledBefore = await throttledCount('address');
    for (let i = 1; i <= 5; i++) assert.equal((await as(wrong(alice), '127.0.0.2')).status, 401, `attempt ${i}`);
    let retryAfter = 0;
    for (let i = 0; i < 10; i++) retryAfter = assertThrottled(await as(wrong(alice), '127.0.0.2'), 'address', `wrong attempt ${6 + i}`);
    const right = await as(alice, '127.0.0.2');
    assertThrottled(right, 'address', 'the right password from the throttled address');
    assert.equal(await verifications(), hashedBefore + 5, 'a password was hashed for the 5 attempts under the limit only');
    assert.equal(await throttledCount('address'), throttledBefore + 11, 'the metric counts every throttled attempt');

    assert.equal((await as(alice, '127.0.0.3')).status, 200, 'another address is not held (the account is under its own limit)');
    await sleep(retryAfter * 1000 + 100);
    assert.equal((await as(alice, '127.0.0.2')).status, 200, 'the right password works from the address once the wait is over');
    assert.equal((await as(wrong(alice), '127.0.0.2')).status, 401, 'and that success forgave the address its failures on this account');
  });

  it('wrong passwords in parallel: only the limit gets a password check, the rest 429 at once', async () => {
    const bob = people.bob!;
    const hashedBefore = await verifications();
    const answers = await Promise.all(Array.from({ length: 30 }, () => as(wrong(bob), '127.0.0.4')));
    const statuses = answers.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 401).length, 5, statuses.join(','));
    assert.equal(statuses.filter((s) => s === 429).length, 25, statuses.join(','));
    for (const r of answers.filter((a) => a.status === 429)) assertThrottled(r, 'address', 'parallel attempt');
    assert.equal(await verifications(), hashedBefore + 5, 'a password was hashed 5 times, not 30');
  });

  it('an account guessed from many addresses is held briefly, except from an address its user logged in from before', async () => {
    const carol = people.carol!;
    assert.equal((await as(carol, '127.0.0.40')).status, 200, 'carol works from her usual address');
    const throttledBefore = await throttledCount('account');
    for (let i = 0; i < 8; i++) assert.equal((await as(wrong(carol), `127.0.1.${i + 1}`)).status, 401, `guess ${i + 1} from its own address`);
    const retryAfter = assertThrottled(await as(carol, '127.0.2.1'), 'account', 'the right password from a fresh address');
    assert.ok(retryAfter <= 2, `held at most accountMaxBlockSeconds, got ${retryAfter}`);
    assert.equal(await throttledCount('account'), throttledBefore + 1);
    assert.equal((await as(carol, '127.0.0.40')).status, 200, 'her usual address is not locked out');
    await sleep(retryAfter * 1000 + 100);
    assert.equal((await as(carol, '127.0.2.1')).status, 200, 'after the short wait, the right password works from anywhere');
  });

  it('git over HTTPS prints the throttle message, and clones again once the wait is over', async () => {
    const gitty = people.gitty!;
    // Credentials in the URL, as a user would type them: git asks without, then with them.
    const url = (creds: Credentials) => primary.httpUrl('THR', 'code', creds);
    for (let i = 1; i <= 5; i++) {
      const r = await git(primary, ['ls-remote', url(wrong(gitty))]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Authentication failed/, `attempt ${i}: ${r.stderr}`);
    }
    const throttled = await git(primary, ['ls-remote', url(gitty)]);
    assert.notEqual(throttled.code, 0, 'the right password is refused while the address is throttled');
    assert.match(throttled.stderr, /remote: Too many failed login attempts from your address: wait \d+ s before trying again/, throttled.stderr);
    assert.match(throttled.stderr, /429/);
    await sleep(3100);
    const ok = await git(primary, ['ls-remote', url(gitty)]);
    assert.equal(ok.code, 0, ok.stderr);
  });

  it('through a mirror: the primary throttles the address the user connected to the mirror from, and the mirror passes 429 and Retry-After on', async () => {
    const mira = people.mira!;
    const info = '/scm/thr/code.git/info/refs?service=git-upload-pack';
    const hashedBefore = await verifications();
    for (let i = 1; i <= 5; i++) assert.equal((await as(wrong(mira), '127.0.0.50', mirror, info)).status, 401, `attempt ${i} through the mirror`);
    const r = await as(wrong(mira), '127.0.0.50', mirror, info);
    assert.equal(r.status, 429, r.text);
    assert.ok(Number(r.headers['retry-after']) >= 1, `Retry-After ${String(r.headers['retry-after'])}`);
    assert.match(r.text, /^Too many failed login attempts from your address: wait \d+ s before trying again/);
    assert.equal(await verifications(), hashedBefore + 5);
    assert.equal((await as(wrong(mira), '127.0.0.51', mirror, info)).status, 401, 'another user address behind the same mirror is not held');
  });
});
