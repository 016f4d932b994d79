// The seed's Kubernetes steps, run from what the chart renders: `helm template` (the real helm) of the primary
// and of mirror farms from the examples, then every rendered pod as a podman container of the image this
// suite built, nginx as the ingress controller configured from the rendered Ingresses and Services, readiness
// from the rendered probes (test/deploy/cluster.ts says what is emulated and how). Users act from the host:
// REST and git over HTTPS through the Ingress hosts, git over SSH through each release's SSH Service, with
// TLS and host keys checked. Where containers cannot run, the same walk runs every pod as a process of this
// checkout from the same rendered values (pod-runtime.ts picks the form, processes.ts says what differs); the
// output says which form ran. MIRRORFARM_E2E_MODE=process forces the process form; CI runs containers only.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fingerprintOf } from '../../src/domain/users.js';
import { keyBlob } from '../../src/auth/mirror-token.js';
import { writeDevCa, type DevCaFiles } from '../../src/tls/dev-ca.js';
import { eventually, makeWorkTree, gitOk, sshKeyPair, type Credentials, type SshKeyPair } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';
import { CHART, Cluster, INGRESS_PORT, TIME_SCALE, helmTemplate, type K8sObject, type Pod } from './cluster.js';
import { clusterGit, clusterGitOk, ed25519PublicKey, ingressApi, podGet } from './cluster-clients.js';
import { selectRuntime } from './pod-runtime.js';

const runtime = selectRuntime();

const NS = 'git';
const PRIMARY_HOST = 'git.example.test';
const MIRROR_HOST = 'git-mirror.example.test';
const FARM2_HOST = 'git-mirror-2.example.test';
const url = (host: string) => `https://${host}:${INGRESS_PORT}`;
const PRIMARY_VALUES = join(CHART, 'examples/values-primary.yaml');
const MIRROR_VALUES = join(CHART, 'examples/values-mirror.yaml');
// Only what loopback needs: host names, the ingress port in URLs, and trust in the test CA (a private CA).
const primaryArgs = ['-f', PRIMARY_VALUES, '--set', `ingress.host=${PRIMARY_HOST}`, '--set', `baseUrl=${url(PRIMARY_HOST)}`];
const mirrorArgs = (host: string, tlsSecret: string) => [
  '-f', MIRROR_VALUES,
  '--set', `mirror.upstreamUrl=${url(PRIMARY_HOST)}`,
  '--set', `ingress.host=${host}`,
  '--set', `baseUrl=${url(host)}`,
  '--set', `ingress.tlsSecretName=${tlsSecret}`,
  '--set', 'trust.caBundle.secretName=company-ca',
  // The optional ServiceMonitor, scraped below as prometheus-operator would.
  '--set', 'serviceMonitor.enabled=true',
];

describe(`the chart, run (${runtime.form}): primary, mirror farms, scaling, removal`, () => {
  let cluster: Cluster;
  let ca: DevCaFiles;
  let admin: Credentials;
  let key: SshKeyPair;
  let head = '';
  const mirrorIds: Record<string, string> = {};
  const api = (host: string, method: string, path: string, body?: unknown) => ingressApi(cluster, ca.caCert, host, method, path, body, admin);
  const hostKey = (release: string, host: string) => ({ host, publicKey: ed25519PublicKey(cluster.secret(`${release}-mirrorfarm-identity`)!.ssh_host_ed25519_key!) });

  const waitReady = (release: string, n: number, timeoutMs = 90_000) =>
    eventually(async () => {
      const pods = cluster.pods(release);
      return pods.length === n && pods.every((p) => p.ready) ? pods : undefined;
    }, `${n} ready pod(s) of ${release}`, timeoutMs, 100).then(async (pods) => {
      await cluster.sync(); // the endpoints controller has handed them to the ingress
      return pods;
    }).catch(async (err: Error) => {
      const logs = await Promise.all(cluster.pods(release).map(async (p) => `--- ${p.name} (ready ${p.ready}) ---\n${(await p.container.logs()).slice(-3000)}`));
      throw new Error(`${err.message}\n${logs.join('\n')}\n--- nginx ---\n${cluster.ingress.errorLog()}`);
    });

  /** The seed's registration on the primary: the mirror waits (not ready), the admin compares the fingerprint and authorizes it, then selects projects. */
  async function authorize(release: string, host: string): Promise<string> {
    const [pod] = cluster.pods(release) as [Pod];
    const status = await eventually(async () => {
      const s = await podGet(pod.ip, pod.ports.http!, '/status');
      return s.body?.state === 'PENDING' ? s.body : undefined;
    }, `${pod.name} to wait for authorization`, 60_000, 200);
    assert.equal(pod.ready, false, 'a mirror node is not ready before it is authorized and in sync');
    assert.equal((await ingressApi(cluster, ca.caCert, host, 'GET', '/status')).status, 503, 'the Ingress has no ready endpoint yet');
    // The fingerprint shown on the primary is the farm key's, which the node also logs at start (NOTES step 2).
    const requests = await api(PRIMARY_HOST, 'GET', '/rest/mirroring/1.0/requests');
    const request = (requests.body.values as Array<{ mirrorId: string; publicKeyFingerprint: string }>).find((r) => r.mirrorId === status.mirrorId);
    assert.ok(request, `the primary lists the request of ${release}: ${requests.text}`);
    const farmKey = ed25519PublicKey(cluster.secret(`${release}-mirrorfarm-identity`)!['mirror-key']!);
    assert.equal(request.publicKeyFingerprint, fingerprintOf(keyBlob(farmKey)));
    assert.match(await pod.container.logs(), new RegExp(`mirror identity key fingerprint ${request.publicKeyFingerprint.replace(/[+/]/g, '\\$&')}`));
    const accepted = await api(PRIMARY_HOST, 'POST', `/rest/mirroring/1.0/requests/${status.mirrorId}/accept`, { mirroringMode: 'SELECTED_PROJECTS' });
    assert.ok(accepted.status < 300, `accept: ${accepted.status} ${accepted.text}`);
    const selected = await api(PRIMARY_HOST, 'POST', `/rest/mirroring/1.0/mirrorServers/${status.mirrorId}/projects/PROJ`);
    assert.ok(selected.status < 300, `select PROJ: ${selected.status} ${selected.text}`);
    return status.mirrorId as string;
  }

  async function cloneBoth(release: string, host: string): Promise<void> {
    const dir = tempDir('mf-e2e-clone-');
    await clusterGitOk(cluster, ca.caCert, ['clone', '-q', `${url(host)}/scm/PROJ/app.git`, join(dir, 'https')], { creds: admin });
    await clusterGitOk(cluster, ca.caCert, ['clone', '-q', `ssh://git@${host}:7999/proj/app.git`, join(dir, 'ssh')], { sshKey: key, hostKey: hostKey(release, host) });
    for (const d of ['https', 'ssh']) assert.equal((await gitOk(null, ['rev-parse', 'HEAD'], { cwd: join(dir, d) })).trim(), head, `${d} clone from ${host}`);
  }

  before(async () => {
    ca = await writeDevCa({ outDir: join(tempDir('mf-e2e-ca-'), 'ca'), hosts: [PRIMARY_HOST, MIRROR_HOST, FARM2_HOST] });
    cluster = await Cluster.start(NS, runtime);
    // What exists in the namespace before the chart: the Ingress certificates (cert-manager's job) and the
    // private CA the mirrors trust.
    const tls = { 'tls.crt': readFileSync(ca.tlsCert), 'tls.key': readFileSync(ca.tlsKey) };
    for (const name of ['tls-certificate-primary', 'tls-certificate-mirror', 'tls-certificate-mirror-2']) cluster.createSecret(name, tls);
    cluster.createSecret('company-ca', { 'ca.crt': readFileSync(ca.caCert) });
    key = await sshKeyPair('admin');
    console.log(`# chart e2e: ${runtime.description}; on ${cluster.prefix}.0.0/16; nginx is the ingress controller; probe periods are ${TIME_SCALE}x shorter than rendered`);
  });

  after(async () => {
    await cluster?.stop();
    await runtime.removeAll();
    assert.deepEqual(await runtime.leftovers(), [], `no ${runtime.form === 'containers' ? 'container' : 'process'} is left`);
  });

  it('helm install the primary from examples/values-primary.yaml: ready, HTTPS through its Ingress, SSH through its Service', async () => {
    await cluster.apply('git', helmTemplate('git', NS, primaryArgs));
    await waitReady('git', 1);
    admin = { user: 'admin', secret: cluster.secret('git-mirrorfarm-admin')!.password!.toString() };
    assert.equal((await ingressApi(cluster, ca.caCert, PRIMARY_HOST, 'GET', '/status')).status, 200);
    assert.ok((await api(PRIMARY_HOST, 'POST', '/rest/api/1.0/projects', { key: 'PROJ', name: 'Project' })).status < 300);
    assert.ok((await api(PRIMARY_HOST, 'POST', '/rest/api/1.0/projects/PROJ/repos', { name: 'app' })).status < 300);
    assert.ok((await api(PRIMARY_HOST, 'POST', '/rest/ssh/1.0/keys?user=admin', { text: key.publicKey })).status < 300);
    const work = await makeWorkTree([{ 'README.md': 'one\n' }]);
    await clusterGitOk(cluster, ca.caCert, ['push', '-q', `${url(PRIMARY_HOST)}/scm/PROJ/app.git`, 'main'], { cwd: work, creds: admin });
    head = (await gitOk(null, ['rev-parse', 'HEAD'], { cwd: work })).trim();
    await cloneBoth('git', PRIMARY_HOST);
  });

  it('helm install a mirror farm from examples/values-mirror.yaml; authorize it, select PROJ, it syncs and serves clones through its Ingress', async () => {
    await cluster.apply('git-mirror', helmTemplate('git-mirror', NS, mirrorArgs(MIRROR_HOST, 'tls-certificate-mirror')));
    mirrorIds['git-mirror'] = await authorize('git-mirror', MIRROR_HOST);
    await waitReady('git-mirror', 1);
    await cloneBoth('git-mirror', MIRROR_HOST);
    // helm test git-mirror: the chart's test hook pod asks the HTTP Service for /ready from inside the cluster.
    const tests = await cluster.helmTest('git-mirror');
    assert.deepEqual(tests.map((r) => [r.pod, r.code]), [['git-mirror-mirrorfarm-test', 0]], tests.map((r) => r.logs).join('\n'));
    assert.match(tests[0]!.logs, /GET http:\/\/git-mirror-mirrorfarm:7990\/ready: 200/);
  });

  it('helm upgrade --set replicaCount=3 --reuse-values: the same identity, new pods ready only once in sync', async (t) => {
    t.diagnostic('helm upgrade needs an API server: emulated as helm template with the install values plus --set replicaCount=3, applied like an upgrade (the chart looks the identity Secret up; here the cluster keeps it)');
    const work = await makeWorkTree([{ 'README.md': 'one\n' }, { 'CHANGES.md': 'two\n' }]);
    await clusterGitOk(cluster, ca.caCert, ['push', '-q', '-f', `${url(PRIMARY_HOST)}/scm/PROJ/app.git`, 'main'], { cwd: work, creds: admin });
    head = (await gitOk(null, ['rev-parse', 'HEAD'], { cwd: work })).trim();

    const before = { ...cluster.secret('git-mirror-mirrorfarm-identity')! };
    const objects = helmTemplate('git-mirror', NS, [...mirrorArgs(MIRROR_HOST, 'tls-certificate-mirror'), '--set', 'replicaCount=3']);
    const sts = objects.find((o) => o.kind === 'StatefulSet')!;
    assert.equal(sts.spec.replicas, 3);
    const rendered = objects.find((o: K8sObject) => o.kind === 'Secret')!;
    assert.equal(rendered.metadata.name, 'git-mirror-mirrorfarm-identity', 'the upgrade renders the same identity Secret');
    const { keptSecrets } = await cluster.apply('git-mirror', objects);
    assert.deepEqual(keptSecrets, ['git-mirror-mirrorfarm-identity']);
    assert.deepEqual(cluster.secret('git-mirror-mirrorfarm-identity'), before);

    // Watch the new pods: whenever one answers /ready with 200, it is in sync.
    const fresh = cluster.pods('git-mirror').filter((p) => p.name !== 'git-mirror-mirrorfarm-0');
    assert.deepEqual(fresh.map((p) => p.name), ['git-mirror-mirrorfarm-1', 'git-mirror-mirrorfarm-2']);
    const seen = new Map<string, Set<string>>();
    let watching = true;
    const watch = Promise.all(
      fresh.map(async (p) => {
        seen.set(p.name, new Set());
        while (watching) {
          const status = await podGet(p.ip, p.ports.http!, '/status').catch(() => undefined);
          const ready = await podGet(p.ip, p.ports.http!, '/ready').catch(() => undefined);
          if (status?.body?.state) seen.get(p.name)!.add(`${status.body.state}${ready?.status === 200 ? ' ready' : ''}`);
          if (ready?.status === 200) assert.equal(status?.body?.state, 'SYNCHRONIZED', `${p.name} ready while ${status?.body?.state}`);
          await sleep(100);
        }
      }),
    );
    try {
      await waitReady('git-mirror', 3);
    } finally {
      watching = false;
      await watch;
    }
    for (const [name, states] of seen) assert.ok([...states].some((s) => !s.endsWith(' ready')), `${name} was seen not ready first: ${[...states].join(', ')}`);
    // Prometheus, by the rendered ServiceMonitor, reaches the metrics of every node of the farm.
    const scraped = await cluster.scrape('git-mirror');
    assert.deepEqual(scraped.map((s) => [s.pod, s.status]), [0, 1, 2].map((i) => [`git-mirror-mirrorfarm-${i}`, 200]));
    for (const s of scraped) assert.match(s.text, /^mirrorfarm_mirror_upstream_up 1$/m, s.pod);
    const farm = await api(PRIMARY_HOST, 'GET', `/rest/mirroring/1.0/mirrorServers/${mirrorIds['git-mirror']}`);
    assert.equal((farm.body.nodes as unknown[]).length, 3, farm.text);
    // Round-robin over three nodes: every clone sees the same commit, whichever node answers.
    for (let i = 0; i < 3; i++) await cloneBoth('git-mirror', MIRROR_HOST);
  });

  it('a second farm is another release, authorized the same way', async () => {
    await cluster.apply('git-mirror-2', helmTemplate('git-mirror-2', NS, mirrorArgs(FARM2_HOST, 'tls-certificate-mirror-2')));
    mirrorIds['git-mirror-2'] = await authorize('git-mirror-2', FARM2_HOST);
    await waitReady('git-mirror-2', 1);
    await cloneBoth('git-mirror-2', FARM2_HOST);
  });

  it('delete the first farm on the primary: its nodes are cut off; helm uninstall stops them gracefully', async () => {
    const removed = await api(PRIMARY_HOST, 'DELETE', `/rest/mirroring/1.0/mirrorServers/${mirrorIds['git-mirror']}`);
    assert.ok(removed.status < 300, `${removed.status} ${removed.text}`);
    const t1 = Date.now();
    await eventually(async () => {
      const states = await Promise.all(cluster.pods('git-mirror').map(async (p) => (await podGet(p.ip, p.ports.http!, '/status')).body?.state));
      return states.every((s) => s === 'REMOVED') && cluster.pods('git-mirror').every((p) => !p.ready);
    }, 'every node of the deleted farm to show REMOVED and leave the rotation', 30_000, 200);
    console.log(`# deleted on the primary: every node of git-mirror REMOVED and out of the rotation after ${Date.now() - t1} ms`);
    const refused = await clusterGit(cluster, ca.caCert, ['ls-remote', `${url(MIRROR_HOST)}/scm/PROJ/app.git`], { creds: admin });
    assert.notEqual(refused.code, 0, 'the deleted farm serves nothing');
    await cloneBoth('git-mirror-2', FARM2_HOST);

    const t0 = Date.now();
    const codes = await cluster.uninstall('git-mirror');
    console.log(`# helm uninstall git-mirror: its 3 pods stopped in ${Date.now() - t0} ms`);
    if (process.env.MIRRORFARM_E2E_LOGS) console.log(cluster.stopLogs.get('git-mirror-mirrorfarm-0'));
    assert.deepEqual(codes, { 'git-mirror-mirrorfarm-0': 0, 'git-mirror-mirrorfarm-1': 0, 'git-mirror-mirrorfarm-2': 0 }, cluster.stopLogs.get('git-mirror-mirrorfarm-0')?.slice(-3000));
    assert.equal(cluster.hosts()[MIRROR_HOST], undefined);
    await cloneBoth('git-mirror-2', FARM2_HOST);
    await cloneBoth('git', PRIMARY_HOST);
  });
});
