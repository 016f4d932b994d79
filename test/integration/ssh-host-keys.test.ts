// The nodes of a farm present one SSH host key set (ssh.hostKeyDir), so a client that meets node B after node A
// sees the same key; a configured directory is never filled with generated keys of a node's own.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { run } from '../helpers/run.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

const clientEnv = { PATH: process.env.PATH, HOME: tempDir('mf-ssh-user-') };

async function scannedKeys(server: TestServer): Promise<string[]> {
  const result = await run('ssh-keyscan', ['-p', String(server.sshPort), '-t', 'ed25519,ecdsa', '127.0.0.1'], { env: clientEnv });
  assert.equal(result.code, 0, result.stderr);
  return result.stdout
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => line.split(' ').slice(1).join(' '))
    .sort();
}

describe('shared SSH host keys (ssh.hostKeyDir)', () => {
  const servers: TestServer[] = [];
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('two nodes configured with one key directory present the same host keys, and generate none of their own', async () => {
    const keyDir = join(tempDir('mf-farm-keys-'), 'ssh');
    mkdirSync(keyDir, { mode: 0o700 });
    const keygen = await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'farm', '-f', join(keyDir, 'ssh_host_ed25519_key')], { env: clientEnv });
    assert.equal(keygen.code, 0, keygen.stderr);
    const env = { MIRRORFARM_SSH_HOST_KEY_DIR: keyDir };
    servers.push(await startServer({ env }), await startServer({ env }));
    const [a, b] = [await scannedKeys(servers[0]!), await scannedKeys(servers[1]!)];
    assert.deepEqual(a, b);
    assert.equal(a.length, 1, `only the shared ed25519 key is offered: ${a.join(', ')}`);
    const expected = (await run('ssh-keygen', ['-y', '-f', join(keyDir, 'ssh_host_ed25519_key')], { env: clientEnv })).stdout.trim().split(' ').slice(0, 2).join(' ');
    assert.equal(a[0], expected);
    assert.equal(existsSync(join(keyDir, 'ssh_host_ecdsa_key')), false, 'no key is generated into a shared directory');
    assert.equal(existsSync(join(servers[0]!.home, 'ssh')), false, 'no node-local host keys either');
  });

  it('an empty shared key directory stops startup with SSH_HOST_KEY_MISSING and the command that creates one', async () => {
    const keyDir = tempDir('mf-farm-nokeys-');
    await assert.rejects(startServer({ env: { MIRRORFARM_SSH_HOST_KEY_DIR: keyDir } }), (err: Error) => {
      assert.match(err.message, /mirrorfarm: SSH_HOST_KEY_MISSING: ssh\.hostKeyDir .* holds none of ssh_host_ed25519_key/);
      assert.match(err.message, /ssh-keygen -t ed25519 -N '' -f /);
      return true;
    });
  });
});
