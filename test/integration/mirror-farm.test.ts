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
import { rawRequest } from '../helpers/http.js';
import { waitForSameRefs } from '../helpers/mirror.js';

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

const pkt = (line: string) => `${(line.length + 4).toString(16).padStart(4, '0')}${line}`;

/**
 * Asks one node directly for the objects of `oid`, as a client does after reading the refs from another node:
 * a protocol v0 stateless request (upload-pack checks the want against its own refs) or a v2 fetch command.
 */
async function fetchObject(node: TestServer, oid: string, protocol: 0 | 2): Promise<{ ok: boolean; text: string }> {
  const body = protocol === 0 ? `${pkt(`want ${oid} ofs-delta\n`)}0000${pkt('done\n')}` : `${pkt('command=fetch\n')}0001${pkt(`want ${oid}\n`)}${pkt('done\n')}0000`;
  const r = await rawRequest(node, 'POST', '/scm/FARM/app.git/git-upload-pack', {
    creds: alice,
    body,
    headers: { 'content-type': 'application/x-git-upload-pack-request', accept: 'application/x-git-upload-pack-result', ...(protocol === 2 ? { 'git-protocol': 'version=2' } : {}) },
  });
  const text = r.body.toString('latin1');
  return { ok: r.status === 200 && text.includes('PACK') && !/ERR /.test(text), text: `HTTP ${r.status} ${text.slice(0, 200)}` };
}

describe('push through the farm', () => {
  it('returns a push through the balancer only once every node serves it (read-your-writes), over HTTPS and SSH', async () => {
    const work = await makeWorkTree([{ 'README.md': 'v1\n' }]);
    await gitOk(primary, ['fetch', '-q', primary.httpUrl('FARM', 'app'), 'main'], { creds: alice, cwd: work });
    await gitOk(null, ['reset', '-q', '--hard', 'FETCH_HEAD'], { cwd: work });
    for (const [transport, url, options] of [
      ['https', farm.httpUrl('FARM', 'app'), { creds: alice }],
      ['ssh', farm.sshUrl('FARM', 'app'), { env: strictSsh() }],
    ] as const) {
      writeFileSync(join(work, `${transport}.txt`), `${transport}\n`);
      await gitOk(null, ['add', '-A'], { cwd: work });
      await gitOk(null, ['commit', '-q', '-m', `through the farm over ${transport}`], { cwd: work });
      const head = (await gitOk(null, ['rev-parse', 'HEAD'], { cwd: work })).trim();
      const push = await git(primary, ['push', url, 'main:refs/heads/through-farm'], { ...options, cwd: work });
      assert.equal(push.code, 0, `${transport}: ${push.stderr}`);
      // Straight after the push, every node, asked directly, serves the new tip.
      for (const [name, node] of farm.nodes) {
        const refs = parseLsRemote(await gitOk(node, ['ls-remote', node.httpUrl('FARM', 'app')], { creds: alice }));
        assert.equal(refs.get('refs/heads/through-farm'), head, `${name} after the ${transport} push`);
      }
    }
    await gitOk(primary, ['push', '-q', primary.httpUrl('FARM', 'app'), ':refs/heads/through-farm'], { creds: alice, cwd: work });
  });
});

describe('consistency across the farm when a client reads the refs from one node and fetches from another', () => {
  const nodes = () => [...farm.nodes.entries()];
  const sameEverywhere = async () => {
    for (const node of farm.nodes.values()) await waitForSameRefs(primary, node, 'FARM', 'app', alice, 20_000);
  };

  it('serves a tip every node has moved past (force push, branch deleted) over v0 and v2, even right after gc', async () => {
    const work = join(tempDir('mf-farm-work-'), 'w');
    await gitOk(primary, ['clone', '-q', primary.httpUrl('FARM', 'app'), work], { creds: alice });
    await gitOk(null, ['commit', '-q', '--allow-empty', '-m', 'to be rewritten'], { cwd: work });
    await gitOk(null, ['checkout', '-q', '-b', 'doomed'], { cwd: work });
    await gitOk(null, ['commit', '-q', '--allow-empty', '-m', 'only on doomed'], { cwd: work });
    await gitOk(primary, ['push', '-q', 'origin', 'main', 'doomed'], { creds: alice, cwd: work });
    await sameEverywhere();
    // What a client read from a node that had not moved on yet.
    const old = parseLsRemote(await gitOk(primary, ['ls-remote', farm.nodes.get('node-0')!.httpUrl('FARM', 'app')], { creds: alice }));
    const [oldMain, doomed] = [old.get('refs/heads/main')!, old.get('refs/heads/doomed')!];

    await gitOk(null, ['checkout', '-q', 'main'], { cwd: work });
    await gitOk(null, ['reset', '-q', '--hard', 'HEAD~1'], { cwd: work });
    await gitOk(null, ['commit', '-q', '--allow-empty', '-m', 'rewritten'], { cwd: work });
    await gitOk(primary, ['push', '-q', '--force', 'origin', 'main', ':doomed'], { creds: alice, cwd: work });
    await sameEverywhere();
    const repo = await api(primary, 'GET', '/rest/api/1.0/projects/FARM/repos/app');
    for (const [, node] of nodes()) {
      const gc = await run('git', ['--git-dir', join(node.home, 'repos', `${repo.body.id}.git`), 'gc', '--quiet', '--prune=now'], { env: { PATH: process.env.PATH!, HOME: node.home, GIT_CONFIG_NOSYSTEM: '1' } });
      assert.equal(gc.code, 0, gc.stderr);
    }
    for (const [name, node] of nodes()) {
      for (const protocol of [0, 2] as const) {
        for (const [what, oid] of [['old main', oldMain], ['deleted branch', doomed]]) {
          const r = await fetchObject(node, oid!, protocol);
          assert.ok(r.ok, `${name} v${protocol} ${what}: ${r.text}`);
        }
      }
    }
    // The check is real: an object that was never a tip is refused.
    const never = await fetchObject(farm.nodes.get('node-0')!, 'f'.repeat(40), 0);
    assert.ok(!never.ok, never.text);
  });

  it('serves a tip that a node has staged but not published yet, over v0 and v2', async () => {
    // The state between "every node staged" and "this node applied its commit": the tip is only under the
    // node's hidden staging refs.
    const node = farm.nodes.get('node-2')!;
    const repo = await api(primary, 'GET', '/rest/api/1.0/projects/FARM/repos/app');
    const gitDir = join(node.home, 'repos', `${repo.body.id}.git`);
    const env = { PATH: process.env.PATH!, HOME: node.home, GIT_CONFIG_NOSYSTEM: '1', GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com' };
    const tree = (await run('git', ['--git-dir', gitDir, 'rev-parse', 'HEAD^{tree}'], { env })).stdout.trim();
    const staged = (await run('git', ['--git-dir', gitDir, 'commit-tree', '-m', 'staged only', tree], { env })).stdout.trim();
    assert.match(staged, /^[0-9a-f]{40}$/);
    await run('git', ['--git-dir', gitDir, 'update-ref', 'refs/mirrorfarm/staged/heads/probe', staged], { env });
    for (const protocol of [0, 2] as const) {
      const r = await fetchObject(node, staged, protocol);
      assert.ok(r.ok, `v${protocol}: ${r.text}`);
    }
    const listed = await gitOk(primary, ['ls-remote', node.httpUrl('FARM', 'app')], { creds: alice });
    assert.ok(!listed.includes('mirrorfarm') && !listed.includes(staged), 'and never advertises it');
    await run('git', ['--git-dir', gitDir, 'update-ref', '-d', 'refs/mirrorfarm/staged/heads/probe'], { env });
  });
});
