// Mirror farm benchmark: sync latency on every node, what the primary sends per push, and concurrent clones
// through the balancer, for farms of 1, 2 and 3 nodes measured side by side in one run.
//
//   npm run bench:farm                                   # = npm run build && node --import tsx bench/farm.ts
//   BENCH_PUSHES=20 BENCH_CLONE_ROUNDS=1 npm run bench:farm   # smoke run (~3 min once the repository is cached)
//
// One primary and one farm per size in BENCH_SIZES (default 1,2,3), all on loopback: every node is its own
// process of the built CLI (test/helpers/server.ts), the nodes of a farm share one identity key and one SSH host
// key set, and each farm has its own nginx (src/farm/balancer.ts, the one `mirrorfarm demo --nodes N` runs) with
// the readiness rotation (src/farm/rotation.ts) in front. Farm n carries project LATn (one repository) and, for
// the clone phase, the sizes 1 and 3 also carry BIG (a generated ~BENCH_CLONE_MB MiB repository).
//
// Phase "latency" (BENCH_PUSHES rounds; each round pushes once to every farm's repository, the farms in an order
// rotated by one per round, so that the farms share the machine's state and noise alike):
//   - a commit with a fresh BENCH_PUSH_KB KiB incompressible file is pushed over HTTPS to the primary (timed);
//   - from the moment the push returns, every node of that farm is polled directly (not through the balancer)
//     until it shows the new oid: HTTP (v0 info/refs, what `git ls-remote` reads, every BENCH_POLL_MS) and disk
//     (the ref file, every BENCH_DISK_POLL_MS). "Visible on every node" is the slowest node's time.
//   - the primary's /metrics is read before the push and once every node has fetched: the difference of
//     mirrorfarm_git_bytes_total{transport="ssh",service="upload-pack"} is what the primary's git sent (out) and
//     received (in) for that push, and of mirrorfarm_git_operations_total how many fetches it served.
//   Reported per farm size, with the farm of 1 of the same run as the baseline (ratios).
// Phase "clones" (BENCH_CLONE_ROUNDS rounds; variants in an order rotated per round): BENCH_CLONES concurrent
// `git clone --bare` of BIG through the balancer of the farm of 1 and of 3, over HTTPS (v2) and over SSH, and,
// as a reference, the same clones straight to the single node (no nginx). Wall time of the whole batch,
// per-clone times, failures (exit code or a wrong tip), CPU of the nodes and of nginx, and how busy the machine
// was.
//
// Knobs: BENCH_SIZES (1,2,3), BENCH_PHASES (latency,clones), BENCH_PUSHES (200), BENCH_WARMUP_PUSHES (5),
// BENCH_PUSH_KB (16), BENCH_POLL_MS (10), BENCH_DISK_POLL_MS (2), BENCH_VISIBLE_TIMEOUT_S (60), BENCH_CLONE_MB (50),
// BENCH_CLONES (16), BENCH_CLONE_ROUNDS (2). BENCH_POLL_MS=0 watches only the ref files (no HTTP polls, which make
// each node run git 100 times a second), to show what the measurement itself costs. The section "farm" of bench/.work/mirror-results.md is rewritten;
// samples go to bench/.work/logs/farm.json, server logs to bench/.work/logs/farm-*.log. Exit code 0 when
// everything ran (targets met or not), 1 on failure. Processes (nodes, nginx, git) and temp dirs are removed at
// exit, on error and on SIGINT/SIGTERM.
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NginxBalancer } from '../src/farm/balancer.js';
import { addSshKey, createProject, createRepo } from '../test/helpers/fixtures.js';
import { sshKeyPair, type SshKeyPair } from '../test/helpers/server.js';
import { tempDir } from '../test/helpers/tmp.js';
import { commitPayload, primaryCounters, startFarm, stopAllBalancers, stopFarm, watchRefOnDisk, type Farm } from './lib/farms.js';
import { defaultCommits, ensureRepo } from './lib/generate.js';
import {
  InfoRefsClient,
  LOG_DIR,
  LoadMeter,
  WORK,
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
  pool,
  progress,
  secs,
  shutdown,
  startPrimary,
  writeSection,
  type Load,
  type Node,
} from './lib/mirror-harness.js';
import { run } from './lib/proc.js';
import { mdTable, textTable } from './lib/report.js';

const BENCH = 'farm';
const SIZES = (process.env.BENCH_SIZES ?? '1,2,3').split(',').map((s) => Number(s.trim())).filter((n) => Number.isInteger(n) && n > 0);
const PHASES = new Set((process.env.BENCH_PHASES ?? 'latency,clones').split(',').map((s) => s.trim()));
const PUSHES = envInt('BENCH_PUSHES', 200);
const WARMUP = envInt('BENCH_WARMUP_PUSHES', 5);
const PUSH_KB = envInt('BENCH_PUSH_KB', 16);
const POLL_MS = envInt('BENCH_POLL_MS', 10);
const DISK_POLL_MS = envInt('BENCH_DISK_POLL_MS', 2);
const VISIBLE_TIMEOUT_MS = envInt('BENCH_VISIBLE_TIMEOUT_S', 60) * 1000;
const CLONE_MB = envInt('BENCH_CLONE_MB', 50);
const CLONES = envInt('BENCH_CLONES', 16);
const CLONE_ROUNDS = envInt('BENCH_CLONE_ROUNDS', 2);
const SLUG = 'latency';
const BIG = { project: 'BIG', slug: 'big' };
const CLONE_SIZES = [1, 3].filter((n) => SIZES.includes(n));

// ---------------------------------------------------------------------------------------------------------
// Phase: latency and bytes per push

interface PushSample {
  size: number;
  round: number;
  pushMs: number;
  /** Push return -> the slowest / fastest node advertises the new tip (HTTP answer received). */
  allMs: number;
  firstMs: number;
  /** Push return -> the ref file shows it on the slowest node. */
  diskAllMs: number;
  bytesOut: number;
  bytesIn: number;
  fetches: number;
}

interface LatencyFarm {
  farm: Farm;
  repoId: number;
  wt: string;
  env: NodeJS.ProcessEnv;
  url: string;
  clients: InfoRefsClient[];
  n: number;
}

async function pollHttp(client: InfoRefsClient, project: string, oid: string): Promise<number> {
  const deadline = performance.now() + VISIBLE_TIMEOUT_MS;
  const want = `${oid} refs/heads/main`;
  for (;;) {
    const sent = performance.now();
    const r = await client.get(project, SLUG);
    const received = performance.now();
    if (r.status === 200 && r.body.includes(want)) return received;
    if (received > deadline) throw new Error(`a node did not advertise ${oid} within ${VISIBLE_TIMEOUT_MS} ms (last answer HTTP ${r.status})`);
    const wait = sent + POLL_MS - performance.now();
    if (wait > 0) await sleep(wait);
  }
}

function commit(lf: LatencyFarm): Promise<string> {
  return commitPayload(lf.wt, lf.env, ++lf.n, PUSH_KB);
}

async function pushOnce(primary: Node, lf: LatencyFarm, round: number): Promise<PushSample> {
  const oid = await commit(lf);
  const { farm } = lf;
  const before = await primaryCounters(primary);
  const disks = farm.nodes.map((node) => watchRefOnDisk(farm.gitDir(node, lf.repoId), oid, DISK_POLL_MS, VISIBLE_TIMEOUT_MS));
  disks.forEach((d) => d.catch(() => undefined));
  const started = performance.now();
  const pushed = await run('git', ['push', '-q', lf.url, `${oid}:refs/heads/main`], { cwd: lf.wt, env: lf.env, timeoutMs: 120_000 });
  if (pushed.code !== 0) throw new Error(`git push to the primary failed: ${pushed.stderr}`);
  const returned = performance.now();
  // BENCH_POLL_MS=0: the ref files alone (no git process per poll on the nodes), to see what polling costs.
  const diskSeen = POLL_MS > 0 ? undefined : await Promise.all(disks);
  const seen = diskSeen ?? (await Promise.all(lf.clients.map((c) => pollHttp(c, projectOf(farm), oid))));
  const diskAll = diskSeen ?? (await Promise.all(disks));
  // Every node has fetched by now (it published); its upload-pack may be counted a moment after it exits.
  let after = await primaryCounters(primary);
  for (let i = 0; i < 50 && after.fetches - before.fetches < farm.size; i++) {
    await sleep(10);
    after = await primaryCounters(primary);
  }
  return {
    size: farm.size,
    round,
    pushMs: returned - started,
    allMs: Math.max(...seen) - returned,
    firstMs: Math.min(...seen) - returned,
    diskAllMs: Math.max(...diskAll) - returned,
    bytesOut: after.bytesOut - before.bytesOut,
    bytesIn: after.bytesIn - before.bytesIn,
    fetches: after.fetches - before.fetches,
  };
}

async function latencyPhase(primary: Node, farms: Farm[]): Promise<{ lines: string[]; table: { headers: string[]; rows: string[][] }; samples: PushSample[] }> {
  const setups: LatencyFarm[] = [];
  // Farm of n carries project LATn.
  for (const farm of farms) {
    const home = tempDir('mf-bench-farm-git-');
    const env = gitClientEnv(primary.server, home);
    const wt = join(home, 'wt');
    await run('git', ['init', '-q', '-b', 'main', wt], { env });
    const repoId = repoIds.get(projectOf(farm))!;
    setups.push({ farm, repoId, wt, env, url: httpsRepoUrl(primary.server, projectOf(farm), SLUG), clients: farm.nodes.map((n) => new InfoRefsClient(n)), n: 0 });
  }
  progress(`latency: ${WARMUP} warm-up pushes per farm`);
  for (let w = 0; w < WARMUP; w++) for (const lf of setups) await pushOnce(primary, lf, -1);

  const pids = [primary.pid, ...farms.flatMap((f) => f.nodes.map((n) => n.pid))];
  const changes0 = new Map(rotationChanges);
  const load = new LoadMeter(pids);
  const samples: PushSample[] = [];
  progress(`latency: ${PUSHES} rounds of one push per farm (${farms.map((f) => f.size).join(', ')} nodes), order rotated each round`);
  for (let round = 0; round < PUSHES; round++) {
    for (let k = 0; k < setups.length; k++) {
      const lf = setups[(round + k) % setups.length]!;
      samples.push(await pushOnce(primary, lf, round));
    }
    if ((round + 1) % 25 === 0 || round + 1 === PUSHES) {
      progress(`  ${round + 1}/${PUSHES}: ${farms.map((f) => `farm of ${f.size} p50 ${ms(dist(samples.filter((s) => s.size === f.size).map((s) => s.allMs)).p50)}`).join(', ')}`);
    }
  }
  const machine = load.stop();
  setups.forEach((lf) => lf.clients.forEach((c) => c.close()));

  // Every node of every farm ends with the primary's refs.
  const mismatches: string[] = [];
  for (const lf of setups) {
    const want = (await run('git', ['ls-remote', lf.url, 'refs/heads/main'], { env: lf.env })).stdout.trim();
    for (const node of lf.farm.nodes) {
      const got = (await run('git', ['ls-remote', httpsRepoUrl(node.server, projectOf(lf.farm), SLUG), 'refs/heads/main'], { env: lf.env })).stdout.trim();
      if (got !== want) mismatches.push(`${node.name}: ${got} != ${want}`);
    }
  }

  const base = samples.filter((s) => s.size === farms[0]!.size);
  const baseAll = dist(base.map((s) => s.allMs));
  const baseBytes = median(base.map((s) => s.bytesOut));
  const headers = ['farm', 'visible on every node p50', 'p90', 'p99', 'max', 'p50 vs 1 node', 'first node p50', 'every node, disk p50 / p99', 'git push p50', 'primary sends per push (git, median)', 'vs 1 node', 'fetches per push', 'primary receives per push'];
  const rows = farms.map((f) => {
    const s = samples.filter((x) => x.size === f.size);
    const all = dist(s.map((x) => x.allMs));
    const disk = dist(s.map((x) => x.diskAllMs));
    const out = median(s.map((x) => x.bytesOut));
    return [
      `${f.size} node${f.size === 1 ? '' : 's'}`,
      ms(all.p50),
      ms(all.p90),
      ms(all.p99),
      ms(all.max),
      `${(all.p50 / baseAll.p50).toFixed(2)}x`,
      ms(dist(s.map((x) => x.firstMs)).p50),
      `${ms(disk.p50)} / ${ms(disk.p99)}`,
      ms(dist(s.map((x) => x.pushMs)).p50),
      kib(out),
      `${(out / baseBytes).toFixed(2)}x`,
      `${median(s.map((x) => x.fetches))} (${Math.min(...s.map((x) => x.fetches))}-${Math.max(...s.map((x) => x.fetches))})`,
      kib(median(s.map((x) => x.bytesIn))),
    ];
  });
  const three = samples.filter((s) => s.size === 3);
  const lines: string[] = [];
  if (three.length) {
    const d = dist(three.map((s) => s.allMs));
    lines.push(`targets (farm of 3, push acknowledged -> visible on every node): p50 <= 300 ms: ${d.p50 <= 300 ? 'PASS' : 'MISS'} (${ms(d.p50)}); p99 <= 1 s: ${d.p99 <= 1000 ? 'PASS' : 'MISS'} (${ms(d.p99)})`);
  }
  const perNode = farms.map((f) => `${f.size}: ${kib(median(samples.filter((s) => s.size === f.size).map((s) => s.bytesOut)) / f.size)}`);
  lines.push(
    `pushes: ${PUSHES} per farm (+${WARMUP} warm-up), each a commit with a new ${PUSH_KB} KiB incompressible file; ${POLL_MS > 0 ? `HTTP poll of each node every ${POLL_MS} ms` : 'no HTTP polling (BENCH_POLL_MS=0: "visible" is the ref file on disk)'}, disk every ${DISK_POLL_MS} ms`,
    `primary's git bytes per push per node (farm size: median): ${perNode.join(', ')} (the pack is fetched once per node)`,
    `machine during the pushes: ${formatLoad(machine)}`,
    `rotation changes during the pushes (a node's /ready left 200 and came back, probed every 500 ms; each change reloads nginx): ${farms.map((f) => `farm of ${f.size}: ${(rotationChanges.get(f.size) ?? 0) - (changes0.get(f.size) ?? 0)}`).join(', ')}`,
    `every node ends with the primary's refs/heads/main: ${mismatches.length === 0 ? 'yes' : `NO (${mismatches.join('; ')})`}`,
  );
  if (mismatches.length) throw new Error(`nodes differ from the primary: ${mismatches.join('; ')}`);
  return { lines, table: { headers, rows }, samples };
}

// ---------------------------------------------------------------------------------------------------------
// Phase: concurrent clones through the balancer

interface CloneResult {
  variant: string;
  round: number;
  wallS: number;
  perClone: number[];
  failures: string[];
  load: Load;
  nodesCpuS: number;
  nginxCpuS: number;
}

/** CPU seconds of nginx: the master and its live workers (workers are not reaped while it runs). */
function nginxCpu(balancer: NginxBalancer): number {
  const master = balancer.pid!;
  let total = 0;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (Number(name) === master || ppid === master) {
        const c = cpuSeconds(Number(name));
        total += c.self + c.children;
      }
    } catch {
      // exited
    }
  }
  return total;
}

async function clonePhase(primary: Node, farms: Farm[], key: SshKeyPair, expectedMain: string): Promise<{ headers: string[]; rows: string[][]; lines: string[]; results: CloneResult[] }> {
  const home = tempDir('mf-bench-farm-clone-home-');
  const env = gitClientEnv(primary.server, home);
  const sshEnv = { ...env, GIT_SSH_COMMAND: `ssh -i ${key.privateKey} -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR` };
  const bySize = new Map(farms.map((f) => [f.size, f]));
  interface Variant {
    name: string;
    farm: Farm;
    transport: 'https' | 'ssh';
    url: string;
    viaBalancer: boolean;
  }
  const variants: Variant[] = [];
  for (const transport of ['https', 'ssh'] as const) {
    for (const size of CLONE_SIZES) {
      const farm = bySize.get(size)!;
      const url =
        transport === 'https'
          ? `https://localhost:${farm.balancer.options.httpsPort}/scm/${BIG.project}/${BIG.slug}.git`
          : `ssh://git@localhost:${farm.balancer.options.sshPort}/${BIG.project.toLowerCase()}/${BIG.slug}.git`;
      variants.push({ name: `farm of ${size}, ${transport.toUpperCase()} through nginx`, farm, transport, url, viaBalancer: true });
    }
  }
  const single = bySize.get(1);
  if (single) variants.push({ name: 'single node, HTTPS direct (no nginx)', farm: single, transport: 'https', url: `https://localhost:${single.nodes[0]!.server.httpPort}/scm/${BIG.project}/${BIG.slug}.git`, viaBalancer: false });

  const results: CloneResult[] = [];
  for (let round = 0; round < CLONE_ROUNDS; round++) {
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(round + k) % variants.length]!;
      // Start with every node in rotation: a node reports not ready while it syncs, so the last push of the
      // latency phase can leave a farm briefly without nodes (see bench/RESULTS.md).
      const settle = Date.now() + 30_000;
      while (v.farm.rotation.current().length < v.farm.size && Date.now() < settle) await sleep(50);
      const dests = tempDir('mf-bench-farm-clones-');
      const nodePids = v.farm.nodes.map((n) => n.pid);
      const cpu0 = nodePids.map((p) => cpuSeconds(p));
      const ngx0 = nginxCpu(v.farm.balancer);
      const load = new LoadMeter([primary.pid, ...nodePids]);
      const perClone: number[] = [];
      const failures: string[] = [];
      const t0 = performance.now();
      await pool(
        Array.from({ length: CLONES }, (_, i) => i),
        CLONES,
        async (i) => {
          const dest = join(dests, `c${i}.git`);
          const c0 = performance.now();
          const r = await run('git', [...(v.transport === 'https' ? ['-c', 'protocol.version=2'] : []), 'clone', '-q', '--bare', v.url, dest], { env: v.transport === 'ssh' ? sshEnv : env, timeoutMs: 1_800_000, check: false }).catch(
            (err: Error) => ({ code: -1, stderr: err.message }),
          );
          perClone.push((performance.now() - c0) / 1000);
          if (r.code !== 0) {
            failures.push(`exit ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' ')}`);
            return;
          }
          const tip = (await run('git', ['--git-dir', dest, 'rev-parse', 'refs/heads/main'], { env, check: false })).stdout.trim();
          if (tip !== expectedMain) failures.push(`main is ${tip}, expected ${expectedMain}`);
        },
      );
      const wallS = (performance.now() - t0) / 1000;
      const machine = load.stop();
      const cpu1 = nodePids.map((p) => cpuSeconds(p));
      const nodesCpuS = cpu1.reduce((a, c, i) => a + c.self + c.children - cpu0[i]!.self - cpu0[i]!.children, 0);
      const nginxCpuS = v.viaBalancer ? nginxCpu(v.farm.balancer) - ngx0 : 0;
      rmSync(dests, { recursive: true, force: true });
      results.push({ variant: v.name, round, wallS, perClone, failures, load: machine, nodesCpuS, nginxCpuS });
      progress(`  clones round ${round + 1}, ${v.name}: ${secs(wallS)} wall, ${failures.length} failed, machine ${machine.machine.toFixed(2)} cores busy`);
    }
  }

  const headers = ['variant', `wall s for ${CLONES} clones (median; per round)`, 'vs farm of 1, same transport', 'per clone p50 / max', 'failed', 'nodes CPU s', 'nginx CPU s', 'machine cores busy'];
  const wallOf = (name: string, round: number) => results.find((r) => r.variant === name && r.round === round)?.wallS ?? NaN;
  const rows = variants.map((v) => {
    const rs = results.filter((r) => r.variant === v.name);
    const walls = rs.map((r) => r.wallS);
    const baseName = variants.find((b) => b.transport === v.transport && b.farm.size === 1 && b.viaBalancer)?.name;
    const ratios = baseName && (v.name !== baseName) ? rs.map((r) => r.wallS / wallOf(baseName, r.round)) : [];
    const per = dist(rs.flatMap((r) => r.perClone));
    return [
      v.name,
      `${median(walls).toFixed(1)} (${walls.map((w) => w.toFixed(1)).join(', ')})`,
      ratios.length ? `${median(ratios).toFixed(2)}x (${ratios.map((r) => r.toFixed(2)).join(', ')})` : v.name === baseName ? '1.00x (baseline)' : '',
      `${per.p50.toFixed(1)} / ${per.max.toFixed(1)}`,
      `${rs.reduce((a, r) => a + r.failures.length, 0)} of ${rs.length * CLONES}`,
      median(rs.map((r) => r.nodesCpuS)).toFixed(1),
      v.viaBalancer ? median(rs.map((r) => r.nginxCpuS)).toFixed(2) : '-',
      `${median(rs.map((r) => r.load.machine)).toFixed(2)} (others ${median(rs.map((r) => r.load.others)).toFixed(2)})`,
    ];
  });
  const failures = results.flatMap((r) => r.failures.map((f) => `${r.variant} round ${r.round + 1}: ${f}`));
  const lines = [`clones: ${CLONES} concurrent \`git clone --bare\` per batch, ${CLONE_ROUNDS} rounds, variants in an order rotated per round; HTTPS with protocol v2`, ...failures.slice(0, 10).map((f) => `failure: ${f}`)];
  return { headers, rows, lines, results };
}

// ---------------------------------------------------------------------------------------------------------

const repoIds = new Map<string, number>();
const projectOf = (farm: Farm) => `LAT${farm.size}`;
/** How often each farm's rotation (the set of ready nodes given to nginx) changed, by farm size. */
const rotationChanges = new Map<number, number>();

function median(xs: readonly number[]): number {
  const s = [...xs].filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
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
  progress(`${BENCH}: farms of ${SIZES.join(', ')} nodes; phases ${[...PHASES].join(', ')}`);

  const primary = await startPrimary(BENCH);
  for (const size of SIZES) {
    await createProject(primary.server, `LAT${size}`);
    repoIds.set(`LAT${size}`, (await createRepo(primary.server, `LAT${size}`, SLUG)).id);
  }
  let expectedMain = '';
  let bigFacts = '';
  const clones = PHASES.has('clones') && CLONE_SIZES.length > 0;
  if (clones) {
    const meta = await ensureRepo(WORK, { seed: 'mirrorfarm-bench-1', targetMiB: CLONE_MB, refs: 50, commits: defaultCommits(CLONE_MB) }, progress);
    await createProject(primary.server, BIG.project);
    await createRepo(primary.server, BIG.project, BIG.slug);
    const env = gitClientEnv(primary.server, tempDir('mf-bench-farm-push-'));
    progress(`pushing the ${(meta.packBytes / 2 ** 20).toFixed(1)} MiB repository to the primary`);
    const pushed = await run('git', ['--git-dir', meta.path, 'push', '-q', '--mirror', httpsRepoUrl(primary.server, BIG.project, BIG.slug)], { env, timeoutMs: 1_800_000 });
    if (pushed.code !== 0) throw new Error(`push --mirror failed: ${pushed.stderr}`);
    expectedMain = (await run('git', ['--git-dir', meta.path, 'rev-parse', 'refs/heads/main'], { env })).stdout.trim();
    bigFacts = `clone repository: ${(meta.packBytes / 2 ** 20).toFixed(1)} MiB pack, ${meta.objectCount} objects, ${meta.refCount} refs, ${meta.params.commits} commits (generated, seed ${meta.params.seed})`;
  }

  const farms: Farm[] = [];
  for (const size of SIZES) {
    progress(`starting a farm of ${size} behind nginx`);
    farms.push(
      await startFarm(BENCH, primary, {
        name: `farm${size}`,
        size,
        projectKeys: [`LAT${size}`, ...(clones && CLONE_SIZES.includes(size) ? [BIG.project] : [])],
        onRotationChange: () => rotationChanges.set(size, (rotationChanges.get(size) ?? 0) + 1),
      }),
    );
  }

  const sections: string[] = [];
  const text: string[] = [];
  let samples: PushSample[] = [];
  if (PHASES.has('latency')) {
    const r = await latencyPhase(primary, farms);
    samples = r.samples;
    sections.push('### Push acknowledged -> visible on every node; what the primary sends per push', '', mdTable(r.table.headers, r.table.rows), '', ...r.lines.map((l) => `- ${l}`), '');
    text.push(textTable(r.table.headers, r.table.rows), '', ...r.lines, '');
  }
  let cloneResults: CloneResult[] = [];
  if (clones) {
    const key = await sshKeyPair('bench');
    await addSshKey(primary.server, 'admin', key.publicKey);
    progress(`clones: ${CLONES} concurrent, ${CLONE_ROUNDS} rounds`);
    const r = await clonePhase(primary, farms, key, expectedMain);
    cloneResults = r.results;
    sections.push(`### ${CLONES} concurrent clones through the balancer`, '', `- ${bigFacts}`, '', mdTable(r.headers, r.rows), '', ...r.lines.map((l) => `- ${l}`), '');
    text.push(bigFacts, textTable(r.headers, r.rows), '', ...r.lines, '');
  }
  for (const farm of farms) await stopFarm(farm);

  const rebuilt = distChanged(stamp);
  const command = `${Object.entries({ BENCH_SIZES: SIZES.join(','), BENCH_PHASES: [...PHASES].join(','), BENCH_PUSHES: PUSHES, BENCH_POLL_MS: POLL_MS, BENCH_PUSH_KB: PUSH_KB, BENCH_CLONE_MB: CLONE_MB, BENCH_CLONES: CLONES, BENCH_CLONE_ROUNDS: CLONE_ROUNDS }).map(([k, v]) => `${k}=${v}`).join(' ')} node --import tsx bench/farm.ts`;
  const duration = `run time: ${((Date.now() - started) / 60_000).toFixed(1)} min`;
  process.stdout.write(`\n${facts.join('\n')}\n${duration}\n\n${text.join('\n')}\n${rebuilt ?? ''}\n`);
  writeFileSync(join(LOG_DIR, `${BENCH}.json`), JSON.stringify({ facts, samples, clones: cloneResults }, null, 1));
  const file = writeSection(
    BENCH,
    ['## Mirror farms: sync latency on every node, bytes per push, clones through nginx', '', ...facts.map((f) => `- ${f}`), `- command: \`${command}\``, `- ${duration}`, '', ...sections, ...(rebuilt ? [`- ${rebuilt}`] : [])].join('\n'),
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
