// `mirrorfarm admin group ...` and `permission ... --group` against a real server, run as a child process the
// way a script runs it: create groups, fill them, grant them a project, see what the members may do, and the
// server's message with a non-zero exit status when a group does not exist.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createProject, createRepo, createUser } from '../helpers/fixtures.js';
import { run, type RunResult } from '../helpers/run.js';
import { ADMIN_PASSWORD, api, ROOT, startServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

type Json = any;

let server: TestServer;
const CLI = join(ROOT, 'dist/cli/main.js');

before(async () => {
  server = await startServer();
  await Promise.all(['alice', 'bob', 'carol'].map((n) => createUser(server, n)));
  await createProject(server, 'GRP');
  await createRepo(server, 'GRP', 'code');
});

after(async () => {
  await server?.stop();
  removeTempDirs();
});

function cli(args: string[]): Promise<RunResult> {
  return run(process.execPath, [CLI, 'admin', '--url', server.baseUrl, '--ca-file', server.ca.caCert, ...args], {
    env: { PATH: process.env.PATH!, MIRRORFARM_PASSWORD: ADMIN_PASSWORD },
  });
}

async function cliOk(args: string[]): Promise<string> {
  const r = await cli(args);
  assert.equal(r.code, 0, `mirrorfarm admin ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return r.stdout;
}

const alice = { user: 'alice', secret: 'alice-password-1' };

describe('mirrorfarm admin group', () => {
  it('creates, lists, fills and empties groups', async () => {
    assert.equal(await cliOk(['group', 'create', 'Developers']), 'Created group Developers.\n');
    assert.equal(await cliOk(['groups', 'create', 'admins', '--sysadmin']), 'Created group admins (sysadmin).\n');
    assert.match(await cliOk(['group', 'list']), /^NAME\s+SYSADMIN\nadmins\s+yes\nDevelopers\n$/);
    assert.deepEqual(JSON.parse(await cliOk(['group', 'list', '--filter', 'dev', '--json'])), [{ name: 'Developers', deletable: true }]);

    assert.equal(await cliOk(['group', 'add-user', 'developers', 'alice', 'bob']), 'Added alice, bob to developers.\n');
    assert.match(await cliOk(['group', 'members', 'Developers']), /^NAME\s+DISPLAY NAME\s+EMAIL\nalice\s+alice\s+alice@example\.com\nbob\s+bob\s+bob@example\.com\n$/);
    assert.equal(await cliOk(['group', 'remove-user', 'Developers', 'bob']), 'Removed bob from Developers.\n');
    const members = JSON.parse(await cliOk(['--json', 'group', 'members', 'Developers']));
    assert.deepEqual(members.map((u: Json) => u.name), ['alice']);
  });

  it('grants a group a project permission, lists it and revokes it', async () => {
    assert.equal((await api(server, 'GET', '/rest/api/1.0/projects/GRP/repos/code', undefined, alice)).status, 404);
    assert.equal(await cliOk(['permission', 'grant', '--project', 'GRP', '--group', 'Developers', '--permission', 'PROJECT_READ']), 'Granted PROJECT_READ on GRP to group Developers.\n');
    assert.equal((await api(server, 'GET', '/rest/api/1.0/projects/GRP/repos/code', undefined, alice)).status, 200, 'alice reads through her group');
    assert.match(await cliOk(['permission', 'list', '--project', 'GRP', '--groups']), /^GROUP\s+PERMISSION\nDevelopers\s+PROJECT_READ\n$/);
    assert.match(await cliOk(['permission', 'list', '--project', 'GRP']), /^USER\s+PERMISSION\n$/, 'user grants are listed apart');
    await cliOk(['permission', 'grant', '--repo', 'GRP/code', '--group', 'Developers', '--permission', 'REPO_WRITE']);
    assert.match(await cliOk(['permission', 'list', '--repo', 'GRP/code', '--groups']), /^GROUP\s+PERMISSION\nDevelopers\s+REPO_WRITE\n$/);
    assert.equal(await cliOk(['permission', 'revoke', '--project', 'GRP', '--group', 'Developers']), 'Revoked the permission of group Developers on GRP.\n');
    await cliOk(['permission', 'revoke', '--repo', 'GRP/code', '--group', 'Developers']);
    assert.equal((await api(server, 'GET', '/rest/api/1.0/projects/GRP/repos/code', undefined, alice)).status, 404);
  });

  it('deletes a group, and says so clearly when a group does not exist', async () => {
    await cliOk(['permission', 'grant', '--project', 'GRP', '--group', 'Developers', '--permission', 'PROJECT_READ']);
    assert.equal(await cliOk(['group', 'delete', 'developers']), 'Deleted group Developers.\n');
    assert.equal((await api(server, 'GET', '/rest/api/1.0/projects/GRP/repos/code', undefined, alice)).status, 404, 'its grant went with it');
    const missing = await cli(['group', 'members', 'Developers']);
    assert.deepEqual([missing.code, missing.stdout], [1, '']);
    assert.match(missing.stderr, /^mirrorfarm: Group Developers does not exist/);
    const both = await cli(['permission', 'grant', '--project', 'GRP', '--user', 'carol', '--group', 'admins', '--permission', 'PROJECT_READ']);
    assert.deepEqual([both.code, both.stderr], [1, 'mirrorfarm: name exactly one of --user NAME or --group NAME\n']);
  });
});
