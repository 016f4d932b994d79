// Git LFS through a mirror, and the cost of pushing through one.
//
//   npm run bench:lfs                                   # 500 MiB of LFS objects, 40 pushes per path
//   BENCH_LFS_MIB=64 BENCH_PUSHES=10 npm run bench:lfs  # smoke run
//
// A primary and two mirror nodes on loopback (the built CLI, as the integration tests start them): mirror A
// prefetches LFS objects after each sync (mirror.lfsPrefetch, the default), mirror B does not. Debian's git-lfs
// does every clone, with an isolated HOME and a credential helper.
//   1. Warm clone: a repository with BENCH_LFS_MIB MiB of LFS objects (BENCH_LFS_OBJECT_MIB each) is cloned
//      BENCH_CLONES times from the primary and from mirror A (every object already there), interleaved; the
//      baseline is the primary in the same run.
//   2. First clone after a push: BENCH_PUSH_MIB MiB of new LFS objects are pushed to the primary; once both
//      mirrors serve the new commit, each is cloned, B first (its objects are fetched through while the clone
//      runs), then A (prefetching since it published the commit; an object still being prefetched is waited
//      for, not fetched twice), then A again, cloned only once its prefetch finished. Printed with the bytes
//      each mirror fetched from the primary since the push (mirrorfarm_lfs_bytes_total{direction="in",
//      source="primary"}).
//   3. Push-through overhead: BENCH_PUSHES small commits pushed over HTTPS directly to the primary and through
//      mirror A (which returns once it serves the push), interleaved; p50/p99 of each and the ratio.
// Every process and temp dir is removed at exit, on error and on SIGINT/SIGTERM.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createProject, createRepo, createUser, grantRepo } from '../test/helpers/fixtures.js';
import { metricValue, rawRequest } from '../test/helpers/http.js';
import { lfsGitOk, lfsUser, writeRandomFile } from '../test/helpers/lfs.js';
import { tempDir } from '../test/helpers/tmp.js';
import type { TestServer } from '../test/helpers/server.js';
import { authorize, dist, envInt, installCleanup, LOG_DIR, ms, progress, shutdown, startMirrorNode, startPrimary, waitState } from './lib/mirror-harness.js';

const LFS_MIB = envInt('BENCH_LFS_MIB', 500);
const OBJECT_MIB = envInt('BENCH_LFS_OBJECT_MIB', 25);
const CLONES = envInt('BENCH_CLONES', 5);
const PUSH_MIB = envInt('BENCH_PUSH_MIB', 100);
const PUSHES = envInt('BENCH_PUSHES', 40);

async function lfsFetchedFromPrimary(mirror: TestServer): Promise<number> {
  return metricValue((await rawRequest(mirror, 'GET', '/metrics')).text, 'mirrorfarm_lfs_bytes_total', { direction: 'in', source: 'primary' });
}

async function headOf(server: TestServer, user: ReturnType<typeof lfsUser>): Promise<string> {
  const out = await lfsGitOk(user, ['ls-remote', server.httpUrl('BENCH', 'assets'), 'refs/heads/main']);
  return out.split('\t')[0] ?? '';
}

async function waitForHead(server: TestServer, user: ReturnType<typeof lfsUser>, head: string): Promise<void> {
  const t0 = Date.now();
  while ((await headOf(server, user)) !== head) {
    if (Date.now() - t0 > 120_000) throw new Error(`${server.baseUrl} did not serve ${head} within 120 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function timedClone(server: TestServer, user: ReturnType<typeof lfsUser>): Promise<number> {
  const dest = join(tempDir('mf-bench-lfs-clone-'), 'c');
  const t0 = performance.now();
  await lfsGitOk(user, ['clone', '-q', server.httpUrl('BENCH', 'assets'), dest]);
  const seconds = (performance.now() - t0) / 1000;
  rmSync(dest, { recursive: true, force: true });
  return seconds;
}

async function main(): Promise<void> {
  installCleanup();
  mkdirSync(LOG_DIR, { recursive: true });
  progress(`Git LFS: ${LFS_MIB} MiB in ${Math.ceil(LFS_MIB / OBJECT_MIB)} objects, ${CLONES} warm clones per server, ${PUSH_MIB} MiB pushed, ${PUSHES} pushes per path`);
  const primary = await startPrimary('lfs');
  await createProject(primary.server, 'BENCH');
  await createRepo(primary.server, 'BENCH', 'assets');
  const dev = await createUser(primary.server, 'dev');
  await grantRepo(primary.server, 'BENCH', 'assets', 'dev', 'REPO_WRITE');
  const user = lfsUser(primary.server, dev);
  const work = tempDir('mf-bench-lfs-wt-');
  await lfsGitOk(user, ['init', '-q', work]);
  await lfsGitOk(user, ['lfs', 'track', '*.bin'], work);
  for (let i = 0; i * OBJECT_MIB < LFS_MIB; i++) writeRandomFile(join(work, `object-${i}.bin`), OBJECT_MIB * 1024 * 1024);
  await lfsGitOk(user, ['add', '-A'], work);
  await lfsGitOk(user, ['commit', '-q', '-m', 'objects'], work);
  let t0 = performance.now();
  await lfsGitOk(user, ['push', '-q', primary.server.httpUrl('BENCH', 'assets'), 'main'], work);
  progress(`pushed ${LFS_MIB} MiB of LFS objects to the primary in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const prefetching = await startMirrorNode('lfs', 'mirror-a', primary);
  await authorize(primary, prefetching);
  await waitState(prefetching, 'SYNCHRONIZED', 120_000);
  const fetchThrough = await startMirrorNode('lfs', 'mirror-b', primary, { MIRRORFARM_MIRROR_LFS_PREFETCH: 'false' });
  await authorize(primary, fetchThrough);
  await waitState(fetchThrough, 'SYNCHRONIZED', 120_000);
  const head = await headOf(primary.server, user);
  for (const m of [prefetching, fetchThrough]) await waitForHead(m.server, lfsUser(m.server, dev), head);

  // 1. Warm clones: mirror A has every object (prefetched; a first clone makes sure).
  const mirrorUser = lfsUser(prefetching.server, dev);
  await timedClone(prefetching.server, mirrorUser);
  const warm = { primary: [] as number[], mirror: [] as number[] };
  for (let i = 0; i < CLONES; i++) {
    warm.primary.push(await timedClone(primary.server, user));
    warm.mirror.push(await timedClone(prefetching.server, mirrorUser));
  }
  const p = dist(warm.primary).p50;
  const m = dist(warm.mirror).p50;
  progress(`warm clone of ${LFS_MIB} MiB LFS: primary p50 ${p.toFixed(2)} s, mirror p50 ${m.toFixed(2)} s, mirror/primary ${(m / p).toFixed(2)}x (runs: primary ${warm.primary.map((s) => s.toFixed(2)).join(', ')}; mirror ${warm.mirror.map((s) => s.toFixed(2)).join(', ')})`);

  // 2. First clone after a push, with and without prefetch: one push per mirror, each cloned as soon as it
  // serves the push. B is made warm first, so that only the new objects are missing on either mirror.
  const bUser = lfsUser(fetchThrough.server, dev);
  await timedClone(fetchThrough.server, bUser);
  const first: Record<string, { seconds: number; fetchedMiB: number; visibleAfter: number; warm: number }> = {};
  let round = 0;
  const rounds = [
    ['without prefetch (B)', fetchThrough, false],
    ['with prefetch (A), cloned as soon as the push is visible', prefetching, false],
    ['with prefetch (A), cloned once the prefetch finished', prefetching, true],
  ] as const;
  for (const [name, node, afterPrefetch] of rounds) {
    for (let i = 0; i * OBJECT_MIB < PUSH_MIB; i++) writeRandomFile(join(work, `new-${round}-${i}.bin`), OBJECT_MIB * 1024 * 1024);
    round++;
    await lfsGitOk(user, ['add', '-A'], work);
    await lfsGitOk(user, ['commit', '-q', '-m', `new objects for ${name}`], work);
    const nodeUser = lfsUser(node.server, dev);
    const fetchedBefore = await lfsFetchedFromPrimary(node.server);
    t0 = performance.now();
    await lfsGitOk(user, ['push', '-q', primary.server.httpUrl('BENCH', 'assets'), 'main'], work);
    await waitForHead(node.server, nodeUser, await headOf(primary.server, user));
    const visibleAfter = (performance.now() - t0) / 1000;
    if (afterPrefetch) {
      const want = fetchedBefore + Math.ceil(PUSH_MIB / OBJECT_MIB) * OBJECT_MIB * 1048576;
      while ((await lfsFetchedFromPrimary(node.server)) < want) {
        if (performance.now() - t0 > 300_000) throw new Error('the prefetch did not finish within 300 s');
        await new Promise((r) => setTimeout(r, 50));
      }
      progress(`prefetch of ${PUSH_MIB} MiB finished ${((performance.now() - t0) / 1000).toFixed(2)} s after the push started`);
    }
    const seconds = await timedClone(node.server, nodeUser);
    const fetchedMiB = ((await lfsFetchedFromPrimary(node.server)) - fetchedBefore) / 1048576;
    first[name] = { seconds, fetchedMiB, visibleAfter, warm: await timedClone(node.server, nodeUser) };
  }
  for (const [name, r] of Object.entries(first)) {
    progress(
      `first clone after a push of ${PUSH_MIB} MiB, ${name}: ${r.seconds.toFixed(2)} s (push visible after ${r.visibleAfter.toFixed(2)} s; ` +
        `${r.fetchedMiB.toFixed(0)} MiB fetched from the primary since the push); the next clone ${r.warm.toFixed(2)} s`,
    );
  }

  // 3. Push-through overhead (small commits, HTTPS, read-your-writes included).
  const direct: number[] = [];
  const through: number[] = [];
  let n = 0;
  for (let i = 0; i < PUSHES; i++) {
    for (const [target, samples] of [[primary.server, direct], [prefetching.server, through]] as const) {
      writeFileSync(join(work, 'counter.txt'), `${n++}\n`);
      await lfsGitOk(user, ['add', 'counter.txt'], work);
      await lfsGitOk(user, ['commit', '-q', '-m', `push ${i}`], work);
      const pushUser = target === primary.server ? user : mirrorUser;
      const s = performance.now();
      await lfsGitOk(pushUser, ['push', '-q', target.httpUrl('BENCH', 'assets'), 'main'], work);
      samples.push(performance.now() - s);
      // The next direct push must not race the mirror's sync of this one.
      await waitForHead(prefetching.server, mirrorUser, await headOf(primary.server, user));
    }
  }
  const d = dist(direct);
  const t = dist(through);
  progress(`push over HTTPS: direct p50 ${ms(d.p50)} p99 ${ms(d.p99)}; through the mirror (returns once it serves the push) p50 ${ms(t.p50)} p99 ${ms(t.p99)}; added p50 ${ms(t.p50 - d.p50)}, ratio ${(t.p50 / d.p50).toFixed(2)}x`);
  await shutdown();
}

main().then(
  () => process.exit(0),
  async (err: Error) => {
    console.error(err);
    await shutdown();
    process.exit(1);
  },
);
