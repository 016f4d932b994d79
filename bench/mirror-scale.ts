// Mirror scale and initial sync.
//
//   npm run build && node --import tsx bench/mirror-scale.ts
//   BENCH_INITIAL_REPOS=50 BENCH_SCALE_REPOS=200 BENCH_PASSES=2 node --import tsx bench/mirror-scale.ts   # smoke (~3 min)
//   BENCH_PHASES=initial node --import tsx bench/mirror-scale.ts     # only (c)
//   BENCH_PHASES=scale node --import tsx bench/mirror-scale.ts       # only (b), with empty repos at both sizes
//
// One primary (the built CLI, as the integration tests start it). Repositories are spread over BENCH_PROJECTS
// projects and created through REST (timed).
//
// (c) "initial" phase: BENCH_INITIAL_REPOS small repositories, each pushed over HTTPS with a shared 3-commit
//     history plus a commit of its own on main and a tag (a few KiB). Baseline: `git clone --mirror` of every one
//     of them in sequence over OpenSSH (a private sshd on a random loopback port serving the primary's bare
//     repositories straight from <primary home>/repos/<id>.git, as bench/lib/sshd.ts sets it up), once with a new
//     SSH connection per clone (the plain baseline) and once with ControlMaster multiplexing (what the mirror's
//     fetches use). Then mirror A starts, is authorized with ALL_PROJECTS, and the time from the accept to the
//     mirror logging SYNCHRONIZED is compared with the baseline: ratio mirror / baseline, target < 1.
// (b) "scale" phase: at BENCH_INITIAL_REPOS (mirror A; with empty repositories if the initial phase did not
//     run) and at BENCH_SCALE_REPOS (the rest created empty through REST; a fresh mirror B, authorized with
//     ALL_PROJECTS; time to SYNCHRONIZED = initial sync of all of them), the mirror is restarted with
//     MIRRORFARM_MIRROR_SNAPSHOT_INTERVAL_SECONDS=BENCH_SNAPSHOT_INTERVAL_S and BENCH_PASSES periodic snapshot
//     passes are timed from its log line "snapshot pass finished" ({seconds, repositories, verifiedOnDisk,
//     requested}); the requests the primary logged to /rest/mirroring/1.0/mirror/* during each pass
//     ([end - seconds, end]) are counted by URL. Targets: a pass <= 10 s at the large size, the same number of
//     pass requests at both sizes, mirror RSS <= 300 MB (VmRSS sampled every 200-500 ms, and VmHWM).
//
// Knobs: BENCH_PHASES (initial,scale), BENCH_INITIAL_REPOS (1000), BENCH_SCALE_REPOS (10000), BENCH_PROJECTS (10),
// BENCH_PASSES (3), BENCH_SNAPSHOT_INTERVAL_S (5; the server's minimum), BENCH_CREATE_CONCURRENCY (4),
// BENCH_PUSH_CONCURRENCY (2), BENCH_SYNC_TIMEOUT_S (7200), BENCH_SYNC_PARALLELISM (mirror.syncParallelism; the
// server default when unset), BENCH_BASELINE (1; 0 skips the OpenSSH clone baselines of the initial phase),
// BENCH_MIRROR_NODE_OPTIONS (NODE_OPTIONS for the mirror nodes, e.g. "--cpu-prof --cpu-prof-dir=DIR").
// The section "mirror-scale" of bench/.work/mirror-results.md is rewritten; raw figures go to
// bench/.work/logs/mirror-scale.json, server logs to bench/.work/logs/mirror-scale-*.log.
// Exit code 0 when everything ran (targets met or not), 1 on failure. Every process and temp dir is removed at
// exit, on error and on SIGINT/SIGTERM.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createProject, createRepo } from '../test/helpers/fixtures.js';
import { tempDir } from '../test/helpers/tmp.js';
import {
  LOG_DIR,
  LoadMeter,
  MemSampler,
  apiOk,
  authorize,
  cpuSeconds,
  dist,
  distChanged,
  distStamp,
  envInt,
  formatCounts,
  formatLoad,
  gitClientEnv,
  httpsRepoUrl,
  installCleanup,
  machineFacts,
  mb,
  mirrorApiRequests,
  mirrorGet,
  ms,
  pool,
  progress,
  restartNode,
  secs,
  shutdown,
  startMirrorNode,
  startPrimary,
  stopNode,
  sweepRoot,
  waitState,
  writeSection,
  type Load,
  type LogRecord,
  type MemSummary,
  type MirrorStatus,
  type Node,
} from './lib/mirror-harness.js';
import { run } from './lib/proc.js';
import { mdTable, textTable } from './lib/report.js';
import { ensureClientKey, sshOptions, startSshd } from './lib/sshd.js';

const BENCH = 'mirror-scale';
const PHASES = new Set((process.env.BENCH_PHASES ?? 'initial,scale').split(',').map((p) => p.trim()));
const N1 = envInt('BENCH_INITIAL_REPOS', 1000);
const N2 = envInt('BENCH_SCALE_REPOS', 10000);
const PROJECTS = Math.max(1, envInt('BENCH_PROJECTS', 10));
const PASSES = Math.max(1, envInt('BENCH_PASSES', 3));
const INTERVAL_S = Math.max(5, envInt('BENCH_SNAPSHOT_INTERVAL_S', 5));
const CREATE_CONCURRENCY = Math.max(1, envInt('BENCH_CREATE_CONCURRENCY', 4));
const PUSH_CONCURRENCY = Math.max(1, envInt('BENCH_PUSH_CONCURRENCY', 2));
const SYNC_TIMEOUT_MS = envInt('BENCH_SYNC_TIMEOUT_S', 7200) * 1000;
const PARALLELISM = process.env.BENCH_SYNC_PARALLELISM;
const BASELINE = envInt('BENCH_BASELINE', 1) !== 0;
const MIRROR_ENV: Record<string, string> = PARALLELISM ? { MIRRORFARM_MIRROR_SYNC_PARALLELISM: PARALLELISM } : {};

interface Repo {
  index: number;
  id: number;
  project: string;
  slug: string;
}

const ratioText = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const projectKey = (i: number) => `SC${i % PROJECTS}`;
const repoName = (i: number) => `r${String(i).padStart(5, '0')}`;

// ---------------------------------------------------------------------------------------------------------
// Setup on the primary

interface CreateTiming {
  count: number;
  seconds: number;
}

async function createRepos(primary: Node, from: number, to: number, repos: Repo[]): Promise<CreateTiming> {
  const indexes = Array.from({ length: Math.max(0, to - from) }, (_, k) => from + k);
  const started = performance.now();
  let done = 0;
  let lastReport = Date.now();
  await pool(indexes, CREATE_CONCURRENCY, async (i) => {
    const body = await createRepo(primary.server, projectKey(i), repoName(i));
    repos.push({ index: i, id: body.id, project: projectKey(i), slug: body.slug });
    done++;
    if (Date.now() - lastReport > 15_000) {
      lastReport = Date.now();
      progress(`  created ${done}/${indexes.length} repositories (${((performance.now() - started) / done).toFixed(1)} ms each)`);
    }
  });
  repos.sort((a, b) => a.index - b.index);
  return { count: indexes.length, seconds: (performance.now() - started) / 1000 };
}

/** Pushes a small history to each repository: 3 shared commits, one of its own on main, and a tag. */
async function pushContent(primary: Node, repos: Repo[]): Promise<CreateTiming> {
  const work = tempDir('mf-bench-scale-content-');
  sweepRoot(work);
  const home = join(work, 'home');
  mkdirSync(home);
  const env = gitClientEnv(primary.server, home);
  const wt = join(work, 'wt');
  await run('git', ['init', '-q', '-b', 'main', wt], { env });
  for (let c = 1; c <= 3; c++) {
    for (let f = 0; f < 4; f++) writeFileSync(join(wt, `file${f}.txt`), `${'line of text in a small repository\n'.repeat(20 * c)}file ${f} version ${c}\n`);
    await run('git', ['add', '-A'], { cwd: wt, env });
    await run('git', ['commit', '-q', '-m', `shared commit ${c}`], { cwd: wt, env });
  }
  const base = (await run('git', ['rev-parse', 'HEAD'], { cwd: wt, env })).stdout.trim();
  const tree = (await run('git', ['rev-parse', 'HEAD^{tree}'], { cwd: wt, env })).stdout.trim();
  const started = performance.now();
  let done = 0;
  let lastReport = Date.now();
  await pool(repos, PUSH_CONCURRENCY, async (r) => {
    const own = (await run('git', ['commit-tree', tree, '-p', base, '-m', `commit of ${r.project}/${r.slug}`], { cwd: wt, env })).stdout.trim();
    await run('git', ['push', '-q', httpsRepoUrl(primary.server, r.project, r.slug), `${own}:refs/heads/main`, `${base}:refs/tags/v1`], { cwd: wt, env, timeoutMs: 120_000 });
    done++;
    if (Date.now() - lastReport > 15_000) {
      lastReport = Date.now();
      progress(`  pushed ${done}/${repos.length} repositories (${((performance.now() - started) / done).toFixed(0)} ms each)`);
    }
  });
  return { count: repos.length, seconds: (performance.now() - started) / 1000 };
}

// ---------------------------------------------------------------------------------------------------------
// (c) baseline: git clone --mirror over OpenSSH, in sequence

interface CloneBaseline {
  mux: boolean;
  seconds: number;
  perClone: ReturnType<typeof dist>;
  load: Load;
}

async function cloneBaseline(primary: Node, repos: Repo[], mux: boolean): Promise<CloneBaseline> {
  const dir = tempDir('mf-bench-sshd-');
  sweepRoot(dir);
  const key = await ensureClientKey(dir);
  const sshd = await startSshd(join(dir, 'sshd'), key, join(LOG_DIR, `${BENCH}-sshd.log`));
  try {
    // The bench's client options, minus its ControlMaster/ControlPath pair (set per variant below).
    const base = sshOptions(key.keyPath);
    const cleaned: string[] = [];
    for (let k = 0; k < base.length; k++) {
      if (base[k] === '-o' && /^Control(Master|Path)=/.test(base[k + 1] ?? '')) k++;
      else cleaned.push(base[k]!);
    }
    const control = mux ? ['-o', 'ControlMaster=auto', '-o', `ControlPath=${dir}/cm-%C`, '-o', 'ControlPersist=120'] : ['-o', 'ControlMaster=no', '-o', 'ControlPath=none'];
    const home = join(dir, 'home');
    mkdirSync(home);
    const dest = join(dir, 'clones');
    mkdirSync(dest);
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: home,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_TERMINAL_PROMPT: '0',
      LC_ALL: 'C',
      GIT_SSH_COMMAND: ['ssh', ...cleaned, ...control].join(' '),
    };
    const times: number[] = [];
    const load = new LoadMeter([sshd.pid]);
    const started = performance.now();
    for (const r of repos) {
      const t0 = performance.now();
      await run('git', ['clone', '--mirror', '-q', `ssh://root@127.0.0.1:${sshd.port}${primary.server.home}/repos/${r.id}.git`, join(dest, `${r.id}.git`)], { env, timeoutMs: 120_000 });
      times.push(performance.now() - t0);
    }
    const seconds = (performance.now() - started) / 1000;
    const machine = load.stop();
    if (mux) await run('ssh', ['-o', `ControlPath=${dir}/cm-%C`, '-p', String(sshd.port), '-O', 'exit', 'root@127.0.0.1'], { check: false, env, timeoutMs: 10_000 });
    return { mux, seconds, perClone: dist(times), load: machine };
  } finally {
    await sshd.stop();
    await run('rm', ['-rf', dir], { check: false });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Mirror: initial sync and snapshot passes

interface InitialSync {
  mirror: Node;
  mirrorId: string;
  repos: number;
  /** accept returned -> mirror logged SYNCHRONIZED */
  seconds: number;
  /** first GET /mirror/snapshot answered -> SYNCHRONIZED */
  fromSnapshotSeconds: number;
  requests: Map<string, number>;
  mem: MemSummary;
  mirrorCpu: { self: number; children: number };
  primaryCpu: { self: number; children: number };
  status: MirrorStatus;
  load: Load;
}

function cpuDelta(a: { self: number; children: number }, b: { self: number; children: number }) {
  return { self: b.self - a.self, children: b.children - a.children };
}

async function initialSync(primary: Node, name: string, expected: number): Promise<InitialSync> {
  progress(`starting ${name} and authorizing it (ALL_PROJECTS); ${expected} repositories to sync`);
  const mirror = await startMirrorNode(BENCH, name, primary, MIRROR_ENV);
  const mem = new MemSampler(mirror.pid, 500);
  const { mirrorId, acceptedAt, from } = await authorize(primary, mirror);
  const mirrorCpu0 = cpuSeconds(mirror.pid);
  const primaryCpu0 = cpuSeconds(primary.pid);
  const load = new LoadMeter([primary.pid, mirror.pid]);
  const ticker = setInterval(() => {
    mirrorGet<MirrorStatus>(mirror, '/status')
      .then((s) => {
        const m = mem.current();
        progress(`  ${name}: ${s.state} ${s.progress.synced}/${s.progress.total} after ${((Date.now() - acceptedAt) / 1000).toFixed(0)} s, RSS ${mb(m.lastRssKb)} (peak ${mb(m.peakRssKb)})`);
      })
      .catch(() => undefined);
  }, 30_000);
  let synced: LogRecord;
  try {
    synced = await waitState(mirror, 'SYNCHRONIZED', SYNC_TIMEOUT_MS, from);
  } finally {
    clearInterval(ticker);
  }
  const machine = load.stop();
  const mirrorCpu = cpuDelta(mirrorCpu0, cpuSeconds(mirror.pid));
  const primaryCpu = cpuDelta(primaryCpu0, cpuSeconds(primary.pid));
  const status = await mirrorGet<MirrorStatus>(mirror, '/status');
  if (status.progress.total !== expected || status.progress.synced !== expected) {
    throw new Error(`${name} says SYNCHRONIZED with ${status.progress.synced}/${status.progress.total} repositories, expected ${expected}: ${JSON.stringify(status).slice(0, 2000)}`);
  }
  const snapshotRequest = primary.log.records.find(
    (r) => r.msg === 'request completed' && r.time >= acceptedAt && String(r.url).startsWith('/rest/mirroring/1.0/mirror/snapshot'),
  );
  const snapshotAt = snapshotRequest ? snapshotRequest.time : NaN;
  return {
    mirror,
    mirrorId,
    repos: expected,
    seconds: (synced.time - acceptedAt) / 1000,
    fromSnapshotSeconds: (synced.time - snapshotAt) / 1000,
    requests: mirrorApiRequests(primary, acceptedAt - 1000, synced.time + 100),
    mem: mem.stop(),
    mirrorCpu,
    primaryCpu,
    status,
    load: machine,
  };
}

/** Spot check: a few repositories advertise the same refs on the mirror as on the primary. */
async function spotCheck(primary: Node, mirror: Node, repos: Repo[], count = 3): Promise<void> {
  const home = tempDir('mf-bench-scale-ls-');
  const env = gitClientEnv(primary.server, home);
  const picks = [repos[0], repos[Math.floor(repos.length / 2)], repos[repos.length - 1]].slice(0, count).filter((r): r is Repo => !!r);
  for (const r of picks) {
    const a = (await run('git', ['ls-remote', '--symref', httpsRepoUrl(primary.server, r.project, r.slug)], { env })).stdout.trim();
    const b = (await run('git', ['ls-remote', '--symref', httpsRepoUrl(mirror.server, r.project, r.slug)], { env: { ...env, GIT_SSL_CAINFO: mirror.server.ca.caCert } })).stdout.trim();
    if (a !== b) throw new Error(`${r.project}/${r.slug} differs on the mirror:\nprimary:\n${a}\nmirror:\n${b}`);
  }
}

interface Pass {
  kind: 'startup' | 'periodic';
  seconds: number;
  repositories: number;
  verifiedOnDisk: number;
  requested: number;
  requests: Map<string, number>;
  /** Requests the pass itself made: the snapshot GET, and prepare/report traffic of repositories it found drifted. */
  passRequests: number;
}

interface PassesResult {
  mirror: Node;
  passes: Pass[];
  mem: MemSummary;
  cpuPerPeriodicPass: number;
  restartToFirstPassSeconds: number;
  load: Load;
}

async function measurePasses(primary: Node, mirrorIn: Node): Promise<PassesResult> {
  progress(`restarting ${mirrorIn.name} with a ${INTERVAL_S} s snapshot interval; timing ${PASSES} periodic passes after the startup pass`);
  const from0 = mirrorIn.log.records.length;
  const restarted = Date.now();
  const mirror = await restartNode(mirrorIn, { MIRRORFARM_MIRROR_SNAPSHOT_INTERVAL_SECONDS: String(INTERVAL_S) });
  const mem = new MemSampler(mirror.pid, 200);
  const passes: Pass[] = [];
  let from = from0;
  let cpuAtFirstPeriodic = { self: NaN, children: NaN };
  let firstEnd = NaN;
  let load: LoadMeter | undefined;
  for (let k = 0; k <= PASSES; k++) {
    const rec = await mirror.log.waitFor((r) => r.msg === 'snapshot pass finished', `snapshot pass ${k + 1} of ${mirror.name}`, (INTERVAL_S + 600) * 1000, from, mirror.alive);
    from = mirror.log.records.indexOf(rec) + 1;
    if (k === 0) {
      cpuAtFirstPeriodic = cpuSeconds(mirror.pid);
      firstEnd = rec.time;
      load = new LoadMeter([primary.pid, mirror.pid]);
    }
    const seconds = Number(rec.seconds);
    // Let the primary log requests that end just after the pass (a report of results it produced).
    await new Promise((r) => setTimeout(r, 50));
    const requests = mirrorApiRequests(primary, rec.time - seconds * 1000 - 20, rec.time + 20);
    const own = [...requests].filter(([k2]) => !k2.endsWith('/report')).reduce((a, [, n]) => a + n, 0);
    passes.push({
      kind: k === 0 ? 'startup' : 'periodic',
      seconds,
      repositories: Number(rec.repositories),
      verifiedOnDisk: Number(rec.verifiedOnDisk),
      requested: Number(rec.requested),
      requests,
      passRequests: own,
    });
    progress(`  pass ${k + 1} (${k === 0 ? 'startup' : 'periodic'}): ${secs(seconds, 2)}, ${String(rec.repositories)} repositories, ${String(rec.verifiedOnDisk)} verified on disk, ${String(rec.requested)} requested; primary saw ${formatCounts(requests)}`);
  }
  const cpu = cpuSeconds(mirror.pid);
  const cpuPerPeriodicPass = (cpu.self + cpu.children - cpuAtFirstPeriodic.self - cpuAtFirstPeriodic.children) / PASSES;
  return { mirror, passes, mem: mem.stop(), cpuPerPeriodicPass, restartToFirstPassSeconds: (firstEnd - restarted) / 1000, load: load!.stop() };
}

// ---------------------------------------------------------------------------------------------------------

interface ScalePoint {
  repos: number;
  sync: InitialSync;
  passes: PassesResult;
}

async function main(): Promise<void> {
  installCleanup();
  mkdirSync(LOG_DIR, { recursive: true });
  const facts = machineFacts();
  const stamp = distStamp();
  const doInitial = PHASES.has('initial');
  const doScale = PHASES.has('scale');
  if (!doInitial && !doScale) throw new Error(`BENCH_PHASES=${[...PHASES].join(',')}: expected initial and/or scale`);
  if (doScale && N2 < N1) throw new Error(`BENCH_SCALE_REPOS (${N2}) must be >= BENCH_INITIAL_REPOS (${N1})`);
  progress(`${BENCH}: phases ${[...PHASES].join(',')}; ${N1} then ${N2} repositories in ${PROJECTS} projects`);

  const primary = await startPrimary(BENCH);
  for (let p = 0; p < PROJECTS; p++) await createProject(primary.server, projectKey(p));
  const repos: Repo[] = [];
  progress(`creating ${N1} repositories through REST (${CREATE_CONCURRENCY} at a time)`);
  const create1 = await createRepos(primary, 0, N1, repos);
  progress(`  ${create1.count} created in ${secs(create1.seconds)} (${((create1.seconds * 1000) / create1.count).toFixed(1)} ms each)`);
  let pushed: CreateTiming | undefined;
  if (doInitial) {
    progress(`pushing a small history to each of them (${PUSH_CONCURRENCY} at a time)`);
    pushed = await pushContent(primary, repos);
    progress(`  pushed in ${secs(pushed.seconds)} (${((pushed.seconds * 1000) / pushed.count).toFixed(0)} ms each)`);
  }

  const out: string[] = [];
  const md: string[] = [];
  const json: Record<string, unknown> = { facts, config: { PHASES: [...PHASES], N1, N2, PROJECTS, PASSES, INTERVAL_S, CREATE_CONCURRENCY, PUSH_CONCURRENCY, PARALLELISM } };
  const setupRows: string[][] = [[`REST create, repositories 1-${N1}`, String(create1.count), secs(create1.seconds), ms((create1.seconds * 1000) / create1.count)]];
  if (pushed) setupRows.push([`git push over HTTPS (3 shared commits + 1 own + tag)`, String(pushed.count), secs(pushed.seconds), ms((pushed.seconds * 1000) / pushed.count)]);

  // (c)
  let mirrorA: Node | undefined;
  let syncA: InitialSync | undefined;
  if (doInitial) {
    const none: CloneBaseline = { mux: false, seconds: NaN, perClone: dist([]), load: { machine: NaN, ours: NaN, others: NaN } };
    let plain = none;
    let mux = none;
    if (BASELINE) {
      progress(`(c) baseline: git clone --mirror of ${N1} repositories in sequence over OpenSSH, a new connection each`);
      plain = await cloneBaseline(primary, repos, false);
      progress(`  ${secs(plain.seconds)} (${ms(plain.perClone.p50)} per clone, p50)`);
      progress(`(c) reference: the same with ssh ControlMaster multiplexing`);
      mux = await cloneBaseline(primary, repos, true);
      progress(`  ${secs(mux.seconds)} (${ms(mux.perClone.p50)} per clone, p50)`);
    }
    syncA = await initialSync(primary, 'mirror-a', N1);
    mirrorA = syncA.mirror;
    await spotCheck(primary, mirrorA, repos);
    const ratio = syncA.seconds / plain.seconds;
    const headers = ['variant', 'wall time', 'per repository', 'ratio to baseline'];
    const rows = [
      [`git clone --mirror, sequential, OpenSSH, new connection per clone (baseline)`, secs(plain.seconds), `${ms(plain.perClone.p50)} p50, ${ms(plain.perClone.p99)} p99`, BASELINE ? '1.00' : 'n/a'],
      [`same, ssh ControlMaster multiplexing (reference)`, secs(mux.seconds), `${ms(mux.perClone.p50)} p50, ${ms(mux.perClone.p99)} p99`, ratioText(mux.seconds / plain.seconds)],
      [`mirror: accept -> SYNCHRONIZED`, secs(syncA.seconds), ms((syncA.seconds * 1000) / N1), ratioText(ratio)],
      [`mirror: first snapshot answered -> SYNCHRONIZED`, secs(syncA.fromSnapshotSeconds), ms((syncA.fromSnapshotSeconds * 1000) / N1), ratioText(syncA.fromSnapshotSeconds / plain.seconds)],
    ];
    const lines = [
      `mirror CPU during the sync: node process ${secs(syncA.mirrorCpu.self)}, its reaped children (git, ssh) ${secs(syncA.mirrorCpu.children)}; primary: node ${secs(syncA.primaryCpu.self)}, children (git upload-pack) ${secs(syncA.primaryCpu.children)}`,
      `mirror API requests during the sync: ${formatCounts(syncA.requests)}`,
      `mirror RSS during the sync: peak ${mb(syncA.mem.peakRssKb)}, VmHWM ${mb(syncA.mem.hwmKb)}`,
      `machine during the mirror's sync: ${formatLoad(syncA.load)}; during the plain baseline: ${formatLoad(plain.load)}; during the multiplexed one: ${formatLoad(mux.load)}`,
      `target: mirror faster than the sequential OpenSSH clones: ${!BASELINE ? 'n/a (BENCH_BASELINE=0)' : ratio < 1 ? 'PASS' : 'MISS'} (ratio ${ratio.toFixed(2)})`,
    ];
    out.push(`(c) initial sync of ${N1} small repositories\n${textTable(headers, rows)}\n${lines.join('\n')}`);
    md.push(`### (c) Initial sync of ${N1} small repositories vs sequential \`git clone --mirror\` over OpenSSH`, '', mdTable(headers, rows), '', ...lines.map((l) => `- ${l}`), '');
    json.initial = { plain, mux, sync: { ...syncA, mirror: undefined, requests: Object.fromEntries(syncA.requests) } };
    if (BASELINE) progress(`(c) mirror ${secs(syncA.seconds)} vs baseline ${secs(plain.seconds)}: ratio ${ratio.toFixed(2)}`);
  }

  // (b)
  if (doScale) {
    const points: ScalePoint[] = [];
    if (!syncA) {
      syncA = await initialSync(primary, 'mirror-a', N1);
      mirrorA = syncA.mirror;
    }
    const passesA = await measurePasses(primary, mirrorA!);
    points.push({ repos: N1, sync: syncA, passes: passesA });
    await stopNode(passesA.mirror);
    await apiOk(primary.server, 'DELETE', `/rest/mirroring/1.0/mirrorServers/${syncA.mirrorId}`);

    if (N2 > N1) {
      progress(`creating ${N2 - N1} more (empty) repositories through REST`);
      const create2 = await createRepos(primary, N1, N2, repos);
      progress(`  ${create2.count} created in ${secs(create2.seconds)} (${((create2.seconds * 1000) / create2.count).toFixed(1)} ms each)`);
      setupRows.push([`REST create, repositories ${N1 + 1}-${N2}`, String(create2.count), secs(create2.seconds), ms((create2.seconds * 1000) / create2.count)]);
      const syncB = await initialSync(primary, 'mirror-b', N2);
      await spotCheck(primary, syncB.mirror, repos);
      const passesB = await measurePasses(primary, syncB.mirror);
      points.push({ repos: N2, sync: syncB, passes: passesB });
      await stopNode(passesB.mirror);
    }

    const headers = ['repositories', 'initial sync (accept -> SYNCHRONIZED)', 'startup pass', 'periodic passes', 'requests per periodic pass (pass-driven / all in window)', 'mirror RSS peak (sync / passes)', 'VmHWM'];
    const rows = points.map((p) => {
      const periodic = p.passes.passes.filter((x) => x.kind === 'periodic');
      const startup = p.passes.passes.find((x) => x.kind === 'startup');
      return [
        String(p.repos),
        `${secs(p.sync.seconds)} (${ms((p.sync.seconds * 1000) / p.repos)} each)`,
        startup ? secs(startup.seconds, 2) : 'n/a',
        periodic.map((x) => secs(x.seconds, 2)).join(', '),
        periodic.map((x) => `${x.passRequests} / ${[...x.requests.values()].reduce((a, b) => a + b, 0)}`).join(', '),
        `${mb(p.sync.mem.peakRssKb)} / ${mb(p.passes.mem.peakRssKb)}`,
        mb(Math.max(p.sync.mem.hwmKb, p.passes.mem.hwmKb)),
      ];
    });
    const detail: string[] = [];
    for (const p of points) {
      detail.push(
        `${p.repos} repositories: initial sync CPU: mirror node ${secs(p.sync.mirrorCpu.self)} + children ${secs(p.sync.mirrorCpu.children)}, primary node ${secs(p.sync.primaryCpu.self)} + children ${secs(p.sync.primaryCpu.children)}; machine: ${formatLoad(p.sync.load)}; mirror API requests during the initial sync: ${formatCounts(p.sync.requests)}`,
      );
      for (const x of p.passes.passes) {
        detail.push(`${p.repos} repositories, ${x.kind} pass: ${secs(x.seconds, 2)}, verified on disk ${x.verifiedOnDisk}, requested ${x.requested}; requests in the pass window: ${formatCounts(x.requests)}`);
      }
      detail.push(`${p.repos} repositories: mirror CPU per periodic pass (node + children) ${secs(p.passes.cpuPerPeriodicPass, 2)}; restart -> startup pass finished ${secs(p.passes.restartToFirstPassSeconds)}; machine during the periodic passes: ${formatLoad(p.passes.load)}`);
    }
    const last = points[points.length - 1]!;
    const firstPt = points[0]!;
    const lastPeriodic = last.passes.passes.filter((x) => x.kind === 'periodic');
    const worst = Math.max(...lastPeriodic.map((x) => x.seconds));
    const reqSet = (p: ScalePoint) => new Set(p.passes.passes.filter((x) => x.kind === 'periodic').map((x) => x.passRequests));
    const equal = points.length > 1 && [...reqSet(firstPt)].join() === [...reqSet(last)].join() && reqSet(last).size === 1;
    const peakRss = Math.max(...points.map((p) => Math.max(p.sync.mem.peakRssKb, p.passes.mem.peakRssKb, p.sync.mem.hwmKb, p.passes.mem.hwmKb)));
    const targets = [
      `target: one snapshot pass at ${last.repos} repositories <= 10 s: ${worst <= 10 ? 'PASS' : 'MISS'} (slowest periodic pass ${secs(worst, 2)})`,
      `target: requests per pass do not grow with the repository count: ${points.length < 2 ? 'n/a (one size)' : equal ? 'PASS' : 'MISS'} (pass-driven requests per periodic pass: ${points.map((p) => `${p.repos}: ${[...reqSet(p)].join('/')}`).join('; ')})`,
      `target: mirror RSS <= 300 MB: ${peakRss <= 300 * 1024 ? 'PASS' : 'MISS'} (highest VmRSS/VmHWM seen ${mb(peakRss)})`,
    ];
    out.push(`(b) scale\n${textTable(headers, rows)}\n${detail.join('\n')}\n${targets.join('\n')}`);
    md.push(
      `### (b) Scale: snapshot passes at ${points.map((p) => p.repos).join(' and ')} repositories`,
      '',
      `Snapshot interval ${INTERVAL_S} s for the timed passes. "Pass-driven" requests are the ones the pass makes (GET …/mirror/snapshot, plus prepare traffic for drifted repositories); "all in window" adds the node's periodic POST …/mirror/report heartbeats (every 5 s whatever the size) that fell inside the pass.`,
      '',
      mdTable(headers, rows),
      '',
      ...detail.map((l) => `- ${l}`),
      ...targets.map((l) => `- ${l}`),
      '',
    );
    json.scale = points.map((p) => ({
      repos: p.repos,
      sync: { ...p.sync, mirror: undefined, requests: Object.fromEntries(p.sync.requests) },
      passes: { ...p.passes, mirror: undefined, passes: p.passes.passes.map((x) => ({ ...x, requests: Object.fromEntries(x.requests) })) },
    }));
  } else if (mirrorA) {
    await stopNode(mirrorA);
  }

  const command = `${Object.entries({ BENCH_PHASES: [...PHASES].join(','), BENCH_INITIAL_REPOS: N1, BENCH_SCALE_REPOS: N2, BENCH_PROJECTS: PROJECTS, BENCH_PASSES: PASSES, ...(BASELINE ? {} : { BENCH_BASELINE: 0 }) })
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')}${PARALLELISM ? ` BENCH_SYNC_PARALLELISM=${PARALLELISM}` : ''} node --import tsx bench/mirror-scale.ts`;
  const setupHeaders = ['setup on the primary', 'count', 'wall time', 'per repository'];
  const rebuilt = distChanged(stamp);
  if (rebuilt) {
    out.push(rebuilt);
    md.push(`- ${rebuilt}`);
  }
  process.stdout.write(`\n${facts.join('\n')}\n\n${textTable(setupHeaders, setupRows)}\n\n${out.join('\n\n')}\n`);
  writeFileSync(join(LOG_DIR, `${BENCH}.json`), JSON.stringify(json, null, 1));
  const file = writeSection(
    BENCH,
    [`## Scale and initial sync`, '', ...facts.map((f) => `- ${f}`), `- command: \`${command}\``, '', mdTable(setupHeaders, setupRows), '', ...md].join('\n'),
  );
  progress(`results written to ${file}`);
}

main()
  .then(async () => {
    await shutdown();
    process.exit(0);
  })
  .catch(async (err: Error) => {
    process.stderr.write(`${BENCH} failed: ${err.stack ?? err.message}\n`);
    await shutdown();
    process.exit(1);
  });
