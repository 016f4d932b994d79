// Shared pieces of the mirror benchmarks (bench/mirror-latency.ts, bench/mirror-scale.ts).
//
// Servers are started with the test helpers (the built CLI, dist/cli/main.js, as child processes on random
// loopback ports with a development CA). Their JSON logs are teed to bench/.work/logs/ and the few lines the
// benchmarks need (state changes, snapshot passes, the primary's request log for the mirroring API) are parsed
// as they arrive. Also here: /proc memory and CPU sampling, percentiles, a small promise pool, the section
// writer for bench/.work/mirror-results.md, and cleanup of every process and temp dir at exit, on error and
// on SIGINT/SIGTERM/SIGHUP (servers, the git and ssh processes they started, including ssh ControlMaster
// processes and detached `git gc` that outlive their parent, sshd, and the temp homes).
import { execFileSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync, type WriteStream } from 'node:fs';
import { request, Agent } from 'node:https';
import { cpus, loadavg, release, totalmem, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ADMIN, ROOT, api, startMirror, startServer, type ApiResponse, type TestServer } from '../../test/helpers/server.js';
import { removeTempDirs } from '../../test/helpers/tmp.js';
import { cleanupNow as procCleanupNow, clockTicks, descendants, readCpu, readMachineBusy, readMem, type ProcCpu } from './proc.js';

export const WORK = join(ROOT, 'bench', '.work');
export const LOG_DIR = join(WORK, 'logs');
export const RESULTS_FILE = join(WORK, 'mirror-results.md');
export const MIRROR_API = '/rest/mirroring/1.0/mirror/';

// ---------------------------------------------------------------------------------------------------------
// Configuration from the environment

export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw.replace(/_/g, ''));
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${raw}: expected a non-negative number`);
  return Math.floor(n);
}

export function progress(message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

// ---------------------------------------------------------------------------------------------------------
// Cleanup

const liveServers = new Set<TestServer>();
/** Directories whose processes (by argv, cwd or environment) are ours to kill at the end. */
const sweepRoots = new Set<string>();
let shuttingDown = false;

export function sweepRoot(dir: string): void {
  sweepRoots.add(dir);
}

/** Processes other than this one whose command line, working directory or environment mention one of our dirs. */
function strayPids(only?: readonly string[]): number[] {
  const roots = only ? [...only] : [...sweepRoots];
  if (roots.length === 0) return [];
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      let cwd = '';
      try {
        cwd = readlinkSync(`/proc/${pid}/cwd`);
      } catch {
        // exited, or not ours to read
      }
      let environ = '';
      try {
        environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
      } catch {
        // idem
      }
      if (roots.some((r) => cmdline.includes(r) || cwd.startsWith(r) || environ.includes(r))) out.push(pid);
    } catch {
      // raced with exit
    }
  }
  return out;
}

/** Kills stray processes of ours (ssh ControlMaster, detached git gc, git children of killed servers), by pid. */
export function sweepStrays(only?: readonly string[]): number {
  let killed = 0;
  for (let round = 0; round < 3; round++) {
    const pids = strayPids(only);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        killed++;
      } catch {
        // gone
      }
    }
    // A dying process may have forked; look again.
    execFileSync('sleep', ['0.1']);
  }
  return killed;
}

function killNowSync(): void {
  for (const s of liveServers) {
    if (s.process.exitCode === null && s.process.signalCode === null) {
      try {
        s.process.kill('SIGKILL');
      } catch {
        // gone
      }
    }
  }
  liveServers.clear();
  try {
    sweepStrays();
  } catch {
    // best effort
  }
  procCleanupNow();
  removeTempDirs();
}

/** Stops every server gracefully (SIGTERM, SIGKILL after 15 s), then kills strays and removes temp dirs. */
export async function shutdown(): Promise<void> {
  await Promise.allSettled([...liveServers].map((s) => s.stop()));
  liveServers.clear();
  killNowSync();
}

export function installCleanup(): void {
  // Before test/helpers/tmp.ts removes the directories, so nothing still writes into them.
  process.prependListener('exit', killNowSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (shuttingDown) {
        killNowSync();
        process.exit(130);
      }
      shuttingDown = true;
      progress(`${sig} received: stopping servers, killing their processes, removing temp dirs`);
      setTimeout(() => {
        killNowSync();
        process.exit(130);
      }, 20_000).unref();
      void shutdown().finally(() => process.exit(130));
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Logs

export interface LogRecord {
  time: number;
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** Messages kept from the JSON logs (anything else only goes to the log file). */
const KEPT = ['"mirror state changed"', '"snapshot pass finished"', '"mirror cannot proceed"', '"repository sync failed"', '"mirror has the repository in sync"', '"request failed"', '"mirror nodes did not prepare'];

function interesting(line: string): boolean {
  if (line.includes('"msg":"request completed"')) return line.includes('/rest/mirroring/');
  return KEPT.some((k) => line.includes(k)) || line.includes('"level":50') || line.includes('"level":60');
}

interface Waiter {
  pred: (r: LogRecord) => boolean;
  resolve: (r: LogRecord) => void;
}

/** Parses a server's JSON log as it arrives; keeps the interesting records and wakes waiters on them. */
export class LogTap {
  readonly records: LogRecord[] = [];
  private readonly partial = new Map<string, string>();
  private waiters: Waiter[] = [];
  private readonly file: WriteStream;

  constructor(path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.file = createWriteStream(path, { flags: 'a' });
  }

  feed(stream: string, chunk: string): void {
    this.file.write(chunk);
    const text = (this.partial.get(stream) ?? '') + chunk;
    const lines = text.split('\n');
    this.partial.set(stream, lines.pop() ?? '');
    for (const line of lines) {
      if (!line.startsWith('{') || !interesting(line)) continue;
      let record: LogRecord;
      try {
        record = JSON.parse(line) as LogRecord;
      } catch {
        continue;
      }
      this.records.push(record);
      if (this.waiters.length) {
        const still: Waiter[] = [];
        for (const w of this.waiters) {
          if (w.pred(record)) w.resolve(record);
          else still.push(w);
        }
        this.waiters = still;
      }
    }
  }

  note(text: string): void {
    this.file.write(`${text}\n`);
  }

  /** The first kept record at index >= `from` matching `pred`, waiting for it up to `timeoutMs`. */
  async waitFor(pred: (r: LogRecord) => boolean, what: string, timeoutMs: number, from = 0, alive?: () => boolean): Promise<LogRecord> {
    for (let i = from; i < this.records.length; i++) if (pred(this.records[i]!)) return this.records[i]!;
    let waiter: Waiter | undefined;
    const found = new Promise<LogRecord>((resolve) => {
      waiter = { pred, resolve };
      this.waiters.push(waiter);
    });
    const deadline = Date.now() + timeoutMs;
    try {
      for (;;) {
        const r = await Promise.race([found, sleep(500).then(() => undefined)]);
        if (r) return r;
        if (alive && !alive()) throw new Error(`the server exited while waiting for ${what}`);
        if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
      }
    } finally {
      this.waiters = this.waiters.filter((w) => w !== waiter);
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.file.end(resolve));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Servers

export interface Node {
  name: string;
  server: TestServer;
  log: LogTap;
  logPath: string;
  pid: number;
  alive(): boolean;
}

function attach(server: TestServer, name: string, logPath: string, log?: LogTap): Node {
  liveServers.add(server);
  sweepRoot(dirname(server.home));
  const tap = log ?? new LogTap(logPath);
  tap.note(`--- ${new Date().toISOString()} ${name} pid ${server.process.pid} ---`);
  // Everything printed so far is in output(); everything after arrives through these listeners.
  tap.feed('stdout', server.output());
  server.process.stdout!.on('data', (c: Buffer) => tap.feed('stdout', c.toString('utf8')));
  server.process.stderr!.on('data', (c: Buffer) => tap.feed('stderr', c.toString('utf8')));
  server.process.once('exit', () => liveServers.delete(server));
  return {
    name,
    server,
    log: tap,
    logPath,
    pid: server.process.pid!,
    alive: () => server.process.exitCode === null && server.process.signalCode === null,
  };
}

export function logPathFor(bench: string, name: string): string {
  return join(LOG_DIR, `${bench}-${name}.log`);
}

export async function startPrimary(bench: string, env: Record<string, string> = {}): Promise<Node> {
  const logPath = logPathFor(bench, 'primary');
  writeFileSync(logPath, '');
  const server = await startServer({ env: { MIRRORFARM_LOG_LEVEL: 'info', ...env } });
  return attach(server, 'primary', logPath);
}

/** The primary with SSH front end `frontend` (BENCH_SSH_FRONTEND: builtin or openssh), or a clear failure when this build cannot run it. */
export async function startPrimaryWithFrontend(bench: string, frontend: string): Promise<Node> {
  if (frontend !== 'builtin' && frontend !== 'openssh') throw new Error(`BENCH_SSH_FRONTEND=${frontend}: expected builtin or openssh`);
  // sshd takes logins of the account it runs as only: the clone URLs' login name is this account's.
  const env: Record<string, string> = frontend === 'builtin' ? {} : { MIRRORFARM_SSH_FRONTEND: frontend, MIRRORFARM_SSH_USER: userInfo().username };
  let primary: Node;
  try {
    primary = await startPrimary(bench, env);
  } catch (err) {
    throw new Error(`the primary did not start with MIRRORFARM_SSH_FRONTEND=${frontend}: ${(err as Error).message.split('\n').slice(0, 6).join(' / ')}`);
  }
  if (frontend === 'openssh') {
    // A server without the OpenSSH front end ignores the variable; one with it runs sshd as its child.
    const deadline = Date.now() + 10_000;
    while (!descendants(primary.pid).some((p) => p.comm === 'sshd') && Date.now() < deadline) await sleep(100);
    if (!descendants(primary.pid).some((p) => p.comm === 'sshd')) {
      throw new Error('BENCH_SSH_FRONTEND=openssh: this build of the server has no OpenSSH front end (it ignored MIRRORFARM_SSH_FRONTEND=openssh and no sshd runs under it); only BENCH_SSH_FRONTEND=builtin can be measured with it');
    }
  }
  return primary;
}

export async function startMirrorNode(bench: string, name: string, primary: Node, env: Record<string, string> = {}): Promise<Node> {
  const logPath = logPathFor(bench, name);
  writeFileSync(logPath, '');
  // BENCH_MIRROR_NODE_OPTIONS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the mirror nodes.
  const nodeOptions: Record<string, string> = process.env.BENCH_MIRROR_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_MIRROR_NODE_OPTIONS } : {};
  const server = await startMirror(primary.server, { env: { MIRRORFARM_LOG_LEVEL: 'info', MIRRORFARM_DISPLAY_NAME: `bench ${name}`, ...nodeOptions, ...env } });
  return attach(server, name, logPath);
}

/** Restarts a node on the same home (and, for a mirror, the same port) with extra environment. */
export async function restartNode(node: Node, env: Record<string, string> = {}): Promise<Node> {
  node.log.note(`--- ${new Date().toISOString()} restarting with ${JSON.stringify(env)} ---`);
  const server = await node.server.restart(env);
  liveServers.delete(node.server);
  return attach(server, node.name, node.logPath, node.log);
}

/** Stops a node, then kills what it left behind (its ssh ControlMaster, a detached git gc). */
export async function stopNode(node: Node): Promise<void> {
  await node.server.stop();
  liveServers.delete(node.server);
  sweepStrays([dirname(node.server.home)]);
}

export async function apiOk<T = unknown>(server: TestServer, method: string, path: string, body?: unknown): Promise<T> {
  let r: ApiResponse<T> | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      r = await api<T>(server, method, path, body, ADMIN);
      break;
    } catch (err) {
      // A keep-alive connection closed by the server just as we reused it.
      if (attempt === 2 || !/ECONNRESET|socket hang up/.test((err as Error).message)) throw err;
    }
  }
  if (!r || r.status < 200 || r.status >= 300) throw new Error(`${method} ${path}: HTTP ${r?.status} ${r?.text.slice(0, 500)}`);
  return r.body;
}

/** A mirror's /status (unauthenticated JSON). */
export interface MirrorStatus {
  state: string;
  mirrorId: string;
  progress: { synced: number; total: number };
  failingRepositories?: Array<{ repository: string; error: string | null }>;
  error?: { code: string; message: string };
}

export function mirrorGet<T>(node: Node, path: string, timeoutMs = 60_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: node.server.httpPort, path, ca: readFileSync(node.server.ca.caCert), timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve(JSON.parse(text) as T);
        } catch {
          resolve(text as T);
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

const isStateChange = (state: string) => (r: LogRecord) => r.msg === 'mirror state changed' && r.to === state;

/** Waits for the mirror to log a change to `state` (at or after kept-record index `from`). */
export function waitState(node: Node, state: string, timeoutMs: number, from = 0): Promise<LogRecord> {
  return node.log.waitFor(isStateChange(state), `mirror ${node.name} to reach ${state}`, timeoutMs, from, node.alive);
}

/** Waits for the PENDING registration and accepts it; answers the mirror id and when the accept returned. */
export async function authorize(primary: Node, mirror: Node, body: Record<string, unknown> = { mirroringMode: 'ALL_PROJECTS' }): Promise<{ mirrorId: string; acceptedAt: number; from: number }> {
  const pending = await waitState(mirror, 'PENDING', 60_000);
  const mirrorId = String(pending.mirrorId);
  const from = mirror.log.records.length;
  await apiOk(primary.server, 'POST', `/rest/mirroring/1.0/requests/${mirrorId}/accept`, body);
  return { mirrorId, acceptedAt: Date.now(), from };
}

/** Requests the primary logged for the mirror API (/rest/mirroring/1.0/mirror/*) in [from, to] ms, by "METHOD path". */
export function mirrorApiRequests(primary: Node, from: number, to: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of primary.log.records) {
    if (r.msg !== 'request completed' || r.time < from || r.time > to) continue;
    const url = String(r.url ?? '').split('?')[0] ?? '';
    if (!url.startsWith(MIRROR_API)) continue;
    const key = `${String(r.method)} ${url}`;
    out.set(key, (out.get(key) ?? 0) + 1);
  }
  return out;
}

export function formatCounts(counts: Map<string, number>): string {
  if (counts.size === 0) return 'none';
  return [...counts]
    .sort((a, b) => a[0].localeCompare(b[0]))
    .map(([k, n]) => `${k.replace(MIRROR_API, '…/mirror/')} x${n}`)
    .join(', ');
}

export function total(counts: Map<string, number>): number {
  let n = 0;
  for (const v of counts.values()) n += v;
  return n;
}

// ---------------------------------------------------------------------------------------------------------
// git over HTTPS to a server, as the admin

/** Environment for the git client: isolated config, the dev CA, admin Basic auth in a header (not on argv). */
export function gitClientEnv(server: TestServer, home: string): NodeJS.ProcessEnv {
  const config: Array<[string, string]> = [
    ['user.name', 'Bench'],
    ['user.email', 'bench@example.com'],
    ['init.defaultBranch', 'main'],
    ['http.extraHeader', `Authorization: Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.secret}`).toString('base64')}`],
  ];
  return {
    PATH: process.env.PATH,
    HOME: home,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    LC_ALL: 'C',
    GIT_SSL_CAINFO: server.ca.caCert,
    GIT_CONFIG_COUNT: String(config.length),
    ...Object.fromEntries(config.flatMap(([k, v], i) => [[`GIT_CONFIG_KEY_${i}`, k], [`GIT_CONFIG_VALUE_${i}`, v]])),
  };
}

export function httpsRepoUrl(server: TestServer, project: string, slug: string): string {
  return `https://127.0.0.1:${server.httpPort}/scm/${project}/${slug}.git`;
}

/**
 * The v0 upload-pack advertisement of a repository (what `git ls-remote` reads), as the admin, over one
 * keep-alive connection. No Git-Protocol header: protocol v0 lists every ref in the first response.
 */
export class InfoRefsClient {
  private readonly agent: Agent;
  private readonly auth = `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.secret}`).toString('base64')}`;

  constructor(private readonly node: Node) {
    this.agent = new Agent({ keepAlive: true, maxSockets: 1, ca: readFileSync(node.server.ca.caCert) });
  }

  get(project: string, slug: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: this.node.server.httpPort,
          path: `/scm/${project}/${slug}.git/info/refs?service=git-upload-pack`,
          agent: this.agent,
          headers: { authorization: this.auth, 'user-agent': 'git/2.39.5 (mirrorfarm bench)' },
          timeout: 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('latin1') }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('info/refs timed out')));
      req.on('error', reject);
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** The oid of a ref in a bare repository on disk (loose ref, else packed-refs), without starting git. */
export function readRefOnDisk(gitDir: string, ref: string): string | undefined {
  try {
    const loose = readFileSync(join(gitDir, ref), 'utf8').trim();
    if (/^[0-9a-f]{40}$/.test(loose)) return loose;
  } catch {
    // not loose (or being replaced): look in packed-refs
  }
  try {
    const packed = readFileSync(join(gitDir, 'packed-refs'), 'utf8');
    const line = packed.split('\n').find((l) => l.endsWith(` ${ref}`));
    return line?.slice(0, 40);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------
// /proc sampling

export interface MemSummary {
  samples: number;
  peakRssKb: number;
  lastRssKb: number;
  hwmKb: number;
}

/** Samples a process's VmRSS every `intervalMs` until stopped; VmHWM (peak since start) is read at the end. */
export class MemSampler {
  private peak = 0;
  private last = 0;
  private hwm = 0;
  private samples = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pid: number,
    intervalMs = 200,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  private sample(): void {
    try {
      const m = readMem(this.pid);
      this.peak = Math.max(this.peak, m.rssKb);
      this.last = m.rssKb;
      this.hwm = Math.max(this.hwm, m.hwmKb);
      this.samples++;
    } catch {
      // exited
    }
  }

  current(): MemSummary {
    return { samples: this.samples, peakRssKb: this.peak, lastRssKb: this.last, hwmKb: this.hwm };
  }

  stop(): MemSummary {
    this.sample();
    clearInterval(this.timer);
    return this.current();
  }
}

export function mb(kb: number): string {
  return `${(kb / 1024).toFixed(1)} MiB`;
}

/** CPU seconds of a process (self) and of its reaped children, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): { self: number; children: number } {
  try {
    const c: ProcCpu = readCpu(pid);
    return { self: c.self / clockTicks(), children: c.children / clockTicks() };
  } catch {
    return { self: NaN, children: NaN };
  }
}

export interface Load {
  /** Average busy cores of the whole machine over the interval. */
  machine: number;
  /** ... of which the bench, the servers and their reaped children. */
  ours: number;
  /** ... and the rest: other users of the shared machine (plus our unreaped or detached processes). */
  others: number;
}

/** Machine-wide CPU use over an interval, split into ours (these pids, this process, their reaped children) and others'. */
export class LoadMeter {
  private readonly t0 = performance.now();
  private readonly busy0 = readMachineBusy();
  private readonly ours0: number;

  constructor(private readonly pids: number[]) {
    this.ours0 = this.ours();
  }

  private ours(): number {
    let sum = 0;
    for (const pid of [process.pid, ...this.pids]) {
      const c = cpuSeconds(pid);
      if (Number.isFinite(c.self)) sum += c.self + c.children;
    }
    return sum;
  }

  stop(): Load {
    const seconds = (performance.now() - this.t0) / 1000;
    const machine = (readMachineBusy() - this.busy0) / clockTicks() / seconds;
    const ours = (this.ours() - this.ours0) / seconds;
    return { machine, ours, others: Math.max(0, machine - ours) };
  }
}

export function formatLoad(l: Load): string {
  return `${l.machine.toFixed(2)} of ${cpus().length} cores busy on average (ours ${l.ours.toFixed(2)}, others ${l.others.toFixed(2)})`;
}

// ---------------------------------------------------------------------------------------------------------
// Statistics and small utilities

export interface Dist {
  n: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles (p99 of 200 samples is the 198th smallest). */
export function dist(values: readonly number[]): Dist {
  const s = [...values].filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  const at = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]! : NaN);
  return {
    n: s.length,
    min: s[0] ?? NaN,
    p50: at(50),
    p90: at(90),
    p99: at(99),
    max: s[s.length - 1] ?? NaN,
    mean: s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN,
  };
}

export function ms(n: number): string {
  return Number.isFinite(n) ? `${n.toFixed(0)} ms` : 'n/a';
}

export function secs(n: number, digits = 1): string {
  return Number.isFinite(n) ? `${n.toFixed(digits)} s` : 'n/a';
}

/** Runs `fn` over `items` with at most `concurrency` at a time; the first failure stops new work and is thrown. */
export async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      const i = next++;
      try {
        await fn(items[i]!, i);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
  if (failure !== undefined) throw failure;
}

// ---------------------------------------------------------------------------------------------------------
// Report

function safe(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], cwd: ROOT }).trim();
  } catch {
    return '?';
  }
}

/** Date, machine and build facts for the report. */
export function machineFacts(): string[] {
  const cli = join(ROOT, 'dist', 'cli', 'main.js');
  const built = existsSync(cli) ? statSync(join(ROOT, 'dist', 'mirror', 'controller.js')).mtime.toISOString() : 'not built';
  let dirty: string[] = [];
  try {
    dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { encoding: 'utf8', cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter(Boolean);
  } catch {
    // not a git checkout
  }
  return [
    `date: ${new Date().toISOString()}`,
    `machine: ${cpus()[0]?.model ?? '?'} x${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Linux ${release()}, load average at start ${loadavg().map((l) => l.toFixed(2)).join(' ')}`,
    `software: node ${process.version}, ${safe('git', ['--version'])}, ${safe('ssh', ['-V']) || safe('sh', ['-c', 'ssh -V 2>&1'])}`,
    `mirrorfarm: commit ${safe('git', ['rev-parse', '--short', 'HEAD'])}${dirty.length ? ` + uncommitted changes in ${dirty.map((l) => l.slice(3)).join(', ')}` : ''}; dist built ${built}`,
  ];
}

/** The newest modification time under dist/ (ms), to notice a rebuild by someone else during a run. */
export function distStamp(): number {
  let newest = 0;
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.js')) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  try {
    walk(join(ROOT, 'dist'));
  } catch {
    // not built
  }
  return newest;
}

/** A warning line when dist/ changed since `stamp`, else undefined. */
export function distChanged(stamp: number): string | undefined {
  const now = distStamp();
  return now !== stamp ? `WARNING: dist/ was rebuilt during the run (newest file ${new Date(now).toISOString()}): servers started after that ran the new build, so figures may mix versions` : undefined;
}

/** Replaces (or appends) the section between <!-- BEGIN id --> and <!-- END id --> of bench/.work/mirror-results.md. */
export function writeSection(id: string, markdown: string): string {
  mkdirSync(WORK, { recursive: true });
  const begin = `<!-- BEGIN ${id} (written by bench/${id}.ts; edits inside are overwritten) -->`;
  const end = `<!-- END ${id} -->`;
  const block = `${begin}\n${markdown.trim()}\n${end}`;
  let text = existsSync(RESULTS_FILE) ? readFileSync(RESULTS_FILE, 'utf8') : '# Mirror benchmarks\n\n';
  const b = text.indexOf(`<!-- BEGIN ${id} `);
  const e = text.indexOf(end);
  if (b >= 0 && e > b) text = text.slice(0, b) + block + text.slice(e + end.length);
  else text = `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(RESULTS_FILE, text);
  return RESULTS_FILE;
}
