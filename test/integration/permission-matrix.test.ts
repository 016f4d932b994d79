// The permission matrix: none / read / write / admin  x  anonymous / password / token / SSH key  x  HTTP / SSH.
// Every cell runs the real git client and asserts what the user sees and that nothing changed when refused.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { addSshKey, createProject, createRepo, createToken, createUser, grantProject, grantRepo } from '../helpers/fixtures.js';
import { ADMIN, git, gitOk, makeWorkTree, parseLsRemote, sshKeyPair, startServer, type Credentials, type GitClientOptions, type SshKeyPair, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

type Level = 'none' | 'read' | 'write' | 'admin';
type Outcome = 'ok' | 'login' | 'not-found' | 'forbidden' | 'key-refused';

let server: TestServer;
const people: Record<Level, { creds: Credentials; key: SshKeyPair; token: string }> = {} as never;
let unregisteredKey: SshKeyPair;
let work: string;

const EXPECT: Record<string, RegExp> = {
  login: /Authentication (required|failed)|could not read Username|401/,
  'not-found': /does not exist or you do not have permission to see it/,
  forbidden: /You do not have permission to push/,
  'key-refused': /Permission denied \(publickey\)/,
};

before(async () => {
  server = await startServer();
  await createProject(server, 'MATRIX');
  await createRepo(server, 'MATRIX', 'private');
  await createRepo(server, 'MATRIX', 'public', { public: true });
  work = await makeWorkTree();
  for (const slug of ['private', 'public']) await gitOk(server, ['push', server.httpUrl('MATRIX', slug), 'main'], { creds: ADMIN, cwd: work });
  for (const level of ['none', 'read', 'write', 'admin'] as Level[]) {
    const creds = await createUser(server, `user-${level}`);
    const key = await sshKeyPair(level);
    await addSshKey(server, creds.user, key.publicKey);
    if (level === 'read') await grantRepo(server, 'MATRIX', 'private', creds.user, 'REPO_READ');
    if (level === 'write') await grantRepo(server, 'MATRIX', 'private', creds.user, 'REPO_WRITE');
    if (level === 'admin') await grantProject(server, 'MATRIX', creds.user, 'PROJECT_ADMIN');
    // The token can do as much as its owner may (project admin scope).
    const token = await createToken(server, creds, ['PROJECT_ADMIN', 'REPO_ADMIN']);
    people[level] = { creds, key, token };
  }
  unregisteredKey = await sshKeyPair('stranger');
});

after(async () => {
  await server?.stop();
  removeTempDirs();
});

interface Cell {
  transport: 'http' | 'ssh';
  credential: 'anonymous' | 'password' | 'token' | 'ssh-key' | 'unregistered-key';
  level: Level;
  repo: 'private' | 'public';
  read: Outcome;
  write: Outcome;
}

function cells(): Cell[] {
  const out: Cell[] = [];
  const byLevel = (level: Level, repo: 'private' | 'public'): [Outcome, Outcome] => {
    // Only the project admin may push to the public repository; the others' grants are on the private one.
    if (repo === 'public') return ['ok', level === 'admin' ? 'ok' : 'forbidden'];
    if (level === 'none') return ['not-found', 'not-found'];
    if (level === 'read') return ['ok', 'forbidden'];
    return ['ok', 'ok'];
  };
  for (const repo of ['private', 'public'] as const) {
    out.push({ transport: 'http', credential: 'anonymous', level: 'none', repo, read: repo === 'public' ? 'ok' : 'login', write: 'login' });
    out.push({ transport: 'ssh', credential: 'unregistered-key', level: 'none', repo, read: 'key-refused', write: 'key-refused' });
    for (const level of ['none', 'read', 'write', 'admin'] as Level[]) {
      const [read, write] = byLevel(level, repo);
      out.push({ transport: 'http', credential: 'password', level, repo, read, write });
      out.push({ transport: 'http', credential: 'token', level, repo, read, write });
      out.push({ transport: 'ssh', credential: 'ssh-key', level, repo, read, write });
    }
  }
  return out;
}

function clientFor(cell: Cell): { url: string; options: GitClientOptions } {
  const person = people[cell.level];
  if (cell.transport === 'ssh') {
    return { url: server.sshUrl('MATRIX', cell.repo), options: { sshKey: cell.credential === 'unregistered-key' ? unregisteredKey : person.key } };
  }
  const creds = cell.credential === 'anonymous' ? undefined : cell.credential === 'token' ? { user: person.creds.user, secret: person.token } : person.creds;
  return { url: server.httpUrl('MATRIX', cell.repo), options: creds ? { creds } : {} };
}

function check(outcome: Outcome, result: { code: number | null; stderr: string }, what: string) {
  if (outcome === 'ok') {
    assert.equal(result.code, 0, `${what}: expected success, got:\n${result.stderr}`);
    return;
  }
  assert.notEqual(result.code, 0, `${what}: expected ${outcome}, but git succeeded`);
  assert.match(result.stderr, EXPECT[outcome]!, `${what}: expected ${outcome}`);
}

describe('permission matrix', () => {
  for (const cell of cells()) {
    const name = `${cell.transport} ${cell.credential} ${cell.level} on ${cell.repo}: read ${cell.read}, push ${cell.write}`;
    it(name, async () => {
      const { url, options } = clientFor(cell);
      const adminUrl = server.httpUrl('MATRIX', cell.repo);
      const before = parseLsRemote(await gitOk(server, ['ls-remote', adminUrl], { creds: ADMIN }));

      check(cell.read, await git(server, ['ls-remote', url], options), `${name} (ls-remote)`);

      const branch = `refs/heads/${cell.transport}-${cell.credential}-${cell.level}`;
      const push = await git(server, ['push', url, `main:${branch}`], { ...options, cwd: work });
      check(cell.write, push, `${name} (push)`);
      const afterRefs = parseLsRemote(await gitOk(server, ['ls-remote', adminUrl], { creds: ADMIN }));
      assert.equal(afterRefs.has(branch), cell.write === 'ok', 'the branch exists exactly when the push was allowed');
      if (cell.write === 'ok') {
        // Clean up so that every cell starts from the same refs.
        await gitOk(server, ['push', adminUrl, `:${branch}`], { creds: ADMIN, cwd: work });
      } else {
        assert.deepEqual(afterRefs, before, 'a refused push changes nothing');
      }
    });
  }

  it('a token never grants more than its scope', async () => {
    const writer = people.write;
    const readOnly = await createToken(server, writer.creds, ['REPO_READ'], 'read only');
    const creds = { user: writer.creds.user, secret: readOnly };
    check('ok', await git(server, ['ls-remote', server.httpUrl('MATRIX', 'private')], { creds }), 'read-only token clone');
    check('forbidden', await git(server, ['push', server.httpUrl('MATRIX', 'private'), 'main:refs/heads/token-push'], { creds, cwd: work }), 'read-only token push');
    const wrongUser = { user: people.read.creds.user, secret: writer.token };
    check('login', await git(server, ['ls-remote', server.httpUrl('MATRIX', 'private')], { creds: wrongUser }), 'token presented for another user');
  });
});
