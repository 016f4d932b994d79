// Runs containers of the mirrorfarm image (built by test/deploy/build-image.sh) with podman, the way a kubelet
// would run a pod: Debian's runc as the runtime and test/deploy/containers.conf (no default ulimits, cgroupfs),
// host networking on loopback addresses, environment from an owner-only env file (secrets never reach argv),
// Secret and ConfigMap volumes as read-only bind mounts owned by root with the pod's fsGroup, an emptyDir as
// a tmpfs. Every container a test starts is removed when the test file ends (and by an exit hook as a last
// resort), so `podman ps -a` is empty afterwards.
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { run, type RunResult } from '../helpers/run.js';
import { tempDir } from '../helpers/tmp.js';

const ROOT = resolve(import.meta.dirname, '../..');
export const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** The chart's default image, mirrorfarm:<appVersion>, as build-image.sh tags it in local storage. */
export const IMAGE = process.env.MIRRORFARM_IMAGE ?? `localhost/mirrorfarm:${VERSION}`;
export const CONTAINERS_CONF = join(import.meta.dirname, 'containers.conf');
const RUNC = '/usr/sbin/runc';
/** CI sets this: a machine that cannot run the containers fails instead of falling back. */
export const CONTAINERS_REQUIRED = process.env.MIRRORFARM_REQUIRE_CONTAINERS === '1';

const podmanEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', CONTAINERS_CONF, HOME: process.env.HOME ?? '/root', LC_ALL: 'C' };
const BASE = ['--runtime', RUNC];

export function podman(args: string[], options: { timeoutMs?: number } = {}): Promise<RunResult> {
  return run('podman', [...BASE, ...args], { env: podmanEnv, timeoutMs: options.timeoutMs ?? 60_000 });
}

export async function podmanOk(args: string[], options: { timeoutMs?: number } = {}): Promise<string> {
  const r = await podman(args, options);
  if (r.code !== 0) throw new Error(`podman ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Why containers of the image cannot run here, or undefined when they can (a quick, synchronous look). */
export function whyNoContainers(): string | undefined {
  if (process.getuid?.() !== 0) return 'containers need root here (rootful podman: volumes are chowned to the pod user, host networking on loopback)';
  for (const bin of ['/usr/bin/podman', RUNC]) if (!existsSync(bin)) return `${bin} is missing (apt-get install podman runc)`;
  const r = spawnSync('podman', [...BASE, 'image', 'exists', IMAGE], { env: podmanEnv, encoding: 'utf8' });
  if (r.error) return `podman does not run: ${r.error.message}`;
  if (r.status !== 0) return `image ${IMAGE} is not in local storage (bash test/deploy/build-image.sh builds it)`;
  return undefined;
}

export interface Mount {
  source: string;
  target: string;
  readOnly?: boolean;
}

export interface ContainerSpec {
  /** Distinct per test run; prefixed with mf-test-. */
  name: string;
  env: Record<string, string>;
  /** Arguments after the image (the pod's `args`; the image's entrypoint stays). */
  args?: string[];
  mounts?: Mount[];
  /** emptyDir volumes. */
  tmpfs?: string[];
  readOnlyRoot?: boolean;
  /** runAsUser:runAsGroup, and the fsGroup as a supplementary group. */
  user?: { uid: number; gid: number; fsGroup?: number };
  /** /etc/hosts entries inside the container (in-cluster DNS names). */
  hosts?: Record<string, string>;
  entrypoint?: string;
}

export interface Container {
  name: string;
  logs(): Promise<string>;
  exec(command: string[]): Promise<RunResult>;
  /** Sends a signal to PID 1 (tini), as the kubelet does on pod deletion. */
  kill(signal: string): Promise<void>;
  /** Waits for the container to exit and returns its exit code. */
  wait(timeoutMs?: number): Promise<number>;
  running(): Promise<boolean>;
  remove(): Promise<void>;
}

const started = new Set<string>();

// A last resort when a test file dies before its teardown: nothing of ours may outlive it.
process.once('exit', () => {
  if (started.size) spawnSync('podman', [...BASE, 'rm', '-f', '-t', '0', ...started], { env: podmanEnv, stdio: 'ignore' });
});

/** A directory of files as a Secret or ConfigMap volume shows them: root-owned, group fsGroup, mode 0440. */
export function volumeDir(files: Record<string, string | Buffer>, fsGroup = 10001, mode = 0o440): string {
  const dir = tempDir('mf-volume-');
  chmodSync(dir, 0o755);
  for (const [name, content] of Object.entries(files)) {
    const file = join(dir, name);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content);
    chownSync(file, 0, fsGroup);
    chmodSync(file, mode);
  }
  return dir;
}

/** A persistent volume for HOME: an empty directory owned by the pod's user (fsGroup semantics). */
export function homeDir(uid = 10001, gid = 10001): string {
  const dir = join(tempDir('mf-pvc-'), 'home');
  mkdirSync(dir, { mode: 0o2770 });
  chownSync(dir, uid, gid);
  chmodSync(dir, 0o2770);
  return dir;
}

export async function runContainer(spec: ContainerSpec): Promise<Container> {
  const name = `mf-test-${spec.name}`;
  const envFile = join(tempDir('mf-env-'), 'env');
  writeFileSync(envFile, Object.entries(spec.env).map(([k, v]) => `${k}=${v}\n`).join(''), { mode: 0o600 });
  const args = ['run', '-d', '--name', name, '--network', 'host', '--env-file', envFile, '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges', '--stop-timeout', '30'];
  if (spec.user) args.push('--user', `${spec.user.uid}:${spec.user.gid}`, ...(spec.user.fsGroup !== undefined ? ['--group-add', String(spec.user.fsGroup)] : []));
  if (spec.readOnlyRoot) args.push('--read-only', '--read-only-tmpfs=false');
  for (const m of spec.mounts ?? []) args.push('--volume', `${m.source}:${m.target}:${m.readOnly ? 'ro' : 'rw'}`);
  for (const t of spec.tmpfs ?? []) args.push('--tmpfs', `${t}:rw,nosuid,nodev,mode=1777`);
  for (const [host, ip] of Object.entries(spec.hosts ?? {})) args.push('--add-host', `${host}:${ip}`);
  if (spec.entrypoint) args.push('--entrypoint', spec.entrypoint);
  args.push(IMAGE, ...(spec.args ?? []));
  started.add(name);
  await podmanOk(args);
  const container: Container = {
    name,
    logs: async () => {
      const r = await podman(['logs', name]);
      return r.stdout + r.stderr;
    },
    exec: (command) => podman(['exec', name, ...command]),
    kill: async (signal) => {
      await podmanOk(['kill', '--signal', signal, name]);
    },
    wait: async (timeoutMs = 60_000) => Number((await podmanOk(['wait', name], { timeoutMs })).trim()),
    running: async () => (await podman(['inspect', '--format', '{{.State.Running}}', name])).stdout.trim() === 'true',
    remove: async () => {
      await podman(['rm', '-f', '-t', '0', name]);
      started.delete(name);
    },
  };
  return container;
}

export async function removeAllContainers(): Promise<void> {
  if (started.size) await podman(['rm', '-f', '-t', '0', ...started]);
  started.clear();
}

/** The names of this test run's containers that podman still knows (to assert nothing is left). */
export async function leftoverContainers(prefix: string): Promise<string[]> {
  const out = await podmanOk(['ps', '-a', '--format', '{{.Names}}']);
  return out.split('\n').filter((n) => n.startsWith(`mf-test-${prefix}`));
}

/** Polls until `check` holds. */
export async function until(check: () => Promise<boolean>, what: string, timeoutMs: number, intervalMs = 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
