// Clone benchmark for the primary Git server.
//
//   npm run bench            (= npm run build && node --import tsx bench/clone.ts)
//   BENCH_REPO_MB=20 BENCH_RUNS=1 node --import tsx bench/clone.ts   (smoke run)
//
// Generates (once, cached in bench/.work/repos) a deterministic bare repository,
// then in the same run clones it through
//   - file://                 git clone --no-local (baseline for every ratio)
//   - OpenSSH                 private sshd + git-upload-pack (reference)
//   - mirrorfarm HTTPS        https://127.0.0.1:PORT/scm/BENCH/big.git
//   - mirrorfarm SSH          ssh://git@127.0.0.1:PORT/bench/big.git
//   - mirrorfarm SSH (OpenSSH front end)  a second server with ssh.frontend: openssh (BENCH_SKIP_SSHD_FRONTEND=1 skips it)
//   - mirrorfarm's repo copy  file:// of the server's on-disk repository (reference)
//   - nginx + git http-backend  https://127.0.0.1:PORT/git/<repo>.git via fcgiwrap (HTTPS reference)
// interleaving the variants (rotated order per round), and measures wall time,
// server CPU (Node vs. reaped git children) and server RSS under 4 concurrent
// clones. See bench/README.md.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultCommits, ensureRepo, inspectRepo, type GenParams, type RepoMeta, type RepoShape } from './lib/generate.js';
import {
  findServerRepo,
  gitHttpsEnv,
  makeDevCa,
  MirrorfarmUnavailable,
  setupRepo,
  startServer,
  type ServerHandle,
  type Tls,
} from './lib/mirrorfarm.js';
import {
  clockTicks,
  descendants,
  initClockTicks,
  installCleanup,
  onCleanup,
  readCpu,
  readMachineBusy,
  readMem,
  removeAtExit,
  run,
  runCleanups,
  sleep,
  tail,
  waitNoDescendants,
} from './lib/proc.js';
import { fmt, max, mdTable, median, mib, min, pct, textTable, verdict, type Row } from './lib/report.js';
import { ensureClientKey, gitSshCommand, negotiatedCipher, startSshd, type ClientKey, type Sshd } from './lib/sshd.js';
import { negotiatedTls, startGitHttpBackend, type GitHttpBackend } from './lib/git-http-backend.js';
import type { ProcCpu } from './lib/proc.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const work = join(here, '.work');

const TARGET_RATIO = 1.05;
const TARGET_OVERHEAD = 0.1;
const TARGET_RSS_MIB = 200;
/** Issue 11: mirrorfarm's HTTPS clone within 2% of nginx + fcgiwrap + git http-backend's wall time. */
const TARGET_VS_NGINX = 1.02;

// ---------------------------------------------------------------------------
// Configuration

interface Config {
  repoMiB: number;
  runs: number;
  refs: number;
  commits: number;
  seed: string;
  warmup: boolean;
  concurrency: number;
  skipMirrorfarm: boolean;
  serverCopy: boolean;
  cloneTimeoutMs: number;
  startTimeoutMs: number;
  sshCipher: string | undefined;
  quietWaitMs: number;
  noiseCores: number;
  retries: number;
  nginx: boolean;
}

function envNum(name: string, def: number, lo: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < lo) throw new Error(`${name}=${raw}: expected a number >= ${lo}`);
  return Math.floor(n);
}

function envFloat(name: string, def: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${raw}: expected a number >= 0`);
  return n;
}

function envBool(name: string, def: boolean): boolean {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  return !['0', 'false', 'no', 'off'].includes(raw.toLowerCase());
}

function readConfig(): Config {
  const repoMiB = envNum('BENCH_REPO_MB', 300, 1);
  return {
    repoMiB,
    runs: envNum('BENCH_RUNS', 3, 1),
    refs: envNum('BENCH_REFS', 3000, 0),
    commits: envNum('BENCH_COMMITS', defaultCommits(repoMiB), 2),
    seed: process.env.BENCH_SEED || 'mirrorfarm-bench-1',
    warmup: envBool('BENCH_WARMUP', true),
    concurrency: envNum('BENCH_CONCURRENCY', 4, 1),
    skipMirrorfarm: envBool('BENCH_SKIP_MIRRORFARM', false),
    serverCopy: envBool('BENCH_SERVER_COPY', true),
    cloneTimeoutMs: envNum('BENCH_CLONE_TIMEOUT_S', 1800, 10) * 1000,
    startTimeoutMs: envNum('BENCH_SERVER_START_TIMEOUT_S', 60, 1) * 1000,
    sshCipher: process.env.BENCH_SSH_CIPHER || undefined,
    quietWaitMs: envNum('BENCH_QUIET_WAIT_S', 30, 0) * 1000,
    noiseCores: envFloat('BENCH_NOISE_CORES', 0.3),
    retries: envNum('BENCH_RETRIES', 2, 0),
    nginx: envBool('BENCH_NGINX', true),
  };
}

const KNOBS = [
  'BENCH_REPO_MB',
  'BENCH_RUNS',
  'BENCH_REFS',
  'BENCH_COMMITS',
  'BENCH_SEED',
  'BENCH_WARMUP',
  'BENCH_CONCURRENCY',
  'BENCH_SKIP_MIRRORFARM',
  'BENCH_SERVER_COPY',
  'BENCH_CLONE_TIMEOUT_S',
  'BENCH_SERVER_START_TIMEOUT_S',
  'BENCH_SSH_CIPHER',
  'BENCH_QUIET_WAIT_S',
  'BENCH_NOISE_CORES',
  'BENCH_RETRIES',
  'BENCH_NGINX',
];

function commandLine(): string {
  const env = KNOBS.filter((k) => process.env[k] !== undefined && process.env[k] !== '').map((k) => `${k}=${process.env[k]}`);
  const how = process.env.npm_lifecycle_event === 'bench' ? 'npm run bench' : 'node --import tsx bench/clone.ts';
  return [...env, how].join(' ');
}

const t0 = Date.now();
function log(msg: string): void {
  const s = ((Date.now() - t0) / 1000).toFixed(1).padStart(7);
  process.stderr.write(`[bench ${s}s] ${msg}\n`);
}

// ---------------------------------------------------------------------------
// Variants

type VariantId = 'file' | 'openssh' | 'mf-https' | 'mf-ssh' | 'mf-sshd' | 'mf-file' | 'nginx';

interface Variant {
  id: VariantId;
  label: string;
  /** git clone arguments (after `git clone -q --bare`), given the destination and the wrapper's output file. */
  args(dest: string, cpuOut: string): string[];
  env: NodeJS.ProcessEnv;
  /** Server process whose CPU is sampled around each clone. */
  cpuPid?: number;
  /** Descendants of cpuPid that must be gone (reaped) before the "after" sample. */
  reapPattern?: RegExp;
  /** Clone runs upload-pack through the CPU-recording wrapper. */
  wrapped: boolean;
  /** Ratio target vs file:// (mirrorfarm's own transports). */
  target: boolean;
  /**
   * OpenSSH front end: the sshd listener the server started, whose reaped children (connection processes,
   * the session script, git) count as server CPU too, and the directory where the git wrapper records git's
   * own CPU (upload-pack and pack-objects).
   */
  sshdFrontEnd?: { listenerPid: () => number | undefined; gitCpuDir: string };
  /** Server CPU when it is more than cpuPid's own /proc/<pid>/stat (nginx + fcgiwrap). */
  readServerCpu?: () => ProcCpu;
  /** upload-pack CPU when it is not recorded by the -u wrapper (git http-backend's runs). */
  takeUploadPackCpu?: () => number | undefined;
}

interface Sample {
  variant: VariantId;
  round: number;
  wallMs: number;
  /** Server process CPU (utime+stime) delta, seconds. */
  selfCpu?: number;
  /** Server reaped-children CPU (cutime+cstime) delta, seconds. */
  childCpu?: number;
  /** CPU of git-upload-pack (+ pack-objects) from the wrapper, seconds. */
  uploadPackCpu?: number;
  /** Descendants still alive when the "after" sample was taken (should be empty). */
  unreaped: string[];
  /**
   * CPU used by processes outside this clone (other users of the machine) during
   * the clone, in cores on average: machine busy time minus the bench, the clone
   * and the server. A noise indicator: > 0.2 means the sample was contended.
   */
  foreignCores: number;
  /** Attempts made for this sample (more than 1 when earlier ones were contended). */
  attempts?: number;
  /** Time spent waiting for a quiet machine before the attempts. */
  quietWaitMs?: number;
}

/**
 * Wait (at most maxMs) until the machine's busy CPU over a 500 ms window is below
 * `cores` (the bench and the idle servers use next to none). Returns the time
 * waited and whether the machine did get quiet.
 */
async function waitForQuiet(maxMs: number, cores: number): Promise<{ waitedMs: number; quiet: boolean }> {
  if (maxMs <= 0) return { waitedMs: 0, quiet: true };
  const t = performance.now();
  while (true) {
    const b0 = readMachineBusy();
    const w0 = performance.now();
    await sleep(500);
    const used = (readMachineBusy() - b0) / clockTicks() / ((performance.now() - w0) / 1000);
    const waitedMs = performance.now() - t;
    if (used < cores) return { waitedMs, quiet: true };
    if (waitedMs >= maxMs) return { waitedMs, quiet: false };
  }
}

const WRAPPER = `#!/bin/bash
# Runs git-upload-pack and records this shell's /proc stat afterwards: its
# cutime+cstime is the CPU of upload-pack and the pack-objects it reaped.
out=$1
shift
git-upload-pack "$@"
rc=$?
IFS= read -r stat < /proc/$$/stat
printf '%s\\n' "$stat" > "$out"
exit $rc
`;

/** The OpenSSH front end's git goes through this (git.binary): upload-pack records its CPU like the wrapper above. */
const GIT_WRAPPER = (dir: string) => `#!/bin/bash
git "$@"
rc=$?
case " $* " in *" upload-pack "*) IFS= read -r stat < /proc/$$/stat; printf '%s\\n' "$stat" > ${dir}/$$.stat ;; esac
exit $rc
`;

/** Sums (and removes) what the git wrapper recorded since the last call. */
function gitCpuFrom(dir: string): number | undefined {
  let total: number | undefined;
  for (const name of existsSync(dir) ? readdirSync(dir) : []) {
    const cpu = uploadPackCpuFrom(join(dir, name));
    rmSync(join(dir, name), { force: true });
    if (cpu !== undefined) total = (total ?? 0) + cpu;
  }
  return total;
}

function uploadPackCpuFrom(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const stat = readFileSync(file, 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).trim().split(' ');
  const cutime = Number(rest[16 - 3]);
  const cstime = Number(rest[17 - 3]);
  if (!Number.isFinite(cutime) || !Number.isFinite(cstime)) return undefined;
  return (cutime + cstime) / clockTicks();
}

interface Ctx {
  cfg: Config;
  tmp: string;
  meta: RepoMeta;
  mainSha: string;
  seq: number;
}

async function cloneOnce(ctx: Ctx, v: Variant, round: number, verify: boolean): Promise<Sample> {
  const n = ++ctx.seq;
  const dest = join(ctx.tmp, 'clones', `${v.id}-${n}.git`);
  const cpuOut = join(ctx.tmp, 'cpu', `${v.id}-${n}.stat`);
  rmSync(dest, { recursive: true, force: true });
  const serverCpu = v.readServerCpu ?? ((): ProcCpu => readCpu(v.cpuPid as number));
  v.takeUploadPackCpu?.();
  const before = v.cpuPid !== undefined ? serverCpu() : undefined;
  const listener = v.sshdFrontEnd?.listenerPid();
  const listenerBefore = listener !== undefined ? readCpu(listener) : undefined;
  const selfBefore = readCpu(process.pid);
  const busyBefore = readMachineBusy();
  const busyT0 = performance.now();
  const r = await run('git', ['clone', '-q', '--bare', ...v.args(dest, cpuOut)], {
    env: { ...process.env, GIT_TERMINAL_PROMPT: '0', ...v.env },
    timeoutMs: ctx.cfg.cloneTimeoutMs,
    check: false,
  });
  if (r.code !== 0) {
    rmSync(dest, { recursive: true, force: true });
    throw new Error(`${v.label}: git clone failed (exit ${r.code})\n${tail(r.stderr)}`);
  }
  const sample: Sample = { variant: v.id, round, wallMs: r.ms, unreaped: [], foreignCores: 0 };
  let serverTicks = 0;
  if (v.cpuPid !== undefined && before) {
    sample.unreaped = await waitNoDescendants(v.cpuPid, v.reapPattern ?? /./, 10_000);
    const after = serverCpu();
    sample.selfCpu = (after.self - before.self) / clockTicks();
    sample.childCpu = (after.children - before.children) / clockTicks();
    serverTicks = after.self - before.self + (after.children - before.children);
  }
  if (listener !== undefined && listenerBefore) {
    // The connection's sshd process (and with it the session script and git) is reaped by the listener.
    for (let i = 0; i < 200 && descendants(listener).length > 0; i++) await sleep(50);
    const listenerAfter = readCpu(listener);
    const ticks = listenerAfter.children - listenerBefore.children + (listenerAfter.self - listenerBefore.self);
    sample.childCpu = (sample.childCpu ?? 0) + ticks / clockTicks();
    serverTicks += ticks;
    sample.uploadPackCpu = gitCpuFrom(v.sshdFrontEnd!.gitCpuDir);
  }
  const busy = readMachineBusy() - busyBefore;
  const busySeconds = (performance.now() - busyT0) / 1000;
  const selfAfter = readCpu(process.pid);
  const ours = selfAfter.self - selfBefore.self + (selfAfter.children - selfBefore.children) + serverTicks;
  sample.foreignCores = Math.max(0, (busy - ours) / clockTicks() / busySeconds);
  if (v.wrapped) sample.uploadPackCpu = v.takeUploadPackCpu ? v.takeUploadPackCpu() : uploadPackCpuFrom(cpuOut);
  if (verify) await verifyClone(ctx, v, dest);
  rmSync(dest, { recursive: true, force: true });
  rmSync(cpuOut, { force: true });
  await run('sync', [], { check: false, timeoutMs: 60_000 });
  return sample;
}

async function verifyClone(ctx: Ctx, v: Variant, dest: string): Promise<void> {
  const refs = await run('git', ['-C', dest, 'for-each-ref', '--format=%(refname)']);
  const count = refs.stdout.split('\n').filter((l) => l.length > 0).length;
  const main = (await run('git', ['-C', dest, 'rev-parse', 'refs/heads/main'], { check: false })).stdout.trim();
  if (count !== ctx.meta.refCount || main !== ctx.mainSha) {
    throw new Error(
      `${v.label}: clone is incomplete: ${count} refs (expected ${ctx.meta.refCount}), main=${main || '(missing)'} (expected ${ctx.mainSha})`,
    );
  }
}

// ---------------------------------------------------------------------------
// mirrorfarm setup

interface Mf {
  tls: Tls;
  password: string;
  home: string;
  server: ServerHandle;
  pushSeconds: number;
  refPushSeconds: number;
  serverRepo?: string;
  serverRepoShape?: RepoShape;
  startupRssKb: number;
  /** The MIRRORFARM_* settings it was started with (kept for the restart of the memory phase). */
  env?: NodeJS.ProcessEnv;
}

async function startMirrorfarm(cfg: Config, tmp: string, meta: RepoMeta, key: ClientKey, variant: { name: string; env?: NodeJS.ProcessEnv } = { name: 'mf' }): Promise<Mf> {
  const tls = await makeDevCa(root, join(tmp, `tls-${variant.name}`));
  const password = randomBytes(18).toString('base64url');
  const home = join(tmp, `${variant.name}-home`);
  const logPath = join(work, 'logs', variant.name === 'mf' ? 'clone-mirrorfarm-1.log' : `clone-mirrorfarm-${variant.name}.log`);
  log(`starting mirrorfarm serve${variant.env ? ` (${Object.entries(variant.env).filter(([k]) => k === 'MIRRORFARM_SSH_FRONTEND').map(([k, v]) => `${k}=${v}`).join(' ')})` : ''} ...`);
  const server = await startServer({ root, home, tls, password, logPath, timeoutMs: cfg.startTimeoutMs, ...(variant.env ? { env: variant.env } : {}) });
  onCleanup(() => server.stop());
  try {
    return { ...(await loadMirrorfarm(server, tls, password, home, meta, key, cfg)), ...(variant.env ? { env: variant.env } : {}) };
  } catch (e) {
    await server.stop();
    throw e;
  }
}

async function loadMirrorfarm(
  server: ServerHandle,
  tls: Tls,
  password: string,
  home: string,
  meta: RepoMeta,
  key: ClientKey,
  cfg: Config,
): Promise<Mf> {
  await sleep(500);
  const startupRssKb = readMem(server.pid).rssKb;
  log(`mirrorfarm listening at ${server.baseUrl} (ssh port ${server.sshPort}, pid ${server.pid}); creating project/repo/key`);
  await setupRepo(server, tls, password, key.publicKey);
  const url = `https://127.0.0.1:${server.httpPort}/scm/BENCH/big.git`;
  log(`pushing the repository (${mib(meta.packBytes)}, ${meta.refCount} refs) over HTTPS ...`);
  const push = await run('git', ['-C', meta.path, 'push', '-q', '--mirror', url], {
    env: { ...process.env, ...gitHttpsEnv(tls, password) },
    timeoutMs: cfg.cloneTimeoutMs,
    check: false,
  });
  if (push.code !== 0) {
    throw new MirrorfarmUnavailable(`git push --mirror ${url} failed (exit ${push.code})\n${tail(push.stderr)}`);
  }
  log(`push done in ${(push.ms / 1000).toFixed(1)} s; reference: the same push to an empty bare repo over file:// ...`);
  const refRepo = join(home, '..', 'push-reference.git');
  await run('git', ['init', '-q', '--bare', refRepo]);
  const refPush = await run('git', ['-C', meta.path, 'push', '-q', '--mirror', `file://${refRepo}`], { timeoutMs: cfg.cloneTimeoutMs });
  rmSync(refRepo, { recursive: true, force: true });
  log(`reference push done in ${(refPush.ms / 1000).toFixed(1)} s`);
  const mf: Mf = { tls, password, home, server, pushSeconds: push.ms / 1000, refPushSeconds: refPush.ms / 1000, startupRssKb };
  const serverRepo = findServerRepo(home);
  if (serverRepo) {
    mf.serverRepo = serverRepo;
    mf.serverRepoShape = await inspectRepo(serverRepo);
    const s = mf.serverRepoShape;
    log(`server's copy: ${serverRepo}: ${s.packCount} pack(s), ${mib(s.packBytes)}, ${s.looseObjects} loose, bitmap ${s.bitmap ? 'yes' : 'no'}`);
  } else {
    log(`could not locate the server's on-disk repository under ${home}; skipping that reference variant`);
  }
  return mf;
}

// ---------------------------------------------------------------------------
// Concurrency / RSS phase

interface RssResult {
  startupRssKb: number;
  startupHwmKb: number;
  peakSampledKb: number;
  hwmKb: number;
  samples: number;
  wallMs: number;
  clones: Array<{ kind: string; ms: number }>;
  /** With the OpenSSH front end: the peak of the summed VmRSS of its sshd and session processes (not git). */
  frontEndPeakKb?: number;
}

/** The server's own helper processes whose memory counts for a front end: sshd and its session scripts. */
function frontEndRssKb(serverPid: number): number {
  let kb = 0;
  for (const p of descendants(serverPid)) {
    if (p.comm.startsWith('git')) continue;
    try {
      kb += readMem(p.pid).rssKb;
    } catch {
      // exited meanwhile
    }
  }
  return kb;
}

async function rssPhase(ctx: Ctx, mf: Mf, key: ClientKey, variant: { name: string; sshUser: string }): Promise<RssResult> {
  log(`restarting mirrorfarm (${variant.name}) for the RSS measurement ...`);
  await mf.server.stop();
  const server = await startServer({
    root,
    home: mf.home,
    tls: mf.tls,
    password: mf.password,
    logPath: join(work, 'logs', `clone-mirrorfarm-${variant.name}-rss.log`),
    timeoutMs: ctx.cfg.startTimeoutMs,
    ...(mf.env ? { env: mf.env } : {}),
  });
  mf.server = server;
  onCleanup(() => server.stop());
  await sleep(1000);
  const startup = readMem(server.pid);
  let peak = startup.rssKb;
  let frontEndPeakKb = 0;
  let samples = 0;
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, readMem(server.pid).rssKb);
      if (mf.env) frontEndPeakKb = Math.max(frontEndPeakKb, frontEndRssKb(server.pid));
      samples++;
    } catch {
      // process gone; reported by the clones failing
    }
  }, 50);
  const n = ctx.cfg.concurrency;
  log(`${n} concurrent clones (${Math.ceil(n / 2)} HTTPS + ${Math.floor(n / 2)} SSH); sampling VmRSS every 50 ms ...`);
  const https = `https://127.0.0.1:${server.httpPort}/scm/BENCH/big.git`;
  const ssh = `ssh://${variant.sshUser}@127.0.0.1:${server.sshPort}/bench/big.git`;
  const t = performance.now();
  const clones = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const kind = i % 2 === 0 ? 'HTTPS' : 'SSH';
      const dest = join(ctx.tmp, 'clones', `concurrent-${i}.git`);
      rmSync(dest, { recursive: true, force: true });
      const env = kind === 'HTTPS' ? gitHttpsEnv(mf.tls, mf.password) : { GIT_SSH_COMMAND: gitSshCommand(key.keyPath, ctx.cfg.sshCipher) };
      const r = await run('git', ['clone', '-q', '--bare', kind === 'HTTPS' ? https : ssh, dest], {
        env: { ...process.env, GIT_TERMINAL_PROMPT: '0', ...env },
        timeoutMs: ctx.cfg.cloneTimeoutMs,
        check: false,
      });
      try {
        if (r.code !== 0) throw new Error(`concurrent ${kind} clone #${i} failed (exit ${r.code})\n${tail(r.stderr)}`);
        await verifyClone(ctx, { id: 'mf-https', label: `concurrent ${kind} clone #${i}` } as Variant, dest);
      } finally {
        rmSync(dest, { recursive: true, force: true });
      }
      return { kind, ms: r.ms };
    }),
  ).finally(() => clearInterval(timer));
  const wallMs = performance.now() - t;
  const end = readMem(server.pid);
  peak = Math.max(peak, end.rssKb);
  await run('sync', [], { check: false, timeoutMs: 60_000 });
  return {
    startupRssKb: startup.rssKb,
    startupHwmKb: startup.hwmKb,
    peakSampledKb: peak,
    hwmKb: end.hwmKb,
    samples,
    wallMs,
    clones,
    ...(mf.env ? { frontEndPeakKb } : {}),
  };
}

// ---------------------------------------------------------------------------
// Main

/** Newest mtime under dist/ (0 if absent): tells whether the server was rebuilt during the run. */
function distStamp(): number {
  let newest = 0;
  const walk = (dir: string): void => {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(dir, e);
      try {
        const st = statSync(p);
        if (st.isDirectory()) walk(p);
        else newest = Math.max(newest, st.mtimeMs);
      } catch {
        // vanished
      }
    }
  };
  walk(join(root, 'dist'));
  return newest;
}

function cleanStaleTmp(tmpRoot: string): void {
  if (!existsSync(tmpRoot)) return;
  // Only this bench's own per-run directories (named by pid) whose process is gone.
  for (const name of readdirSync(tmpRoot)) {
    if (!/^\d+$/.test(name) || existsSync(`/proc/${name}`)) continue;
    rmSync(join(tmpRoot, name), { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  installCleanup();
  const loadStart = loadavg();
  const distAtStart = distStamp();
  await initClockTicks();
  const cfg = readConfig();
  mkdirSync(join(work, 'logs'), { recursive: true });
  const tmpRoot = join(work, 'tmp');
  cleanStaleTmp(tmpRoot);
  const tmp = join(tmpRoot, String(process.pid));
  if (/\s/.test(tmp)) throw new Error(`work directory path must not contain whitespace: ${tmp}`);
  mkdirSync(join(tmp, 'clones'), { recursive: true });
  mkdirSync(join(tmp, 'cpu'), { recursive: true });
  removeAtExit(tmp);
  const wrapper = join(tmp, 'upload-pack-cpu.sh');
  writeFileSync(wrapper, WRAPPER, { mode: 0o755 });

  const params: GenParams = { seed: cfg.seed, targetMiB: cfg.repoMiB, refs: cfg.refs, commits: cfg.commits };
  const meta = await ensureRepo(work, params, log);
  const mainSha = (await run('git', ['-C', meta.path, 'rev-parse', 'refs/heads/main'])).stdout.trim();
  log(`repository: ${meta.path}: ${mib(meta.packBytes)} in ${meta.packCount} pack(s), ${meta.objectCount} objects, ${meta.refCount} refs`);

  const key = await ensureClientKey(join(work, 'ssh'));
  const sshd: Sshd = await startSshd(join(work, 'ssh'), key, join(work, 'logs', 'clone-sshd.log'));
  onCleanup(() => sshd.stop());
  log(`OpenSSH sshd listening on 127.0.0.1:${sshd.port} (pid ${sshd.pid})`);

  let mf: Mf | undefined;
  let mfError: string | undefined;
  if (cfg.skipMirrorfarm) {
    mfError = 'skipped (BENCH_SKIP_MIRRORFARM)';
  } else {
    try {
      mf = await startMirrorfarm(cfg, tmp, meta, key);
    } catch (e) {
      mfError = e instanceof Error ? e.message : String(e);
      process.stderr.write(
        `\n*** mirrorfarm part FAILED: the server could not be started or loaded; running the baselines only ***\n${mfError}\n\n`,
      );
    }
  }

  // The same server with OpenSSH's sshd as its SSH front end; git goes through a wrapper that records its CPU.
  let mfSshd: Mf | undefined;
  const gitCpuDir = join(tmp, 'git-cpu');
  if (mf && process.env.BENCH_SKIP_SSHD_FRONTEND !== '1') {
    mkdirSync(gitCpuDir, { recursive: true });
    const gitWrapper = join(tmp, 'git-cpu.sh');
    writeFileSync(gitWrapper, GIT_WRAPPER(gitCpuDir), { mode: 0o755 });
    try {
      mfSshd = await startMirrorfarm(cfg, tmp, meta, key, {
        name: 'mf-sshd',
        env: { MIRRORFARM_SSH_FRONTEND: 'openssh', MIRRORFARM_SSH_USER: userInfo().username, MIRRORFARM_GIT_BINARY: gitWrapper },
      });
      gitCpuFrom(gitCpuDir); // what loading it recorded
    } catch (e) {
      process.stderr.write(`\n*** mirrorfarm with the OpenSSH front end FAILED to start; leaving that variant out ***\n${e instanceof Error ? e.message : String(e)}\n\n`);
    }
  }
  /** The sshd listener of the OpenSSH front end: the child of the server's watchdog shell. */
  const sshdListener = (): number | undefined => {
    if (!mfSshd) return undefined;
    return descendants(mfSshd.server.pid).find((p) => p.comm === 'sshd' && descendants(mfSshd!.server.pid).some((q) => q.pid === p.ppid && q.comm === 'sh'))?.pid;
  };

  const up = (out: string): string => `/bin/bash ${wrapper} ${out}`;
  if (cfg.sshCipher && /[^A-Za-z0-9@.,-]/.test(cfg.sshCipher)) throw new Error(`BENCH_SSH_CIPHER=${cfg.sshCipher}: invalid cipher list`);
  const sshCmd = gitSshCommand(key.keyPath, cfg.sshCipher);
  const variants: Variant[] = [
    {
      id: 'file',
      label: 'file:// (git clone --no-local)',
      args: (d, o) => ['--no-local', '-u', up(o), `file://${meta.path}`, d],
      env: {},
      wrapped: true,
      target: false,
    },
    {
      id: 'openssh',
      label: 'OpenSSH + git-upload-pack',
      args: (d, o) => ['-u', up(o), `ssh://root@127.0.0.1:${sshd.port}${meta.path}`, d],
      env: { GIT_SSH_COMMAND: sshCmd },
      cpuPid: sshd.pid,
      reapPattern: /./,
      wrapped: true,
      target: false,
    },
  ];
  if (mf) {
    const m = mf;
    variants.push(
      {
        id: 'mf-https',
        label: 'mirrorfarm HTTPS',
        args: (d) => [`https://127.0.0.1:${m.server.httpPort}/scm/BENCH/big.git`, d],
        env: gitHttpsEnv(m.tls, m.password),
        cpuPid: m.server.pid,
        reapPattern: /^(git|sh|bash)/,
        wrapped: false,
        target: true,
      },
      {
        id: 'mf-ssh',
        label: 'mirrorfarm SSH',
        args: (d) => [`ssh://git@127.0.0.1:${m.server.sshPort}/bench/big.git`, d],
        env: { GIT_SSH_COMMAND: sshCmd },
        cpuPid: m.server.pid,
        reapPattern: /^(git|sh|bash)/,
        wrapped: false,
        target: true,
      },
    );
    if (mfSshd) {
      const m2 = mfSshd;
      variants.push({
        id: 'mf-sshd',
        label: 'mirrorfarm SSH (OpenSSH front end)',
        args: (d) => [`ssh://${userInfo().username}@127.0.0.1:${m2.server.sshPort}/bench/big.git`, d],
        env: { GIT_SSH_COMMAND: sshCmd },
        cpuPid: m2.server.pid,
        reapPattern: /^(git|bash|node)/,
        wrapped: false,
        target: false,
        sshdFrontEnd: { listenerPid: sshdListener, gitCpuDir },
      });
    }
    if (cfg.serverCopy && m.serverRepo) {
      const repo = m.serverRepo;
      variants.push({
        id: 'mf-file',
        label: "file:// of mirrorfarm's on-disk copy",
        args: (d, o) => ['--no-local', '-u', up(o), `file://${repo}`, d],
        env: {},
        wrapped: true,
        target: false,
      });
    }
  }

  // HTTPS reference: nginx + fcgiwrap + git http-backend on the generated repository, with mirrorfarm's
  // certificate (or a dev CA of its own when mirrorfarm is skipped).
  let gitHttp: GitHttpBackend | undefined;
  let nginxTls: string | undefined;
  if (cfg.nginx) {
    try {
      const tls = mf?.tls ?? (await makeDevCa(root, join(tmp, 'tls')));
      // nginx serves mirrorfarm's own copy when there is one, so that both HTTPS servers send the same pack
      // (the pushed copy has no bitmap, unlike the generated repository): the comparison is then of the
      // transports alone.
      gitHttp = await startGitHttpBackend(join(tmp, 'nginx'), mf?.serverRepo ?? meta.path, tls);
      log(`nginx serves ${mf?.serverRepo ? "mirrorfarm's copy" : 'the generated repository'}`);
      const g = gitHttp;
      onCleanup(() => g.stop());
      const env = { GIT_SSL_CAINFO: tls.ca, GIT_TERMINAL_PROMPT: '0' };
      const tlsOf = async (url: string, extra: NodeJS.ProcessEnv) => (await negotiatedTls(url, { ...env, ...extra })) ?? 'unknown';
      nginxTls = `nginx: ${await tlsOf(g.url, {})}${mf ? `, mirrorfarm: ${await tlsOf(`https://127.0.0.1:${mf.server.httpPort}/scm/BENCH/big.git`, gitHttpsEnv(mf.tls, mf.password))}` : ''}`;
      log(`nginx + fcgiwrap + git http-backend at ${g.url} (nginx pid ${g.nginxPid}, fcgiwrap pid ${g.fcgiwrapPid}); TLS ${nginxTls}`);
      variants.push({
        id: 'nginx',
        label: 'nginx + fcgiwrap + git http-backend',
        args: (d) => [g.url, d],
        env,
        cpuPid: g.fcgiwrapPid,
        reapPattern: /./,
        wrapped: true,
        target: false,
        readServerCpu: () => g.readCpu(),
        takeUploadPackCpu: () => g.takeUploadPackCpu(),
      });
    } catch (e) {
      log(`nginx + git http-backend reference unavailable: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  const ciphers: string[] = [`OpenSSH: ${(await negotiatedCipher(sshd.port, 'root', key, cfg.sshCipher)) ?? 'unknown'}`];
  if (mf) ciphers.push(`mirrorfarm: ${(await negotiatedCipher(mf.server.sshPort, 'git', key, cfg.sshCipher)) ?? 'unknown'}`);
  if (mfSshd) ciphers.push(`mirrorfarm (OpenSSH front end): ${(await negotiatedCipher(mfSshd.server.sshPort, userInfo().username, key, cfg.sshCipher)) ?? 'unknown'}`);
  log(`negotiated SSH ciphers: ${ciphers.join(', ')}`);

  const ctx: Ctx = { cfg, tmp, meta, mainSha, seq: 0 };
  const verified = new Set<VariantId>();
  if (cfg.warmup) {
    log(`warm-up: one untimed, verified clone per variant (${variants.map((v) => v.id).join(', ')})`);
    for (const v of variants) {
      await cloneOnce(ctx, v, -1, true);
      verified.add(v.id);
    }
  }
  const samples: Sample[] = [];
  for (let r = 0; r < cfg.runs; r++) {
    const order = variants.map((_, i) => variants[(i + r) % variants.length] as Variant);
    log(`round ${r + 1}/${cfg.runs}: ${order.map((v) => v.id).join(' -> ')}`);
    for (const v of order) {
      // A clone during which other users of the machine used more than
      // BENCH_NOISE_CORES is repeated (up to BENCH_RETRIES times) and the least
      // contended attempt is kept. Every attempt first waits for a quiet moment;
      // when the machine never gets quiet (a long job of someone else), retrying
      // is pointless and the sample is kept as it is (and counted as contended).
      let best: Sample | undefined;
      let waitedMs = 0;
      for (let attempt = 0; attempt <= cfg.retries; attempt++) {
        const wait = await waitForQuiet(cfg.quietWaitMs, cfg.noiseCores / 2);
        waitedMs += wait.waitedMs;
        const s = await cloneOnce(ctx, v, r, !verified.has(v.id));
        verified.add(v.id);
        const cpu = s.selfCpu !== undefined ? `  server self ${fmt(s.selfCpu)} s, children ${fmt(s.childCpu)} s` : '';
        const upc = s.uploadPackCpu !== undefined ? `  upload-pack ${fmt(s.uploadPackCpu)} s` : '';
        log(
          `  ${v.id.padEnd(9)} ${(s.wallMs / 1000).toFixed(2)} s${cpu}${upc}  others ${fmt(s.foreignCores)} cores` +
            `${attempt > 0 ? ` (attempt ${attempt + 1})` : ''}${wait.quiet ? '' : ' (machine busy)'}` +
            `${s.unreaped.length ? `  UNREAPED: ${s.unreaped.join(',')}` : ''}`,
        );
        if (!best || s.foreignCores < best.foreignCores) best = s;
        best.attempts = attempt + 1;
        best.quietWaitMs = waitedMs;
        if (s.foreignCores <= cfg.noiseCores || !wait.quiet) break;
      }
      if (best) samples.push(best);
    }
  }

  let seqHwmKb: number | undefined;
  let rss: RssResult | undefined;
  let rssSshd: RssResult | undefined;
  let rssError: string | undefined;
  if (mf) {
    seqHwmKb = readMem(mf.server.pid).hwmKb;
    try {
      rss = await rssPhase(ctx, mf, key, { name: 'builtin', sshUser: 'git' });
      // The same 4 clones against the server with the OpenSSH front end, whose SSH sessions live in sshd.
      if (mfSshd) rssSshd = await rssPhase(ctx, mfSshd, key, { name: 'openssh', sshUser: userInfo().username });
    } catch (e) {
      rssError = e instanceof Error ? e.message : String(e);
      log(`RSS phase failed: ${rssError}`);
    }
  }

  await runCleanups();

  const distAtEnd = distStamp();
  const rebuilt = mf !== undefined && distAtEnd !== distAtStart;
  if (rebuilt) log('WARNING: dist/ changed during the run (the server was rebuilt); the mirrorfarm figures may mix versions');
  const report = buildReport({ cfg, meta, samples, variants, mf, mfError, rss, rssSshd, rssError, seqHwmKb, ciphers, loadStart, rebuilt, distAtStart, nginxTls });
  process.stdout.write(report.text + '\n');
  writeFileSync(join(work, 'last-results.md'), report.markdown + '\n');
  log(`wrote ${join(work, 'last-results.md')}; total ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return mfError && !cfg.skipMirrorfarm ? 1 : rssError ? 1 : 0;
}

// ---------------------------------------------------------------------------
// Report

interface ReportInput {
  cfg: Config;
  meta: RepoMeta;
  samples: Sample[];
  variants: Variant[];
  mf: Mf | undefined;
  mfError: string | undefined;
  rss: RssResult | undefined;
  /** The same phase against the server with the OpenSSH front end. */
  rssSshd?: RssResult | undefined;
  rssError: string | undefined;
  seqHwmKb: number | undefined;
  ciphers: string[];
  /** TLS version and cipher git's libcurl negotiated with nginx and with mirrorfarm. */
  nginxTls?: string;
  loadStart: number[];
  rebuilt: boolean;
  distAtStart: number;
}

function buildReport(i: ReportInput): { text: string; markdown: string } {
  const { cfg, meta, samples, variants } = i;
  const byVariant = (id: VariantId): Sample[] => samples.filter((s) => s.variant === id);
  const fileByRound = new Map<number, number>();
  for (const s of byVariant('file')) fileByRound.set(s.round, s.wallMs);
  const ratiosOf = (id: VariantId): number[] =>
    byVariant(id)
      .map((s) => s.wallMs / (fileByRound.get(s.round) ?? NaN))
      .filter((x) => Number.isFinite(x));

  // (a) wall time
  const allIds: VariantId[] = ['mf-https', 'mf-ssh', 'mf-sshd', 'openssh', 'nginx', 'file', 'mf-file'];
  const labels: Record<VariantId, string> = {
    'mf-https': 'mirrorfarm HTTPS',
    'mf-ssh': 'mirrorfarm SSH',
    'mf-sshd': 'mirrorfarm SSH (OpenSSH front end)',
    openssh: 'OpenSSH + git-upload-pack',
    file: 'file:// (baseline)',
    'mf-file': "file:// of server's copy",
    nginx: 'nginx + fcgiwrap + git http-backend',
  };
  const present = new Set(variants.map((v) => v.id));
  const results: Array<{ name: string; ok: boolean | undefined }> = [];
  const aRows: Row[] = [];
  for (const id of allIds) {
    const isTarget = id === 'mf-https' || id === 'mf-ssh';
    if (!present.has(id)) {
      if (isTarget) {
        aRows.push([labels[id], 'n/a', 'n/a', 'n/a', 'n/a', `<= ${TARGET_RATIO.toFixed(2)}x`, 'n/a (server unavailable)']);
        results.push({ name: `${labels[id]} wall time`, ok: undefined });
      }
      continue;
    }
    const walls = byVariant(id).map((s) => s.wallMs / 1000);
    const ratios = ratiosOf(id);
    const mr = median(ratios);
    const ok = isTarget ? mr <= TARGET_RATIO : undefined;
    if (isTarget) results.push({ name: `${labels[id]} wall time`, ok });
    aRows.push([
      labels[id],
      fmt(median(walls)),
      `${fmt(min(walls))}-${fmt(max(walls))}`,
      id === 'file' ? '1.00x' : `${fmt(mr)}x (${ratios.map((x) => fmt(x)).join(', ')})`,
      fmt(median(byVariant(id).map((s) => s.foreignCores))),
      isTarget ? `<= ${TARGET_RATIO.toFixed(2)}x` : id === 'file' ? 'baseline' : 'reference',
      isTarget ? verdict(ok) : '',
    ]);
  }
  const aHead: Row = ['variant', 'median s', 'min-max s', 'ratio vs file:// (median; per round)', 'others\' load', 'target', 'result'];

  // (b) CPU
  const bRows: Row[] = [];
  for (const id of ['mf-https', 'mf-ssh'] as const) {
    if (!present.has(id)) {
      bRows.push([labels[id], 'n/a', 'n/a', 'n/a', `< ${pct(TARGET_OVERHEAD, 0)}`, 'n/a (server unavailable)']);
      results.push({ name: `${labels[id]} CPU overhead`, ok: undefined });
      continue;
    }
    const ss = byVariant(id);
    const self = median(ss.map((s) => s.selfCpu ?? NaN));
    const child = median(ss.map((s) => s.childCpu ?? NaN));
    const overhead = median(ss.map((s) => (s.selfCpu ?? NaN) / (s.childCpu ?? NaN)));
    const ok = overhead < TARGET_OVERHEAD;
    results.push({ name: `${labels[id]} CPU overhead`, ok });
    bRows.push([labels[id], fmt(self), fmt(child), pct(overhead), `< ${pct(TARGET_OVERHEAD, 0)}`, verdict(ok)]);
  }
  {
    const ss = byVariant('openssh');
    const up = median(ss.map((s) => s.uploadPackCpu ?? NaN));
    const sshdCpu = median(ss.map((s) => (s.childCpu ?? NaN) + (s.selfCpu ?? 0) - (s.uploadPackCpu ?? NaN)));
    const ov = median(ss.map((s) => ((s.childCpu ?? NaN) + (s.selfCpu ?? 0) - (s.uploadPackCpu ?? NaN)) / (s.uploadPackCpu ?? NaN)));
    bRows.push(['OpenSSH sshd (reference)', fmt(sshdCpu), fmt(up), pct(ov), 'reference', '']);
  }
  const beyondUploadPack = (s: Sample) => (s.childCpu ?? NaN) + (s.selfCpu ?? 0) - (s.uploadPackCpu ?? NaN);
  if (present.has('nginx')) {
    const ss = byVariant('nginx');
    const up = median(ss.map((s) => s.uploadPackCpu ?? NaN));
    const ov = median(ss.map((s) => beyondUploadPack(s) / (s.uploadPackCpu ?? NaN)));
    bRows.push(['nginx + fcgiwrap + http-backend (reference)', fmt(median(ss.map(beyondUploadPack))), fmt(up), pct(ov), 'reference', '']);
  }
  if (present.has('mf-sshd')) {
    const ss = byVariant('mf-sshd');
    const up = median(ss.map((s) => s.uploadPackCpu ?? NaN));
    bRows.push(['mirrorfarm with the OpenSSH front end (Node + sshd + session script)', fmt(median(ss.map(beyondUploadPack))), fmt(up), pct(median(ss.map((s) => beyondUploadPack(s) / (s.uploadPackCpu ?? NaN)))), 'see (d)', '']);
  }
  // (d) the OpenSSH front end against plain OpenSSH sshd, round by round
  const dRows: Row[] = [];
  if (present.has('mf-sshd')) {
    const sshdByRound = new Map(byVariant('openssh').map((s) => [s.round, s]));
    const pairs = byVariant('mf-sshd').flatMap((s) => {
      const ref = sshdByRound.get(s.round);
      return ref ? [{ wall: s.wallMs / ref.wallMs, cpu: beyondUploadPack(s) / beyondUploadPack(ref) }] : [];
    });
    const wall = median(pairs.map((p) => p.wall));
    const cpuRatio = median(pairs.map((p) => p.cpu));
    results.push({ name: 'OpenSSH front end wall time <= 1.02x sshd', ok: wall <= 1.02 }, { name: 'OpenSSH front end CPU beyond git <= 1.2x sshd', ok: cpuRatio <= 1.2 });
    dRows.push(['wall time', `${fmt(wall)}x (${pairs.map((p) => fmt(p.wall)).join(', ')})`, '<= 1.02x', verdict(wall <= 1.02)]);
    dRows.push(['server CPU beyond git', `${fmt(cpuRatio)}x (${pairs.map((p) => fmt(p.cpu)).join(', ')})`, '<= 1.2x', verdict(cpuRatio <= 1.2)]);
  }
  const dHead: Row = ['mirrorfarm (OpenSSH front end) / OpenSSH sshd', 'median (per round)', 'target', 'result'];
  const upFile = median(byVariant('file').map((s) => s.uploadPackCpu ?? NaN));
  bRows.push(['git upload-pack alone, file://', '-', fmt(upFile), '-', 'reference', '']);
  if (present.has('mf-file')) {
    const upMf = median(byVariant('mf-file').map((s) => s.uploadPackCpu ?? NaN));
    bRows.push(["git upload-pack alone, server's copy", '-', fmt(upMf), '-', 'reference', '']);
  }
  const bHead: Row = ['server', 'server-process CPU s', 'git children CPU s', 'overhead', 'target', 'result'];

  // (a') mirrorfarm HTTPS against nginx + git http-backend, round by round: what issue 11 asks of HTTPS.
  const vsRows: Row[] = [];
  if (present.has('nginx') && present.has('mf-https')) {
    const nginxByRound = new Map(byVariant('nginx').map((s) => [s.round, s]));
    const pairs = byVariant('mf-https').flatMap((s) => {
      const n = nginxByRound.get(s.round);
      return n ? [{ mf: s, ngx: n }] : [];
    });
    const walls = pairs.map((p) => p.mf.wallMs / p.ngx.wallMs);
    const wallOk = median(walls) <= TARGET_VS_NGINX;
    results.push({ name: `mirrorfarm HTTPS wall time vs nginx + git http-backend (<= ${TARGET_VS_NGINX}x)`, ok: wallOk });
    vsRows.push(['wall time, mirrorfarm / nginx', `${fmt(median(walls))}x`, walls.map((x) => fmt(x)).join(', '), `<= ${TARGET_VS_NGINX.toFixed(2)}x`, verdict(wallOk)]);
    const mfBeyond = median(pairs.map((p) => p.mf.selfCpu ?? NaN));
    const ngxBeyond = median(pairs.map((p) => beyondUploadPack(p.ngx)));
    const cpuOk = mfBeyond <= ngxBeyond;
    results.push({ name: 'mirrorfarm HTTPS server CPU beyond git <= nginx + fcgiwrap + http-backend', ok: cpuOk });
    vsRows.push([
      'server CPU beyond git s, mirrorfarm (Node) vs nginx + fcgiwrap + http-backend',
      `${fmt(mfBeyond)} vs ${fmt(ngxBeyond)} (${fmt(mfBeyond / ngxBeyond)}x)`,
      pairs.map((p) => `${fmt(p.mf.selfCpu)}/${fmt(beyondUploadPack(p.ngx))}`).join(', '),
      '<= 1.00x',
      verdict(cpuOk),
    ]);
  }
  const vsHead: Row = ['mirrorfarm HTTPS vs nginx + git http-backend', 'median', 'per round', 'target', 'result'];
  const unreaped = samples.filter((s) => s.unreaped.length > 0).length;
  const measured = samples.filter((s) => s.selfCpu !== undefined).length;

  // (c) RSS
  const cRows: Row[] = [];
  const kbMiB = (kb: number | undefined): string => (kb === undefined ? 'n/a' : `${(kb / 1024).toFixed(1)}`);
  if (i.rss) {
    const r = i.rss;
    const peak = Math.max(r.peakSampledKb, r.hwmKb);
    const ok = peak / 1024 < TARGET_RSS_MIB;
    results.push({ name: `server peak RSS (${cfg.concurrency} concurrent clones)`, ok });
    cRows.push(['startup VmRSS (1 s after listening)', kbMiB(r.startupRssKb), '', '']);
    cRows.push([`peak VmRSS sampled every 50 ms (${r.samples} samples)`, kbMiB(r.peakSampledKb), '', '']);
    cRows.push([`VmHWM after ${cfg.concurrency} concurrent clones`, kbMiB(r.hwmKb), `< ${TARGET_RSS_MIB} MiB`, verdict(ok)]);
    cRows.push(['VmHWM of the first server after the sequential rounds', kbMiB(i.seqHwmKb), 'reference', '']);
    cRows.push([
      `concurrent clones wall s (${r.clones.map((c) => c.kind).join(', ')})`,
      `${fmt(r.wallMs / 1000)} (${r.clones.map((c) => fmt(c.ms / 1000)).join(', ')})`,
      '',
      '',
    ]);
    if (i.rssSshd) {
      const o = i.rssSshd;
      const okSshd = Math.max(o.peakSampledKb, o.hwmKb) / 1024 < TARGET_RSS_MIB;
      results.push({ name: `server peak RSS, OpenSSH front end (${cfg.concurrency} concurrent clones)`, ok: okSshd });
      cRows.push([`OpenSSH front end: VmHWM after ${cfg.concurrency} concurrent clones`, kbMiB(o.hwmKb), `< ${TARGET_RSS_MIB} MiB`, verdict(okSshd)]);
      cRows.push(['OpenSSH front end: its sshd and session processes, peak of their summed VmRSS (shared pages counted each time)', kbMiB(o.frontEndPeakKb), 'reference', '']);
      cRows.push([`OpenSSH front end: concurrent clones wall s`, `${fmt(o.wallMs / 1000)} (${o.clones.map((c) => fmt(c.ms / 1000)).join(', ')})`, '', '']);
    }
  } else {
    results.push({ name: `server peak RSS (${cfg.concurrency} concurrent clones)`, ok: undefined });
    cRows.push([`VmHWM after ${cfg.concurrency} concurrent clones`, 'n/a', `< ${TARGET_RSS_MIB} MiB`, `n/a${i.rssError ? ' (failed)' : ''}`]);
  }
  const cHead: Row = ['server memory', 'MiB', 'target', 'result'];

  const cpu = cpus();
  const env: Array<[string, string]> = [
    ['command', commandLine()],
    ['date', `${new Date(t0).toISOString()} (start), ${((Date.now() - t0) / 1000).toFixed(0)} s`],
    ['machine', `${cpu.length} cores (${cpu[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM`],
    ['git', meta.gitVersion],
    ['node', process.version],
    ['load average', `${i.loadStart.map((x) => x.toFixed(2)).join(' ')} at start, ${loadavg().map((x) => x.toFixed(2)).join(' ')} at end (1/5/15 min)`],
    [
      'repository',
      `${mib(meta.packBytes)} in ${meta.packCount} pack (bitmap: ${meta.bitmap ? 'yes' : 'no'}), ${meta.objectCount} objects, ${meta.refCount} refs (${meta.branchCount} branches, ${meta.tagCount} tags), ${meta.params.commits} commits on main, seed ${meta.params.seed}`,
    ],
    ['rounds', `${cfg.runs} (variant order rotated per round${cfg.warmup ? ', after one untimed warm-up clone per variant' : ''})`],
    ['clone command', 'git clone -q --bare [--no-local] URL DEST (fresh DEST, deleted after each clone)'],
    ['ssh cipher', `${cfg.sshCipher ? `client forced to ${cfg.sshCipher}` : 'OpenSSH client defaults'}; negotiated ${i.ciphers.join(', ')}`],
    ...(i.nginxTls ? ([['https tls', `negotiated by git (libcurl): ${i.nginxTls}`]] as Array<[string, string]>) : []),
  ];
  if (i.mf) {
    env.push(['server build', `dist/ built ${new Date(i.distAtStart).toISOString()}${i.rebuilt ? ' (REBUILT during the run!)' : ''}`]);
    env.push([
      'mirrorfarm load',
      `git push --mirror over HTTPS: ${fmt(i.mf.pushSeconds, 1)} s (same push to an empty bare repo over file://: ${fmt(i.mf.refPushSeconds, 1)} s, ${fmt(i.mf.pushSeconds / i.mf.refPushSeconds)}x)`,
    ]);
    const s = i.mf.serverRepoShape;
    env.push([
      "server's on-disk copy",
      s ? `${i.mf.serverRepo}: ${s.packCount} pack(s), ${mib(s.packBytes)}, ${s.looseObjects} loose objects, bitmap: ${s.bitmap ? 'yes' : 'no'}` : 'not found',
    ]);
  } else {
    env.push(['mirrorfarm', `UNAVAILABLE: ${(i.mfError ?? '').split('\n')[0]}`]);
  }

  const notes: string[] = [
    "\"others' load\" = CPU used during the clone by processes that are neither the bench, the clone nor the server (other users of this shared machine), in cores on average (machine busy time from /proc/stat minus ours); the median per variant. Above ~0.2 the wall times are contended and the ratios are noisy; the CPU figures in (b) are much less affected.",
    `Before each timed clone the bench waits up to ${cfg.quietWaitMs / 1000} s for the machine to be quiet (busy < ${fmt(cfg.noiseCores / 2)} cores); a clone during which others used more than ${fmt(cfg.noiseCores)} cores is repeated up to ${cfg.retries} times, keeping the least contended attempt. Contended samples kept: ${samples.filter((s) => s.foreignCores > cfg.noiseCores).length} of ${samples.length}; retries: ${samples.reduce((n, s) => n + (s.attempts ?? 1) - 1, 0)}.`,
    `Ratios are per round (variant wall time / file:// wall time of the same round), median over ${cfg.runs} round(s).`,
    `Server CPU: /proc/<pid>/stat utime+stime of the server process (Node, all threads) and cutime+cstime (reaped children: git upload-pack and the pack-objects it reaps), before and after each clone; overhead = process / children. Children still alive at the "after" sample: ${unreaped} of ${measured} clones.`,
    'git upload-pack CPU for file:// and OpenSSH comes from a bash wrapper (-u) that records its own cutime+cstime after upload-pack exits; the OpenSSH row\'s "server-process CPU" is sshd\'s own share (listener + session processes minus upload-pack).',
    "The OpenSSH front end's server CPU is everything mirrorfarm's server and the sshd it runs used (Node's own and reaped children, and the sshd listener's reaped children: connection processes, the session script, git) minus git's own CPU, which a git wrapper (git.binary) records after upload-pack exits; git itself is the same in every SSH row.",
    `Clock ticks: ${clockTicks()} Hz (10 ms resolution at 100 Hz).`,
  ];
  if (i.rebuilt) notes.push('WARNING: dist/ was rebuilt during this run; the mirrorfarm figures may mix server versions. Rerun.');
  if (i.rssError) notes.push(`RSS phase failed: ${i.rssError.split('\n')[0]}`);
  if (i.mfError && !cfg.skipMirrorfarm) notes.push(`mirrorfarm failed: ${i.mfError.split('\n').slice(0, 3).join(' / ')}`);

  const summary = results.map((r) => `${verdict(r.ok)}  ${r.name}`);

  const text = [
    '',
    '== mirrorfarm clone benchmark ==',
    ...env.map(([k, v]) => `${k.padEnd(22)} ${v}`),
    '',
    '(a) full clone wall time',
    textTable(aHead, aRows),
    '',
    ...(vsRows.length ? ["(a') mirrorfarm HTTPS vs nginx + git http-backend (same rounds)", textTable(vsHead, vsRows), ''] : []),
    '(b) server CPU per clone (median)',
    textTable(bHead, bRows),
    '',
    '(c) server memory',
    textTable(cHead, cRows),
    '',
    ...(dRows.length ? ['(d) OpenSSH front end vs OpenSSH sshd + git-upload-pack', textTable(dHead, dRows), ''] : []),
    'targets:',
    ...summary.map((s) => `  ${s}`),
    '',
    ...notes.map((n) => `note: ${n}`),
  ].join('\n');

  const markdown = [
    '# mirrorfarm clone benchmark: last results',
    '',
    ...env.map(([k, v]) => `- **${k}**: ${k === 'command' ? '`' + v + '`' : v}`),
    '',
    '## (a) Full clone wall time',
    '',
    mdTable(aHead, aRows),
    '',
    ...(vsRows.length ? ["## (a') mirrorfarm HTTPS vs nginx + git http-backend (same rounds)", '', mdTable(vsHead, vsRows), ''] : []),
    '## (b) Server CPU per clone (median)',
    '',
    mdTable(bHead, bRows),
    '',
    '## (c) Server memory',
    '',
    mdTable(cHead, cRows),
    '',
    ...(dRows.length ? ['## (d) OpenSSH front end vs OpenSSH sshd + git-upload-pack', '', mdTable(dHead, dRows), ''] : []),
    '## Targets',
    '',
    ...summary.map((s) => `- ${s}`),
    '',
    '## Notes',
    '',
    ...notes.map((n) => `- ${n}`),
    '',
    '## Raw samples',
    '',
    mdTable(
      ['round', 'variant', 'wall s', 'server-process CPU s', 'children CPU s', 'upload-pack CPU s', "others' load (cores)", 'attempts', 'quiet wait s'],
      samples.map((s) => [
        String(s.round + 1),
        s.variant,
        fmt(s.wallMs / 1000, 3),
        fmt(s.selfCpu),
        fmt(s.childCpu),
        fmt(s.uploadPackCpu),
        fmt(s.foreignCores),
        String(s.attempts ?? 1),
        fmt((s.quietWaitMs ?? 0) / 1000, 1),
      ]),
    ),
  ].join('\n');
  return { text, markdown };
}

main().then(
  async (code) => {
    await runCleanups();
    process.exit(code);
  },
  async (e: unknown) => {
    process.stderr.write(`\nbench: FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    await runCleanups();
    process.exit(2);
  },
);
