// `npm start` (mirrorfarm demo) as a newcomer meets it: it runs on the ports it is given, names a taken port and
// the way out, and the clone commands it prints work even where the environment sets GIT_SSL_CAINFO to another
// CA bundle.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { writeDevCa } from '../../src/tls/dev-ca.js';
import { run } from '../helpers/run.js';
import { ROOT } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

const CLI = join(ROOT, 'dist/cli/main.js');

function listen(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => resolve(server));
  });
}

/** A base with its ten ports free right now (the demo uses base, +1, +8, +9). */
async function freeBase(): Promise<number> {
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 4000) * 10;
    const held = await Promise.all([0, 1, 8, 9].map((offset) => listen(base + offset)));
    await Promise.all(held.map((s) => s && new Promise((r) => s.close(r))));
    if (held.every(Boolean)) return base;
  }
}

function startDemo(args: string[], home: string): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const env = { PATH: process.env.PATH, HOME: tempDir('mf-demo-user-'), MIRRORFARM_ADMIN_PASSWORD: 'demo-password-1' };
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
});
