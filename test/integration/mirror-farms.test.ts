// Two mirror farms on one primary, each of two nodes behind its own nginx, with different project selections:
// each farm is one identity (a node with a foreign host key, another baseUrl or another key is refused with its
// code), each serves only its projects, the primary shows every node's state and role and each node its farm's
// size, the farm metrics move, and deleting one farm cuts all its nodes off within a second while the other
// keeps serving and syncing.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { generateMirrorKey, loadMirrorKey, signMirrorToken } from '../../src/auth/mirror-token.js';
import { addSshKey, createProject, createRepo, createUser, grantProject } from '../helpers/fixtures.js';
import { farmSecrets, startFarm, type Farm } from '../helpers/farm.js';
import { mirrorGet, refusedWithin, waitForState, type MirrorStatus } from '../helpers/mirror.js';
import { run } from '../helpers/run.js';
import { api, eventually, freePort, git, gitOk, makeWorkTree, parseLsRemote, sshKeyPair, startServer, type Credentials, type SshKeyPair, type TestServer } from '../helpers/server.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

type Json = any;

const M = '/rest/mirroring/1.0';
let primary: TestServer;
let alpha: Farm;
let beta: Farm;
let alice: Credentials;
let aliceKey: SshKeyPair;
const ids: Record<'alpha' | 'beta', string> = { alpha: '', beta: '' };
const work: Record<string, string> = {};

before(async () => {
  // OFFLINE after 8 s without contact (nodes report every 5 s), eviction after 3 s without a prepare.
  primary = await startServer({ env: { MIRRORFARM_MIRRORING_NODE_OFFLINE_SECONDS: '8', MIRRORFARM_MIRRORING_PREPARE_TIMEOUT_SECONDS: '3' } });
  alice = await createUser(primary, 'alice');
  aliceKey = await sshKeyPair('alice');
  await addSshKey(primary, 'alice', aliceKey.publicKey);
  for (const key of ['ALPHA', 'BETA']) {
    await createProject(primary, key);
    await createRepo(primary, key, 'app');
    await grantProject(primary, key, 'alice', 'PROJECT_WRITE');
    work[key] = await makeWorkTree([{ 'README.md': `${key} v1\n` }]);
    await gitOk(primary, ['push', '-q', primary.httpUrl(key, 'app'), 'main'], { creds: alice, cwd: work[key] });
  }
  alpha = await startFarm(primary, { nodes: 2 });
  beta = await startFarm(primary, { nodes: 2 });
  for (const [name, farm, project] of [['alpha', alpha, 'ALPHA'], ['beta', beta, 'BETA']] as const) {
    const pending = await waitForState(farm.nodes.get('node-0')!, 'PENDING');
    ids[name] = pending.mirrorId;
    const accepted = await api(primary, 'POST', `${M}/requests/${pending.mirrorId}/accept`, { mirroringMode: 'SELECTED_PROJECTS', projectKeys: [project] });
    assert.equal(accepted.status, 200, accepted.text);
  }
  for (const farm of [alpha, beta]) for (const node of farm.nodes.values()) await waitForState(node, 'SYNCHRONIZED', 30_000);
  await eventually(async () => alpha.inRotation().length === 2 && beta.inRotation().length === 2, 'both farms fully in rotation');
});

after(async () => {
  if (process.env.MF_TEST_DEBUG) for (const farm of [alpha, beta]) for (const [name, node] of farm?.nodes ?? []) process.stderr.write(`--- ${name} ---\n${node.output().slice(-20000)}\n`);
  for (const farm of [alpha, beta]) for (const node of farm?.nodes.values() ?? []) node.process.kill('SIGCONT');
  await alpha?.stop();
  await beta?.stop();
  await primary?.stop();
  removeTempDirs();
});

const server = async (id: string): Promise<Json> => {
  const r = await api(primary, 'GET', `${M}/mirrorServers/${id}`);
  assert.equal(r.status, 200, r.text);
  return r.body;
};

/** Fingerprints of the host keys in a farm's ssh.hostKeyDir, as ssh-keygen prints them. */
async function fingerprints(hostKeyDir: string): Promise<string[]> {
  const out: string[] = [];
  for (const file of readdirSync(hostKeyDir).filter((f) => f.endsWith('.pub'))) {
    const r = await run('ssh-keygen', ['-lf', join(hostKeyDir, file)], { env: { PATH: process.env.PATH! } });
    out.push(r.stdout.split(' ')[1]!);
  }
  return out.sort();
}

/** An SSH client that knows only the farm's host keys (from its Secret) and refuses any other. */
function pinnedSsh(farm: Farm): Record<string, string> {
  const knownHosts = join(tempDir('mf-known-'), 'known_hosts');
  const lines = readdirSync(farm.hostKeyDir)
    .filter((f) => f.endsWith('.pub'))
    .map((f) => `[localhost]:${farm.balancer.sshPort} ${readFileSync(join(farm.hostKeyDir, f), 'utf8').split(' ').slice(0, 2).join(' ')}\n`);
  writeFileSync(knownHosts, lines.join(''));
  return {
    GIT_SSH_COMMAND: `ssh -i ${aliceKey.privateKey} -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${knownHosts} -o LogLevel=ERROR`,
  };
}

const lsHttps = (farm: Farm, project: string) => git(primary, ['ls-remote', farm.httpUrl(project, 'app')], { creds: alice });
const lsSsh = (farm: Farm, project: string, env = pinnedSsh(farm)) => git(primary, ['ls-remote', farm.sshUrl(project, 'app')], { env });
const primaryMain = async (project: string) => parseLsRemote(await gitOk(primary, ['ls-remote', primary.httpUrl(project, 'app')], { creds: alice })).get('refs/heads/main');

async function push(project: string, content: string): Promise<string> {
  writeFileSync(join(work[project]!, 'README.md'), content);
  await gitOk(null, ['commit', '-q', '-am', content.trim()], { cwd: work[project] });
  await gitOk(primary, ['push', '-q', primary.httpUrl(project, 'app'), 'main'], { creds: alice, cwd: work[project] });
  return (await primaryMain(project))!;
}

/** The main branch every client sees through the farm's balancer, over HTTPS and SSH. */
async function servedThrough(farm: Farm, project: string, tip: string, timeoutMs = 15_000): Promise<void> {
  await eventually(async () => {
    for (const r of [await lsHttps(farm, project), await lsSsh(farm, project)]) {
      if (r.code !== 0 || parseLsRemote(r.stdout).get('refs/heads/main') !== tip) return false;
    }
    return true;
  }, `${project}/app at ${tip.slice(0, 8)} through the balancer`, timeoutMs);
}

async function metrics(): Promise<string> {
  const r = await api(primary, 'GET', '/metrics', undefined, null);
  assert.equal(r.status, 200);
  return r.text;
}

/** The value of one sample, e.g. sample(text, 'mirrorfarm_mirror_farm_nodes', id). */
function sample(text: string, name: string, mirrorId: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`mirror_id="${mirrorId}"`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** A node's /status once its error carries `code` (it retries, so the state stays ERROR). */
const refusedWith = (node: TestServer, code: string) =>
  eventually(async () => {
    const { body } = await mirrorGet(node, '/status');
    return body.state === 'ERROR' && body.error?.code === code ? body : undefined;
  }, `node refused with ${code}`, 30_000);

describe('two farms on one primary', () => {
  it('shows each farm as one mirror with its own nodes, base URL, SSH URL and host keys, and serves each only its projects', async () => {
    for (const [name, farm, mine, other] of [['alpha', alpha, 'ALPHA', 'BETA'], ['beta', beta, 'BETA', 'ALPHA']] as const) {
      const mirror = await server(ids[name]);
      assert.deepEqual(mirror.nodes.map((n: Json) => n.id), ['node-0', 'node-1']);
      assert.equal(mirror.baseUrl, farm.balancer.baseUrl, "the farm's URL, never a node's");
      assert.deepEqual(mirror.sshUrlBase, { host: 'localhost', port: farm.balancer.sshPort, user: farm.nodes.get('node-0')!.sshUser });
      assert.deepEqual(mirror.sshHostKeys.map((k: Json) => k.fingerprint).sort(), await fingerprints(farm.hostKeyDir));
      assert.deepEqual(mirror.projects.map((p: Json) => p.key), [mine]);

      const tip = await primaryMain(mine);
      for (const r of [await lsHttps(farm, mine), await lsSsh(farm, mine)]) {
        assert.equal(r.code, 0, r.stderr);
        assert.equal(parseLsRemote(r.stdout).get('refs/heads/main'), tip);
      }
      for (const r of [await lsHttps(farm, other), await lsSsh(farm, other)]) {
        assert.notEqual(r.code, 0, `${name} must not serve ${other}`);
        assert.match(r.stderr, /does not exist/);
      }
    }
    // Clone links handed out for a repository point at the farm that has it, at the farm's addresses.
    const repo = await api(primary, 'GET', '/rest/api/1.0/projects/ALPHA/repos/app', undefined, alice);
    const links = await api(primary, 'GET', `${M}/repos/${repo.body.id}/mirrors`, undefined, alice);
    assert.deepEqual(
      links.body.values.map((v: Json) => [v.mirrorServer.id, v.links.clone]),
      [[ids.alpha, [{ href: `${alpha.balancer.baseUrl}/scm/alpha/app.git`, name: 'http' }, { href: `ssh://git@localhost:${alpha.balancer.sshPort}/alpha/app.git`, name: 'ssh' }]]],
    );
  });

  it('refuses a node with a foreign SSH host key with MIRROR_HOST_KEY_MISMATCH, naming both fingerprints and ssh.hostKeyDir', async () => {
    const foreign = await farmSecrets();
    const name = await alpha.addNode({ MIRRORFARM_SSH_HOST_KEY_DIR: foreign.hostKeyDir });
    const node = alpha.nodes.get(name)!;
    try {
      const status = await refusedWith(node, 'MIRROR_HOST_KEY_MISMATCH');
      for (const fp of [...(await fingerprints(foreign.hostKeyDir)), ...(await fingerprints(alpha.hostKeyDir))]) assert.ok(status.error!.message.includes(fp), `${fp} in: ${status.error!.message}`);
      assert.match(status.error!.message, /ssh\.hostKeyDir/);
      assert.match(status.error!.message, new RegExp(`DELETE /rest/mirroring/1.0/mirrorServers/${ids.alpha}/farmIdentity`));
      assert.equal((await mirrorGet(node, '/ready')).status, 503);
      assert.ok(!alpha.inRotation().includes(name));
      const mirror = await server(ids.alpha);
      assert.deepEqual(mirror.sshHostKeys.map((k: Json) => k.fingerprint).sort(), await fingerprints(alpha.hostKeyDir), "the farm's host keys stay");
      assert.ok(!mirror.nodes.some((n: Json) => n.id === name), 'a refused node never joins');
    } finally {
      await alpha.stopNode(name);
    }
  });

  it("refuses a node whose baseUrl is not the farm's with MIRROR_BASE_URL_MISMATCH; the farm's URLs stay", async () => {
    const port = await freePort();
    const own = `https://localhost:${port}`;
    const name = await alpha.addNode({ MIRRORFARM_HTTP_PORT: String(port), MIRRORFARM_BASE_URL: own });
    const node = alpha.nodes.get(name)!;
    try {
      const status = await refusedWith(node, 'MIRROR_BASE_URL_MISMATCH');
      assert.ok(status.error!.message.includes(own) && status.error!.message.includes(alpha.balancer.baseUrl), status.error!.message);
      assert.match(status.error!.message, /MIRRORFARM_BASE_URL/);
      const mirror = await server(ids.alpha);
      assert.equal(mirror.baseUrl, alpha.balancer.baseUrl);
      assert.ok(!mirror.nodes.some((n: Json) => n.id === name));
    } finally {
      await alpha.stopNode(name);
    }
  });

  it("refuses a wrong identity: a node with another key behind the farm's URL, a registration of another key for that URL, a token for the farm signed by another key", async () => {
    const foreign = await farmSecrets();
    const name = await alpha.addNode({ MIRRORFARM_MIRROR_KEY_FILE: foreign.keyFile });
    try {
      // The node finds out itself: the farm's URL answers as another mirror.
      await refusedWith(alpha.nodes.get(name)!, 'MIRROR_BASE_URL_WRONG_SERVER');
    } finally {
      await alpha.stopNode(name);
    }
    // The primary refuses it too, should it ask (a balancer with no ready node lets the preflight pass).
    const key = loadMirrorKey(readFileSync(foreign.keyFile, 'utf8'));
    const token = await signMirrorToken(key, primary.baseUrl, 'node-9');
    const body = { mirrorName: 'test farm', baseUrl: alpha.balancer.baseUrl, publicKey: key.publicKey, productVersion: '0.1.0' };
    const asked = await api(primary, 'POST', `${M}/requests`, body, null, { authorization: `Bearer ${token}` });
    assert.deepEqual([asked.status, asked.body.errors?.[0]?.code], [409, 'MIRROR_IDENTITY_MISMATCH'], asked.text);
    const farm = await server(ids.alpha);
    assert.ok(asked.body.errors[0].message.includes(farm.publicKeyFingerprint), asked.text);
    assert.match(asked.body.errors[0].message, /mirror\.keyFile/);
    assert.deepEqual((await api(primary, 'GET', `${M}/requests`)).body.values, [], 'no request was created');

    // A token naming the farm but signed by another key.
    const other = loadMirrorKey(generateMirrorKey().privateKeyOpenSsh);
    const now = Math.floor(Date.now() / 1000);
    const forged = await new SignJWT({ node: 'node-0' })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
      .setIssuer(ids.alpha)
      .setAudience(primary.baseUrl)
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .setJti(`forged-${now}`)
      .sign(other.privateKey);
    const self = await api(primary, 'GET', `${M}/mirror/self`, undefined, null, { authorization: `Bearer ${forged}` });
    assert.deepEqual([self.status, self.body.errors?.[0]?.code], [401, 'MIRROR_TOKEN_INVALID'], self.text);
    assert.match(self.body.errors[0].message, /mirror\.keyFile/);
  });

  it("shows every node's state, role, version, lag, last contact and synced/total, and each node its farm's member count and role", async () => {
    const version = (await mirrorGet(alpha.nodes.get('node-0')!, '/status')).body.version as string;
    const mirror = await eventually(async () => {
      const m = await server(ids.alpha);
      return m.nodes.every((n: Json) => n.state === 'SYNCHRONIZED' && n.version !== null) ? m : undefined;
    }, 'every node SYNCHRONIZED with its version');
    assert.deepEqual(mirror.farm, { memberCount: 2, activeCount: 2 });
    for (const n of mirror.nodes) {
      assert.deepEqual([n.state, n.role, n.connection, n.version, n.repositories], ['SYNCHRONIZED', 'ACTIVE', 'CONNECTED', version, { synced: 1, total: 1, failing: 0 }], JSON.stringify(n));
      assert.equal(typeof n.lagSeconds, 'number');
      assert.ok(Date.now() - Date.parse(n.lastSeenDate) < 10_000, n.lastSeenDate);
    }
    assert.deepEqual(mirror.repositories, { total: 1, synced: 1, failing: [] });
    for (const node of alpha.nodes.values()) {
      const farm = await eventually(async () => {
        const seen = ((await mirrorGet(node, '/status')).body as MirrorStatus & { farm?: Json }).farm;
        return seen?.role ? seen : undefined;
      }, "the primary's view of the farm in the node status");
      const { leaseSeconds, nodes, ...rest } = farm as Json;
      assert.deepEqual(rest, { member: true, ready: true, memberCount: 2, activeCount: 2, role: 'ACTIVE' });
      assert.deepEqual((nodes as Json[]).map((n) => [n.id, n.role]), [['node-0', 'ACTIVE'], ['node-1', 'ACTIVE']], 'every node of the farm, as the primary sees it');
      assert.ok(typeof leaseSeconds === 'number' && leaseSeconds >= 0, `a member holds a lease: ${JSON.stringify(farm)}`);
    }
  });

  it('moves the farm metrics: size per farm, prepare-to-commit time per change, commits waiting on a slow node, evictions', async () => {
    let text = await metrics();
    for (const id of [ids.alpha, ids.beta]) {
      assert.equal(sample(text, 'mirrorfarm_mirror_farm_nodes', id), 2, text);
      assert.equal(sample(text, 'mirrorfarm_mirror_farm_active_nodes', id), 2);
    }
    const count = (t: string, id: string) => sample(t, 'mirrorfarm_mirror_prepare_to_commit_seconds_count', id) ?? 0;
    const before = { alpha: count(text, ids.alpha), beta: count(text, ids.beta) };
    await servedThrough(alpha, 'ALPHA', await push('ALPHA', 'ALPHA v2\n'));
    text = await eventually(async () => {
      const t = await metrics();
      return count(t, ids.alpha) > before.alpha ? t : undefined;
    }, 'a prepare-to-commit observation for alpha');
    assert.equal(count(text, ids.beta), before.beta, 'a change in ALPHA touches no round of the other farm');
    assert.equal(sample(text, 'mirrorfarm_mirror_commits_waiting', ids.alpha) ?? 0, 0);

    // node-1 stops answering (SIGSTOP): its stream stays open, so the next change waits for it, then evicts it.
    const slow = alpha.nodes.get('node-1')!;
    const evictionsBefore = sample(text, 'mirrorfarm_mirror_node_evictions_total', ids.alpha) ?? 0;
    slow.process.kill('SIGSTOP');
    const stoppedAt = Date.now();
    try {
      const tip = await push('ALPHA', 'ALPHA v3\n');
      await eventually(async () => (sample(await metrics(), 'mirrorfarm_mirror_commits_waiting', ids.alpha) ?? 0) >= 1, 'a commit waiting on the slow node', 5000, 100);
      await eventually(async () => sample(await metrics(), 'mirrorfarm_mirror_node_evictions_total', ids.alpha) === evictionsBefore + 1, 'the slow node evicted', 10_000, 100);
      await eventually(async () => (await primaryMain('ALPHA')) === tip && (await lsHttps(alpha, 'ALPHA')).stdout.includes(tip), 'the others committed without it');
      text = await metrics();
      assert.equal(sample(text, 'mirrorfarm_mirror_commits_waiting', ids.alpha) ?? 0, 0);
      assert.equal(sample(text, 'mirrorfarm_mirror_farm_active_nodes', ids.alpha), 1);
      assert.equal(sample(text, 'mirrorfarm_mirror_node_evictions_total', ids.beta) ?? 0, 0, 'no eviction in the other farm');
      const askedAfterMs = Date.now() - stoppedAt;
      const mirror = await server(ids.alpha);
      const evicted = mirror.nodes.find((n: Json) => n.id === 'node-1');
      // The state is EVICTED, or OFFLINE, which outranks it once the stopped node has been silent for
      // nodeOfflineSeconds (8 s here, counted from its last contact), as a loaded machine can reach by now.
      assert.ok(['EVICTED', 'OFFLINE'].includes(evicted.state) && evicted.role === 'EVICTED', `${askedAfterMs} ms after SIGSTOP: ${JSON.stringify(evicted)}`);
      assert.deepEqual(mirror.farm, { memberCount: evicted.state === 'OFFLINE' ? 1 : 2, activeCount: 1 }, 'an OFFLINE node is no longer counted');
      await eventually(async () => ((await mirrorGet(alpha.nodes.get('node-0')!, '/status')).body as Json).farm?.activeCount === 1, "node-0's status shows one active node");
    } finally {
      slow.process.kill('SIGCONT');
    }
  });

  it('shows a node that no longer talks to the primary as OFFLINE, out of the member count', async () => {
    await alpha.stopNode('node-1', 'SIGKILL');
    const mirror = await eventually(async () => {
      const m = await server(ids.alpha);
      return m.nodes.find((n: Json) => n.id === 'node-1')?.state === 'OFFLINE' ? m : undefined;
    }, 'node-1 OFFLINE', 20_000, 250);
    assert.equal(mirror.farm.memberCount, 1);
    assert.equal(mirror.nodes.find((n: Json) => n.id === 'node-0').state, 'SYNCHRONIZED');
    await eventually(async () => ((await mirrorGet(alpha.nodes.get('node-0')!, '/status')).body as Json).farm?.memberCount === 1, "node-0's status shows one member", 10_000);
    assert.equal(sample(await metrics(), 'mirrorfarm_mirror_farm_nodes', ids.alpha), 1);
  });

  it("lets an administrator reset a farm's identity: the next node to register fixes it again", async () => {
    const reset = await api(primary, 'DELETE', `${M}/mirrorServers/${ids.beta}/farmIdentity`);
    assert.equal(reset.status, 200, reset.text);
    assert.equal(reset.body.sshHostKeys, undefined);
    assert.equal(reset.body.baseUrl, beta.balancer.baseUrl, 'clone links keep the base URL meanwhile');
    await beta.stopNode('node-0');
    await beta.restartNode('node-0');
    const mirror = await eventually(async () => {
      const m = await server(ids.beta);
      return m.sshHostKeys ? m : undefined;
    }, 'host keys fixed again');
    assert.deepEqual(mirror.sshHostKeys.map((k: Json) => k.fingerprint).sort(), await fingerprints(beta.hostKeyDir));
    assert.deepEqual(mirror.sshUrlBase, { host: 'localhost', port: beta.balancer.sshPort, user: beta.nodes.get('node-0')!.sshUser });
    await waitForState(beta.nodes.get('node-0')!, 'SYNCHRONIZED', 30_000);
  });

  it('deleting one farm cuts all its nodes off within a second (HTTPS and SSH through its balancer, REST, each node) and leaves the other serving and syncing', async () => {
    for (const r of [await lsHttps(beta, 'BETA'), await lsSsh(beta, 'BETA')]) assert.equal(r.code, 0, r.stderr);
    const ssh = pinnedSsh(beta);
    const nodes = [...beta.nodes.values()];
    const deleted = await api(primary, 'DELETE', `${M}/mirrorServers/${ids.beta}`);
    assert.equal(deleted.status, 204);
    const rest = (node: TestServer) => async () => {
      const r = await api(node, 'GET', '/rest/api/1.0/projects/BETA/repos/app', undefined, alice);
      return { code: r.status === 200 ? 0 : r.status, stderr: r.text };
    };
    await Promise.all([
      refusedWithin(1000, () => lsHttps(beta, 'BETA'), 'HTTPS through the balancer'),
      refusedWithin(1000, () => lsSsh(beta, 'BETA', ssh), 'SSH through the balancer'),
      ...nodes.map((node) => refusedWithin(1000, rest(node), 'REST on a node')),
      ...nodes.map((node) => refusedWithin(1000, () => git(primary, ['ls-remote', node.httpUrl('BETA', 'app')], { creds: alice }), 'HTTPS on a node')),
    ]);
    for (const node of nodes) {
      const status = await waitForState(node, 'REMOVED', 5000);
      assert.equal(status.state, 'REMOVED');
      const direct = await git(primary, ['ls-remote', node.httpUrl('BETA', 'app')], { creds: alice });
      assert.match(direct.stderr, /removed from its primary/);
    }
    const text = await metrics();
    assert.equal(sample(text, 'mirrorfarm_mirror_farm_nodes', ids.beta), undefined, "the deleted farm's series are gone");
    assert.equal(sample(text, 'mirrorfarm_mirror_farm_nodes', ids.alpha), 1);

    // The other farm keeps serving and syncing, over HTTPS and SSH.
    await servedThrough(alpha, 'ALPHA', await push('ALPHA', 'ALPHA v4\n'));
    assert.equal((await server(ids.alpha)).state, 'ACTIVE');
  });
});
