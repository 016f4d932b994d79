// Rendered pods as child processes of this checkout's `node dist/cli/main.js`, for machines where containers
// cannot run (pod-runtime.ts picks the form). The spec is the one a container gets (cluster.ts builds it from
// the rendered manifests); what a process cannot have is emulated as follows, and nothing else differs:
//   - mounts: a process cannot mount at /etc/mirrorfarm/... or /var/lib/mirrorfarm, so each volume is a
//     directory under one temp root, and exactly the environment values that name a mountPath (equal to it
//     or below it: HOME, MIRRORFARM_HOME, MIRRORFARM_SSH_HOST_KEY_DIR, MIRRORFARM_MIRROR_KEY_FILE,
//     MIRRORFARM_TRUST_CA_FILE as the chart renders them) are rewritten to that directory; the image's
//     WORKDIR likewise. An emptyDir at /tmp becomes TMPDIR. Files keep the rendered modes, owned by the
//     user running the test;
//   - the image: the Dockerfile's final ENV is laid under the pod's env, its ENTRYPOINT `tini -- mirrorfarm`
//     becomes `node dist/cli/main.js` (no tini: SIGTERM goes straight to the server), a `command` starting
//     with `node` runs this node; git and ssh are the machine's, found on PATH;
//   - DNS: the pod's host entries (a container's --add-host) are answered by a `node --import` preload
//     (process-dns.mjs) for the server, and by an `ssh` first on PATH that adds `-o HostName=<address>` for
//     those names (the mirror's fetch and push-through run `ssh`);
//   - securityContext (runAsUser, readOnlyRootFilesystem, dropped capabilities) is checked on the rendered
//     spec by cluster.ts but not enforced: the process runs as the user running the test.
// Each process leads its own process group; removing it kills the group, closes the OpenSSH multiplexing
// masters it left (they detach into a session of their own) and kills any process still naming the temp root.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { run } from '../helpers/run.js';
import { tempDir } from '../helpers/tmp.js';
import type { Container } from './podman.js';
import type { PodRuntime, PodSpec } from './pod-runtime.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/cli/main.js');
const DNS_PRELOAD = join(import.meta.dirname, 'process-dns.mjs');

/** Why pods cannot run as processes of this checkout, or undefined. */
export function whyNoProcesses(): string | undefined {
  if (!existsSync(CLI)) return 'dist/cli/main.js is missing (npm run build)';
  const built = statSync(CLI).mtimeMs;
  const newest = (dir: string): number =>
    Math.max(0, ...readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs)));
  if (newest(join(ROOT, 'src')) > built) return 'dist/ is older than src/ (npm run build)';
  return undefined;
}

/** The final stage's ENV, WORKDIR and ENTRYPOINT of the Dockerfile: what the image adds to a pod. */
function imageConfig(): { env: Record<string, string>; workdir: string; entrypoint: string[] } {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const lines = text.split('\n');
  const last = lines.map((l) => /^FROM\s/i.test(l)).lastIndexOf(true);
  const env: Record<string, string> = {};
  let workdir = '/';
  let entrypoint: string[] = [];
  for (const line of lines.slice(last)) {
    const [, op, rest] = /^(\w+)\s+(.*)$/.exec(line.trim()) ?? [];
    if (op === 'ENV') for (const [, k, v] of rest!.matchAll(/(\w+)=(\S+)/g)) env[k!] = v!;
    if (op === 'WORKDIR') workdir = rest!.trim();
    if (op === 'ENTRYPOINT') entrypoint = JSON.parse(rest!) as string[];
  }
  return { env, workdir, entrypoint };
}

/** Every pid whose command line or environment names `root` (the processes of this runtime and their children). */
function processesUnder(root: string): Array<{ pid: number; command: string }> {
  const out: Array<{ pid: number; command: string }> = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      if (command.includes(root) || readFileSync(`/proc/${pid}/environ`, 'utf8').includes(root)) out.push({ pid, command });
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

const SAFE_NAME = /^[A-Za-z0-9.-]+$/;

export class ProcessRuntime implements PodRuntime {
  readonly form = 'processes';
  readonly description: string;
  private readonly root = tempDir('mf-pods-');
  private readonly image = imageConfig();
  private readonly ssh = spawnSync('sh', ['-c', 'command -v ssh'], { encoding: 'utf8' }).stdout.trim();
  private readonly running = new Map<string, ChildProcess>();
  private next = 0;

  constructor(reason: string) {
    this.description = `pods run as processes of this checkout's node dist/cli/main.js (${reason}): rendered env, args, probes and volumes; mountPaths map to temp directories, DNS by a preload and an ssh wrapper; the container form is what CI runs`;
  }

  private dir(kind: string): string {
    const dir = join(this.root, `${kind}-${this.next++}`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  volumeDir(files: Record<string, string | Buffer>, _fsGroup: number, mode: number): string {
    const dir = this.dir('volume');
    for (const [name, content] of Object.entries(files)) {
      const file = join(dir, name);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, content);
      chmodSync(file, mode);
    }
    return dir;
  }

  homeDir(): string {
    return this.dir('pvc');
  }

  async run(spec: PodSpec): Promise<Container> {
    const pod = this.dir(`pod-${spec.name}`);
    // mountPath -> directory, longest first so that a nested mount wins.
    const paths = new Map<string, string>((spec.mounts ?? []).map((m) => [m.target, m.source]));
    for (const t of spec.tmpfs ?? []) paths.set(t, this.dir('emptydir'));
    const targets = [...paths.keys()].sort((a, b) => b.length - a.length);
    const rewritten: string[] = [];
    const mapPath = (key: string, value: string): string => {
      const target = targets.find((t) => value === t || value.startsWith(`${t}/`));
      if (!target) return value;
      rewritten.push(key);
      return paths.get(target)! + value.slice(target.length);
    };

    // Cluster DNS: the same entries a container gets with --add-host.
    const hostsFile = join(pod, 'hosts');
    const hosts = Object.entries(spec.hosts ?? {});
    for (const [name, address] of hosts) if (!SAFE_NAME.test(name) || !SAFE_NAME.test(address)) throw new Error(`host entry ${name} ${address} is not a plain name and address`);
    writeFileSync(hostsFile, hosts.map(([name, address]) => `${address} ${name}\n`).join(''));
    const bin = join(pod, 'bin');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'ssh'),
      [
        '#!/bin/sh',
        '# Cluster DNS for ssh: a destination among the pod\'s host entries connects to its address.',
        'for arg in "$@"; do',
        '  case "${arg#*@}" in',
        ...hosts.map(([name, address]) => `    ${name}) exec ${this.ssh} -o HostName=${address} "$@" ;;`),
        '  esac',
        'done',
        `exec ${this.ssh} "$@"`,
        '',
      ].join('\n'),
      { mode: 0o755 },
    );

    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...this.image.env, ...spec.env })) env[k] = mapPath(k, v);
    env.PATH = `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`;
    if (paths.has('/tmp')) {
      env.TMPDIR = paths.get('/tmp')!;
      rewritten.push('TMPDIR (emptyDir /tmp)');
    }
    env.NODE_OPTIONS = `--import=${pathToFileURL(DNS_PRELOAD).href}`;
    env.MF_POD_HOSTS_FILE = hostsFile;
    const cwd = mapPath('WORKDIR', this.image.workdir);

    let command: string;
    let args: string[];
    if (spec.command) {
      command = spec.command[0] === 'node' ? process.execPath : spec.command[0]!;
      args = [...spec.command.slice(1), ...(spec.args ?? [])];
    } else {
      if (this.image.entrypoint.at(-1) !== 'mirrorfarm') throw new Error(`the image's ENTRYPOINT ${JSON.stringify(this.image.entrypoint)} does not end in mirrorfarm`);
      command = process.execPath;
      args = [CLI, ...(spec.args ?? [])];
    }
    console.log(`# process ${spec.name}: ${command === process.execPath ? 'node' : command} ${args.map((a) => (a.includes('\n') ? '<script>' : a.replace(ROOT + '/', ''))).join(' ')}; rewritten to temp paths: ${[...new Set(rewritten)].join(', ') || 'nothing'}`);

    const child = spawn(command, args, { cwd: existsSync(cwd) ? cwd : pod, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const name = `mf-proc-${spec.name}`;
    this.running.set(name, child);
    const log: string[] = [];
    child.stdout!.on('data', (c: Buffer) => log.push(c.toString('utf8')));
    child.stderr!.on('data', (c: Buffer) => log.push(c.toString('utf8')));
    const exited = new Promise<number>((done) => {
      child.once('error', (err) => {
        log.push(`spawn failed: ${err.message}\n`);
        done(127);
      });
      // As a container runtime reports it: a signal's death is 128 + its number.
      child.once('exit', (code, signal) => done(code ?? 128 + (signal ? constants.signals[signal] : 0)));
    });
    const homeOfPod = env.MIRRORFARM_HOME;

    return {
      name,
      logs: async () => log.join(''),
      exec: (c) => run(c[0]!, c.slice(1), { cwd: existsSync(cwd) ? cwd : pod, env }),
      kill: async (signal) => {
        if (child.exitCode === null && child.signalCode === null) child.kill(`SIG${signal}` as NodeJS.Signals);
      },
      wait: async (timeoutMs = 60_000) => {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${name} did not exit within ${timeoutMs} ms`)), timeoutMs);
        });
        try {
          return await Promise.race([exited, timeout]);
        } finally {
          clearTimeout(timer);
        }
      },
      running: async () => child.exitCode === null && child.signalCode === null,
      remove: async () => {
        try {
          process.kill(-child.pid!, 'SIGKILL'); // the server and the git processes it started
        } catch {
          // the group is gone already
        }
        await exited;
        if (homeOfPod) await closeSshMasters(join(homeOfPod, 'run'), this.ssh);
        this.running.delete(name);
      },
    };
  }

  async removeAll(): Promise<void> {
    for (const child of this.running.values()) {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }
    this.running.clear();
    for (const entry of existsSync(this.root) ? readdirSync(this.root) : []) {
      if (entry.startsWith('pvc-')) await closeSshMasters(join(this.root, entry, 'run'), this.ssh);
    }
    // A last resort, by pid: anything started under this runtime's temp root that outlived the above.
    for (const { pid } of processesUnder(this.root)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }

  async leftovers(): Promise<string[]> {
    return processesUnder(this.root).map((p) => `${p.pid} ${p.command}`);
  }
}

/** `ssh -O exit` for every multiplexing master socket (ssh-*) in `dir`: they outlive the server by design. */
async function closeSshMasters(dir: string, ssh: string): Promise<void> {
  if (!existsSync(dir)) return;
  for (const socket of readdirSync(dir).filter((f) => f.startsWith('ssh-'))) {
    await run(ssh, ['-F', '/dev/null', '-o', `ControlPath=${join(dir, socket)}`, '-O', 'exit', 'mirrorfarm-primary'], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, timeoutMs: 10_000 });
  }
}
