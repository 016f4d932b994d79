// `mirrorfarm admin ...` against a real server, run as a child process the way a script runs it: credentials
// from the environment or stdin (never argv), a private CA from --ca-file, tables by default and JSON with
// --json, the server's message and a non-zero exit status on errors.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run, type RunResult } from '../helpers/run.js';
import { tokenSecret } from '../helpers/fixtures.js';
import { ADMIN_PASSWORD, api, git, gitOk, ROOT, sshKeyPair, startServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

// Response bodies are checked field by field with assert; a precise type per shape would add nothing.
 
type Json = any;

let server: TestServer;
const CLI = join(ROOT, 'dist/cli/main.js');

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.stop();
  removeTempDirs();
});

interface CliOptions {
  env?: Record<string, string>;
  input?: string;
  /** Leave out --url and --ca-file (to test the environment variables or their absence). */
  bare?: boolean;
}

/** Runs the CLI with the admin password in the environment unless told otherwise. */
function cli(args: string[], options: CliOptions = {}): Promise<RunResult> {
  const connection = options.bare ? [] : ['--url', server.baseUrl, '--ca-file', server.ca.caCert];
  const env = { PATH: process.env.PATH!, ...(options.env ?? { MIRRORFARM_PASSWORD: ADMIN_PASSWORD }) };
  return run(process.execPath, [CLI, 'admin', ...connection, ...args], { env, ...(options.input !== undefined ? { input: options.input } : {}) });
}

async function cliOk(args: string[], options: CliOptions = {}): Promise<string> {
  const r = await cli(args, options);
  assert.equal(r.code, 0, `mirrorfarm admin ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return r.stdout;
}

async function cliJson(args: string[], options: CliOptions = {}): Promise<Json> {
  return JSON.parse(await cliOk(['--json', ...args], options));
}

describe('mirrorfarm admin', () => {
  let cloneUrl: string;
  let sshPrivateKey: string;

  it('creates and lists projects and repositories', async () => {
    assert.match(await cliOk(['project', 'create', 'CLI', '--name', 'Command line', '--description', 'made by the CLI']), /^Created project CLI \(Command line\)\.\n$/);
    const [table, created] = await Promise.all([cliOk(['project', 'list']), cliJson(['repo', 'create', 'CLI', 'Hello World', '--public'])]);
    assert.match(table, /^KEY\s+NAME\s+PUBLIC\s+DESCRIPTION\nCLI\s+Command line\s+no\s+made by the CLI\n$/);
    assert.deepEqual([created.slug, created.public, created.project.key], ['hello-world', true, 'CLI']);
    cloneUrl = created.links.clone.find((c: Json) => c.name === 'http').href;
    assert.equal(cloneUrl, `${server.baseUrl}/scm/cli/hello-world.git`);
    await gitOk(server, ['ls-remote', cloneUrl]);
  });

  it('renames and deletes repositories', async () => {
    const renamed = await cliJson(['repo', 'rename', 'CLI', 'hello-world', 'Greetings']);
    assert.deepEqual([renamed.slug, renamed.name], ['greetings', 'Greetings']);
    assert.match(await cliOk(['repo', 'list']), /^PROJECT\s+SLUG\s+NAME\s+PUBLIC\s+CLONE\nCLI\s+greetings\s+Greetings\s+yes\s+https:\/\/\S+\/scm\/cli\/greetings\.git\n$/);
    assert.match(await cliOk(['repo', 'delete', 'CLI', 'greetings']), /^Deleted repository CLI\/greetings\.\n$/);
    assert.equal((await api(server, 'GET', '/rest/api/1.0/projects/CLI/repos/greetings')).status, 404);
  });

  it('creates users with the password from stdin or the environment, and sysadmins', async () => {
    const [a, b] = await Promise.all([
      cliOk(['user', 'create', 'alice', '--display-name', 'Alice A', '--email', 'alice@example.com', '--password-stdin'], {
        input: 'alice-password-1\n',
        env: { MIRRORFARM_PASSWORD: ADMIN_PASSWORD },
      }),
      cliOk(['user', 'create', 'bob', '--sysadmin'], { env: { MIRRORFARM_PASSWORD: ADMIN_PASSWORD, MIRRORFARM_NEW_USER_PASSWORD: 'bob-password-1' } }),
    ]);
    assert.match(a, /^Created user alice\.\n$/);
    assert.match(b, /^Created user bob \(sysadmin\)\.\n$/);
    assert.equal((await api(server, 'GET', '/rest/api/1.0/users/alice', undefined, { user: 'alice', secret: 'alice-password-1' })).body.displayName, 'Alice A');
    assert.equal((await api(server, 'POST', '/rest/api/1.0/projects', { key: 'BOB' }, { user: 'bob', secret: 'bob-password-1' })).status, 201);
    const list = await cliOk(['user', 'list']);
    assert.match(list, /^NAME\s+DISPLAY NAME\s+EMAIL\s+ACTIVE\s+SYSADMIN\n/);
    assert.match(list, /\nalice\s+Alice A\s+alice@example\.com\s+yes\n/);
    assert.match(list, /\nbob\s+bob\s+yes\s+yes\n/);
  });

  it('grants, lists and revokes permissions', async () => {
    assert.equal((await api(server, 'POST', '/rest/api/1.0/projects/CLI/repos', { name: 'private' })).status, 201);
    assert.match(await cliOk(['permission', 'grant', '--repo', 'CLI/private', '--user', 'alice', '--permission', 'REPO_WRITE']), /^Granted REPO_WRITE on CLI\/private to alice\.\n$/);
    const alice = { user: 'alice', secret: 'alice-password-1' };
    const [listed, visible] = await Promise.all([cliOk(['permission', 'list', '--repo', 'CLI/private']), api(server, 'GET', '/rest/api/1.0/projects/CLI/repos/private', undefined, alice)]);
    assert.match(listed, /^USER\s+PERMISSION\nalice\s+REPO_WRITE\n$/);
    assert.equal(visible.status, 200);
    await cliOk(['permission', 'revoke', '--repo', 'CLI/private', '--user', 'alice']);
    assert.equal((await api(server, 'GET', '/rest/api/1.0/projects/CLI/repos/private', undefined, alice)).status, 404);
  });

  it('adds, lists and deletes SSH keys', async () => {
    const key = await sshKeyPair('alice-cli');
    const file = join(tempDir(), 'alice.pub');
    writeFileSync(file, `${key.publicKey}\n`);
    sshPrivateKey = key.privateKey;
    const added = await cliJson(['ssh-key', 'add', '--user', 'alice', file]);
    assert.equal(added.label, 'alice-cli');
    const list = await cliOk(['ssh-key', 'list', '--user', 'alice']);
    assert.match(list, new RegExp(`^ID\\s+LABEL\\s+TYPE\\s+BITS\\s+FINGERPRINT\\s+ADDED\\n${added.id}\\s+alice-cli\\s+ED25519\\s+256\\s+${added.fingerprint.replace(/[+/]/g, '\\$&')}\\s+\\d{4}-`));
    assert.match(await cliOk(['ssh-key', 'delete', String(added.id)]), /^Deleted SSH key \d+\.\n$/);
    assert.deepEqual((await api(server, 'GET', '/rest/ssh/1.0/keys?user=alice')).body.values, []);
  });

  it('creates a token, printing it alone and once; the token works for git and the CLI', async () => {
    const r = await cli(['token', 'create', '--user', 'admin', '--name', 'ci', '--permissions', 'project_read,REPO_READ', '--expiry-days', '7']);
    assert.equal(r.code, 0, r.stderr);
    const token = r.stdout.trim();
    assert.match(token, /^mft_\d+_[A-Za-z0-9_-]{43}$/);
    assert.match(r.stderr, /shown only once/);
    const [, repos, listed] = await Promise.all([
      gitOk(server, ['ls-remote', `${server.baseUrl}/scm/cli/private.git`], { creds: { user: 'admin', secret: token } }),
      cliJson(['repo', 'list'], { env: { MIRRORFARM_TOKEN: token } }),
      cliOk(['token', 'list', '--user', 'admin']),
    ]);
    assert.deepEqual(
      repos.map((x: Json) => x.slug),
      ['private'],
    );
    assert.match(listed, /^ID\s+NAME\s+PERMISSIONS\s+CREATED\s+EXPIRES\s+LAST USED\n\d+\s+ci\s+PROJECT_READ,REPO_READ\s+\d{4}-/);
    assert.ok(!listed.includes(tokenSecret(token)));
    const id = token.split('_')[1]!; // the id has no '_'
    await cliOk(['token', 'delete', '--user', 'admin', id]);
    assert.notEqual((await git(server, ['ls-remote', `${server.baseUrl}/scm/cli/private.git`], { creds: { user: 'admin', secret: token } })).code, 0);
  });

  it('reads the event log', async () => {
    const [page, r] = await Promise.all([cliJson(['events', '--after', '1', '--limit', '3']), cli(['events', '--after', '1', '--limit', '2'])]);
    assert.deepEqual(
      page.values.map((e: Json) => [e.id, e.type]),
      [
        [2, 'project.created'],
        [3, 'repository.created'],
        [4, 'repository.updated'],
      ],
    );
    assert.deepEqual([page.nextAfter, page.isLastPage], [4, false]);
    assert.match(r.stdout, /^ID\s+TIME\s+TYPE\s+DETAILS\n2\s+\S+\s+project\.created\s+key=CLI name=Command line public=false\n3\s+/);
    assert.match(r.stderr, /more events follow: --after 3/);
  });

  it('takes the login password from stdin and the server from the environment', async () => {
    const asAlice = await cliJson(['--user', 'alice', '--password-stdin', 'repo', 'list'], {
      bare: true,
      input: 'alice-password-1\n',
      env: { MIRRORFARM_URL: server.baseUrl, MIRRORFARM_CA_FILE: server.ca.caCert },
    });
    assert.deepEqual(asAlice, []);
  });

  it('prints the server\'s message and exits non-zero on errors', async () => {
    const [wrong, anonymous, missing, untrusted, plain, noPassword, privateKey] = await Promise.all([
      cli(['project', 'list'], { env: { MIRRORFARM_PASSWORD: 'wrong-password' } }),
      cli(['project', 'create', 'ANON'], { env: {} }),
      cli(['repo', 'delete', 'CLI', 'nothing']),
      cli(['project', 'list'], { bare: true, env: { MIRRORFARM_PASSWORD: ADMIN_PASSWORD, MIRRORFARM_URL: server.baseUrl } }),
      cli(['project', 'list'], { bare: true, env: { MIRRORFARM_PASSWORD: ADMIN_PASSWORD, MIRRORFARM_URL: 'http://example.com:7990' } }),
      cli(['user', 'create', 'carol']),
      cli(['ssh-key', 'add', sshPrivateKey]),
    ]);
    assert.deepEqual([wrong.code, wrong.stdout, wrong.stderr], [1, '', 'mirrorfarm: Authentication failed: check your username and password or access token.\n']);
    assert.equal(anonymous.code, 1);
    assert.match(anonymous.stderr, /Authentication required.*\(set MIRRORFARM_PASSWORD, MIRRORFARM_TOKEN or use --password-stdin\)/);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Repository CLI\/nothing does not exist/);
    assert.equal(untrusted.code, 1);
    assert.match(untrusted.stderr, /certificate of 127\.0\.0\.1:\d+ is not trusted .*--ca-file/);
    assert.equal(plain.code, 1);
    assert.match(plain.stderr, /must be an https:\/\/ URL/);
    assert.equal(noPassword.code, 1);
    assert.match(noPassword.stderr, /no password for carol: use --password-stdin or set MIRRORFARM_NEW_USER_PASSWORD/);
    assert.equal(privateKey.code, 1);
    assert.match(privateKey.stderr, /private key; give the \.pub file/);
    // The password given on stdin never reaches the server log either.
    assert.ok(!server.output().includes('alice-password-1'));
  });
});
