// `npm start` (mirrorfarm demo) as a newcomer meets it: it runs on the ports it is given, names a taken port and
// the way out, and the clone commands it prints work even where the environment sets GIT_SSL_CAINFO to another
// CA bundle. `--nodes 3` runs the mirror as a farm behind a real nginx, whose clone commands go through the
// balancer; without nginx it names the packages to install.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { writeDevCa } from '../../src/tls/dev-ca.js';
import { run } from '../helpers/run.js';
import { ROOT, sshKeyPair } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

const CLI = join(ROOT, 'dist/cli/main.js');

function listen(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => resolve(server));
  });
}

/** A base whose ports are free right now (the demo uses base, +1, +8, +9, and a farm's nodes +10 on). */
async function freeBase(offsets = [0, 1, 8, 9]): Promise<number> {
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 4000) * 10;
    const held = await Promise.all(offsets.map((offset) => listen(base + offset)));
    await Promise.all(held.map((s) => s && new Promise((r) => s.close(r))));
    if (held.every(Boolean)) return base;
  }
}

function startDemo(args: string[], home: string, extraEnv: Record<string, string> = {}): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const env = { PATH: process.env.PATH, HOME: tempDir('mf-demo-user-'), MIRRORFARM_ADMIN_PASSWORD: 'demo-password-1', ...extraEnv };
  const child = spawn(process.execPath, [CLI, 'demo', '--home', home, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString('utf8')));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

describe('mirrorfarm demo (npm start)', () => {
  const children: ChildProcess[] = [];
  after(() => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL')));

  it('names the taken port and how to pick other ports', async () => {
    const base = await freeBase();
    const blocker = await listen(base);
    assert.ok(blocker);
    try {
      const demo = startDemo(['--port-base', String(base)], join(tempDir('mf-demo-'), 'home'));
      children.push(demo.child);
      assert.equal(await demo.exited, 2);
      assert.match(demo.output(), new RegExp(`port ${base} \\(primary HTTPS\\) is already in use`));
      assert.match(demo.output(), /npm start -- --port-base \d+/);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });

  it('runs a primary and a mirror on the given ports, and its printed clone commands work despite a foreign GIT_SSL_CAINFO', async () => {
    const base = await freeBase();
    const home = join(tempDir('mf-demo-'), 'home');
    const demo = startDemo(['--port-base', String(base)], home);
    children.push(demo.child);
    const deadline = Date.now() + 60_000;
    while (!demo.output().includes('Press Ctrl-C to stop.') && Date.now() < deadline && demo.child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
    const out = demo.output();
    assert.match(out, /Press Ctrl-C to stop\./, out);
    const commands = [...out.matchAll(/clone \(HTTPS\):\s+(GIT_SSL_CAINFO=(\S+) git clone (\S+))/g)];
    assert.equal(commands.length, 2, out);
    assert.equal(commands[0]![3], `https://localhost:${base}/scm/demo/hello.git`);
    assert.equal(commands[1]![3], `https://localhost:${base + 1}/scm/demo/hello.git`);
    assert.match(out, new RegExp(`ssh://git@localhost:${base + 9}/demo/hello\\.git`));
    assert.match(out, new RegExp(`ssh://git@localhost:${base + 8}/demo/hello\\.git`));

    // A corporate bundle that does not hold the demo CA, exported the way such machines do.
    const work = tempDir('mf-demo-clone-');
    const foreignBundle = (await writeDevCa({ outDir: join(work, 'corporate-ca'), hosts: ['localhost'] })).caCert;
    const userHome = tempDir('mf-demo-git-home-');
    const env = { PATH: process.env.PATH, HOME: userHome, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0', GIT_SSL_CAINFO: foreignBundle };
    const withoutPrefix = await run('git', ['clone', commands[0]![3]!, join(work, 'plain')], { env });
    assert.notEqual(withoutPrefix.code, 0, 'the foreign bundle must make a plain clone fail, or this test proves nothing');
    for (const [i, command] of commands.entries()) {
      const dest = join(work, `clone-${i}`);
      const url = new URL(command[3]!);
      url.username = 'admin';
      url.password = 'demo-password-1';
      const cloned = await run('git', ['clone', url.toString(), dest], { env: { ...env, GIT_SSL_CAINFO: command[2]! } });
      assert.equal(cloned.code, 0, cloned.stderr);
      assert.match(readFileSync(join(dest, 'README.md'), 'utf8'), /A sample repository served by mirrorfarm/);
    }
    demo.child.kill('SIGTERM');
    assert.equal(await demo.exited, 0);
  });

  it('--nodes 3 runs a farm behind nginx whose printed HTTPS and SSH clone commands go through the balancer to every node', async () => {
    const base = await freeBase([0, 1, 8, 9, 10, 11, 12, 13, 14, 15]);
    const home = join(tempDir('mf-demo-'), 'home');
    const demo = startDemo(['--port-base', String(base), '--nodes', '3'], home);
    children.push(demo.child);
    const deadline = Date.now() + 120_000;
    while (!demo.output().includes('Press Ctrl-C to stop.') && Date.now() < deadline && demo.child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
    const out = demo.output();
    assert.match(out, /Press Ctrl-C to stop\./, out);
    assert.match(out, /mirror farm of 3 nodes is running behind nginx/, out);
    // The farm's commands name the balancer's ports (base+1, base+8), never a node's (base+10 on).
    const commands = [...out.matchAll(/clone \(HTTPS\):\s+GIT_SSL_CAINFO=(\S+) git clone (\S+)/g)];
    assert.equal(commands.length, 2, out);
    const [, caFile, httpsUrl] = commands[1]!;
    assert.equal(httpsUrl, `https://localhost:${base + 1}/scm/demo/hello.git`);
    const sshUrl = `ssh://git@localhost:${base + 8}/demo/hello.git`;
    assert.ok(out.includes(`git clone ${sshUrl}`), out);
    for (let i = 0; i < 3; i++) assert.match(out, new RegExp(`node-${i}: +HTTPS :${base + 10 + 2 * i}, SSH :${base + 11 + 2 * i} +SYNCHRONIZED, in rotation`), out);

    // On the primary: one mirror with three nodes.
    const mirrorId = /mirrorServers\/([0-9A-F-]+) +\(one mirror, 3 nodes\)/.exec(out)?.[1];
    assert.ok(mirrorId, out);
    const primary = `https://localhost:${base}`;
    const server = await rest<{ nodes: unknown[] }>(primary, 'GET', `/rest/mirroring/1.0/mirrorServers/${mirrorId}`, caFile!);
    assert.equal(server.status, 200);
    assert.equal(server.body.nodes.length, 3);

    // HTTPS through the balancer: round-robin spreads consecutive clones over the nodes.
    const work = tempDir('mf-demo-farm-clone-');
    const env = { PATH: process.env.PATH, HOME: tempDir('mf-demo-git-home-'), GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C', GIT_SSL_CAINFO: caFile! };
    const url = new URL(httpsUrl!);
    url.username = 'admin';
    url.password = 'demo-password-1';
    for (let i = 0; i < 4; i++) {
      const cloned = await run('git', ['-c', `protocol.version=${i % 2 === 0 ? 2 : 0}`, 'clone', '-q', url.toString(), join(work, `https-${i}`)], { env });
      assert.equal(cloned.code, 0, cloned.stderr);
      assert.match(readFileSync(join(work, `https-${i}`, 'README.md'), 'utf8'), /A sample repository served by mirrorfarm/);
    }

    // SSH through the balancer with strict host key checking: every node presents the farm's host key, so the
    // key learned from the first node is the one the others show.
    const key = await sshKeyPair('demo-user');
    assert.equal((await rest(primary, 'POST', '/rest/ssh/1.0/keys?user=admin', caFile!, { text: key.publicKey })).status, 201);
    const knownHosts = join(work, 'known_hosts');
    const ssh = `ssh -i ${key.privateKey} -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=${knownHosts} -o LogLevel=ERROR`;
    for (let i = 0; i < 4; i++) {
      const cloned = await run('git', ['clone', '-q', sshUrl, join(work, `ssh-${i}`)], { env: { ...env, GIT_SSH_COMMAND: ssh } });
      assert.equal(cloned.code, 0, cloned.stderr);
      assert.doesNotMatch(cloned.stderr, /IDENTIFICATION HAS CHANGED/);
      assert.match(readFileSync(join(work, `ssh-${i}`, 'README.md'), 'utf8'), /A sample repository served by mirrorfarm/);
    }
    assert.equal(readFileSync(knownHosts, 'utf8').trim().split('\n').length, 1);

    // Every node served some of those clones, over both transports.
    for (let i = 0; i < 3; i++) {
      const metrics = await rest<string>(`https://localhost:${base + 10 + 2 * i}`, 'GET', '/metrics', caFile!);
      for (const transport of ['http', 'ssh']) {
        const served = [...metrics.body.matchAll(new RegExp(`^mirrorfarm_git_operations_total\\{transport="${transport}",service="upload-pack",outcome="success"\\} (\\d+)`, 'gm'))];
        assert.ok(Number(served[0]?.[1] ?? 0) > 0, `node-${i} served no ${transport} upload-pack:\n${metrics.body.split('\n').filter((l) => l.startsWith('mirrorfarm_git_operations_total')).join('\n')}`);
      }
    }

    const nginxPid = Number(readFileSync(join(home, 'farm', 'balancer', 'nginx.pid'), 'utf8'));
    demo.child.kill('SIGTERM');
    assert.equal(await demo.exited, 0);
    assert.ok(!isAlive(nginxPid), 'nginx stopped with the demo');
  });

  it('--nodes without nginx names the Debian packages to install and starts nothing', async () => {
    const base = await freeBase();
    const home = join(tempDir('mf-demo-'), 'home');
    const demo = startDemo(['--port-base', String(base), '--nodes', '3'], home, { MIRRORFARM_NGINX: join(home, 'no-such-nginx') });
    children.push(demo.child);
    assert.equal(await demo.exited, 2);
    assert.match(demo.output(), /BALANCER_NGINX_MISSING: nginx is not installed .*no-such-nginx is missing.*apt-get install nginx libnginx-mod-stream/);
    assert.ok(!existsSync(join(home, 'primary')), 'nothing was started');
  });
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function rest<T = unknown>(baseUrl: string, method: string, path: string, caFile: string, body?: unknown): Promise<{ status: number; body: T }> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, baseUrl),
      {
        method,
        ca: readFileSync(caFile),
        headers: { authorization: `Basic ${Buffer.from('admin:demo-password-1').toString('base64')}`, ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const json = /json/.test(String(res.headers['content-type']));
          resolve({ status: res.statusCode ?? 0, body: (json && text ? JSON.parse(text) : text) as T });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
