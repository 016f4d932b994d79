// A mirror farm of three nodes behind a real nginx (round-robin, no stickiness): one identity, one SSH host key,
// and clients that never fail while the primary takes pushes, whichever node answers which request.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createProject, createRepo, createUser, grantProject } from '../helpers/fixtures.js';
import { startFarm, type Farm } from '../helpers/farm.js';
import { mirrorGet, waitForState } from '../helpers/mirror.js';
import { run } from '../helpers/run.js';
import { api, eventually, git, gitOk, makeWorkTree, parseLsRemote, sshKeyPair, startServer, type Credentials, type SshKeyPair, type TestServer } from '../helpers/server.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';
import { addSshKey } from '../helpers/fixtures.js';

let primary: TestServer;
let farm: Farm;
let alice: Credentials;
let aliceKey: SshKeyPair;
let knownHosts: string;
let mirrorId: string;

before(async () => {
  primary = await startServer();
  await createProject(primary, 'FARM');
  await createRepo(primary, 'FARM', 'app');
  alice = await createUser(primary, 'alice');
  await grantProject(primary, 'FARM', 'alice', 'PROJECT_WRITE');
  aliceKey = await sshKeyPair('alice');
  await addSshKey(primary, 'alice', aliceKey.publicKey);
  const work = await makeWorkTree([{ 'README.md': 'v1\n' }]);
  await gitOk(primary, ['push', primary.httpUrl('FARM', 'app'), 'main'], { creds: alice, cwd: work });
  farm = await startFarm(primary, { nodes: 3 });
});

after(async () => {
  if (process.env.MF_TEST_DEBUG) for (const [name, node] of farm?.nodes ?? []) process.stderr.write(`--- ${name} ---\n${node.output().slice(-60000)}\n`);
  await farm?.stop();
  await primary?.stop();
  removeTempDirs();
});

/** An SSH client that pins the first host key it sees and refuses any other (no StrictHostKeyChecking=no). */
function strictSsh(): Record<string, string> {
  return { GIT_SSH_COMMAND: `ssh -i ${aliceKey.privateKey} -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${knownHosts} -o LogLevel=ERROR` };
}

describe('a farm of three behind one balancer', () => {
  it('shows one mirror with three nodes on the primary, every node in sync and in rotation', async () => {
    const first = await waitForState(farm.nodes.get('node-0')!, 'PENDING');
    mirrorId = first.mirrorId;
    for (const node of farm.nodes.values()) assert.equal((await mirrorGet(node, '/status')).body.mirrorId, mirrorId, 'one identity');
    const accepted = await api(primary, 'POST', `/rest/mirroring/1.0/requests/${mirrorId}/accept`, { mirroringMode: 'ALL_PROJECTS' });
    assert.ok(accepted.status < 300, accepted.text);
    for (const node of farm.nodes.values()) await waitForState(node, 'SYNCHRONIZED', 30_000);
    await eventually(async () => farm.inRotation().length === 3, 'all three nodes in rotation');
    const servers = await api(primary, 'GET', '/rest/mirroring/1.0/mirrorServers');
    const mine = servers.body.values.filter((m: { id: string }) => m.id === mirrorId);
    assert.equal(mine.length, 1, JSON.stringify(servers.body));
    assert.deepEqual(mine[0].nodes.map((n: { id: string }) => n.id).sort(), ['node-0', 'node-1', 'node-2'], JSON.stringify(mine[0]));
  });

  it('presents one SSH host key whichever node answers: a pinned client never sees a changed key', async () => {
    const scan = await run('ssh-keyscan', ['-p', String(farm.balancer.sshPort), '-t', 'ed25519', 'localhost'], { env: { PATH: process.env.PATH! } });
    knownHosts = join(tempDir('mf-known-'), 'known_hosts');
    writeFileSync(knownHosts, scan.stdout.replace(/^localhost/m, `[localhost]:${farm.balancer.sshPort}`));
    for (let i = 0; i < 9; i++) {
      const r = await git(primary, ['ls-remote', farm.sshUrl('FARM', 'app')], { env: strictSsh() });
      assert.equal(r.code, 0, `SSH attempt ${i}: ${r.stderr}`);
      assert.match(r.stdout, /refs\/heads\/main/);
    }
  });

  it('clones over HTTPS (v2, v0) and SSH through the balancer give the primary tip', async () => {
    const want = parseLsRemote(await gitOk(primary, ['ls-remote', primary.httpUrl('FARM', 'app')], { creds: alice })).get('refs/heads/main');
    for (const [protocol, url, options] of [
      [2, farm.httpUrl('FARM', 'app'), { creds: alice }],
      [0, farm.httpUrl('FARM', 'app'), { creds: alice }],
      [2, farm.sshUrl('FARM', 'app'), { env: strictSsh() }],
    ] as const) {
      const dir = join(tempDir('mf-farm-clone-'), 'c');
      await gitOk(primary, ['clone', '-q', url, dir], { ...options, protocol });
      assert.equal((await gitOk(null, ['rev-parse', 'HEAD'], { cwd: dir })).trim(), want, `${url} v${protocol}`);
    }
  });
});
