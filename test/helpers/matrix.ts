// The permission matrix shared by the primary's and the mirror's tests: none / read / write / admin  x
// anonymous / password / token / SSH key  x  HTTP / SSH, on a private and a public repository, with each level
// granted to the user directly or through a group (and once both, where the higher one must win). One table of
// expected outcomes, so that a mirror is held to exactly the primary's answers for reads.
import assert from 'node:assert/strict';
import { addSshKey, createProject, createRepo, createToken, createUser, grantProject, grantRepo } from './fixtures.js';
import { ADMIN, api, gitOk, makeWorkTree, sshKeyPair, type Credentials, type GitClientOptions, type SshKeyPair, type TestServer } from './server.js';

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

/** How a person holds their level: their own grant, a group's, or both (own REPO_READ, group REPO_WRITE). */
export type GrantedVia = 'user' | 'group' | 'user+group';
export type GrantedLevel = Exclude<Level, 'none'>;

/** The groups of the matrix and what each is granted; group members hold exactly that level. */
export const MATRIX_GROUPS: Record<GrantedLevel, { name: string; grant: { repo?: MatrixRepo; permission: string } }> = {
  read: { name: 'matrix-readers', grant: { repo: 'private', permission: 'REPO_READ' } },
  write: { name: 'matrix-writers', grant: { repo: 'private', permission: 'REPO_WRITE' } },
  admin: { name: 'Matrix Admins', grant: { permission: 'PROJECT_ADMIN' } },
};

export interface MatrixFixture {
  people: Record<Level, Person>;
  /** user-group-<level>: no grant of their own, a member of MATRIX_GROUPS[level]. */
  groupPeople: Record<GrantedLevel, Person>;
  /** user-mixed-write: their own REPO_READ on the private repository, and a member of matrix-writers. */
  mixed: Person;
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
  const person = async (name: string): Promise<Person> => {
    const creds = await createUser(server, name);
    const key = await sshKeyPair(name);
    await addSshKey(server, creds.user, key.publicKey);
    // The token can do as much as its owner may (project admin scope).
    const token = await createToken(server, creds, ['PROJECT_ADMIN', 'REPO_ADMIN']);
    return { creds, key, token };
  };
  const people = {} as Record<Level, Person>;
  for (const level of LEVELS) {
    people[level] = await person(`user-${level}`);
    const user = people[level].creds.user;
    if (level === 'read') await grantRepo(server, MATRIX_PROJECT, 'private', user, 'REPO_READ');
    if (level === 'write') await grantRepo(server, MATRIX_PROJECT, 'private', user, 'REPO_WRITE');
    if (level === 'admin') await grantProject(server, MATRIX_PROJECT, user, 'PROJECT_ADMIN');
  }
  const groupPeople = {} as Record<GrantedLevel, Person>;
  for (const level of ['read', 'write', 'admin'] as const) {
    groupPeople[level] = await person(`user-group-${level}`);
    const { name, grant } = MATRIX_GROUPS[level];
    await ok(api(server, 'POST', `/rest/api/1.0/admin/groups?name=${encodeURIComponent(name)}`), `create group ${name}`);
    await addToGroup(server, name, groupPeople[level].creds.user);
    const path = grant.repo ? `/repos/${grant.repo}/permissions/groups` : '/permissions/groups';
    await ok(api(server, 'PUT', `/rest/api/1.0/projects/${MATRIX_PROJECT}${path}?name=${encodeURIComponent(name)}&permission=${grant.permission}`), `grant ${name}`);
  }
  const mixed = await person('user-mixed-write');
  await grantRepo(server, MATRIX_PROJECT, 'private', mixed.creds.user, 'REPO_READ');
  await addToGroup(server, MATRIX_GROUPS.write.name, mixed.creds.user);
  return { people, groupPeople, mixed, unregisteredKey: await sshKeyPair('stranger'), work };
}

async function ok(promise: ReturnType<typeof api>, what: string): Promise<void> {
  const r = await promise;
  assert.ok(r.status >= 200 && r.status < 300, `${what}: HTTP ${r.status} ${r.text}`);
}

export function addToGroup(server: TestServer, group: string, user: string): Promise<void> {
  return ok(api(server, 'POST', '/rest/api/1.0/admin/groups/add-user', { context: group, itemName: user }), `add ${user} to ${group}`);
}

export function removeFromGroup(server: TestServer, group: string, user: string): Promise<void> {
  return ok(api(server, 'POST', '/rest/api/1.0/admin/groups/remove-user', { context: group, itemName: user }), `remove ${user} from ${group}`);
}

export interface Cell {
  transport: 'http' | 'ssh';
  credential: 'anonymous' | 'password' | 'token' | 'ssh-key' | 'unregistered-key';
  level: Level;
  via: GrantedVia;
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
  // Whoever holds a level through a group, or through both their own grant and a group's, gets what a
  // direct grant of that level gives.
  const granted: Array<[Level, GrantedVia]> = [...LEVELS.map((l) => [l, 'user'] as [Level, GrantedVia]), ['read', 'group'], ['write', 'group'], ['admin', 'group'], ['write', 'user+group']];
  for (const repo of ['private', 'public'] as const) {
    out.push({ transport: 'http', credential: 'anonymous', level: 'none', via: 'user', repo, read: repo === 'public' ? 'ok' : 'login', write: 'login' });
    out.push({ transport: 'ssh', credential: 'unregistered-key', level: 'none', via: 'user', repo, read: 'key-refused', write: 'key-refused' });
    for (const [level, via] of granted) {
      const [read, write] = byLevel(level, repo);
      out.push({ transport: 'http', credential: 'password', level, via, repo, read, write });
      out.push({ transport: 'http', credential: 'token', level, via, repo, read, write });
      out.push({ transport: 'ssh', credential: 'ssh-key', level, via, repo, read, write });
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
  const via = cell.via === 'user' ? '' : ` (via ${cell.via === 'group' ? 'a group' : 'own and group grants'})`;
  return `${cell.transport} ${cell.credential} ${cell.level}${via} on ${cell.repo}: read ${cell.read}, push ${cell.write}`;
}

/** The branch a cell tries to push, different for every cell. */
export function cellBranch(cell: Cell): string {
  return `refs/heads/${cell.transport}-${cell.credential}-${cell.level}${cell.via === 'user' ? '' : `-${cell.via.replace('+', '-')}`}`;
}

function personOf(fixture: MatrixFixture, cell: Cell): Person {
  if (cell.via === 'user+group') return fixture.mixed;
  return cell.via === 'group' && cell.level !== 'none' ? fixture.groupPeople[cell.level] : fixture.people[cell.level];
}

/** The URL and client options a cell's user would use against `server` (a primary or a mirror). */
export function clientFor(server: TestServer, fixture: MatrixFixture, cell: Cell): { url: string; options: GitClientOptions } {
  const person = personOf(fixture, cell);
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
