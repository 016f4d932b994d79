// The primary's web sessions for mirrors: only a hash of the secret is stored, a session counts only for the
// mirror that opened it, and it ends after the idle and the absolute timeout, at sign-out (with an event for the
// mirror's nodes), when its user is deactivated or changes their password, and with the mirror.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Authenticator } from '../../src/auth/authenticator.js';
import { LoginThrottle } from '../../src/auth/throttle.js';
import { Users } from '../../src/domain/users.js';
import { EventLog } from '../../src/events/log.js';
import { Metrics } from '../../src/obs/metrics.js';
import { MirrorWebSessions } from '../../src/primary/web-sessions.js';
import { openDatabase, type Db } from '../../src/store/database.js';
import type { Mirror } from '../../src/store/tables.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

let db: Db;
let users: Users;
let events: EventLog;
let sessions: MirrorWebSessions;
let now = 1_000_000;
const IDLE = 10 * 60_000;
const MAX = 60 * 60_000;
const mirrorA = { id: 'AAAA-AAAA-AAAA-AAAA' } as Mirror;
const mirrorB = { id: 'BBBB-BBBB-BBBB-BBBB' } as Mirror;

before(async () => {
  db = await openDatabase(join(tempDir(), 'db.sqlite'));
  events = new EventLog(db, { days: 7, maxEvents: 100_000 });
  users = new Users(db, events);
  const throttle = new LoginThrottle({ enabled: true, addressMaxFailures: 10, addressMaxBlockSeconds: 300, accountMaxFailures: 30, accountMaxBlockSeconds: 60, windowSeconds: 900, trustedAddressSeconds: 0 });
  const authenticator = new Authenticator(users, new Metrics(), events, throttle);
  sessions = new MirrorWebSessions(db, events, authenticator, users, { idleMs: IDLE, maxMs: MAX }, () => now);
  await users.create({ name: 'alice', password: 'alice-password-1' });
});

after(async () => {
  await db.destroy();
  removeTempDirs();
});

const badCredentials = { code: 'BAD_CREDENTIALS' };

describe('web sessions the primary keeps for mirrors', () => {
  it('keeps only a hash of the secret and refuses wrong passwords and access tokens', async () => {
    const opened = await sessions.open(mirrorA, 'alice', 'alice-password-1', '127.0.0.9');
    assert.match(opened.secret, /^[A-Za-z0-9_-]{43}$/);
    const rows = await db.selectFrom('mirror_web_sessions').selectAll().execute();
    assert.equal(rows.length, 1);
    assert.notEqual(rows[0]!.secret_hash, opened.secret);
    assert.equal((await sessions.verify(mirrorA, opened.secret)).user.name, 'alice');
    await assert.rejects(sessions.open(mirrorA, 'alice', 'wrong-password-1', '127.0.0.9'), badCredentials);
    await assert.rejects(sessions.open(mirrorA, 'alice', 'mft_1_abc', '127.0.0.9'), { code: 'WEB_SIGN_IN_TOKEN' });
  });

  it("refuses another mirror's session without ending it", async () => {
    const opened = await sessions.open(mirrorA, 'alice', 'alice-password-1', '127.0.0.9');
    await assert.rejects(sessions.verify(mirrorB, opened.secret), badCredentials);
    await sessions.revoke(mirrorB, opened.secret);
    assert.equal((await sessions.verify(mirrorA, opened.secret)).user.name, 'alice');
  });

  it('ends a session after the idle timeout, and after the absolute one however active', async () => {
    const idle = await sessions.open(mirrorA, 'alice', 'alice-password-1', '127.0.0.9');
    now += IDLE + 1;
    await assert.rejects(sessions.verify(mirrorA, idle.secret), badCredentials);
    const active = await sessions.open(mirrorA, 'alice', 'alice-password-1', '127.0.0.9');
    for (let t = 0; t < 6; t++) {
      now += 9 * 60_000;
      await sessions.verify(mirrorA, active.secret);
    }
    now += 9 * 60_000;
    await assert.rejects(sessions.verify(mirrorA, active.secret), badCredentials);
  });

  it('ends a session at sign-out with an event naming it, and never puts the secret in the log', async () => {
    const opened = await sessions.open(mirrorA, 'alice', 'alice-password-1', '127.0.0.9');
    const { last } = await events.bounds();
    await sessions.revoke(mirrorA, opened.secret);
    await assert.rejects(sessions.verify(mirrorA, opened.secret), badCredentials);
    const logged = await events.read(last, 10);
    assert.deepEqual(
      logged.map((e) => [e.type, e.mirrorId, e.sessionId]),
      [['mirror.web_session_ended', mirrorA.id, opened.id]],
    );
    assert.ok(!JSON.stringify(logged).includes(opened.secret));
  });

  it('ends the sessions of a user who is deactivated or changes their password', async () => {
    const before = await sessions.open(mirrorA, 'alice', 'alice-password-1', '127.0.0.9');
    await users.setPassword('alice', 'alice-password-2');
    await assert.rejects(sessions.verify(mirrorA, before.secret), badCredentials);
    const opened = await sessions.open(mirrorA, 'alice', 'alice-password-2', '127.0.0.9');
    await users.update('alice', { active: false });
    await assert.rejects(sessions.verify(mirrorA, opened.secret), badCredentials);
    await users.update('alice', { active: true });
    await assert.rejects(sessions.verify(mirrorA, opened.secret), badCredentials, 'it does not come back');
  });

  it('prunes sessions past either timeout', async () => {
    await sessions.open(mirrorA, 'alice', 'alice-password-2', '127.0.0.9');
    now += MAX + 1;
    assert.ok((await sessions.prune()) >= 1);
    assert.equal((await db.selectFrom('mirror_web_sessions').selectAll().execute()).length, 0);
  });
});
