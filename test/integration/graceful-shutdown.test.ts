// SIGTERM while a clone is streaming, over HTTPS and over SSH (with the SSH front end MF_SSH_FRONTEND names:
// npm run test:ssh-openssh runs this file with OpenSSH's sshd): the server stops accepting connections at once,
// lets the clone finish completely, and then exits 0 on its own, well before its shutdown timeout.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { addSshKey, createProject, createRepo } from '../helpers/fixtures.js';
import { ADMIN, eventually, git, gitOk, makeWorkTree, sshCommand, sshKeyPair, startServer, type SshKeyPair, type TestServer } from '../helpers/server.js';
import { processesBelow } from '../helpers/processes.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

after(() => removeTempDirs());

/** Incompressible, so that the pack takes long enough to stream that the test can stop it half-way. */
const PACK_MIB = 32;

async function serverWithBigRepo(key: SshKeyPair): Promise<{ server: TestServer; head: string }> {
  const server = await startServer({ env: { MIRRORFARM_SHUTDOWN_TIMEOUT_SECONDS: '60' } });
  await createProject(server, 'DRAIN');
  await createRepo(server, 'DRAIN', 'big');
  await addSshKey(server, 'admin', key.publicKey);
  const work = await makeWorkTree();
  writeFileSync(join(work, 'blob.bin'), randomBytes(PACK_MIB << 20));
  await gitOk(null, ['add', 'blob.bin'], { cwd: work });
  await gitOk(null, ['commit', '-q', '-m', 'big'], { cwd: work });
  await gitOk(server, ['push', '-q', server.httpUrl('DRAIN', 'big'), 'main'], { creds: ADMIN, cwd: work });
  return { server, head: (await gitOk(null, ['rev-parse', 'HEAD'], { cwd: work })).trim() };
}

/** `git clone` in its own process group (so it can be stopped and continued with its helpers), fully isolated. */
function startClone(server: TestServer, url: string, key: SshKeyPair, dest: string): { child: ChildProcess; exit: Promise<{ code: number | null; stderr: string }> } {
  const header = `Authorization: Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.secret}`).toString('base64')}`;
  const child = spawn('git', ['clone', '-q', '--bare', url, dest], {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      PATH: process.env.PATH,
      HOME: tempDir('mf-git-home-'),
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_TERMINAL_PROMPT: '0',
      LC_ALL: 'C',
      GIT_SSL_CAINFO: server.ca.caCert,
      GIT_SSH_COMMAND: sshCommand(key),
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'http.extraHeader',
      GIT_CONFIG_VALUE_0: header,
    },
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const exit = new Promise<{ code: number | null; stderr: string }>((resolve) => child.once('close', (code) => resolve({ code, stderr })));
  return { child, exit };
}

/** Whether a `git pack-objects` runs below the server (directly, or under sshd and its session command). */
function packing(serverPid: number): boolean {
  return processesBelow(serverPid).some((p) => p.argv.includes('pack-objects'));
}

for (const transport of ['https', 'ssh'] as const) {
  describe(`graceful shutdown during a clone over ${transport.toUpperCase()}`, () => {
    it('refuses new connections, lets the running clone finish intact, then exits 0', async () => {
      const key = await sshKeyPair('drain');
      const { server, head } = await serverWithBigRepo(key);
      const url = transport === 'https' ? server.httpUrl('DRAIN', 'big') : server.sshUrl('DRAIN', 'big');
      const dest = join(tempDir('mf-drain-'), 'clone.git');
      const clone = startClone(server, url, key, dest);
      try {
        await eventually(async () => packing(server.process.pid!), 'the pack to be streaming', 30_000, 10);
        // The client stops reading half-way (its whole process group), so the transfer is in flight when the
        // server is told to stop.
        process.kill(-clone.child.pid!, 'SIGSTOP');
        await sleep(200);
        assert.equal(clone.child.exitCode, null, 'the clone is still running');
        const exited = new Promise<number | null>((resolve) => server.process.once('exit', (code) => resolve(code)));
        server.process.kill('SIGTERM');
        await sleep(1000);
        assert.equal(server.process.exitCode, null, `the server waits for the clone:\n${server.output().slice(-2000)}`);
        const late = await git(server, ['ls-remote', url], { creds: ADMIN, sshKey: key });
        assert.notEqual(late.code, 0, 'a new connection is refused while the server drains');
        assert.match(late.stderr, /refused|Failed to connect|Could not read from remote/i);

        process.kill(-clone.child.pid!, 'SIGCONT');
        const result = await clone.exit;
        assert.equal(result.code, 0, `the clone finished:\n${result.stderr}\n--- server ---\n${server.output().slice(-3000)}`);
        assert.equal((await gitOk(null, ['--git-dir', dest, 'rev-parse', 'refs/heads/main'])).trim(), head);
        await gitOk(null, ['--git-dir', dest, 'fsck', '--no-progress']);
        assert.equal(await exited, 0, `the server exited cleanly:\n${server.output().slice(-3000)}`);
        assert.match(server.output(), /mirrorfarm stopped/);
        assert.doesNotMatch(server.output(), /shutdown timeout reached/);
      } finally {
        if (clone.child.exitCode === null) {
          process.kill(-clone.child.pid!, 'SIGCONT');
          clone.child.kill('SIGKILL');
        }
        await server.stop();
      }
    });
  });
}
