// A small stand-in for a Kubernetes cluster that runs exactly what `helm template` rendered:
//   - each pod of a StatefulSet is a podman container of the image (test/deploy/podman.ts), or where containers
//     cannot run a process of this checkout (processes.ts says what differs; pod-runtime.ts picks), with the rendered
//     image, args, env (values, fieldRef metadata.name, secretKeyRef), securityContext, and volumes: Secrets and
//     ConfigMaps written to directories and bind-mounted read-only at their mountPaths (items, defaultMode and
//     fsGroup honoured), emptyDir as tmpfs, a PVC per pod from volumeClaimTemplates kept across restarts;
//   - the pod network: every pod gets its own loopback address (127.R.1.N), which it binds like a pod IP;
//     the only env the cluster adds is that address (MIRRORFARM_HTTP_HOST, MIRRORFARM_SSH_HOST);
//   - a kubelet: startup then readiness probes (httpGet on the named port, period, timeout and
//     failureThreshold as rendered, periods divided by TIME_SCALE), and SIGTERM with the rendered grace period;
//   - endpoints: ready pods matching each Service's selector, fed to the ingress controller (ingress.ts);
//   - DNS: every Ingress host resolves (podman --add-host) to its release's public address (127.R.0.K).
// Secrets already in the "cluster" are kept when a release is rendered again: that is what the chart's
// `lookup` does on `helm upgrade`, which `helm template` cannot do.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { tempDir } from '../helpers/tmp.js';
import { IngressController, type IngressSite, type TcpService } from './ingress.js';
import { VERSION, type Container, type Mount } from './podman.js';
import type { PodRuntime } from './pod-runtime.js';

const TOOLS = process.env.MIRRORFARM_TOOLS ?? join(homedir(), '.cache', 'mirrorfarm-tools');
const HELM = join(TOOLS, 'bin', 'helm');
export const CHART = resolve(import.meta.dirname, '../../charts/mirrorfarm');
/** Probe periods run this many times faster than rendered (timeouts and thresholds as rendered). */
export const TIME_SCALE = 10;
/** The port every Ingress listens on (443 in a cluster; a port a non-root nginx may bind). */
export const INGRESS_PORT = 8443;

const scratch = tempDir('mf-helm-');
const helmEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: scratch, HELM_CACHE_HOME: join(scratch, 'cache'), HELM_CONFIG_HOME: join(scratch, 'config'), HELM_DATA_HOME: join(scratch, 'data'), KUBECONFIG: join(scratch, 'no-kubeconfig') };

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: any;
  data?: Record<string, string>;
}

export function helmTemplate(release: string, namespace: string, args: string[]): K8sObject[] {
  const r = spawnSync(HELM, ['template', release, CHART, '--namespace', namespace, ...args], { env: helmEnv, encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run ${HELM} (test/deploy/install-tools.sh installs it): ${r.error.message}`);
  assert.equal(r.status, 0, r.stderr);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject).filter(Boolean);
}

interface Probe {
  path: string;
  port: number;
  periodMs: number;
  timeoutMs: number;
  failureThreshold: number;
}

export interface Pod {
  name: string;
  release: string;
  ip: string;
  labels: Record<string, string>;
  ports: Record<string, number>;
  container: Container;
  started: boolean;
  ready: boolean;
  /** When the kubelet first saw it ready. */
  readyAt?: number;
  failures: number;
  nextProbe: number;
  startup: Probe;
  readiness: Probe;
  graceMs: number;
}

interface Release {
  name: string;
  address: string;
  objects: K8sObject[];
  pods: Map<string, Pod>;
  secrets: string[];
}

function probeOf(p: any, ports: Record<string, number>): Probe {
  const port = typeof p.httpGet.port === 'number' ? p.httpGet.port : ports[p.httpGet.port];
  assert.ok(port, `probe port ${p.httpGet.port} is not a container port`);
  return { path: p.httpGet.path, port, periodMs: ((p.periodSeconds ?? 10) * 1000) / TIME_SCALE, timeoutMs: (p.timeoutSeconds ?? 1) * 1000, failureThreshold: p.failureThreshold ?? 3 };
}

function httpOk(ip: string, probe: Probe): Promise<boolean> {
  return new Promise((done) => {
    const req = request({ host: ip, port: probe.port, path: probe.path, agent: false, timeout: probe.timeoutMs }, (res) => {
      res.resume();
      done((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 400);
    });
    req.on('error', () => done(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

function httpGet(ip: string, port: number, path: string): Promise<{ status: number; text: string }> {
  return new Promise((done, fail) => {
    const req = request({ host: ip, port, path, agent: false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => done({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', fail);
    req.on('timeout', () => req.destroy(new Error(`GET ${path} on ${ip}:${port} timed out`)));
    req.end();
  });
}

function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const srv = createServer();
    srv.once('error', () => done(false));
    srv.listen(port, host, () => srv.close(() => done(true)));
  });
}

export class Cluster {
  readonly releases = new Map<string, Release>();
  private readonly secrets = new Map<string, Record<string, Buffer>>();
  private readonly pvcs = new Map<string, string>();
  private nextAddress = 1;
  private nextPod = 1;
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> = Promise.resolve();
  private dirty = false;

  private constructor(
    readonly namespace: string,
    readonly prefix: string,
    readonly ingress: IngressController,
    readonly runtime: PodRuntime,
  ) {}

  /** A cluster on a random 127.R.0.0/16 (R picked so that nothing listens there yet). */
  static async start(namespace: string, runtime: PodRuntime): Promise<Cluster> {
    for (let attempt = 0; ; attempt++) {
      const prefix = `127.${2 + Math.floor(Math.random() * 250)}`;
      if (!(await canBind(`${prefix}.0.254`, 18080)) || !(await canBind(`${prefix}.0.1`, INGRESS_PORT))) {
        assert.ok(attempt < 20, 'no free loopback range');
        continue;
      }
      const cluster = new Cluster(namespace, prefix, new IngressController(`${prefix}.0.254`, 18080), runtime);
      await cluster.ingress.apply([], []);
      cluster.timer = setInterval(() => void cluster.kubelet(), 50);
      return cluster;
    }
  }

  /** A Secret created outside the chart (a TLS certificate, a CA bundle), as kubectl create secret would. */
  createSecret(name: string, data: Record<string, string | Buffer>): void {
    this.secrets.set(name, Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v)])));
  }

  secret(name: string): Record<string, Buffer> | undefined {
    return this.secrets.get(name);
  }

  /** Ingress hosts of every release -> its public address: what DNS says inside and outside the cluster. */
  hosts(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const r of this.releases.values()) for (const i of r.objects.filter((o) => o.kind === 'Ingress')) for (const rule of i.spec.rules) out[rule.host] = r.address;
    return out;
  }

  /**
   * helm install / upgrade of rendered objects: Secrets the release already has are kept (the chart's lookup),
   * StatefulSets are scaled to their replicas (new pods start, the highest ordinals stop). Returns the names of
   * the Secrets that were kept.
   */
  async apply(name: string, objects: K8sObject[]): Promise<{ keptSecrets: string[] }> {
    let release = this.releases.get(name);
    if (!release) {
      release = { name, address: `${this.prefix}.0.${this.nextAddress++}`, objects, pods: new Map(), secrets: [] };
      this.releases.set(name, release);
    }
    release.objects = objects;
    const keptSecrets: string[] = [];
    for (const s of objects.filter((o) => o.kind === 'Secret')) {
      if (release.secrets.includes(s.metadata.name)) {
        keptSecrets.push(s.metadata.name);
        continue;
      }
      assert.ok(!this.secrets.has(s.metadata.name), `Secret ${s.metadata.name} exists and is not this release's`);
      this.secrets.set(s.metadata.name, Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])));
      release.secrets.push(s.metadata.name);
    }
    for (const sts of objects.filter((o) => o.kind === 'StatefulSet')) {
      const wanted = new Set(Array.from({ length: sts.spec.replicas as number }, (_, i) => `${sts.metadata.name}-${i}`));
      for (const podName of [...release.pods.keys()].reverse()) if (!wanted.has(podName)) await this.deletePod(release, podName);
      for (const podName of wanted) if (!release.pods.has(podName)) release.pods.set(podName, await this.startPod(release, sts, podName));
    }
    await this.sync();
    return { keptSecrets };
  }

  /** helm uninstall: pods get SIGTERM (exit codes returned), the release's objects and Secrets go; PVCs stay. */
  async uninstall(name: string): Promise<Record<string, number>> {
    const release = this.releases.get(name);
    assert.ok(release, `no release ${name}`);
    // All pods at once, as the StatefulSet controller deletes them on uninstall.
    const names = [...release.pods.keys()];
    const exits = await Promise.all(names.map((podName) => this.deletePod(release, podName)));
    const codes: Record<string, number> = Object.fromEntries(names.map((n, i) => [n, exits[i]!]));
    for (const s of release.secrets) this.secrets.delete(s);
    this.releases.delete(name);
    await this.sync();
    return codes;
  }

  /**
   * helm test: runs the release's test hook pods to completion and returns their exit codes and logs. A Service
   * name resolves to one of its ready endpoints (the pod's port equals the Service's here).
   */
  async helmTest(name: string): Promise<Array<{ pod: string; code: number; logs: string }>> {
    const release = this.releases.get(name);
    assert.ok(release, `no release ${name}`);
    const hosts = this.hosts();
    for (const svc of release.objects.filter((o) => o.kind === 'Service' && o.spec.clusterIP !== 'None')) {
      const endpoint = this.endpoints(svc, svc.spec.ports[0].name)[0];
      if (endpoint) for (const n of [svc.metadata.name, `${svc.metadata.name}.${this.namespace}`, `${svc.metadata.name}.${this.namespace}.svc`, `${svc.metadata.name}.${this.namespace}.svc.cluster.local`]) hosts[n] = endpoint.split(':')[0]!;
    }
    const results = [];
    for (const pod of release.objects.filter((o) => o.kind === 'Pod' && o.metadata.annotations?.['helm.sh/hook'] === 'test')) {
      const c = pod.spec.containers[0];
      assert.equal(c.image, `mirrorfarm:${VERSION}`);
      const security = pod.spec.securityContext ?? {};
      const container = await this.runtime.run({
        name: `${this.prefix.replace('.', '-')}-${pod.metadata.name}`,
        env: Object.fromEntries((c.env ?? []).map((e: { name: string; value: string }) => [e.name, String(e.value)])),
        command: c.command,
        args: c.args ?? [],
        readOnlyRoot: c.securityContext?.readOnlyRootFilesystem === true,
        user: { uid: security.runAsUser ?? 0, gid: security.runAsGroup ?? 0 },
        hosts,
      });
      const code = await container.wait(60_000);
      results.push({ pod: pod.metadata.name, code, logs: await container.logs() });
      await container.remove();
    }
    return results;
  }

  /**
   * One round of what Prometheus does with the release's ServiceMonitors: every endpoint of the Services they
   * select, ready or not (Prometheus' endpoints discovery keeps not-ready addresses), on the named port with
   * the rendered path. Only the http scheme is emulated.
   */
  async scrape(name: string): Promise<Array<{ pod: string; status: number; text: string }>> {
    const release = this.releases.get(name);
    assert.ok(release, `no release ${name}`);
    const results = [];
    for (const sm of release.objects.filter((o) => o.kind === 'ServiceMonitor')) {
      const match: Record<string, string> = sm.spec.selector.matchLabels;
      const services = release.objects.filter((o) => o.kind === 'Service' && Object.entries(match).every(([k, v]) => o.metadata.labels?.[k] === v));
      for (const svc of services) {
        for (const ep of sm.spec.endpoints) {
          assert.equal(ep.scheme, 'http', `ServiceMonitor ${sm.metadata.name}: scheme ${ep.scheme} is not emulated`);
          const port = svc.spec.ports.find((p: { name: string }) => p.name === ep.port);
          assert.ok(port, `ServiceMonitor ${sm.metadata.name}: Service ${svc.metadata.name} has no port ${ep.port}`);
          for (const pod of release.pods.values()) {
            if (!Object.entries(svc.spec.selector as Record<string, string>).every(([k, v]) => pod.labels[k] === v)) continue;
            const target = typeof port.targetPort === 'number' ? port.targetPort : pod.ports[port.targetPort];
            results.push({ pod: pod.name, ...(await httpGet(pod.ip, target, ep.path)) });
          }
        }
      }
    }
    return results;
  }

  pods(release: string): Pod[] {
    return [...(this.releases.get(release)?.pods.values() ?? [])];
  }

  address(release: string): string {
    const r = this.releases.get(release);
    assert.ok(r, `no release ${release}`);
    return r.address;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.syncing;
    for (const r of this.releases.values()) await Promise.all([...r.pods.values()].map((p) => p.container.remove()));
    this.releases.clear();
    await this.ingress.stop();
  }

  private async startPod(release: Release, sts: K8sObject, name: string): Promise<Pod> {
    const template = sts.spec.template;
    const spec = template.spec;
    assert.equal(spec.containers.length, 1, 'one container per pod');
    const c = spec.containers[0];
    assert.equal(c.image, `mirrorfarm:${VERSION}`, 'the chart runs the image this suite built');
    const ip = `${this.prefix}.1.${this.nextPod++}`;
    const ports: Record<string, number> = Object.fromEntries((c.ports ?? []).map((p: { name: string; containerPort: number }) => [p.name, p.containerPort]));

    const env: Record<string, string> = {};
    for (const e of c.env ?? []) {
      if (e.value !== undefined) env[e.name] = String(e.value);
      else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[e.name] = name;
      else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') env[e.name] = this.namespace;
      else if (e.valueFrom?.secretKeyRef) {
        const value = this.secrets.get(e.valueFrom.secretKeyRef.name)?.[e.valueFrom.secretKeyRef.key];
        assert.ok(value, `CreateContainerConfigError: Secret ${e.valueFrom.secretKeyRef.name} key ${e.valueFrom.secretKeyRef.key} not found`);
        env[e.name] = value.toString('utf8');
      } else assert.fail(`env ${e.name}: ${JSON.stringify(e.valueFrom)} is not emulated`);
    }
    // The pod's own network namespace: it listens on its pod IP.
    for (const k of ['MIRRORFARM_HTTP_HOST', 'MIRRORFARM_SSH_HOST']) {
      assert.equal(env[k], undefined, `${k} is rendered; the emulated pod network would override it`);
      env[k] = ip;
    }

    const security = spec.securityContext ?? {};
    const fsGroup: number | undefined = security.fsGroup;
    const volumes = new Map<string, { dir?: string; tmpfs?: boolean }>();
    for (const v of spec.volumes ?? []) {
      if (v.emptyDir) volumes.set(v.name, { tmpfs: true });
      else if (v.secret || v.configMap) {
        const sourceName: string = v.secret ? v.secret.secretName : v.configMap.name;
        const data = this.secrets.get(sourceName);
        assert.ok(data, `volume ${v.name}: ${v.secret ? 'Secret' : 'ConfigMap'} ${sourceName} not found`);
        const items: Array<{ key: string; path: string }> = (v.secret ?? v.configMap).items ?? Object.keys(data).map((k) => ({ key: k, path: k }));
        const files = Object.fromEntries(items.map((i) => [i.path, data[i.key] ?? assert.fail(`${sourceName} has no key ${i.key}`)]));
        volumes.set(v.name, { dir: this.runtime.volumeDir(files, fsGroup ?? 0, (v.secret ?? v.configMap).defaultMode ?? 0o644) });
      } else assert.fail(`volume ${v.name} is not emulated`);
    }
    for (const claim of sts.spec.volumeClaimTemplates ?? []) {
      const pvc = `${claim.metadata.name}-${name}`;
      if (!this.pvcs.has(pvc)) this.pvcs.set(pvc, this.runtime.homeDir(security.runAsUser ?? 0, fsGroup ?? 0));
      volumes.set(claim.metadata.name, { dir: this.pvcs.get(pvc)! });
    }
    const mounts: Mount[] = [];
    const tmpfs: string[] = [];
    for (const m of c.volumeMounts ?? []) {
      const v = volumes.get(m.name);
      assert.ok(v, `volumeMount ${m.name} has no volume`);
      if (v.tmpfs) tmpfs.push(m.mountPath);
      else mounts.push({ source: v.dir!, target: m.mountPath, readOnly: m.readOnly === true });
    }
    assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], 'the container runs without capabilities');
    assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
    if (c.command) assert.fail('command is not emulated (the image entrypoint runs)');

    const container = await this.runtime.run({
      name: `${this.prefix.replace('.', '-')}-${name}`,
      env,
      args: c.args ?? [],
      mounts,
      tmpfs,
      readOnlyRoot: c.securityContext?.readOnlyRootFilesystem === true,
      user: { uid: security.runAsUser ?? 0, gid: security.runAsGroup ?? 0, ...(fsGroup !== undefined ? { fsGroup } : {}) },
      hosts: this.hosts(),
    });
    return {
      name,
      release: release.name,
      ip,
      labels: template.metadata.labels ?? {},
      ports,
      container,
      started: false,
      ready: false,
      failures: 0,
      nextProbe: Date.now(),
      startup: probeOf(c.startupProbe, ports),
      readiness: probeOf(c.readinessProbe, ports),
      graceMs: (spec.terminationGracePeriodSeconds ?? 30) * 1000,
    };
  }

  private async deletePod(release: Release, name: string): Promise<number> {
    const pod = release.pods.get(name)!;
    release.pods.delete(name);
    await this.sync();
    await pod.container.kill('TERM');
    const code = await pod.container.wait(pod.graceMs);
    this.stopLogs.set(name, await pod.container.logs());
    await pod.container.remove();
    return code;
  }

  private probing = false;
  /** The last log of each deleted pod (kubectl logs --previous). */
  readonly stopLogs = new Map<string, string>();

  /** One pass of the kubelet: every pod whose probe is due is probed; readiness changes update endpoints. */
  private async kubelet(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      const due = [...this.releases.values()].flatMap((r) => [...r.pods.values()]).filter((p) => p.nextProbe <= Date.now());
      await Promise.all(
        due.map(async (pod) => {
          const probe = pod.started ? pod.readiness : pod.startup;
          const ok = await httpOk(pod.ip, probe);
          pod.nextProbe = Date.now() + probe.periodMs;
          if (!pod.started) {
            if (ok) pod.started = true;
            else return;
          }
          if (ok) {
            pod.failures = 0;
            if (!pod.ready) {
              pod.ready = true;
              pod.readyAt = Date.now();
              this.dirty = true;
            }
          } else if (++pod.failures >= probe.failureThreshold && pod.ready) {
            pod.ready = false;
            this.dirty = true;
          }
        }),
      );
      if (this.dirty) {
        this.dirty = false;
        await this.sync();
      }
    } finally {
      this.probing = false;
    }
  }

  private endpoints(service: K8sObject, portName: string): string[] {
    const selector: Record<string, string> = service.spec.selector ?? {};
    const port = service.spec.ports.find((p: { name: string }) => p.name === portName);
    assert.ok(port, `Service ${service.metadata.name} has no port ${portName}`);
    const pods = [...this.releases.values()].flatMap((r) => [...r.pods.values()]);
    return pods
      .filter((p) => (p.ready || service.spec.publishNotReadyAddresses) && Object.entries(selector).every(([k, v]) => p.labels[k] === v))
      .map((p) => `${p.ip}:${typeof port.targetPort === 'number' ? port.targetPort : p.ports[port.targetPort]}`)
      .sort();
  }

  /** Endpoints -> the ingress controller, one change at a time. */
  sync(): Promise<void> {
    this.syncing = this.syncing.catch(() => {}).then(async () => {
      const sites: IngressSite[] = [];
      const tcp: TcpService[] = [];
      for (const r of this.releases.values()) {
        const services = r.objects.filter((o) => o.kind === 'Service');
        for (const ing of r.objects.filter((o) => o.kind === 'Ingress')) {
          const tls = ing.spec.tls?.[0];
          assert.ok(tls, `Ingress ${ing.metadata.name} has no TLS`);
          const cert = this.secrets.get(tls.secretName);
          assert.ok(cert?.['tls.crt'] && cert['tls.key'], `Ingress ${ing.metadata.name}: TLS Secret ${tls.secretName} not found`);
          const dir = join(tempDir('mf-tls-'), 'tls');
          mkdirSync(dir);
          writeFileSync(join(dir, 'tls.crt'), cert['tls.crt']);
          writeFileSync(join(dir, 'tls.key'), cert['tls.key'], { mode: 0o600 });
          for (const rule of ing.spec.rules) {
            for (const p of rule.http.paths) {
              const backend = services.find((s) => s.metadata.name === p.backend.service.name);
              assert.ok(backend, `Ingress backend Service ${p.backend.service.name} not rendered`);
              sites.push({ name: ing.metadata.name, host: rule.host, address: r.address, port: INGRESS_PORT, tlsCert: join(dir, 'tls.crt'), tlsKey: join(dir, 'tls.key'), path: p.path, annotations: ing.metadata.annotations ?? {}, endpoints: this.endpoints(backend, p.backend.service.port.name) });
            }
          }
        }
        for (const s of services.filter((x) => x.spec.clusterIP !== 'None' && x.spec.ports.some((p: { name: string }) => p.name === 'ssh'))) {
          const port = s.spec.ports.find((p: { name: string }) => p.name === 'ssh');
          tcp.push({ name: s.metadata.name, address: r.address, port: port.port, endpoints: this.endpoints(s, 'ssh') });
        }
      }
      await this.ingress.apply(sites, tcp);
    });
    return this.syncing;
  }
}
