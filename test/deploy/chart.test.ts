// The Helm chart charts/mirrorfarm, checked with a real helm (test/deploy/install-tools.sh installs it):
// lint, render each example, refuse misspelt keys and wrong types with the key named, validate every rendered
// object against the Kubernetes API schemas of pinned Kubernetes versions (kubernetes-validate's bundled
// strict schemas: unknown fields are errors), and check what the farm relies on in the rendered objects.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { loadMirrorKey } from '../../src/auth/mirror-token.js';
import { loadSharedHostKeys } from '../../src/transport/ssh/host-keys.js';
import { tempDir } from '../helpers/tmp.js';

const TOOLS = process.env.MIRRORFARM_TOOLS ?? join(homedir(), '.cache', 'mirrorfarm-tools');
const HELM = join(TOOLS, 'bin', 'helm');
const KUBERNETES_VALIDATE = join(TOOLS, 'kubernetes-validate-1.37.0');
/** The oldest Kubernetes the chart supports and the newest the schemas cover. */
const KUBERNETES_VERSIONS = ['1.30.0', '1.37.0'];
const CHART = resolve(import.meta.dirname, '../../charts/mirrorfarm');
const MIRROR = join(CHART, 'examples/values-mirror.yaml');
const PRIMARY = join(CHART, 'examples/values-primary.yaml');

// helm gets an environment of its own: no kubeconfig or cache of the machine.
const scratch = tempDir('mf-helm-');
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: scratch, HELM_CACHE_HOME: join(scratch, 'cache'), HELM_CONFIG_HOME: join(scratch, 'config'), HELM_DATA_HOME: join(scratch, 'data'), KUBECONFIG: join(scratch, 'no-kubeconfig') };

function helm(...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(HELM, args, { env, encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run ${HELM} (run test/deploy/install-tools.sh first): ${r.error.message}`);
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: any;
  data?: Record<string, string>;
}

function render(release: string, ...args: string[]): K8sObject[] {
  const r = helm('template', release, CHART, '--namespace', 'git', ...args);
  assert.equal(r.status, 0, r.stderr);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject).filter(Boolean);
}

const find = (objects: K8sObject[], kind: string, name?: string) => {
  const found = objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  assert.ok(found, `no ${kind} ${name ?? ''} rendered`);
  return found;
};

function validate(objects: K8sObject[], label: string): void {
  const dir = tempDir('mf-k8s-');
  const file = join(dir, `${label}.yaml`);
  writeFileSync(file, objects.map((o) => JSON.stringify(o)).join('\n---\n'));
  for (const version of KUBERNETES_VERSIONS) {
    const r = spawnSync('python3', ['-m', 'kubernetes_validate', '--strict', '--no-warn', '-k', version, file], {
      env: { PATH: env.PATH, PYTHONPATH: KUBERNETES_VALIDATE, HOME: scratch },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, `${label} against Kubernetes ${version}:\n${r.stdout}${r.stderr}`);
    assert.equal((r.stdout.match(/ passed for resource /g) ?? []).length, objects.length, r.stdout);
  }
}

const envOf = (sts: K8sObject) => Object.fromEntries((sts.spec.template.spec.containers[0].env as Array<{ name: string; value?: string; valueFrom?: unknown }>).map((e) => [e.name, e.value ?? e.valueFrom]));

describe('helm chart charts/mirrorfarm', () => {
  it('passes helm lint --strict with the defaults and each example', () => {
    for (const values of [[], ['-f', PRIMARY], ['-f', MIRROR], ['-f', MIRROR, '--set', 'serviceMonitor.enabled=true']]) {
      const r = helm('lint', '--strict', CHART, ...values);
      assert.equal(r.status, 0, r.stdout + r.stderr);
    }
  });

  it('renders each example, and every object validates against the pinned Kubernetes API schemas', () => {
    validate(render('primary', '-f', PRIMARY), 'primary');
    validate(render('mirror', '-f', MIRROR), 'mirror');
    validate(render('farm', '-f', MIRROR, '--set', 'replicaCount=3', '--set', 'trust.caBundle.configMapName=company-ca', '--set', 'ssh.service.type=LoadBalancer'), 'farm');
    validate(render('defaults'), 'defaults');
  });

  it("the seed's mirror values render a farm: Parallel StatefulSet, node id from the pod name, a PVC per pod, probes on /ready and /status", () => {
    const objects = render('bitbucket-mirror', '-f', MIRROR);
    const sts = find(objects, 'StatefulSet');
    assert.equal(sts.spec.podManagementPolicy, 'Parallel');
    assert.equal(sts.spec.replicas, 1);
    assert.equal(sts.spec.volumeClaimTemplates[0].metadata.name, 'home');
    const pod = sts.spec.template.spec;
    const c = pod.containers[0];
    const e = envOf(sts);
    assert.equal(e.MIRRORFARM_MODE, 'mirror');
    assert.equal(e.MIRRORFARM_MIRROR_UPSTREAM_URL, 'https://git.example.com');
    assert.equal(e.MIRRORFARM_BASE_URL, 'https://git-mirror.example.com');
    assert.equal(e.MIRRORFARM_SSH_PUBLIC_HOST, 'git-mirror.example.com');
    assert.deepEqual(e.MIRRORFARM_MIRROR_NODE_ID, { fieldRef: { fieldPath: 'metadata.name' } });
    assert.equal(e.MIRRORFARM_HOME, '/var/lib/mirrorfarm');
    assert.equal(c.readinessProbe.httpGet.path, '/ready');
    assert.equal(c.livenessProbe.httpGet.path, '/status');
    assert.equal(c.startupProbe.httpGet.path, '/ready');
    assert.ok(c.startupProbe.periodSeconds * c.startupProbe.failureThreshold >= 3600, 'a first sync may take an hour');
    assert.ok(pod.terminationGracePeriodSeconds >= 300);
    assert.equal(Number(e.MIRRORFARM_SHUTDOWN_TIMEOUT_SECONDS), pod.terminationGracePeriodSeconds - 5);
    assert.equal(pod.securityContext.runAsUser, 10001);
    assert.equal(c.image, 'mirrorfarm:0.1.0');
    find(objects, 'PodDisruptionBudget');
    assert.equal(find(objects, 'Service', 'bitbucket-mirror-mirrorfarm-headless').spec.clusterIP, 'None');
    for (const name of ['bitbucket-mirror-mirrorfarm', 'bitbucket-mirror-mirrorfarm-ssh']) assert.equal(find(objects, 'Service', name).spec.sessionAffinity, 'None');
    assert.equal(find(objects, 'Service', 'bitbucket-mirror-mirrorfarm-ssh').spec.ports[0].port, 7999);
    const ingress = find(objects, 'Ingress');
    assert.equal(ingress.spec.tls[0].secretName, 'tls-certificate-mirror');
    assert.deepEqual(ingress.spec.tls[0].hosts, ['git-mirror.example.com']);
    const a = ingress.metadata.annotations!;
    assert.equal(a['cert-manager.io/cluster-issuer'], 'letsencrypt-prod');
    assert.equal(a['nginx.ingress.kubernetes.io/proxy-body-size'], '0');
    assert.equal(a['nginx.ingress.kubernetes.io/proxy-request-buffering'], 'off');
    assert.equal(a['nginx.ingress.kubernetes.io/proxy-buffering'], 'off');
    assert.equal(a['nginx.ingress.kubernetes.io/proxy-read-timeout'], '3600');
    assert.equal(a['nginx.ingress.kubernetes.io/affinity'], '');
  });

  it('the generated identity is one Secret whose keys the mirror and the SSH server read; nothing secret elsewhere', async () => {
    const objects = render('m', '-f', MIRROR, '--set', 'replicaCount=3');
    const secrets = objects.filter((o) => o.kind === 'Secret');
    assert.deepEqual(secrets.map((s) => s.metadata.name), ['m-mirrorfarm-identity']);
    const data = secrets[0]!.data!;
    const dir = tempDir('mf-keys-');
    for (const [k, v] of Object.entries(data)) writeFileSync(join(dir, k), Buffer.from(v, 'base64'), { mode: 0o600 });
    assert.match(loadMirrorKey(Buffer.from(data['mirror-key']!, 'base64').toString()).publicKey, /^ssh-ed25519 /);
    assert.deepEqual((await loadSharedHostKeys(dir)).map((k) => k.type), ['ssh-ed25519', 'ecdsa-sha2-nistp256']);
    const outsideSecrets = JSON.stringify(objects.filter((o) => o.kind !== 'Secret'));
    assert.doesNotMatch(outsideSecrets, /PRIVATE KEY/);
    for (const v of Object.values(data)) assert.ok(!outsideSecrets.includes(v));
    assert.equal(objects.filter((o) => o.kind === 'ConfigMap').length, 0);

    const primary = render('p', '-f', PRIMARY);
    const admin = find(primary, 'Secret', 'p-mirrorfarm-admin');
    const password = Buffer.from(admin.data!.password!, 'base64').toString();
    assert.equal(password.length, 24);
    assert.deepEqual(envOf(find(primary, 'StatefulSet')).MIRRORFARM_ADMIN_PASSWORD, { secretKeyRef: { name: 'p-mirrorfarm-admin', key: 'password' } });
    assert.ok(!JSON.stringify(primary.filter((o) => o.kind !== 'Secret')).includes(password));
  });

  it('existing Secrets named in values are used and none is generated', () => {
    const objects = render('m', '-f', MIRROR, '--set', 'identity.existingSecret=farm-identity', '--set', 'trust.caBundle.secretName=company-ca');
    assert.equal(objects.filter((o) => o.kind === 'Secret').length, 0);
    const pod = find(objects, 'StatefulSet').spec.template.spec;
    assert.ok(pod.volumes.every((v: { secret?: { secretName: string } }) => !v.secret || ['farm-identity', 'company-ca'].includes(v.secret.secretName)));
    assert.equal(envOf(find(objects, 'StatefulSet')).MIRRORFARM_TRUST_CA_FILE, '/etc/mirrorfarm/trust/ca.crt');
  });

  it('scaling to 3 renders 3 replicas with the same identity Secret object', () => {
    const one = render('m', '-f', MIRROR);
    const three = render('m', '-f', MIRROR, '--set', 'replicaCount=3');
    assert.equal(find(three, 'StatefulSet').spec.replicas, 3);
    const names = (o: K8sObject[]) => o.map((x) => `${x.kind}/${x.metadata.name}`).sort();
    assert.deepEqual(names(three), names(one));
    assert.deepEqual(Object.keys(find(three, 'Secret').data!).sort(), ['mirror-key', 'ssh_host_ecdsa_key', 'ssh_host_ed25519_key']);
  });

  it('renders no ServiceMonitor by default; serviceMonitor.enabled renders one that scrapes /metrics of every pod over the HTTP port', () => {
    for (const objects of [render('d'), render('p', '-f', PRIMARY), render('m', '-f', MIRROR)]) {
      assert.deepEqual(objects.filter((o) => o.kind === 'ServiceMonitor'), []);
      assert.equal(find(objects, 'StatefulSet').spec.template.metadata.annotations['prometheus.io/scrape'], 'true');
    }
    const objects = render('m', '-f', MIRROR, '--set', 'replicaCount=3', '--set', 'serviceMonitor.enabled=true', '--set', 'serviceMonitor.interval=15s', '--set', 'serviceMonitor.scrapeTimeout=5s', '--set', 'serviceMonitor.labels.release=kube-prometheus-stack');
    // The Kubernetes schemas do not know prometheus-operator's CRD: everything else is validated as before, the
    // ServiceMonitor's shape here, field by field (no field beyond these, as the other objects are held to).
    validate(objects.filter((o) => o.kind !== 'ServiceMonitor'), 'service-monitor');
    const monitors = objects.filter((o) => o.kind === 'ServiceMonitor');
    assert.equal(monitors.length, 1);
    const sm = monitors[0]!;
    assert.equal(sm.apiVersion, 'monitoring.coreos.com/v1');
    assert.deepEqual(Object.keys(sm).sort(), ['apiVersion', 'kind', 'metadata', 'spec']);
    assert.deepEqual(Object.keys(sm.metadata).sort(), ['labels', 'name']);
    assert.equal(sm.metadata.name, 'm-mirrorfarm');
    const labels = sm.metadata.labels!;
    assert.equal(labels.release, 'kube-prometheus-stack');
    assert.equal(labels['app.kubernetes.io/instance'], 'm');
    assert.deepEqual(Object.keys(sm.spec).sort(), ['endpoints', 'selector']);
    assert.deepEqual(Object.keys(sm.spec.selector), ['matchLabels']);
    assert.deepEqual(sm.spec.endpoints, [{ port: 'http', path: '/metrics', scheme: 'http', interval: '15s', scrapeTimeout: '5s' }]);
    // It selects exactly the headless Service, which lists every pod, ready or not (an out-of-sync node's
    // metrics are the ones that matter), and whose port named http is the container port /metrics is on.
    const selected = objects.filter((o) => o.kind === 'Service' && Object.entries(sm.spec.selector.matchLabels as Record<string, string>).every(([k, v]) => o.metadata.labels?.[k] === v));
    assert.deepEqual(selected.map((o) => o.metadata.name), ['m-mirrorfarm-headless']);
    assert.equal(selected[0]!.spec.publishNotReadyAddresses, true);
    const port = (selected[0]!.spec.ports as Array<{ name: string; targetPort: string }>).find((p) => p.name === 'http');
    const sts = find(objects, 'StatefulSet');
    const c = sts.spec.template.spec.containers[0];
    assert.equal((c.ports as Array<{ name: string; containerPort: number }>).find((p) => p.name === port!.targetPort)?.containerPort, 7990);
    // Plain HTTP, because that is what the port serves: TLS ends at the Ingress, the pod has no certificate.
    assert.equal(envOf(sts).MIRRORFARM_HTTP_TLS_CERT, undefined);
    // No second scrape of the same pods through annotation-based discovery.
    assert.equal(sts.spec.template.metadata.annotations?.['prometheus.io/scrape'], undefined);
  });

  it('refuses a misspelt key, a misplaced (Bitbucket-style) key and a wrong type, naming the key', () => {
    const dir = tempDir('mf-values-');
    const cases: Array<[string, string, RegExp]> = [
      ['mdoe: mirror\n', 'top-level typo', /mdoe/],
      ['ingress:\n  tlsSecretNmae: x\n', 'nested typo', /tlsSecretNmae/],
      ['bitbucket:\n  mode: mirror\n', "Bitbucket's nesting", /bitbucket/],
      ['replicaCount: three\n', 'wrong type', /replicaCount/],
      ['mode: mirorr\n', 'wrong enum', /mode/],
      ['serviceMonitor:\n  intervall: 30s\n', 'ServiceMonitor typo', /intervall/],
      ['serviceMonitor:\n  interval: 30\n', 'duration without unit', /serviceMonitor\/interval/],
      ['serviceMonitor:\n  scrapeTimeout: 10 seconds\n', 'not a Prometheus duration', /serviceMonitor\/scrapeTimeout/],
      ['serviceMonitor:\n  labels:\n    release: 1\n', 'label not a string', /serviceMonitor\/labels\/release/],
    ];
    for (const [text, label, pattern] of cases) {
      const file = join(dir, `${label.replace(/\W+/g, '-')}.yaml`);
      writeFileSync(file, text);
      const r = helm('template', 'x', CHART, '-f', file);
      assert.notEqual(r.status, 0, label);
      assert.match(r.stderr, /values don't meet the specifications of the schema/, label);
      assert.match(r.stderr, pattern, `${label}: ${r.stderr}`);
    }
  });

  it('refuses combinations that cannot work, naming the value to set', () => {
    const cases: Array<[string[], RegExp]> = [
      [['--set', 'mode=mirror'], /mirror[./]upstreamUrl/],
      [['--set', 'mode=mirror', '--set', 'mirror.upstreamUrl=https://git.example.com'], /ingress\.host .* or baseUrl/],
      [['-f', MIRROR, '--set', 'clustering.enabled=false', '--set', 'replicaCount=2'], /clustering\.enabled: true/],
      [['--set', 'replicaCount=2'], /a primary runs one node/],
      [['-f', MIRROR, '--set', 'mirror.upstreamUrl=http://git.example.com'], /upstreamUrl/],
    ];
    for (const [args, pattern] of cases) {
      const r = helm('template', 'x', CHART, ...args);
      assert.notEqual(r.status, 0, args.join(' '));
      assert.match(r.stderr, pattern);
    }
  });
});
