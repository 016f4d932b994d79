// A mirror farm behind a real nginx (round-robin, no stickiness) under continuous pushes while its membership
// changes: scale 1 -> 3 (one joining node killed with SIGKILL mid-sync and restarted), one node cut off from the
// primary for longer than the prepare timeout and healed, scale 3 -> 2 with SIGTERM, a rolling restart. Readers
// clone, fetch and list refs through the balancer over HTTPS (v2 and v0) and SSH with a pinned host key the
// whole time: not one of their operations may fail, and every tip they get was a tip of the primary at some
// moment.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { addSshKey, createProject, createRepo, createUser, grantProject } from '../helpers/fixtures.js';
import { startFarm, type Farm } from '../helpers/farm.js';
import { FarmLoad } from '../helpers/farm-load.js';
import { mirrorGet, waitForSameRefs } from '../helpers/mirror.js';
import { run } from '../helpers/run.js';
import { api, eventually, gitOk, makeWorkTree, parseLsRemote, sshKeyPair, startServer, type Credentials, type TestServer } from '../helpers/server.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

/** Short, so that the test runs in reasonable time: a third is the lease, a third the balancer's margin. */
const PREPARE_TIMEOUT_S = 6;

let primary: TestServer;
let farm: Farm;
let alice: Credentials;
let mirrorId: string;
let load: FarmLoad;
const proxies: TcpProxy[] = [];
let work: string;

async function metric(server: TestServer, name: string): Promise<number> {
  const r = await api(server, 'GET', '/metrics');
  const line = r.text.split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.split(' ').pop()) : 0;
}

async function primaryNode(name: string): Promise<{ id: string; state: string } | undefined> {
  const r = await api(primary, 'GET', `/rest/mirroring/1.0/mirrorServers/${mirrorId}`);
  return (r.body?.nodes as Array<{ id: string; state: string }> | undefined)?.find((n) => n.id === name);
}

const rotationIs = (names: string[], timeoutMs = 30_000) =>
  eventually(async () => farm.inRotation().join() === [...names].sort().join(), `rotation ${names.join(',')} (is ${farm.inRotation().join(',')})`, timeoutMs, 100);

before(async () => {
  primary = await startServer({ env: { MIRRORFARM_MIRRORING_PREPARE_TIMEOUT_SECONDS: String(PREPARE_TIMEOUT_S) } });
  await createProject(primary, 'CHAOS');
  await createRepo(primary, 'CHAOS', 'app');
  alice = await createUser(primary, 'alice');
  await grantProject(primary, 'CHAOS', 'alice', 'PROJECT_WRITE');
  work = await makeWorkTree([{ 'README.md': 'v1\n' }, { 'README.md': 'v2\n' }, { 'README.md': 'v3\n' }]);
  await gitOk(primary, ['push', '-q', primary.httpUrl('CHAOS', 'app'), 'main'], { creds: alice, cwd: work });
  farm = await startFarm(primary, { nodes: 1, probeIntervalMs: 250 });
});

after(async () => {
  await load?.stop();
  if (process.env.MF_TEST_DEBUG) for (const [name, node] of farm?.nodes ?? []) process.stderr.write(`--- ${name} ---\n${node.output().slice(-40000)}\n`);
  await farm?.stop();
  for (const proxy of proxies) await proxy.stop();
  await primary?.stop();
  removeTempDirs();
});

describe('a farm under continuous pushes while nodes join, crash, are cut off and leave', () => {
  it('never fails a client and serves only real tips, through scale 1 -> 3 -> 2, a SIGKILL, a partition and a rolling restart', { timeout: 240_000 }, async () => {
    // One node, authorized; SSH clients pin the farm's host key.
    const first = await eventually(async () => {
      const s = (await mirrorGet(farm.nodes.get('node-0')!, '/status')).body;
      return s.state === 'PENDING' ? s : undefined;
    }, 'node-0 PENDING');
    mirrorId = first.mirrorId;
    const accepted = await api(primary, 'POST', `/rest/mirroring/1.0/requests/${mirrorId}/accept`, { mirroringMode: 'ALL_PROJECTS' });
    assert.ok(accepted.status < 300, accepted.text);
    await rotationIs(['node-0']);
    const scan = await run('ssh-keyscan', ['-p', String(farm.balancer.sshPort), '-t', 'ed25519', 'localhost'], { env: { PATH: process.env.PATH! } });
    const knownHosts = join(tempDir('mf-known-'), 'known_hosts');
    writeFileSync(knownHosts, scan.stdout.replace(/^localhost/m, `[localhost]:${farm.balancer.sshPort}`));
    const key = await sshKeyPair('alice');
    await addSshKey(primary, 'alice', key.publicKey);
    const ssh = {
      GIT_SSH_COMMAND: `ssh -i ${key.privateKey} -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${knownHosts} -o LogLevel=ERROR`,
    };

    load = new FarmLoad({
      primary,
      creds: alice,
      project: 'CHAOS',
      slug: 'app',
      work,
      readers: 3,
      targets: [
        { name: 'https-v2', url: farm.httpUrl('CHAOS', 'app'), protocol: 2, options: { creds: alice } },
        { name: 'https-v0', url: farm.httpUrl('CHAOS', 'app'), protocol: 0, options: { creds: alice } },
        { name: 'ssh-v2', url: farm.sshUrl('CHAOS', 'app'), protocol: 2, options: { env: ssh } },
        { name: 'ssh-v0', url: farm.sshUrl('CHAOS', 'app'), protocol: 0, options: { env: ssh } },
      ],
    });
    const started = Date.now();
    const marks: Array<[string, number]> = [];
    load.start();
    await sleep(2000);

    // Scale 1 -> 3. node-1 and node-2 reach the primary (HTTPS and SSH) through proxies the test controls.
    // node-1 cannot fetch at first, so it is surely still syncing (and out of rotation) when it is killed with
    // SIGKILL; then it is restarted and joins.
    const viaProxies = async () => {
      const pair = { https: await startTcpProxy(primary.httpPort), ssh: await startTcpProxy(primary.sshPort) };
      proxies.push(pair.https, pair.ssh);
      const env = {
        MIRRORFARM_MIRROR_UPSTREAM_URL: `https://127.0.0.1:${pair.https.port}`,
        MIRRORFARM_MIRROR_UPSTREAM_SSH_HOST: '127.0.0.1',
        MIRRORFARM_MIRROR_UPSTREAM_SSH_PORT: String(pair.ssh.port),
      };
      return { ...pair, env };
    };
    const one = await viaProxies();
    const two = await viaProxies();
    one.ssh.cut();
    await farm.addNode(one.env);
    await farm.addNode(two.env);
    await eventually(async () => {
      const s = (await mirrorGet(farm.nodes.get('node-1')!, '/status')).body;
      return s.state === 'SYNCHRONIZING' && (s.failingRepositories as unknown[]).length > 0;
    }, 'node-1 trying to sync', 20_000, 50);
    assert.equal((await mirrorGet(farm.nodes.get('node-1')!, '/ready')).status, 503, 'a node that is not in sync is not ready');
    assert.ok(!farm.inRotation().includes('node-1'));
    await farm.stopNode('node-1', 'SIGKILL');
    marks.push(['node-1 killed', Date.now()]);
    one.ssh.heal();
    await farm.restartNode('node-1');
    await rotationIs(['node-0', 'node-1', 'node-2']);
    const nodes = await api(primary, 'GET', `/rest/mirroring/1.0/mirrorServers/${mirrorId}`);
    assert.deepEqual(nodes.body.nodes.map((n: { id: string }) => n.id).sort(), ['node-0', 'node-1', 'node-2']);

    marks.push(['three in rotation', Date.now()]);

    // Cut node-2 off from the primary for longer than the prepare timeout. It has verified the readers'
    // credentials before (users it verified keep working while the primary cannot be reached; one it has not
    // seen would be refused until the balancer takes the node out of rotation).
    await gitOk(primary, ['ls-remote', farm.nodes.get('node-2')!.httpUrl('CHAOS', 'app')], { creds: alice });
    await gitOk(primary, ['ls-remote', farm.nodes.get('node-2')!.sshUrl('CHAOS', 'app')], { env: { GIT_SSH_COMMAND: ssh.GIT_SSH_COMMAND.replace('StrictHostKeyChecking=yes', 'StrictHostKeyChecking=no').replace(knownHosts, '/dev/null') } });
    const evictionsBefore = await metric(primary, 'mirrorfarm_mirror_node_evictions_total');
    two.https.cut();
    two.ssh.cut();
    const cutAt = Date.now();
    marks.push(['node-2 cut off', cutAt]);
    await eventually(async () => (await mirrorGet(farm.nodes.get('node-2')!, '/ready')).status === 503, 'node-2 not ready once cut off', 5_000, 50);
    const unreadyAfter = Date.now() - cutAt;
    assert.ok(unreadyAfter <= (PREPARE_TIMEOUT_S * 2000) / 3 + 1000, `not ready ${unreadyAfter} ms after the cut (lease ${PREPARE_TIMEOUT_S / 3} s)`);
    await eventually(async () => ['OUT_OF_SYNC', 'EVICTED'].includes((await primaryNode('node-2'))?.state ?? ''), 'node-2 evicted on the primary', 20_000, 100);
    const evictedAt = Date.now();
    assert.ok((await metric(primary, 'mirrorfarm_mirror_node_evictions_total')) > evictionsBefore, 'the eviction metric moved');
    assert.ok(!farm.inRotation().includes('node-2'));
    // The others keep publishing: node-0 serves a push made after the eviction.
    await eventually(
      async () => {
        const r = await gitOk(primary, ['ls-remote', farm.nodes.get('node-0')!.httpUrl('CHAOS', 'app')], { creds: alice });
        const main = parseLsRemote(r).get('refs/heads/main');
        return load.pushes.some((p) => p.at > evictedAt && p.main === main);
      },
      'node-0 publishing pushes made after the eviction',
      15_000,
      100,
    );
    const heldMs = PREPARE_TIMEOUT_S * 1000 + 2000 - (Date.now() - cutAt);
    if (heldMs > 0) await sleep(heldMs);
    two.https.heal();
    two.ssh.heal();
    const healedAt = Date.now();
    marks.push(['node-2 healed', healedAt]);
    await rotationIs(['node-0', 'node-1', 'node-2'], 30_000);
    const rejoinMs = Date.now() - healedAt;
    assert.ok(rejoinMs < 15_000, `node-2 back in rotation ${rejoinMs} ms after the heal`);
    // The primary's view follows with the node's next report (every 5 s): neither evicted nor failing repositories.
    await eventually(async () => ['SYNCHRONIZED', 'SYNCHRONIZING'].includes((await primaryNode('node-2'))?.state ?? ''), 'node-2 no longer evicted on the primary', 15_000, 200);

    // Scale 3 -> 2 gracefully, then a rolling restart of the two that are left.
    marks.push(['node-1 SIGTERM', Date.now()]);
    await farm.stopNode('node-1', 'SIGTERM');
    await rotationIs(['node-0', 'node-2']);
    for (const name of ['node-0', 'node-2']) {
      marks.push([`${name} restarting`, Date.now()]);
      await farm.stopNode(name, 'SIGTERM');
      await farm.restartNode(name);
      await rotationIs(['node-0', 'node-2']);
    }
    marks.push(['rolling restart done', Date.now()]);

    // Enough operations, then everything stops and every node converges to the primary.
    await eventually(async () => load.ops >= 300, `300 client operations (${load.ops} so far)`, 120_000, 200);
    await load.stop();
    const summary = [...load.counts].map(([k, v]) => `${k}: ${v}`).join(', ');
    process.stdout.write(`# farm load: ${load.ops} client operations (${summary}), ${load.pushes.length} pushes, ${load.failures.length} failed; node-2 unready ${unreadyAfter} ms after the cut, back ${rejoinMs} ms after the heal\n`);
    const when = (at: number) => `${((at - started) / 1000).toFixed(1)} s`;
    const timeline = marks.map(([what, at]) => `${when(at)} ${what}`).join('\n');
    assert.deepEqual(load.failures, [], `failed client operations:\n${load.failures.map((f) => `${when(f.at)} ${f.what}: ${f.stderr}`).join('\n')}\ntimeline:\n${timeline}`);
    assert.ok(load.ops >= 300);
    assert.deepEqual(load.check(), [], 'every tip a client got was a tip of the primary at some moment');
    for (const node of farm.nodes.values()) await waitForSameRefs(primary, node, 'CHAOS', 'app', alice, 20_000);
  });
});
