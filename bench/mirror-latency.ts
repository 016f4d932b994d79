// Mirror sync latency: from a push acknowledged by the primary to the new ref visible on the mirror.
//
//   npm run build && node --import tsx bench/mirror-latency.ts
//   BENCH_PUSHES=20 node --import tsx bench/mirror-latency.ts        # smoke run (~1 min)
//
// A primary and one mirror node (the built CLI, as the integration tests start them: loopback, random ports,
// a development CA) carry one repository. BENCH_PUSHES times in sequence: a new commit is made locally (not
// timed), `git push` over HTTPS to the primary is timed, and from the moment it returns the mirror is polled
// until it shows the new oid:
//   - HTTP: a raw HTTPS GET of the mirror's info/refs?service=git-upload-pack with protocol v0 (what
//     `git ls-remote` asks; the mirror runs `git upload-pack --advertise-refs` for each), one request in
//     flight, the next one BENCH_POLL_MS after the previous was sent, over one keep-alive connection, as the
//     admin (the mirror's delegated-auth cache answers after the first). This is the headline figure: what a
//     client sees. Its resolution is the poll period plus one request (printed).
//   - disk: refs/heads/main (or packed-refs) of the mirror's copy, read every BENCH_DISK_POLL_MS without git.
//     The mirror serves exactly what is on its disk, so this is the same event with ~2 ms resolution; it
//     shows how much of the HTTP figure is polling.
// Before the timed pushes, BENCH_WARMUP_PUSHES pushes are made and waited for (untimed: first SSH connection
// of the mirror, caches). At the end `git ls-remote` against the mirror must equal the primary's.
// Printed: p50/p90/p99/max of push duration and of both latencies, the mirror's own sync duration
// (mirrorfarm_mirror_sync_duration_seconds, fetch + publish) over the timed pushes, and the targets
// (p50 <= 200 ms, p99 <= 1 s). The section "mirror-latency" of bench/.work/mirror-results.md is rewritten;
// raw samples go to bench/.work/logs/mirror-latency.json, server logs to bench/.work/logs/mirror-latency-*.log.
//
// Knobs: BENCH_PUSHES (200), BENCH_WARMUP_PUSHES (5), BENCH_POLL_MS (10), BENCH_DISK_POLL_MS (2),
// BENCH_VISIBLE_TIMEOUT_S (60), BENCH_SYNC_PARALLELISM (mirror.syncParallelism; server default when unset),
// BENCH_SSH_FRONTEND (builtin or openssh: the primary's SSH front end, which the mirror fetches through).
// Exit code: 0 when everything ran (targets met or not), 1 on failure. Every process and temp dir is removed
// at exit, on error and on SIGINT/SIGTERM.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createProject, createRepo } from '../test/helpers/fixtures.js';
import { tempDir } from '../test/helpers/tmp.js';
import {
  InfoRefsClient,
  LOG_DIR,
  LoadMeter,
  MemSampler,
  authorize,
  dist,
  distChanged,
  distStamp,
  envInt,
  formatLoad,
  gitClientEnv,
  httpsRepoUrl,
  installCleanup,
  machineFacts,
  mb,
  mirrorApiRequests,
  mirrorGet,
  ms,
  progress,
  readRefOnDisk,
  shutdown,
  startMirrorNode,
  startPrimaryWithFrontend,
  waitState,
  writeSection,
  type Dist,
  type Node,
} from './lib/mirror-harness.js';
import { run } from './lib/proc.js';
import { mdTable, textTable } from './lib/report.js';

const BENCH = 'mirror-latency';
const PUSHES = envInt('BENCH_PUSHES', 200);
const WARMUP = envInt('BENCH_WARMUP_PUSHES', 5);
const POLL_MS = envInt('BENCH_POLL_MS', 10);
const DISK_POLL_MS = envInt('BENCH_DISK_POLL_MS', 2);
const VISIBLE_TIMEOUT_MS = envInt('BENCH_VISIBLE_TIMEOUT_S', 60) * 1000;
const PARALLELISM = process.env.BENCH_SYNC_PARALLELISM;
const FRONTEND = process.env.BENCH_SSH_FRONTEND || 'builtin';
const PROJECT = 'LAT';
const SLUG = 'latency';

interface Sample {
  i: number;
  oid: string;
  pushMs: number;
  /** Ref on the mirror's disk, from push return (negative: before git push returned). */
  diskMs: number;
  /** Response that first showed the oid received, from push return. */
  httpMs: number;
  /** That request sent, from push return: the ref was visible no later than this plus its server time. */
  httpSentMs: number;
  polls: number;
  pollRttMs: number;
}

interface Histogram {
  sum: number;
  count: number;
  buckets: Map<string, number>;
}

async function syncHistogram(mirror: Node): Promise<Histogram> {
  const text = await mirrorGet<string>(mirror, '/metrics');
  const h: Histogram = { sum: NaN, count: NaN, buckets: new Map() };
  for (const line of String(text).split('\n')) {
    if (line.startsWith('mirrorfarm_mirror_sync_duration_seconds_sum')) h.sum = Number(line.split(' ').pop());
    else if (line.startsWith('mirrorfarm_mirror_sync_duration_seconds_count')) h.count = Number(line.split(' ').pop());
    else if (line.startsWith('mirrorfarm_mirror_sync_duration_seconds_bucket')) {
      const le = /le="([^"]+)"/.exec(line)?.[1];
      if (le) h.buckets.set(le, Number(line.split(' ').pop()));
    }
  }
  return h;
}

/** Starts reading the mirror's refs/heads/main from disk; resolves with the moment it equals `oid`. */
function watchDisk(gitDir: string, oid: string): { seen: Promise<number>; stop(): void } {
  let stopped = false;
  const seen = (async () => {
    const deadline = performance.now() + VISIBLE_TIMEOUT_MS + 120_000;
    while (!stopped) {
      if (readRefOnDisk(gitDir, 'refs/heads/main') === oid) return performance.now();
      if (performance.now() > deadline) break;
      await sleep(DISK_POLL_MS);
    }
    throw new Error(`the mirror's disk did not show ${oid}`);
  })();
  seen.catch(() => undefined);
  return { seen, stop: () => (stopped = true) };
}

/** Polls the mirror's v0 advertisement from `pushedAt` until it lists `oid` as refs/heads/main. */
async function pollHttp(http: InfoRefsClient, oid: string, pushedAt: number): Promise<Pick<Sample, 'httpMs' | 'httpSentMs' | 'polls' | 'pollRttMs'>> {
  const deadline = pushedAt + VISIBLE_TIMEOUT_MS;
  const want = `${oid} refs/heads/main`;
  let polls = 0;
  let rttTotal = 0;
  for (;;) {
    const sent = performance.now();
    const r = await http.get(PROJECT, SLUG);
    const received = performance.now();
    polls++;
    rttTotal += received - sent;
    if (r.status === 200 && r.body.includes(want)) return { httpMs: received - pushedAt, httpSentMs: sent - pushedAt, polls, pollRttMs: rttTotal / polls };
    if (received > deadline) throw new Error(`the mirror did not advertise ${oid} within ${VISIBLE_TIMEOUT_MS} ms of the push (last answer HTTP ${r.status})`);
    const wait = sent + POLL_MS - performance.now();
    if (wait > 0) await sleep(wait);
  }
}

/** One push, timed, and the wait until the mirror shows it. */
async function pushAndWait(push: (oid: string) => Promise<unknown>, http: InfoRefsClient, gitDir: string, oid: string): Promise<Omit<Sample, 'i' | 'oid'>> {
  const disk = watchDisk(gitDir, oid);
  try {
    const started = performance.now();
    await push(oid);
    const pushed = performance.now();
    const seen = await pollHttp(http, oid, pushed);
    const diskAt = await disk.seen;
    return { pushMs: pushed - started, diskMs: diskAt - pushed, ...seen };
  } finally {
    disk.stop();
  }
}

function row(name: string, d: Dist): string[] {
  return [name, ms(d.p50), ms(d.p90), ms(d.p99), ms(d.max), ms(d.mean)];
}

async function main(): Promise<void> {
  installCleanup();
  mkdirSync(LOG_DIR, { recursive: true });
  const facts = machineFacts();
  const stamp = distStamp();
  progress(`${BENCH}: primary's SSH front end ${FRONTEND}; ${PUSHES} pushes (+${WARMUP} warm-up), HTTP poll every ${POLL_MS} ms, disk poll every ${DISK_POLL_MS} ms`);

  const primary = await startPrimaryWithFrontend(BENCH, FRONTEND);
  await createProject(primary.server, PROJECT);
  const repo = await createRepo(primary.server, PROJECT, SLUG);
  const work = tempDir('mf-bench-lat-');
  const env = gitClientEnv(primary.server, join(work, 'home'));
  mkdirSync(join(work, 'home'));
  const wt = join(work, 'wt');
  await run('git', ['init', '-q', '-b', 'main', wt], { env });
  const commit = async (i: number): Promise<string> => {
    writeFileSync(join(wt, 'counter.txt'), `push ${i}\n`);
    await run('git', ['add', 'counter.txt'], { cwd: wt, env });
    await run('git', ['commit', '-q', '-m', `push ${i}`], { cwd: wt, env });
    return (await run('git', ['rev-parse', 'HEAD'], { cwd: wt, env })).stdout.trim();
  };
  const primaryUrl = httpsRepoUrl(primary.server, PROJECT, SLUG);
  const push = async (oid: string) => run('git', ['push', '-q', primaryUrl, `${oid}:refs/heads/main`], { cwd: wt, env, timeoutMs: 120_000 });
  const first = await commit(0);
  await push(first);

  progress('starting the mirror');
  const mirror = await startMirrorNode(BENCH, 'mirror', primary, PARALLELISM ? { MIRRORFARM_MIRROR_SYNC_PARALLELISM: PARALLELISM } : {});
  const { from } = await authorize(primary, mirror, { mirroringMode: 'SELECTED_PROJECTS', projectKeys: [PROJECT] });
  await waitState(mirror, 'SYNCHRONIZED', 120_000, from);
  const gitDir = join(mirror.server.home, 'repos', `${repo.id}.git`);
  const http = new InfoRefsClient(mirror);

  progress(`mirror synchronized; ${WARMUP} warm-up pushes`);
  let n = 1;
  for (let w = 0; w < WARMUP; w++, n++) {
    await pushAndWait(push, http, gitDir, await commit(n));
  }

  const mem = new MemSampler(mirror.pid, 200);
  const load = new LoadMeter([primary.pid, mirror.pid]);
  const before = await syncHistogram(mirror);
  const windowStart = Date.now();
  const samples: Sample[] = [];
  progress(`${PUSHES} timed pushes`);
  for (let i = 0; i < PUSHES; i++, n++) {
    const oid = await commit(n);
    samples.push({ i, oid, ...(await pushAndWait(push, http, gitDir, oid)) });
    if ((i + 1) % 25 === 0 || i + 1 === PUSHES) {
      const d = dist(samples.map((s) => s.httpMs));
      progress(`  ${i + 1}/${PUSHES}: latency p50 ${ms(d.p50)}, max ${ms(d.max)}`);
    }
  }
  const windowEnd = Date.now();
  const after = await syncHistogram(mirror);
  const memory = mem.stop();
  const machine = load.stop();
  http.close();

  // The mirror serves what the primary has.
  const lsPrimary = (await run('git', ['ls-remote', primaryUrl], { env })).stdout.trim();
  const lsMirror = (await run('git', ['ls-remote', httpsRepoUrl(mirror.server, PROJECT, SLUG)], { env })).stdout.trim();
  const consistent = lsPrimary === lsMirror;
  const requests = mirrorApiRequests(primary, windowStart, windowEnd);

  const pushD = dist(samples.map((s) => s.pushMs));
  const httpD = dist(samples.map((s) => s.httpMs));
  const sentD = dist(samples.map((s) => s.httpSentMs));
  const diskD = dist(samples.map((s) => s.diskMs));
  const e2eD = dist(samples.map((s) => s.pushMs + s.httpMs));
  const pollsD = dist(samples.map((s) => s.polls));
  const rttD = dist(samples.map((s) => s.pollRttMs));
  const syncCount = after.count - before.count;
  const syncMean = ((after.sum - before.sum) / syncCount) * 1000;
  const bucketShare = (le: string) => ((after.buckets.get(le) ?? NaN) - (before.buckets.get(le) ?? NaN)) / syncCount;
  const p50ok = httpD.p50 <= 200;
  const p99ok = httpD.p99 <= 1000;

  const headers = ['measure', 'p50', 'p90', 'p99', 'max', 'mean'];
  const rows = [
    row('latency: push return -> ref in mirror info/refs (HTTP poll answer received)', httpD),
    row('  same, poll request sent (lower edge of the HTTP figure)', sentD),
    row('latency: push return -> ref on mirror disk (2 ms poll)', diskD),
    row('git push to the primary (HTTPS)', pushD),
    row('push start -> visible on mirror (HTTP)', e2eD),
  ];
  const lines = [
    `pushes: ${samples.length} timed (+${WARMUP} warm-up), one repository, ${requests.size ? '' : 'no '}mirror API requests in the window: ${[...requests].map(([k, v]) => `${k.replace('/rest/mirroring/1.0', '')} x${v}`).join(', ')}`,
    `HTTP polls per push: p50 ${pollsD.p50}, max ${pollsD.max}; poll round trip p50 ${rttD.p50.toFixed(1)} ms, p99 ${rttD.p99.toFixed(1)} ms (poll period ${POLL_MS} ms)`,
    `mirror sync duration (fetch + publish, its own histogram): ${syncCount} syncs, mean ${syncMean.toFixed(0)} ms; <= 50 ms ${(bucketShare('0.05') * 100).toFixed(0)}%, <= 100 ms ${(bucketShare('0.1') * 100).toFixed(0)}%, <= 250 ms ${(bucketShare('0.25') * 100).toFixed(0)}%, <= 500 ms ${(bucketShare('0.5') * 100).toFixed(0)}%, <= 1 s ${(bucketShare('1') * 100).toFixed(0)}%`,
    `primary's SSH front end (the mirror fetches over it): ${FRONTEND}`,
    `mirror RSS during the timed pushes: peak ${mb(memory.peakRssKb)} (VmHWM ${mb(memory.hwmKb)})`,
    `machine during the timed pushes: ${formatLoad(machine)}`,
    `final ls-remote of the mirror equals the primary's: ${consistent ? 'yes' : 'NO'}`,
    `targets: p50 <= 200 ms: ${p50ok ? 'PASS' : 'MISS'} (${ms(httpD.p50)}); p99 <= 1 s: ${p99ok ? 'PASS' : 'MISS'} (${ms(httpD.p99)})`,
  ];

  const rebuilt = distChanged(stamp);
  if (rebuilt) lines.push(rebuilt);
  process.stdout.write(`\n${facts.join('\n')}\n\n${textTable(headers, rows)}\n\n${lines.join('\n')}\n`);
  writeFileSync(join(LOG_DIR, `${BENCH}.json`), JSON.stringify({ facts, config: { PUSHES, WARMUP, POLL_MS, DISK_POLL_MS, PARALLELISM }, samples }, null, 1));
  const command = `${Object.entries({ BENCH_PUSHES: PUSHES, BENCH_WARMUP_PUSHES: WARMUP, BENCH_POLL_MS: POLL_MS, BENCH_SSH_FRONTEND: FRONTEND }).map(([k, v]) => `${k}=${v}`).join(' ')} node --import tsx bench/mirror-latency.ts`;
  const file = writeSection(
    BENCH,
    [
      '## (a) Sync latency: push acknowledged by the primary -> ref visible on the mirror',
      '',
      ...facts.map((f) => `- ${f}`),
      `- command: \`${command}\``,
      '',
      mdTable(headers, rows),
      '',
      ...lines.map((l) => `- ${l}`),
    ].join('\n'),
  );
  progress(`results written to ${file}; samples in ${join(LOG_DIR, `${BENCH}.json`)}`);
  if (!consistent) throw new Error(`the mirror's refs differ from the primary's:\nprimary:\n${lsPrimary}\nmirror:\n${lsMirror}`);
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
