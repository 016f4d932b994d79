// Regression tests for security findings, each named after what it guards, against a real primary (and, for
// file modes, a real mirror): no private names through id-addressed endpoints, an owner-only home, mirror
// tokens no longer than 60 s, a deleted mirror's running SSH fetch cut off within a second, and smart HTTP's
// answers to a wrong Content-Type and a truncated pkt-line, with HSTS on every HTTPS answer.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { lstatSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SignJWT } from 'jose';
import { generateMirrorKey, loadMirrorKey, mirrorIdFor, signMirrorToken, type MirrorKey } from '../../src/auth/mirror-token.js';
import { addSshKey, createProject, createRepo, createToken, createUser } from '../helpers/fixtures.js';
import { rawRequest } from '../helpers/http.js';
import { authorizeMirror, waitForSameRefs } from '../helpers/mirror.js';
import { ADMIN, api, git, gitOk, makeWorkTree, sshCommand, sshKeyPair, startMirror, startServer, type ApiResponse, type Credentials, type TestServer } from '../helpers/server.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

const M = '/rest/mirroring/1.0';
/** Names that must never reach a caller who may not see them. */
const SECRET_NAMES = /SECRETPROJ|secretrepo|HIDDENPROJ|hiddenrepo/i;

let primary: TestServer;
let mirror: TestServer | undefined;
let plain: TestServer | undefined;
let eve: Credentials;
let fake: MirrorKey;
let fakeKeyFile: string;
let fakeId: string;
const repoIds: number[] = [];
let secretProjectId: number;

function asMirror(key: MirrorKey, method: string, path: string, body?: unknown, token?: Promise<string>): Promise<ApiResponse> {
  return (token ?? signMirrorToken(key, primary.baseUrl, 'node-0')).then((bearer) => api(primary, method, `${M}${path}`, body, null, { authorization: `Bearer ${bearer}` }));
}

/** A mirror token with the given iat and exp (seconds from now), signed properly with the mirror's key. */
function tokenWith(key: MirrorKey, iatFromNow: number, expFromNow: number): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ node: 'node-0' })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
    .setIssuer(mirrorIdFor(key.publicKey))
    .setAudience(primary.baseUrl)
    .setIssuedAt(now + iatFromNow)
    .setExpirationTime(now + expFromNow)
    .setJti(randomUUID())
    .sign(key.privateKey);
}

before(async () => {
  primary = await startServer();
  const mirrorStarting = startMirror(primary);
  mirrorStarting.catch(() => {}); // awaited below
  const secretProject = await createProject(primary, 'SECRETPROJ');
  secretProjectId = (secretProject as { id: number }).id;
  await createProject(primary, 'HIDDENPROJ');
  repoIds.push((await createRepo(primary, 'SECRETPROJ', 'secretrepo')).id);
  repoIds.push((await createRepo(primary, 'HIDDENPROJ', 'hiddenrepo')).id);
  const work = await makeWorkTree([{ 'README.md': 'secret\n' }, { 'a.txt': 'more\n' }]);
  await gitOk(primary, ['push', '-q', primary.httpUrl('SECRETPROJ', 'secretrepo'), 'HEAD:refs/heads/main'], { cwd: work, creds: ADMIN });
  await gitOk(primary, ['push', '-q', primary.httpUrl('HIDDENPROJ', 'hiddenrepo'), 'HEAD:refs/heads/main'], { cwd: work, creds: ADMIN });

  eve = await createUser(primary, 'eve');
  // Another user's SSH key and access token, so that existing ids of things eve may not see are walked too.
  const sam = await createUser(primary, 'sam');
  await addSshKey(primary, 'sam', (await sshKeyPair('sam')).publicKey);
  await createToken(primary, sam, ['REPO_READ']);

  // A mirror registered by hand (no process), carrying SECRETPROJ only, whose key we hold for SSH.
  fake = loadMirrorKey(generateMirrorKey().privateKeyOpenSsh);
  fakeKeyFile = join(tempDir('mf-fake-mirror-'), 'id_ed25519');
  writeFileSync(fakeKeyFile, fake.privateKeyOpenSsh, { mode: 0o600 });
  const registered = await asMirror(fake, 'POST', '/requests', { mirrorName: 'Hand-made', baseUrl: 'https://hand-made.example', publicKey: fake.publicKey, productVersion: '0.1.0' });
  assert.equal(registered.status, 200, registered.text);
  fakeId = registered.body.id as string;
  const accepted = await api(primary, 'POST', `${M}/requests/${fakeId}/accept`, { mirroringMode: 'SELECTED_PROJECTS', projectKeys: ['SECRETPROJ'] });
  assert.equal(accepted.status, 200, accepted.text);

  mirror = await mirrorStarting;
  await authorizeMirror(primary, mirror, ['SECRETPROJ']);
  await waitForSameRefs(primary, mirror, 'SECRETPROJ', 'secretrepo', ADMIN, 30_000);
});

after(async () => {
  await Promise.all([primary?.stop(), mirror?.stop(), plain?.stop()]);
  removeTempDirs();
});

describe('security findings', () => {
  it('private names do not leak through id-addressed endpoints: missing and unreadable ids get the same answer, naming only the id', async () => {
    const highest = Math.max(...repoIds);
    const ids = Array.from({ length: highest + 3 }, (_, i) => String(i + 1)); // existing private repositories, keys, tokens and missing ids
    const mirrorIds = [fakeId, 'AAAA-BBBB-CCCC-DDDD', '1', 'not-a-mirror'];
    const endpoints: Array<{ method: string; path: string; ids: string[]; body?: unknown; creds: Credentials | null; asMirror?: boolean; onMirror?: boolean }> = [
      { method: 'GET', path: `${M}/repos/{id}/mirrors`, ids, creds: eve },
      { method: 'GET', path: `${M}/repos/{id}/mirrors`, ids, creds: null },
      { method: 'GET', path: '/rest/ssh/1.0/keys/{id}', ids, creds: eve },
      { method: 'DELETE', path: '/rest/ssh/1.0/keys/{id}', ids, creds: eve },
      { method: 'GET', path: '/rest/access-tokens/1.0/users/eve/{id}', ids, creds: eve },
      { method: 'POST', path: '/rest/access-tokens/1.0/users/eve/{id}', ids, body: { name: 'renamed' }, creds: eve },
      { method: 'DELETE', path: '/rest/access-tokens/1.0/users/eve/{id}', ids, creds: eve },
      { method: 'GET', path: '/rest/access-tokens/1.0/users/sam/{id}', ids, creds: eve },
      { method: 'DELETE', path: '/rest/access-tokens/1.0/users/sam/{id}', ids, creds: eve },
      { method: 'GET', path: `${M}/mirrorServers/{id}`, ids: mirrorIds, creds: eve },
      { method: 'PUT', path: `${M}/mirrorServers/{id}`, ids: mirrorIds, body: {}, creds: eve },
      { method: 'DELETE', path: `${M}/mirrorServers/{id}`, ids: mirrorIds, creds: eve },
      { method: 'GET', path: `${M}/mirrorServers/{id}/projects`, ids: mirrorIds, creds: eve },
      { method: 'POST', path: `${M}/mirrorServers/{id}/projects/${secretProjectId}`, ids: mirrorIds, creds: eve },
      { method: 'DELETE', path: `${M}/mirrorServers/{id}/projects/${secretProjectId}`, ids: mirrorIds, creds: eve },
      { method: 'POST', path: `${M}/mirrorServers/${fakeId}/projects/{id}`, ids, creds: eve },
      { method: 'POST', path: `${M}/requests/{id}/accept`, ids: mirrorIds, body: { mirroringMode: 'ALL_PROJECTS' }, creds: eve },
      { method: 'POST', path: `${M}/requests/{id}/reject`, ids: mirrorIds, creds: eve },
      // The mirror's own id-addressed resources: a carried repository eve may not read looks like one not carried.
      { method: 'GET', path: `${M}/mirrorRepos/{id}`, ids, creds: eve, onMirror: true },
      { method: 'GET', path: `${M}/mirrorRepos/{id}`, ids, creds: null, onMirror: true },
      // A mirror asking about repositories by id: the one it does not carry looks like a missing one.
      { method: 'POST', path: `${M}/mirror/prepared`, ids: ids.filter((id) => id !== String(repoIds[0])), creds: null, asMirror: true },
    ];
    for (const endpoint of endpoints) {
      const answers = new Map<string, string[]>();
      for (const id of endpoint.ids) {
        const path = endpoint.path.replace('{id}', encodeURIComponent(id));
        const r = endpoint.asMirror
          ? await asMirror(fake, endpoint.method, endpoint.path.replace('/{id}', '').slice(M.length), { repositoryId: Number(id), refStateHash: `v1:${'0'.repeat(64)}` })
          : await api(endpoint.onMirror ? mirror! : primary, endpoint.method, path, endpoint.body, endpoint.creds);
        const what = `${endpoint.method} ${path}${endpoint.onMirror ? ' on the mirror' : ''} as ${endpoint.asMirror ? 'a mirror' : (endpoint.creds?.user ?? 'anonymous')}`;
        assert.doesNotMatch(r.text, SECRET_NAMES, `${what} named a private project or repository: ${r.text}`);
        assert.ok(r.status >= 400, `${what} answered ${r.status}: ${r.text}`);
        assert.ok(Array.isArray(r.body?.errors), `${what}: Bitbucket's error shape, got ${r.text}`);
        const shape = `${r.status} ${r.text.replace(new RegExp(`(?<![\\w-])${id.replace(/[-]/g, '\\-')}(?![\\w-])`, 'g'), '{id}')}`;
        answers.set(shape, [...(answers.get(shape) ?? []), id]);
      }
      assert.equal(answers.size, 1, `${endpoint.method} ${endpoint.path}: different answers for different ids:\n${[...answers].map(([a, i]) => `  ids ${i.join(',')}: ${a}`).join('\n')}`);
    }
    // The message names the id, as documented.
    const r = await api(primary, 'GET', `${M}/repos/${repoIds[0]}/mirrors`, undefined, eve);
    assert.deepEqual([r.status, r.body.errors[0].message], [404, `Repository ${repoIds[0]} does not exist or you do not have permission to see it.`]);
  });

  it("a repository's existence does not leak through the spelling of its slug (a refusal names it as asked, like a missing one)", async () => {
    const shapeOf = (text: string, slug: string) => text.split(slug).join('{slug}');
    for (const server of [primary, mirror!]) {
      const where = server === primary ? 'primary' : 'mirror';
      const rest = await Promise.all(['SecretRepo', 'Absent-Repo'].map((slug) => api(server, 'GET', `/rest/api/1.0/projects/SECRETPROJ/repos/${slug}`, undefined, eve)));
      assert.deepEqual(rest.map((r) => r.status), [404, 404], `${where} REST`);
      assert.equal(shapeOf(rest[0]!.text, 'SecretRepo'), shapeOf(rest[1]!.text, 'Absent-Repo'), `${where} REST answers alike`);
      const lsRemote = await Promise.all(
        ['SecretRepo', 'Absent-Repo'].map((slug) => git(server, ['ls-remote', `https://127.0.0.1:${server.httpPort}/scm/secretproj/${slug}.git`], { creds: eve })),
      );
      assert.deepEqual(lsRemote.map((r) => r.code === 0), [false, false], `${where} git`);
      assert.equal(shapeOf(lsRemote[0]!.stderr, 'SecretRepo'), shapeOf(lsRemote[1]!.stderr, 'Absent-Repo'), `${where} git answers alike`);
      assert.match(lsRemote[0]!.stderr, /Repository SECRETPROJ\/SecretRepo does not exist or you do not have permission to see it/);
    }
  });

  it('everything in the home is owner-only: database, WAL, run files, repositories, keys (primary and mirror)', async () => {
    for (const server of [primary, mirror!]) {
      const loose: string[] = [];
      const seen = { files: 0, dirs: 0 };
      const walk = (dir: string) => {
        for (const name of readdirSync(dir)) {
          const path = join(dir, name);
          const stat = lstatSync(path);
          if (stat.isSymbolicLink()) continue;
          if (stat.isDirectory()) seen.dirs++;
          else seen.files++;
          if (stat.mode & 0o077) loose.push(`${(stat.mode & 0o777).toString(8)} ${path.slice(server.home.length + 1)}`);
          if (stat.isDirectory()) walk(path);
        }
      };
      assert.equal(lstatSync(server.home).mode & 0o077, 0, `the home itself (${(lstatSync(server.home).mode & 0o777).toString(8)})`);
      walk(server.home);
      const names = readdirSync(server.home);
      for (const expected of ['mirrorfarm.db', 'mirrorfarm.db-wal', 'run', 'repos']) assert.ok(names.includes(expected), `${expected} in ${names.join(', ')}`);
      assert.ok(seen.files > 20, `walked ${seen.files} files`);
      assert.deepEqual(loose, [], `readable or writable by group or others in ${server.home}`);
    }
  });

  it('a mirror token whose lifetime exceeds 60 s is refused (regression: exp a day ahead was accepted)', async () => {
    const newcomer = loadMirrorKey(generateMirrorKey().privateKeyOpenSsh);
    const body = { mirrorName: 'Long-lived', baseUrl: 'https://long-lived.example', publicKey: newcomer.publicKey, productVersion: '0.1.0' };
    let r = await asMirror(newcomer, 'POST', '/requests', body, tokenWith(newcomer, 0, 86_400));
    assert.equal(r.status, 401, r.text);
    assert.equal(r.body.errors[0].exceptionName, 'MIRROR_TOKEN_INVALID');
    assert.match(r.body.errors[0].message, /lifetime \(exp - iat\) is 86400 s, more than the 60 s allowed/);
    r = await asMirror(fake, 'GET', '/mirror/self', undefined, tokenWith(fake, 0, 86_400));
    assert.equal(r.status, 401, 'an authorized mirror too');
    r = await asMirror(fake, 'GET', '/mirror/self', undefined, tokenWith(fake, -10, 61));
    assert.equal(r.status, 401, '71 s');
    r = await asMirror(fake, 'GET', '/mirror/self', undefined, tokenWith(fake, 0, 60));
    assert.equal(r.status, 200, `the documented 60 s: ${r.text}`);
  });

  it('git POSTs with a wrong Content-Type get 415 naming the expected type', async () => {
    for (const service of ['upload-pack', 'receive-pack']) {
      const path = `/scm/secretproj/secretrepo.git/git-${service}`;
      for (const type of ['application/json', 'text/plain', 'application/octet-stream', 'application/x-www-form-urlencoded', undefined]) {
        const r = await rawRequest(primary, 'POST', path, { creds: ADMIN, body: type === 'application/json' ? '{}' : '0000', headers: type ? { 'content-type': type } : {} });
        assert.equal(r.status, 415, `${service} with ${type}: ${r.text}`);
        assert.equal(r.text, `Content-Type must be application/x-git-${service}-request.\n`);
      }
    }
  });

  it('a truncated pkt-line in a git request body gets 400 with the protocol error, not 500', async () => {
    const cases: Array<[string, string, Record<string, string>]> = [
      ['upload-pack', '0014command=ls-refs\n00010009peel\n00', { 'git-protocol': 'version=2' }],
      ['upload-pack', '0014command=ls-refs\n0001000fref-prefix', { 'git-protocol': 'version=2' }],
      ['upload-pack', `0032want ${'a'.repeat(20)}`, {}],
      ['receive-pack', `00a0${'0'.repeat(40)} ${'1'.repeat(40)} refs/heads/x`, {}],
    ];
    for (const [service, body, headers] of cases) {
      const r = await rawRequest(primary, 'POST', `/scm/secretproj/secretrepo.git/git-${service}`, {
        creds: ADMIN,
        body,
        headers: { 'content-type': `application/x-git-${service}-request`, ...headers },
      });
      assert.equal(r.status, 400, `${service} ${JSON.stringify(body)}: ${r.status} ${r.text}`);
      assert.match(r.text, /^Malformed git request: protocol error: the request body ends inside a pkt-line/);
    }
    const refs = await gitOk(primary, ['ls-remote', primary.httpUrl('SECRETPROJ', 'secretrepo')], { creds: ADMIN });
    assert.doesNotMatch(refs, /refs\/heads\/x/, 'the truncated push changed nothing');
    assert.doesNotMatch(primary.output(), /"status":500/);
  });

  it('every HTTPS answer carries Strict-Transport-Security; plain HTTP does not', async () => {
    const answers = [
      await rawRequest(primary, 'GET', '/status'),
      await rawRequest(primary, 'GET', '/rest/api/1.0/projects', { creds: ADMIN }),
      await rawRequest(primary, 'GET', '/rest/api/1.0/projects/NOPE', { creds: eve }),
      await rawRequest(primary, 'GET', '/no/such/route'),
      await rawRequest(primary, 'GET', '/scm/secretproj/secretrepo.git/info/refs?service=git-upload-pack'),
      await rawRequest(primary, 'POST', '/scm/secretproj/secretrepo.git/git-upload-pack', { creds: ADMIN, body: '0000', headers: { 'content-type': 'text/plain' } }),
      await rawRequest(mirror!, 'GET', '/status'),
    ];
    assert.deepEqual(answers.map((r) => r.status), [200, 200, 404, 404, 401, 415, 200]);
    for (const r of answers) assert.equal(r.headers['strict-transport-security'], 'max-age=31536000');

    plain = await startServer({ env: { MIRRORFARM_HTTP_TLS_CERT: '', MIRRORFARM_HTTP_TLS_KEY: '', MIRRORFARM_SSH_ENABLED: 'false' } });
    const r = await rawRequest(plain, 'GET', '/status', { plain: true });
    assert.equal(r.status, 200);
    assert.equal(r.headers['strict-transport-security'], undefined);
  });

  it("a deleted mirror's running SSH fetch is cut off within a second of the DELETE", async () => {
    const options = sshCommand({ privateKey: fakeKeyFile, publicKey: '' }).split(' ').slice(1);
    // upload-pack advertises its refs, then waits for the client's wants: a fetch held open for as long as the
    // client likes, as a slow mirror fetch would be.
    const ssh: ChildProcess = spawn('ssh', ['-F', '/dev/null', ...options, '-p', String(primary.sshPort), `${primary.sshUser}@127.0.0.1`, "git-upload-pack '/secretproj/secretrepo.git'"], {
      env: { PATH: process.env.PATH, HOME: tempDir('mf-ssh-home-') },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    try {
      let stdout = '';
      ssh.stdout!.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
      ssh.stderr!.resume();
      const exited = new Promise<number>((resolve) => ssh.once('exit', () => resolve(Date.now())));
      for (let i = 0; i < 200 && !stdout.includes('refs/heads/main'); i++) await sleep(50);
      assert.match(stdout, /refs\/heads\/main/, 'the fetch is under way');
      await sleep(300);
      assert.equal(ssh.exitCode, null, 'and held open');

      const t0 = Date.now();
      const r = await api(primary, 'DELETE', `${M}/mirrorServers/${fakeId}`);
      assert.equal(r.status, 204, r.text);
      const closedAt = await Promise.race([exited, sleep(3000).then(() => undefined)]);
      assert.ok(closedAt !== undefined, 'the primary closed the session');
      assert.ok(closedAt - t0 <= 1000, `closed ${closedAt - t0} ms after the DELETE`);
      assert.match(primary.output(), /SSH access revoked/);
    } finally {
      if (ssh.exitCode === null && ssh.signalCode === null) ssh.kill('SIGKILL');
    }
  });
});
