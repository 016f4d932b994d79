// The permission matrix shared by the primary's and the mirror's tests: none / read / write / admin  x
// anonymous / password / token / SSH key  x  HTTP / SSH, on a private and a public repository. One table of
// expected outcomes, so that a mirror is held to exactly the primary's answers for reads.
import assert from 'node:assert/strict';
import { addSshKey, createProject, createRepo, createToken, createUser, grantProject, grantRepo } from './fixtures.js';
import { ADMIN, gitOk, makeWorkTree, sshKeyPair, type Credentials, type GitClientOptions, type SshKeyPair, type TestServer } from './server.js';

export type Level = 'none' | 'read' | 'write' | 'admin';
/** What a git client sees. `read-only` is a mirror refusing a push from someone who may read. */
export type Outcome = 'ok' | 'login' | 'not-found' | 'forbidden' | 'key-refused' | 'read-only';

export const LEVELS: Level[] = ['none', 'read', 'write', 'admin'];
export const MATRIX_PROJECT = 'MATRIX';
export type MatrixRepo = 'private' | 'public';

export const EXPECT: Record<Exclude<Outcome, 'ok'>, RegExp> = {
  login: /Authentication (required|failed)|could not read Username|401/,
  'not-found': /does not exist or you do not have permission to see it/,
  forbidden: /You do not have permission to push/,
  'key-refused': /Permission denied \(publickey\)/,
  'read-only': /This is a read-only mirror\. Push to the primary instead: https:\/\//,
};

export interface Person {
  creds: Credentials;
  key: SshKeyPair;
  /** A token scoped as widely as the owner may act (project and repository admin). */
  token: string;
}

export interface MatrixFixture {
  people: Record<Level, Person>;
  unregisteredKey: SshKeyPair;
  /** A work tree with one commit on main, pushed to both repositories. */
  work: string;
}

/** Creates project MATRIX with a private and a public repository, and one user per level with key and token. */
export async function setUpMatrix(server: TestServer): Promise<MatrixFixture> {
  await createProject(server, MATRIX_PROJECT);
  await createRepo(server, MATRIX_PROJECT, 'private');
  await createRepo(server, MATRIX_PROJECT, 'public', { public: true });
  const work = await makeWorkTree();
  for (const slug of ['private', 'public']) await gitOk(server, ['push', server.httpUrl(MATRIX_PROJECT, slug), 'main'], { creds: ADMIN, cwd: work });
  const people = {} as Record<Level, Person>;
  for (const level of LEVELS) {
    const creds = await createUser(server, `user-${level}`);
    const key = await sshKeyPair(level);
    await addSshKey(server, creds.user, key.publicKey);
    if (level === 'read') await grantRepo(server, MATRIX_PROJECT, 'private', creds.user, 'REPO_READ');
    if (level === 'write') await grantRepo(server, MATRIX_PROJECT, 'private', creds.user, 'REPO_WRITE');
    if (level === 'admin') await grantProject(server, MATRIX_PROJECT, creds.user, 'PROJECT_ADMIN');
    // The token can do as much as its owner may (project admin scope).
    const token = await createToken(server, creds, ['PROJECT_ADMIN', 'REPO_ADMIN']);
    people[level] = { creds, key, token };
  }
  return { people, unregisteredKey: await sshKeyPair('stranger'), work };
}

export interface Cell {
  transport: 'http' | 'ssh';
  credential: 'anonymous' | 'password' | 'token' | 'ssh-key' | 'unregistered-key';
  level: Level;
  repo: MatrixRepo;
  read: Outcome;
  write: Outcome;
}

/** The primary's matrix: what every combination may do there. */
export function primaryCells(): Cell[] {
  const out: Cell[] = [];
  const byLevel = (level: Level, repo: MatrixRepo): [Outcome, Outcome] => {
    // Only the project admin may push to the public repository; the others' grants are on the private one.
    if (repo === 'public') return ['ok', level === 'admin' ? 'ok' : 'forbidden'];
    if (level === 'none') return ['not-found', 'not-found'];
    if (level === 'read') return ['ok', 'forbidden'];
    return ['ok', 'ok'];
  };
  for (const repo of ['private', 'public'] as const) {
    out.push({ transport: 'http', credential: 'anonymous', level: 'none', repo, read: repo === 'public' ? 'ok' : 'login', write: 'login' });
    out.push({ transport: 'ssh', credential: 'unregistered-key', level: 'none', repo, read: 'key-refused', write: 'key-refused' });
    for (const level of LEVELS) {
      const [read, write] = byLevel(level, repo);
      out.push({ transport: 'http', credential: 'password', level, repo, read, write });
      out.push({ transport: 'http', credential: 'token', level, repo, read, write });
      out.push({ transport: 'ssh', credential: 'ssh-key', level, repo, read, write });
    }
  }
  return out;
}

/**
 * A mirror's matrix: reads exactly as on the primary; every push refused, as read-only (naming the primary)
 * for whoever may read, and for everybody else with the same answer a read gets, so that nothing leaks.
 */
export function mirrorCells(): Cell[] {
  return primaryCells().map((cell) => ({ ...cell, write: cell.read === 'ok' ? 'read-only' : cell.read }));
}

export function cellName(cell: Cell): string {
  return `${cell.transport} ${cell.credential} ${cell.level} on ${cell.repo}: read ${cell.read}, push ${cell.write}`;
}

/** The URL and client options a cell's user would use against `server` (a primary or a mirror). */
export function clientFor(server: TestServer, fixture: MatrixFixture, cell: Cell): { url: string; options: GitClientOptions } {
  const person = fixture.people[cell.level];
  if (cell.transport === 'ssh') {
    return { url: server.sshUrl(MATRIX_PROJECT, cell.repo), options: { sshKey: cell.credential === 'unregistered-key' ? fixture.unregisteredKey : person.key } };
  }
  const creds = cell.credential === 'anonymous' ? undefined : cell.credential === 'token' ? { user: person.creds.user, secret: person.token } : person.creds;
  return { url: server.httpUrl(MATRIX_PROJECT, cell.repo), options: creds ? { creds } : {} };
}

export function check(outcome: Outcome, result: { code: number | null; stderr: string }, what: string): void {
  if (outcome === 'ok') {
    assert.equal(result.code, 0, `${what}: expected success, got:\n${result.stderr}`);
    return;
  }
  assert.notEqual(result.code, 0, `${what}: expected ${outcome}, but git succeeded`);
  assert.match(result.stderr, EXPECT[outcome], `${what}: expected ${outcome}`);
}
