// Fan-out benchmark: one push fetched by 3 farms of 3 nodes. What the primary spends per push, and how long
// from the push acknowledged until all 9 nodes show it; a farm of 1 node measured in the same run is the
// baseline.
//
//   npm run bench:fanout                      # = npm run build && node --import tsx bench/fanout.ts
//   BENCH_PUSHES=20 npm run bench:fanout      # smoke run (~2 min)
//
// One primary and 4 farms on loopback (bench/lib/farms.ts: every node its own process of the built CLI, each
// farm its own identity key, host keys and nginx balancer): farms a, b and c (3 nodes each) mirror project FAN,
// farm "base" (1 node) mirrors project BASE; each project has one repository. BENCH_PUSHES rounds; each round
// pushes once to FAN and once to BASE (order alternating by round), each push a commit with a fresh
// BENCH_PUSH_KB KiB incompressible file over HTTPS. Per push:
//   - from the moment the push returns, every node that mirrors the project is watched directly until it
//     shows the new oid: its ref file (every BENCH_DISK_POLL_MS, no git process) and, with BENCH_POLL_MS > 0,
//     also HTTP info/refs (each poll runs git upload-pack on the node; 9 nodes polled every 10 ms run ~900 git
//     processes a second on this machine, so it is off by default). "Visible on every node" is the slowest
//     node's time;
//   - the primary's CPU from /proc/<pid>/stat around the push: its own (utime+stime) and its reaped children's
//     (cutime+cstime: the receive-pack of the push, its hooks, and one upload-pack per node fetching), read
//     before the push and once every node shows it and the primary has no live git child left;
//   - the primary's /metrics: bytes its SSH upload-pack sent, and fetches served, for the push.
// The primary's SSH front end is BENCH_SSH_FRONTEND (builtin or openssh; passed as MIRRORFARM_SSH_FRONTEND).
// If openssh is asked for and the server refuses it, or ignores it (no sshd runs under the primary), the
// script says so and exits 1.
//
// Knobs: BENCH_PUSHES (100), BENCH_WARMUP_PUSHES (5), BENCH_PUSH_KB (16), BENCH_POLL_MS (0), BENCH_DISK_POLL_MS
// (2), BENCH_VISIBLE_TIMEOUT_S (60), BENCH_SSH_FRONTEND (builtin). Results: stdout and the section "fanout" of
// bench/.work/mirror-results.md; samples in bench/.work/logs/fanout.json, server logs bench/.work/logs/fanout-*.log.
// Exit code 0 when everything ran (targets met or not), 1 on failure. Processes and temp dirs are removed at exit.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createProject, createRepo } from '../test/helpers/fixtures.js';
import { tempDir } from '../test/helpers/tmp.js';
import { commitPayload, primaryCounters, startFarm, stopAllBalancers, stopFarm, watchRefOnDisk, type Farm } from './lib/farms.js';
import {
  InfoRefsClient,
  LOG_DIR,
  LoadMeter,
  cpuSeconds,
  dist,
  distChanged,
  distStamp,
  envInt,
  formatLoad,
  gitClientEnv,
  httpsRepoUrl,
  installCleanup,
  machineFacts,
  ms,
  progress,
  shutdown,
  startPrimaryWithFrontend,
  writeSection,
  type Node,
} from './lib/mirror-harness.js';
import { descendants, run } from './lib/proc.js';
import { mdTable, textTable } from './lib/report.js';

const BENCH = 'fanout';
const PUSHES = envInt('BENCH_PUSHES', 100);
const WARMUP = envInt('BENCH_WARMUP_PUSHES', 5);
const PUSH_KB = envInt('BENCH_PUSH_KB', 16);
const POLL_MS = envInt('BENCH_POLL_MS', 0);
const DISK_POLL_MS = envInt('BENCH_DISK_POLL_MS', 2);
const VISIBLE_TIMEOUT_MS = envInt('BENCH_VISIBLE_TIMEOUT_S', 60) * 1000;
const FRONTEND = process.env.BENCH_SSH_FRONTEND || 'builtin';
const SLUG = 'fan';

interface Target {
  /** "3 farms of 3" or "1 farm of 1". */
  label: string;
  project: string;
  repoId: number;
  farms: Farm[];
  wt: string;
  env: NodeJS.ProcessEnv;
  url: string;
  clients: InfoRefsClient[];
  n: number;
}

interface Sample {
  target: string;
  round: number;
  pushMs: number;
  /** Push returned -> the slowest / fastest node shows the new tip (ref file, or HTTP when polled). */
  allMs: number;
  firstMs: number;
  /** Push returned -> the slowest node of each farm. */
  perFarmMs: number[];
  /** The primary's CPU seconds for the push: its own and its reaped git children's. */
  selfCpu: number;
  childCpu: number;
  bytesOut: number;
  fetches: number;
}

const nodesOf = (t: Target) => t.farms.flatMap((f) => f.nodes);

async function pollHttp(client: InfoRefsClient, project: string, oid: string): Promise<number> {
  const deadline = performance.now() + VISIBLE_TIMEOUT_MS;
  for (;;) {
    const sent = performance.now();
    const r = await client.get(project, SLUG);
    const received = performance.now();
    if (r.status === 200 && r.body.includes(`${oid} refs/heads/main`)) return received;
    if (received > deadline) throw new Error(`a node did not advertise ${oid} within ${VISIBLE_TIMEOUT_MS} ms (last answer HTTP ${r.status})`);
    const wait = sent + POLL_MS - performance.now();
    if (wait > 0) await sleep(wait);
  }
}

/** Waits until the primary has no live git (or hook shell) descendant, so that their CPU is in a cutime. */
async function primaryReaped(primary: Node): Promise<void> {
  const deadline = Date.now() + 10_000;
  // git and the shells of hooks and session scripts; not the OpenSSH front end's watchdog shells, which live as
  // long as the server (their child is sshd or its log reader).
  const busy = () => {
    const live = descendants(primary.pid);
    const watchdogs = new Set(live.filter((p) => p.comm.startsWith('sshd')).map((p) => p.ppid));
    const watchdogKids = new Set(live.filter((p) => watchdogs.has(p.ppid)).map((p) => p.pid));
    return live.some((p) => /^(git|sh|bash)$|^git-/.test(p.comm) && !watchdogs.has(p.pid) && !watchdogKids.has(p.pid) && !watchdogs.has(p.ppid));
  };
  while (busy() && Date.now() < deadline) await sleep(5);
}

/**
 * The primary's CPU seconds: its own and its reaped children's, plus, with the OpenSSH front end, every live
 * sshd under it (the listener's reaped sessions, and the multiplexed sessions the nodes keep open, which are
 * reaped only when they end), so that both front ends are measured alike.
 */
function primaryCpu(primary: Node): { self: number; children: number } {
  const own = cpuSeconds(primary.pid);
  let self = own.self;
  let children = own.children;
  for (const p of descendants(primary.pid)) {
    if (!p.comm.startsWith('sshd')) continue;
    const c = cpuSeconds(p.pid);
    if (Number.isFinite(c.self)) {
      self += c.self;
      children += c.children;
    }
  }
  return { self, children };
}

async function pushOnce(primary: Node, t: Target, round: number): Promise<Sample> {
  const oid = await commitPayload(t.wt, t.env, ++t.n, PUSH_KB);
  const counters0 = await primaryCounters(primary);
  await primaryReaped(primary);
  const cpu0 = primaryCpu(primary);
  const watched = t.farms.map((farm) => farm.nodes.map((node) => watchRefOnDisk(farm.gitDir(node, t.repoId), oid, DISK_POLL_MS, VISIBLE_TIMEOUT_MS)));
  watched.flat().forEach((w) => w.catch(() => undefined));
  const started = performance.now();
  const pushed = await run('git', ['push', '-q', t.url, `${oid}:refs/heads/main`], { cwd: t.wt, env: t.env, timeoutMs: 120_000, check: false });
  if (pushed.code !== 0) throw new Error(`git push to the primary failed: ${pushed.stderr}`);
  const returned = performance.now();
  const disk = await Promise.all(watched.map((w) => Promise.all(w)));
  const http = POLL_MS > 0 ? await Promise.all(t.clients.map((c) => pollHttp(c, t.project, oid))) : undefined;
  const seen = http ?? disk.flat();
  // Every node has fetched by now (it published); its upload-pack may be counted a moment after it exits.
  let counters1 = await primaryCounters(primary);
  for (let i = 0; i < 50 && counters1.fetches - counters0.fetches < nodesOf(t).length; i++) {
    await sleep(10);
    counters1 = await primaryCounters(primary);
  }
  await primaryReaped(primary);
  const cpu1 = primaryCpu(primary);
  return {
    target: t.label,
    round,
    pushMs: returned - started,
    allMs: Math.max(...seen) - returned,
    firstMs: Math.min(...seen) - returned,
    perFarmMs: disk.map((farm) => Math.max(...farm) - returned),
    selfCpu: cpu1.self - cpu0.self,
    childCpu: cpu1.children - cpu0.children,
    bytesOut: counters1.bytesOut - counters0.bytesOut,
    fetches: counters1.fetches - counters0.fetches,
  };
}

function median(xs: readonly number[]): number {
  return dist(xs).p50;
}

function kib(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(1)} KiB` : 'n/a';
}


async function main(): Promise<void> {
  installCleanup();
  mkdirSync(LOG_DIR, { recursive: true });
  const facts = machineFacts();
  const stamp = distStamp();
  const started = Date.now();
  progress(`${BENCH}: one primary (SSH front end ${FRONTEND}), 3 farms of 3 nodes on project FAN, 1 farm of 1 node on project BASE`);

  const primary = await startPrimaryWithFrontend(BENCH, FRONTEND);
  const repoIds = new Map<string, number>();
  for (const project of ['FAN', 'BASE']) {
    await createProject(primary.server, project);
    repoIds.set(project, (await createRepo(primary.server, project, SLUG)).id);
  }
  const farms: Farm[] = [];
  for (const [name, size, project] of [['fan-a', 3, 'FAN'], ['fan-b', 3, 'FAN'], ['fan-c', 3, 'FAN'], ['base', 1, 'BASE']] as const) {
    progress(`starting farm ${name} (${size} node${size === 1 ? '' : 's'}) behind nginx`);
    farms.push(await startFarm(BENCH, primary, { name, size, projectKeys: [project] }));
  }

  const targets: Target[] = [];
  for (const [label, project, fs] of [
    ['3 farms of 3 nodes', 'FAN', farms.filter((f) => f.name.startsWith('fan-'))],
    ['1 farm of 1 node (baseline)', 'BASE', farms.filter((f) => f.name === 'base')],
  ] as const) {
    const home = tempDir('mf-bench-fanout-git-');
    const env = gitClientEnv(primary.server, home);
    const wt = join(home, 'wt');
    await run('git', ['init', '-q', '-b', 'main', wt], { env });
    const t: Target = { label, project, repoId: repoIds.get(project)!, farms: [...fs], wt, env, url: httpsRepoUrl(primary.server, project, SLUG), clients: [], n: 0 };
    t.clients = nodesOf(t).map((n) => new InfoRefsClient(n));
    targets.push(t);
  }

  progress(`${WARMUP} warm-up pushes per project`);
  for (let w = 0; w < WARMUP; w++) for (const t of targets) await pushOnce(primary, t, -1);
  const load = new LoadMeter([primary.pid, ...farms.flatMap((f) => f.nodes.map((n) => n.pid))]);
  const samples: Sample[] = [];
  progress(`${PUSHES} rounds of one push per project, order alternating`);
  for (let round = 0; round < PUSHES; round++) {
    for (let k = 0; k < targets.length; k++) samples.push(await pushOnce(primary, targets[(round + k) % targets.length]!, round));
    if ((round + 1) % 20 === 0 || round + 1 === PUSHES) {
      progress(`  ${round + 1}/${PUSHES}: ${targets.map((t) => `${t.label} p50 ${ms(median(samples.filter((s) => s.target === t.label).map((s) => s.allMs)))}`).join(', ')}`);
    }
  }
  const machine = load.stop();
  targets.forEach((t) => t.clients.forEach((c) => c.close()));

  // Every node ends with the primary's refs/heads/main.
  const mismatches: string[] = [];
  for (const t of targets) {
    const want = (await run('git', ['ls-remote', t.url, 'refs/heads/main'], { env: t.env })).stdout.trim();
    for (const node of nodesOf(t)) {
      const got = (await run('git', ['ls-remote', httpsRepoUrl(node.server, t.project, SLUG), 'refs/heads/main'], { env: t.env })).stdout.trim();
      if (got !== want) mismatches.push(`${node.name}: ${got} != ${want}`);
    }
  }
  for (const farm of farms) await stopFarm(farm);

  const of = (t: Target) => samples.filter((s) => s.target === t.label);
  const base = of(targets[1]!);
  const baseAll = dist(base.map((s) => s.allMs));
  const baseCpu = median(base.map((s) => s.selfCpu + s.childCpu));
  const headers = ['mirrored by', 'nodes', 'visible on every node p50', 'p90', 'p99', 'max', 'p50 vs baseline', 'first node p50', 'primary CPU per push, s (self + git children)', 'vs baseline', 'primary sends per push (git)', 'fetches per push', 'git push p50'];
  const rows = targets.map((t) => {
    const s = of(t);
    const all = dist(s.map((x) => x.allMs));
    const self = median(s.map((x) => x.selfCpu));
    const child = median(s.map((x) => x.childCpu));
    const total = median(s.map((x) => x.selfCpu + x.childCpu));
    return [
      t.label,
      String(nodesOf(t).length),
      ms(all.p50),
      ms(all.p90),
      ms(all.p99),
      ms(all.max),
      `${(all.p50 / baseAll.p50).toFixed(2)}x`,
      ms(dist(s.map((x) => x.firstMs)).p50),
      `${total.toFixed(3)} (${self.toFixed(3)} + ${child.toFixed(3)})`,
      `${(total / baseCpu).toFixed(2)}x`,
      kib(median(s.map((x) => x.bytesOut))),
      `${median(s.map((x) => x.fetches))} (${Math.min(...s.map((x) => x.fetches))}-${Math.max(...s.map((x) => x.fetches))})`,
      ms(dist(s.map((x) => x.pushMs)).p50),
    ];
  });
  const fan = of(targets[0]!);
  const perFarm = targets[0]!.farms.map((f, i) => `${f.name} p50 ${ms(dist(fan.map((s) => s.perFarmMs[i]!)).p50)} / p99 ${ms(dist(fan.map((s) => s.perFarmMs[i]!)).p99)}`);
  const extraNodes = nodesOf(targets[0]!).length - nodesOf(targets[1]!).length;
  const fanCpu = median(fan.map((s) => s.selfCpu + s.childCpu));
  const lines = [
    `pushes: ${PUSHES} per project (+${WARMUP} warm-up), each a commit with a new ${PUSH_KB} KiB incompressible file over HTTPS; "visible" = ${POLL_MS > 0 ? `HTTP info/refs of each node (polled every ${POLL_MS} ms)` : `the node's ref file (read every ${DISK_POLL_MS} ms)`}`,
    `primary's SSH front end: ${FRONTEND}`,
    `per farm of the 3 (slowest node of the farm): ${perFarm.join('; ')}`,
    `primary CPU per additional fetching node: ${(((fanCpu - baseCpu) / extraNodes) * 1000).toFixed(1)} ms ((median of 9-node pushes - median of 1-node pushes) / ${extraNodes}); /proc CPU times have 10 ms resolution, so per-push figures are medians of coarse samples`,
    `machine during the pushes: ${formatLoad(machine)}`,
    `every node ends with the primary's refs/heads/main: ${mismatches.length === 0 ? 'yes' : `NO (${mismatches.join('; ')})`}`,
  ];
  if (mismatches.length) throw new Error(`nodes differ from the primary: ${mismatches.join('; ')}`);

  const rebuilt = distChanged(stamp);
  const command = `BENCH_PUSHES=${PUSHES} BENCH_POLL_MS=${POLL_MS} BENCH_PUSH_KB=${PUSH_KB} BENCH_SSH_FRONTEND=${FRONTEND} node --import tsx bench/fanout.ts`;
  const duration = `run time: ${((Date.now() - started) / 60_000).toFixed(1)} min`;
  process.stdout.write(`\n${facts.join('\n')}\n${duration}\n\n${textTable(headers, rows)}\n\n${lines.join('\n')}\n${rebuilt ?? ''}\n`);
  writeFileSync(join(LOG_DIR, `${BENCH}.json`), JSON.stringify({ facts, samples }, null, 1));
  const file = writeSection(
    BENCH,
    ['## Fan-out: one push fetched by 3 farms of 3 nodes', '', ...facts.map((f) => `- ${f}`), `- command: \`${command}\``, `- ${duration}`, '', mdTable(headers, rows), '', ...lines.map((l) => `- ${l}`), ...(rebuilt ? [`- ${rebuilt}`] : [])].join('\n'),
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
    await stopAllBalancers();
    await shutdown();
    process.exit(1);
  });
