// How git's output streams over HTTPS (src/transport/http/git-response.ts): the byte metrics are exact, a
// client that stops reading holds git back instead of the server buffering the pack, a client that goes
// away mid-pack stops git, the sockets git writes into are private and gone once they are connected, and the
// git routes still count in the request metrics although they write Node's response themselves.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { metricValue } from '../helpers/clients.js';
import { createProject, createRepo } from '../helpers/fixtures.js';
import { ADMIN, gitOk, makeWorkTree, parseLsRemote, startServer, type TestServer } from '../helpers/server.js';
import { processesBelow } from '../helpers/processes.js';
import { removeTempDirs } from '../helpers/tmp.js';

let server: TestServer;
let main: string;
const PACK_MIB = 24;

before(async () => {
  server = await startServer();
  await createProject(server, 'STREAM');
  await createRepo(server, 'STREAM', 'big');
  // Incompressible content, so the pack is larger than what the loopback socket buffers can hold.
  const work = await makeWorkTree();
  writeFileSync(join(work, 'blob.bin'), randomBytes(PACK_MIB * 1024 * 1024));
  await gitOk(null, ['add', 'blob.bin'], { cwd: work });
  await gitOk(null, ['commit', '-q', '-m', 'big'], { cwd: work });
  await gitOk(server, ['push', '-q', server.httpUrl('STREAM', 'big'), 'main'], { creds: ADMIN, cwd: work });
  main = parseLsRemote(await gitOk(server, ['ls-remote', server.httpUrl('STREAM', 'big')], { creds: ADMIN })).get('refs/heads/main')!;
});

after(async () => {
  await server?.stop();
  removeTempDirs();
});

function pkt(line: string): string {
  return `${(line.length + 4).toString(16).padStart(4, '0')}${line}`;
}

/** A protocol v2 fetch of main, as git sends it (no progress, so the response is the pack in sideband 1). */
function fetchRequest(): Buffer {
  return Buffer.from(`${pkt('command=fetch\n')}0001${pkt('no-progress\n')}${pkt('ofs-delta\n')}${pkt(`want ${main}\n`)}${pkt('done\n')}0000`);
}

function postUploadPack(body: Buffer): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port: server.httpPort,
      method: 'POST',
      path: '/scm/STREAM/big.git/git-upload-pack',
      ca: readFileSync(server.ca.caCert),
      agent: false,
      headers: {
        authorization: `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.secret}`).toString('base64')}`,
        'content-type': 'application/x-git-upload-pack-request',
        'git-protocol': 'version=2',
        'content-length': String(body.length),
      },
    });
    req.once('response', resolve);
    req.once('error', reject);
    req.end(body);
  });
}

/** The server's live `git upload-pack --stateless-rpc` processes. */
function uploadPacks(): number[] {
  return processesBelow(server.process.pid!)
    .filter((p) => p.argv.includes('upload-pack') && p.argv.includes('--stateless-rpc'))
    .map((p) => p.pid);
}

async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const labels = { transport: 'http', service: 'upload-pack' };

describe('git output over HTTPS', () => {
  it('counts exactly the bytes git sent and received, and the request in the HTTP metrics', async () => {
    const out0 = await metricValue(server, 'mirrorfarm_git_bytes_total', { ...labels, direction: 'out' });
    const in0 = await metricValue(server, 'mirrorfarm_git_bytes_total', { ...labels, direction: 'in' });
    const requests0 = await metricValue(server, 'mirrorfarm_http_requests_total', { route: '/scm/:project/:repo/git-upload-pack', status: '200' });
    const body = fetchRequest();
    const res = await postUploadPack(body);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'application/x-git-upload-pack-result');
    assert.equal(res.headers['cache-control'], 'no-cache, max-age=0, must-revalidate');
    assert.ok(res.headers['x-request-id'], 'the request id header set by the onRequest hook is sent');
    let received = 0;
    const chunks: Buffer[] = [];
    for await (const c of res as AsyncIterable<Buffer>) {
      received += c.length;
      if (chunks.length < 2) chunks.push(c);
    }
    // The pack arrives in sideband 1 after the "packfile" section header.
    const start = Buffer.concat(chunks).toString('latin1');
    assert.ok(start.includes('packfile\n') && start.includes(`${String.fromCharCode(1)}PACK`), 'a packfile section with the pack in sideband 1');
    assert.ok(received > PACK_MIB * 1024 * 1024, `received ${received} bytes`);
    await eventually(async () => (await metricValue(server, 'mirrorfarm_git_bytes_total', { ...labels, direction: 'out' })) - out0 === received, 'the bytes-out metric to match the body');
    assert.equal((await metricValue(server, 'mirrorfarm_git_bytes_total', { ...labels, direction: 'in' })) - in0, body.length);
    await eventually(async () => (await metricValue(server, 'mirrorfarm_http_requests_total', { route: '/scm/:project/:repo/git-upload-pack', status: '200' })) === requests0 + 1, 'the request to be counted');
  });

  it('a client that stops reading holds git back; when it disconnects mid-pack, git is stopped', async () => {
    const aborted0 = await metricValue(server, 'mirrorfarm_git_operations_total', { ...labels, outcome: 'aborted' });
    const rssBefore = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.process.pid}/status`, 'utf8'))?.[1]);
    const res = await postUploadPack(fetchRequest());
    assert.equal(res.statusCode, 200);
    await new Promise<void>((resolve) => res.once('data', () => resolve()));
    res.pause();
    // git blocks on its pipe once the socket buffers are full: it is still there, and the server did not
    // read the rest of the pack into memory.
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(uploadPacks().length, 1, 'git upload-pack is waiting for the client');
    const rssHeld = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.process.pid}/status`, 'utf8'))?.[1]);
    assert.ok(rssHeld - rssBefore < PACK_MIB * 1024, `server RSS grew by ${rssHeld - rssBefore} KiB while the client did not read`);
    res.destroy();
    await eventually(() => uploadPacks().length === 0, 'git upload-pack to exit after the client went away');
    await eventually(async () => (await metricValue(server, 'mirrorfarm_git_operations_total', { ...labels, outcome: 'aborted' })) === aborted0 + 1, 'the aborted operation to be counted');
    await eventually(async () => (await metricValue(server, 'mirrorfarm_git_operations_active', labels)) === 0, 'no git operation to be active');
    // The server goes on serving.
    assert.equal(parseLsRemote(await gitOk(server, ['ls-remote', server.httpUrl('STREAM', 'big')], { creds: ADMIN })).get('refs/heads/main'), main);
  });

  it('git writes into a socket in the owner-only HOME/run, and no socket file is left there, even mid-pack', async () => {
    const run = join(server.home, 'run');
    assert.equal(statSync(run).mode & 0o777, 0o700);
    const res = await postUploadPack(fetchRequest());
    assert.equal(res.statusCode, 200);
    await new Promise<void>((resolve) => res.once('data', () => resolve()));
    res.pause();
    const [uploadPack] = uploadPacks();
    assert.ok(uploadPack, 'git upload-pack is running');
    assert.match(readlinkSync(`/proc/${uploadPack}/fd/1`), /^socket:/, "git's stdout is a socket, not a pipe");
    assert.deepEqual(readdirSync(run).filter((name) => name.startsWith('o-')), [], 'the listening socket is removed once git has its end');
    res.resume();
    for await (const _chunk of res as AsyncIterable<Buffer>) void _chunk;
    await gitOk(server, ['ls-remote', server.httpUrl('STREAM', 'big')], { creds: ADMIN });
    assert.deepEqual(readdirSync(run).filter((name) => name.startsWith('o-')), []);
  });
});
