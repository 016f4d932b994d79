// Pushes through a mirror are held to the primary's permission matrix: the same users, grants, keys and tokens
// as permission-matrix.test.ts (test/helpers/matrix.ts), every push sent to a mirror node that passes it on
// (HTTPS with the user's credentials, SSH with the mirror's signed assertion of the user's key). Each cell must
// get exactly the primary's answer; a permitted push is served by the mirror as soon as it returns, a refused one
// changes nothing anywhere.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cellBranch, cellName, check, clientFor, MATRIX_PROJECT, primaryCells, setUpMatrix, type MatrixFixture } from '../helpers/matrix.js';
import { authorizeMirror, waitForSameRefs, waitForState } from '../helpers/mirror.js';
import { ADMIN, git, gitOk, parseLsRemote, startMirror, startServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

let primary: TestServer;
let mirror: TestServer;
let fixture: MatrixFixture;
let head: string;

before(async () => {
  primary = await startServer();
  fixture = await setUpMatrix(primary);
  head = (await gitOk(null, ['rev-parse', 'HEAD'], { cwd: fixture.work })).trim();
  mirror = await startMirror(primary);
  await authorizeMirror(primary, mirror, [MATRIX_PROJECT]);
  await waitForState(mirror, 'SYNCHRONIZED');
  for (const repo of ['private', 'public'] as const) await waitForSameRefs(primary, mirror, MATRIX_PROJECT, repo, ADMIN);
});

after(async () => {
  await mirror?.stop();
  await primary?.stop();
  removeTempDirs();
});

const refsOf = async (server: TestServer, repo: string) => parseLsRemote(await gitOk(server, ['ls-remote', server.httpUrl(MATRIX_PROJECT, repo)], { creds: ADMIN }));

describe('push-through permission matrix', () => {
  for (const cell of primaryCells()) {
    const name = cellName(cell);
    it(name, async () => {
      const { url, options } = clientFor(mirror, fixture, cell);
      const branch = cellBranch(cell);
      const push = await git(mirror, ['push', url, `main:${branch}`], { ...options, cwd: fixture.work });
      check(cell.write, push, `${name} (push through the mirror)`);
      assert.doesNotMatch(push.stderr, /read-only mirror/);
      const [onMirror, onPrimary] = await Promise.all([refsOf(mirror, cell.repo), refsOf(primary, cell.repo)]);
      if (cell.write === 'ok') {
        assert.equal(onPrimary.get(branch), head, 'the primary has the pushed branch');
        assert.equal(onMirror.get(branch), head, 'the mirror serves it as soon as the push returned');
      } else {
        assert.ok(!onPrimary.has(branch) && !onMirror.has(branch), 'a refused push changes nothing');
      }
    });
  }
});
