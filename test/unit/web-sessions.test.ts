// Web sessions: ids are random and stored hashed, sessions end after the idle and the absolute timeout, and CSRF
// tokens compare in constant time; the mirror page's error explanations are the README's Troubleshooting table.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openDatabase } from '../../src/store/database.js';
import { sameSecret, WebSessions } from '../../src/web/sessions.js';
import { safeNext } from '../../src/web/plugin.js';
import { TROUBLESHOOTING } from '../../src/web/troubleshooting.js';
import { ROOT } from '../helpers/server.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

after(removeTempDirs);

describe('web sessions', () => {
  it('keeps only a hash of the id, and ends sessions after the idle and the absolute timeout', async () => {
    const db = await openDatabase(join(tempDir(), 'db.sqlite'));
    let now = 1_000_000;
    const sessions = new WebSessions(db, { idleMs: 10 * 60_000, maxMs: 60 * 60_000 }, () => now);
    const s = await sessions.create({ id: 7, name: 'alice' });
    assert.match(s.id, /^[A-Za-z0-9_-]{43}$/);
    const rows = await db.selectFrom('web_sessions').selectAll().execute();
    assert.equal(rows.length, 1);
    assert.notEqual(rows[0]!.id_hash, s.id, 'the id itself is not stored');
    assert.equal((await sessions.find(s.id))?.userName, 'alice');
    assert.equal(await sessions.find('not-a-session'), undefined);

    // Active every 9 minutes: alive past the idle timeout many times over, until the absolute one.
    for (let t = 0; t < 6; t++) {
      now += 9 * 60_000;
      assert.ok(await sessions.find(s.id), `alive at ${(t + 1) * 9} minutes`);
    }
    now += 9 * 60_000; // 63 minutes after it began
    assert.equal(await sessions.find(s.id), undefined, 'ended by the absolute timeout');
    assert.equal((await db.selectFrom('web_sessions').selectAll().execute()).length, 0, 'and deleted');

    const idle = await sessions.create({ id: 7, name: 'alice' });
    now += 11 * 60_000;
    assert.equal(await sessions.find(idle.id), undefined, 'ended by the idle timeout');
    await sessions.create({ id: 8, name: 'bob' });
    now += 11 * 60_000;
    assert.equal(await sessions.prune(), 1);
    await db.destroy();
  });

  it('compares CSRF tokens as secrets and refuses empty ones', () => {
    assert.equal(sameSecret('abc', 'abc'), true);
    assert.equal(sameSecret('abc', 'abd'), false);
    assert.equal(sameSecret('abc', 'abcd'), false);
    assert.equal(sameSecret('', ''), false);
    assert.equal(sameSecret(undefined, undefined), false);
  });

  it('goes back only to a local path after signing in', () => {
    assert.equal(safeNext('/admin/mirrors/ABCD-0000-0000-0000'), '/admin/mirrors/ABCD-0000-0000-0000');
    for (const bad of ['https://evil.example', '//evil.example/x', '/\\evil.example', 'javascript:alert(1)', '/login?next=/', undefined, '/a b']) assert.equal(safeNext(bad), '/', String(bad));
  });
});

describe('troubleshooting explanations', () => {
  it("has every code of the README's Troubleshooting table with its cause and fix", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const table = readme.slice(readme.indexOf('### Troubleshooting'), readme.indexOf('## Deploying on Kubernetes'));
    let rows = 0;
    for (const line of table.split('\n').filter((l) => l.startsWith('| `'))) {
      const [codes, cause, fix] = line.slice(1, -1).split(' | ').map((c) => c.trim().replaceAll('`', ''));
      const first = codes!.split(',')[0]!.trim();
      assert.deepEqual(TROUBLESHOOTING.get(first), { cause, fix }, first);
      rows++;
    }
    assert.ok(rows >= 15, `${rows} rows read`);
  });
});
