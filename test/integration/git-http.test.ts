// Git over HTTPS with the real git client: clone, fetch, push in protocol v0 and v2, force pushes, tags,
// deletes, shallow and partial clones, and what a client sees for bad requests.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { createProject, createRepo } from '../helpers/fixtures.js';
import { ADMIN, git, gitOk, makeWorkTree, parseLsRemote, startServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

let server: TestServer;

before(async () => {
  server = await startServer();
  await createProject(server, 'PROJ');
});

after(async () => {
  await server?.stop();
  removeTempDirs();
});

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function raw(method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: server.httpPort,
        method,
        path,
        ca: readFileSync(server.ca.caCert),
        headers: { authorization: `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.secret}`).toString('base64')}`, ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

for (const protocol of [0, 2] as const) {
  describe(`HTTPS with protocol v${protocol}`, () => {
    const slug = `repo-v${protocol}`;
    let url: string;
    const opts = { creds: ADMIN, protocol };

    before(async () => {
      await createRepo(server, 'PROJ', slug);
      url = server.httpUrl('PROJ', slug);
    });

    it('clones an empty repository, then pushes and clones content', async () => {
      const empty = tempDir();
      const r = await git(server, ['clone', url, join(empty, 'c')], opts);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /cloned an empty repository/);

      const work = await makeWorkTree([{ 'README.md': 'first\n' }, { 'src.txt': 'second\n' }]);
      await gitOk(server, ['push', url, 'main'], { ...opts, cwd: work });
      const dest = join(tempDir(), 'clone');
      await gitOk(server, ['clone', url, dest], opts);
      assert.equal(readFileSync(join(dest, 'README.md'), 'utf8'), 'first\n');
      assert.equal(readFileSync(join(dest, 'src.txt'), 'utf8'), 'second\n');
      const log = await gitOk(null, ['log', '--format=%s'], { cwd: dest });
      assert.deepEqual(log.trim().split('\n'), ['commit 2', 'commit 1']);
    });

    it(`speaks protocol v${protocol} on the wire`, async () => {
      const r = await git(server, ['ls-remote', url], { ...opts, env: { GIT_TRACE_PACKET: '1' } });
      assert.equal(r.code, 0, r.stderr);
      if (protocol === 2) assert.match(r.stderr, /version 2/);
      else assert.doesNotMatch(r.stderr, /< version 2/);
    });

    it('fetches new commits, force pushes, tags and deletes branches', async () => {
      const work = await makeWorkTree([{ 'a.txt': 'a\n' }]);
      await gitOk(server, ['push', '--force', url, 'main:refs/heads/feature'], { ...opts, cwd: work });
      const dest = join(tempDir(), 'clone');
      await gitOk(server, ['clone', url, dest], opts);

      // Fetch picks up a new branch.
      await gitOk(server, ['fetch', 'origin'], { ...opts, cwd: dest });
      let refs = parseLsRemote(await gitOk(server, ['ls-remote', url], opts));
      assert.ok(refs.has('refs/heads/feature'));

      // Force push rewrites the branch.
      writeFileSync(join(work, 'a.txt'), 'rewritten\n');
      await gitOk(null, ['commit', '-qa', '--amend', '-m', 'rewritten'], { cwd: work });
      const rewritten = (await gitOk(null, ['rev-parse', 'HEAD'], { cwd: work })).trim();
      const refused = await git(server, ['push', url, 'HEAD:refs/heads/feature'], { ...opts, cwd: work });
      assert.notEqual(refused.code, 0, 'a non-fast-forward push without --force is rejected by git');
      await gitOk(server, ['push', '--force', url, 'HEAD:refs/heads/feature'], { ...opts, cwd: work });
      refs = parseLsRemote(await gitOk(server, ['ls-remote', url], opts));
      assert.equal(refs.get('refs/heads/feature'), rewritten);

      // Lightweight and annotated tags; the annotated one is advertised with its peeled commit.
      await gitOk(null, ['tag', 'light'], { cwd: work });
      await gitOk(null, ['tag', '-a', '-m', 'release', 'v1.0'], { cwd: work });
      await gitOk(server, ['push', url, '--tags'], { ...opts, cwd: work });
      refs = parseLsRemote(await gitOk(server, ['ls-remote', '--tags', url], opts));
      assert.equal(refs.get('refs/tags/light'), rewritten);
      assert.equal(refs.get('refs/tags/v1.0^{}'), rewritten);

      // Deleting a branch and a tag.
      await gitOk(server, ['push', url, ':refs/heads/feature', ':refs/tags/light'], { ...opts, cwd: work });
      refs = parseLsRemote(await gitOk(server, ['ls-remote', url], opts));
      assert.ok(!refs.has('refs/heads/feature'));
      assert.ok(!refs.has('refs/tags/light'));
      assert.ok(refs.has('refs/tags/v1.0'));
    });

    it('serves shallow and partial clones', async () => {
      const shallow = join(tempDir(), 'shallow');
      await gitOk(server, ['clone', '--depth', '1', url, shallow], opts);
      assert.equal((await gitOk(null, ['rev-list', '--count', 'HEAD'], { cwd: shallow })).trim(), '1');
      await gitOk(server, ['fetch', '--unshallow'], { ...opts, cwd: shallow });
      assert.equal((await gitOk(null, ['rev-list', '--count', 'HEAD'], { cwd: shallow })).trim(), '2');

      const partial = join(tempDir(), 'partial');
      await gitOk(server, ['clone', '--filter=blob:none', '--no-checkout', url, partial], opts);
      const missing = await gitOk(null, ['rev-list', '--objects', '--missing=print', 'HEAD'], { cwd: partial });
      assert.match(missing, /^\?[0-9a-f]{40}/m, 'blobs are left out');
      await gitOk(server, ['checkout', 'main'], { ...opts, cwd: partial });
      assert.equal(readFileSync(join(partial, 'README.md'), 'utf8'), 'first\n', 'missing blobs are fetched on demand');
    });
  });
}

describe('bad HTTP requests', () => {
  let slug: string;
  let repoDir: string;
  before(async () => {
    const repo = await createRepo(server, 'PROJ', 'edge');
    slug = repo.slug;
    repoDir = join(server.home, 'repos', `${repo.id}.git`);
    const work = await makeWorkTree();
    await gitOk(server, ['push', server.httpUrl('PROJ', slug), 'main'], { creds: ADMIN, cwd: work });
  });

  it('accepts gzip-compressed requests', async () => {
    const body = gzipSync(Buffer.from('0014command=ls-refs\n00010009peel\n0000'));
    const r = await raw('POST', `/scm/PROJ/${slug}.git/git-upload-pack`, body, {
      'content-type': 'application/x-git-upload-pack-request',
      'content-encoding': 'gzip',
      'git-protocol': 'version=2',
    });
    assert.equal(r.status, 200);
    assert.match(r.body.toString(), /[0-9a-f]{40} refs\/heads\/main/);
  });

  it('answers malformed pkt-lines with 400 and the protocol error', async () => {
    const r = await raw('POST', `/scm/PROJ/${slug}.git/git-upload-pack`, Buffer.from('zzzzgarbage'), {
      'content-type': 'application/x-git-upload-pack-request',
      'git-protocol': 'version=2',
    });
    assert.equal(r.status, 400);
    assert.match(r.body.toString(), /Malformed git request: protocol error/);
  });

  it('refuses a malformed Git-Protocol header, a wrong content type and dumb HTTP', async () => {
    let r = await raw('GET', `/scm/PROJ/${slug}.git/info/refs?service=git-upload-pack`, undefined, { 'git-protocol': 'version=2;rm -rf' });
    assert.equal(r.status, 400);
    assert.match(r.body.toString(), /Malformed Git-Protocol header/);
    r = await raw('POST', `/scm/PROJ/${slug}.git/git-upload-pack`, Buffer.from('0000'), { 'content-type': 'text/plain' });
    assert.equal(r.status, 415);
    r = await raw('GET', `/scm/PROJ/${slug}.git/info/refs`);
    assert.equal(r.status, 403);
    assert.match(r.body.toString(), /smart HTTP protocol only/);
    r = await raw('GET', `/scm/PROJ/${slug}.git/HEAD`);
    assert.equal(r.status, 404);
  });

  it('does not let paths or option-like names escape the repository store', async () => {
    for (const path of [
      `/scm/PROJ/..%2F..%2Fetc/info/refs?service=git-upload-pack`,
      `/scm/PROJ/%2e%2e/info/refs?service=git-upload-pack`,
      `/scm/..%2FPROJ/${slug}.git/info/refs?service=git-upload-pack`,
      `/scm/PROJ/--upload-pack=touch%20%2Ftmp%2Fpwned/info/refs?service=git-upload-pack`,
      `/scm/PROJ/${slug}.git/info/refs?service=git-upload-pack%20--help`,
    ]) {
      const r = await raw('GET', path);
      assert.ok([400, 403, 404].includes(r.status), `${path} -> ${r.status}`);
      assert.doesNotMatch(r.body.toString(), /root:|usage: git/);
    }
    assert.ok(!existsSync('/tmp/pwned'));
  });

  it('refuses oversized headers', async () => {
    const r = await raw('GET', `/scm/PROJ/${slug}.git/info/refs?service=git-upload-pack`, undefined, { 'x-filler': 'x'.repeat(20_000) }).catch((err: Error) => err);
    if (r instanceof Error) assert.match(r.message, /socket hang up|ECONNRESET/);
    else assert.equal(r.status, 431);
  });

  it('an interrupted push changes nothing', async () => {
    const url = server.httpUrl('PROJ', slug);
    const before = await gitOk(server, ['ls-remote', url], { creds: ADMIN });
    const oldOid = parseLsRemote(before).get('refs/heads/main')!;
    const fakeNew = 'f'.repeat(40);
    // A push command followed by the start of a pack, then the client goes away.
    const command = `${oldOid} ${fakeNew} refs/heads/main\0 report-status side-band-64k\n`;
    const pkt = Buffer.concat([Buffer.from((command.length + 4).toString(16).padStart(4, '0')), Buffer.from(command), Buffer.from('0000')]);
    const partialPack = Buffer.concat([Buffer.from('PACK'), Buffer.from([0, 0, 0, 2, 0, 0, 0, 5]), Buffer.alloc(3000, 7)]);
    await new Promise<void>((resolve) => {
      const req = request({
        host: '127.0.0.1',
        port: server.httpPort,
        method: 'POST',
        path: `/scm/PROJ/${slug}.git/git-receive-pack`,
        ca: readFileSync(server.ca.caCert),
        headers: { authorization: `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.secret}`).toString('base64')}`, 'content-type': 'application/x-git-receive-pack-request', 'transfer-encoding': 'chunked' },
      });
      req.on('error', () => resolve());
      req.write(Buffer.concat([pkt, partialPack]));
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 300);
    });
    await new Promise((r) => setTimeout(r, 500));
    const afterRefs = await gitOk(server, ['ls-remote', url], { creds: ADMIN });
    assert.equal(afterRefs, before, 'refs unchanged');
    const leftovers = readdirSync(join(repoDir, 'objects')).filter((d) => d.startsWith('incoming-') || d.startsWith('tmp_objdir'));
    assert.deepEqual(leftovers, [], 'the quarantine directory is gone');
    // The server still works.
    const dest = join(tempDir(), 'after');
    await gitOk(server, ['clone', url, dest], { creds: ADMIN });
  });
});

describe('size limits', () => {
  let small: TestServer;
  before(async () => {
    small = await startServer({ env: { MIRRORFARM_HTTP_MAX_FETCH_REQUEST_BYTES: '2048', MIRRORFARM_HTTP_MAX_PUSH_BYTES: '4096' } });
    await createProject(small, 'P');
    await createRepo(small, 'P', 'r');
  });
  after(() => small.stop());

  it('refuses a push larger than http.maxPushBytes with 413, and stores nothing', async () => {
    // Random content does not compress, so the pack is surely larger than the 4 KiB limit.
    const work = await makeWorkTree([{ 'big.txt': randomBytes(30_000).toString('base64') }]);
    const r = await git(small, ['push', small.httpUrl('P', 'r'), 'main'], { creds: ADMIN, cwd: work });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /413|exceeds the limit/);
    const refs = await gitOk(small, ['ls-remote', small.httpUrl('P', 'r')], { creds: ADMIN });
    assert.equal(refs.trim(), '');
  });
});
