// The permission matrix: none / read / write / admin (granted to the user, to a group they are in, or both)  x
// anonymous / password / token / SSH key  x  HTTP / SSH.
// Every cell runs the real git client and asserts what the user sees and that nothing changed when refused.
// The table lives in test/helpers/matrix.ts, shared with the mirror's matrix (mirror-matrix.test.ts).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createToken } from '../helpers/fixtures.js';
import { cellBranch, cellName, check, clientFor, MATRIX_PROJECT, primaryCells, setUpMatrix, type MatrixFixture } from '../helpers/matrix.js';
import { ADMIN, git, gitOk, parseLsRemote, startServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

let server: TestServer;
let fixture: MatrixFixture;

before(async () => {
  server = await startServer();
  fixture = await setUpMatrix(server);
});

after(async () => {
  await server?.stop();
  removeTempDirs();
});

describe('permission matrix', () => {
  for (const cell of primaryCells()) {
    const name = cellName(cell);
    it(name, async () => {
      const { url, options } = clientFor(server, fixture, cell);
      const adminUrl = server.httpUrl(MATRIX_PROJECT, cell.repo);
      const before = parseLsRemote(await gitOk(server, ['ls-remote', adminUrl], { creds: ADMIN }));

      check(cell.read, await git(server, ['ls-remote', url], options), `${name} (ls-remote)`);

      const branch = cellBranch(cell);
      const push = await git(server, ['push', url, `main:${branch}`], { ...options, cwd: fixture.work });
      check(cell.write, push, `${name} (push)`);
      const afterRefs = parseLsRemote(await gitOk(server, ['ls-remote', adminUrl], { creds: ADMIN }));
      assert.equal(afterRefs.has(branch), cell.write === 'ok', 'the branch exists exactly when the push was allowed');
      if (cell.write === 'ok') {
        // Clean up so that every cell starts from the same refs.
        await gitOk(server, ['push', adminUrl, `:${branch}`], { creds: ADMIN, cwd: fixture.work });
      } else {
        assert.deepEqual(afterRefs, before, 'a refused push changes nothing');
      }
    });
  }

  it('a token never grants more than its scope', async () => {
    const writer = fixture.people.write;
    const readOnly = await createToken(server, writer.creds, ['REPO_READ'], 'read only');
    const creds = { user: writer.creds.user, secret: readOnly };
    check('ok', await git(server, ['ls-remote', server.httpUrl(MATRIX_PROJECT, 'private')], { creds }), 'read-only token clone');
    check('forbidden', await git(server, ['push', server.httpUrl(MATRIX_PROJECT, 'private'), 'main:refs/heads/token-push'], { creds, cwd: fixture.work }), 'read-only token push');
    const wrongUser = { user: fixture.people.read.creds.user, secret: writer.token };
    check('login', await git(server, ['ls-remote', server.httpUrl(MATRIX_PROJECT, 'private')], { creds: wrongUser }), 'token presented for another user');
  });
});
