// Process helpers: spawning with a registry so every child dies with the bench,
// /proc readers for CPU and memory, and small network utilities.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';

// ---------------------------------------------------------------------------
// Child registry and cleanup

interface Tracked {
  cp: ChildProcess;
  name: string;
  group: boolean;
}

const tracked = new Set<Tracked>();
const cleanupDirs = new Set<string>();
const asyncCleanups: Array<() => Promise<void>> = [];
let cleanupInstalled = false;
let exiting = false;

function hardKill(t: Tracked): void {
  const pid = t.cp.pid;
  if (pid === undefined || t.cp.exitCode !== null || t.cp.signalCode !== null) return;
  try {
    process.kill(t.group ? -pid : pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Kill whatever is still tracked and remove registered temp dirs (synchronous). */
export function cleanupNow(): void {
  for (const t of tracked) hardKill(t);
  tracked.clear();
  for (const d of cleanupDirs) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
  cleanupDirs.clear();
}

/** Register a directory that is removed at exit (normal, error or signal). */
export function removeAtExit(dir: string): void {
  cleanupDirs.add(dir);
}

/** Register an async cleanup (e.g. graceful server stop) run on SIGINT/SIGTERM and by runCleanups(). */
export function onCleanup(fn: () => Promise<void>): void {
  asyncCleanups.push(fn);
}

export async function runCleanups(): Promise<void> {
  while (asyncCleanups.length > 0) {
    const fn = asyncCleanups.pop();
    if (!fn) break;
    try {
      await fn();
    } catch (e) {
      process.stderr.write(`cleanup: ${String(e)}\n`);
    }
  }
  cleanupNow();
}

export function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', () => cleanupNow());
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (exiting) {
        cleanupNow();
        process.exit(130);
      }
      exiting = true;
      process.stderr.write(`\nbench: ${sig} received, stopping servers and removing temp files...\n`);
      const timer = setTimeout(() => {
        cleanupNow();
        process.exit(130);
      }, 8000);
      timer.unref();
      void runCleanups().finally(() => process.exit(130));
    });
  }
}

export interface SpawnTracked {
  cp: ChildProcess;
  /** Resolves with the exit code (or 128+signal) when the process exits. */
  exited: Promise<number>;
}

/**
 * Spawn a child that is killed when the bench exits. `group: true` starts it in
 * its own process group (for long-lived servers) so its descendants are killed too.
 */
export function spawnTracked(
  name: string,
  cmd: string,
  args: readonly string[],
  opts: SpawnOptions & { group?: boolean } = {},
): SpawnTracked {
  const group = opts.group ?? false;
  const cp = spawn(cmd, args, { ...opts, detached: group });
  const t: Tracked = { cp, name, group };
  tracked.add(t);
  const exited = new Promise<number>((resolve) => {
    cp.on('error', (err) => {
      tracked.delete(t);
      process.stderr.write(`bench: failed to start ${name}: ${err.message}\n`);
      resolve(127);
    });
    cp.on('exit', (code, signal) => {
      if (!group) tracked.delete(t);
      resolve(code ?? 128 + signalNumber(signal));
    });
  });
  return { cp, exited };
}

/** Kill a tracked group (after the leader exited) so no stray descendants remain. */
export function killGroup(cp: ChildProcess): void {
  for (const t of tracked) {
    if (t.cp === cp) {
      if (cp.pid !== undefined) {
        try {
          process.kill(-cp.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      tracked.delete(t);
    }
  }
}

function signalNumber(signal: NodeJS.Signals | null): number {
  switch (signal) {
    case 'SIGINT':
      return 2;
    case 'SIGKILL':
      return 9;
    case 'SIGTERM':
      return 15;
    default:
      return 1;
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  timeoutMs?: number;
  /** Throw when the exit code is not 0 (default true). */
  check?: boolean;
  /** Keep at most this many bytes of stdout/stderr (default 4 MiB). */
  maxOutput?: number;
}

/** Run a command to completion, timing it with a monotonic clock. */
export async function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const max = opts.maxOutput ?? 4 * 1024 * 1024;
  const t0 = performance.now();
  const { cp, exited } = spawnTracked(cmd, cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  cp.stdout?.setEncoding('utf8');
  cp.stderr?.setEncoding('utf8');
  cp.stdout?.on('data', (d: string) => {
    if (stdout.length < max) stdout += d;
  });
  cp.stderr?.on('data', (d: string) => {
    if (stderr.length < max) stderr += d.slice(0, max);
  });
  if (opts.input !== undefined && cp.stdin) {
    cp.stdin.on('error', () => undefined);
    cp.stdin.end(opts.input);
  }
  let timedOut = false;
  const timer =
    opts.timeoutMs !== undefined
      ? setTimeout(() => {
          timedOut = true;
          cp.kill('SIGKILL');
        }, opts.timeoutMs)
      : undefined;
  const code = await exited;
  const ms = performance.now() - t0;
  if (timer) clearTimeout(timer);
  // Let the pipes drain.
  await Promise.all([streamEnd(cp.stdout), streamEnd(cp.stderr)]);
  if (timedOut) throw new Error(`${cmd} ${args.join(' ')}: timed out after ${opts.timeoutMs} ms\n${tail(stderr)}`);
  if ((opts.check ?? true) && code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')}: exit ${code}\n${tail(stderr)}`);
  }
  return { code, stdout, stderr, ms };
}

function streamEnd(s: NodeJS.ReadableStream | null | undefined): Promise<void> {
  if (!s) return Promise.resolve();
  const r = s as NodeJS.ReadableStream & { readableEnded?: boolean; destroyed?: boolean };
  if (r.readableEnded || r.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    s.once('end', resolve);
    s.once('close', resolve);
    setTimeout(resolve, 2000).unref();
  });
}

export function tail(s: string, lines = 20): string {
  return s.trimEnd().split('\n').slice(-lines).join('\n');
}

// ---------------------------------------------------------------------------
// /proc readers

export interface ProcCpu {
  /** utime + stime of the process itself (all threads), in clock ticks. */
  self: number;
  /** cutime + cstime: CPU of waited-for (reaped) children and their reaped descendants, ticks. */
  children: number;
}

export function readCpu(pid: number): ProcCpu {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime is field 14.
  const f = (field: number): number => Number(rest[field - 3]);
  return { self: f(14) + f(15), children: f(16) + f(17) };
}

/** Machine-wide busy CPU (all cores, excluding idle and iowait) in clock ticks, from /proc/stat. */
export function readMachineBusy(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user/nice)
  const at = (i: number): number => f[i] ?? 0;
  return at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
}

export interface ProcMem {
  rssKb: number;
  hwmKb: number;
}

export function readMem(pid: number): ProcMem {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const get = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
    return m ? Number(m[1]) : 0;
  };
  return { rssKb: get('VmRSS'), hwmKb: get('VmHWM') };
}

interface ProcEntry {
  pid: number;
  ppid: number;
  comm: string;
}

function listProcs(): ProcEntry[] {
  const out: ProcEntry[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const open = stat.indexOf('(');
      const close = stat.lastIndexOf(')');
      const rest = stat.slice(close + 2).split(' ');
      out.push({ pid: Number(name), comm: stat.slice(open + 1, close), ppid: Number(rest[1]) });
    } catch {
      // raced with exit
    }
  }
  return out;
}

/** Live descendants of `pid` (any depth), excluding zombies' ancestry subtleties. */
export function descendants(pid: number): ProcEntry[] {
  const all = listProcs();
  const byParent = new Map<number, ProcEntry[]>();
  for (const p of all) {
    const list = byParent.get(p.ppid) ?? [];
    list.push(p);
    byParent.set(p.ppid, list);
  }
  const out: ProcEntry[] = [];
  const stack = [pid];
  while (stack.length > 0) {
    const cur = stack.pop() as number;
    for (const c of byParent.get(cur) ?? []) {
      out.push(c);
      stack.push(c.pid);
    }
  }
  return out;
}

/**
 * Wait until `pid` has no live descendant whose command matches `pattern`
 * (e.g. git upload-pack still exiting). Returns the ones still alive at timeout.
 */
export async function waitNoDescendants(pid: number, pattern: RegExp, timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const live = descendants(pid).filter((p) => pattern.test(p.comm));
    if (live.length === 0) return [];
    if (Date.now() > deadline) return live.map((p) => `${p.pid}:${p.comm}`);
    await sleep(20);
  }
}

let clkTck = 100;
/** Clock ticks per second for /proc/<pid>/stat times (set by initClockTicks()). */
export function clockTicks(): number {
  return clkTck;
}

export async function initClockTicks(): Promise<number> {
  const r = await run('getconf', ['CLK_TCK'], { check: false });
  const n = Number(r.stdout.trim());
  clkTck = Number.isFinite(n) && n > 0 ? n : 100;
  return clkTck;
}

// ---------------------------------------------------------------------------
// Misc

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A currently free TCP port on 127.0.0.1 (bound then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (!alive()) throw new Error(`process exited before listening on port ${port}`);
    if (Date.now() > deadline) throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}
