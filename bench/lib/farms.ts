// Mirror farms for the benchmarks (bench/farm.ts, bench/fanout.ts): a farm of N nodes, every node its own
// process of the built CLI, sharing one identity key and one SSH host key set, behind its own nginx
// (src/farm/balancer.ts, the balancer `mirrorfarm demo --nodes N` runs) with the readiness rotation
// (src/farm/rotation.ts); plus what the benchmarks read around a push: the primary's git counters from
// /metrics, a ref file watched on a node's disk, and a commit with fresh incompressible content.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateMirrorKey } from '../../src/auth/mirror-token.js';
import { NginxBalancer } from '../../src/farm/balancer.js';
import { startRotation, type Rotation } from '../../src/farm/rotation.js';
import { createLogger } from '../../src/obs/logger.js';
import { loadOrCreateHostKeys } from '../../src/transport/ssh/host-keys.js';
import { freePort } from '../../test/helpers/server.js';
import { tempDir } from '../../test/helpers/tmp.js';
import { authorize, mirrorGet, progress, readRefOnDisk, startMirrorNode, sweepRoot, waitState, type Node } from './mirror-harness.js';
import { run } from './proc.js';

export interface Farm {
  /** Unique among the run's farms, e.g. "farm3" or "fan-b"; node names are `${name}-node-${i}`. */
  name: string;
  size: number;
  nodes: Node[];
  balancer: NginxBalancer;
  rotation: Rotation;
  gitDir(node: Node, repoId: number): string;
}

export interface FarmOptions {
  name: string;
  size: number;
  /** Projects the farm mirrors (SELECTED_PROJECTS). */
  projectKeys: string[];
  /** Called whenever the set of ready nodes nginx balances over changes. */
  onRotationChange?: () => void;
}

/** Every nginx still running; on any exit the masters get SIGTERM, which stops their workers too. */
const balancers = new Set<NginxBalancer>();
process.prependListener('exit', () => {
  for (const b of balancers) {
    try {
      if (b.pid) process.kill(b.pid, 'SIGTERM');
    } catch {
      // gone
    }
  }
});

/** Starts the farm's nginx and nodes, has the primary authorize it, and waits until every node is in rotation. */
export async function startFarm(bench: string, primary: Node, o: FarmOptions): Promise<Farm> {
  const secret = tempDir(`mf-bench-${o.name}-secret-`);
  const keyFile = join(secret, 'id_ed25519');
  writeFileSync(keyFile, generateMirrorKey().privateKeyOpenSsh, { mode: 0o600 });
  const hostKeyDir = join(secret, 'ssh');
  await loadOrCreateHostKeys(hostKeyDir, createLogger('warn'));
  const dir = tempDir(`mf-bench-${o.name}-nginx-`);
  sweepRoot(dir); // nginx runs with -p DIR: killed at exit like the servers
  const ca = primary.server.ca;
  const balancer = await NginxBalancer.start({ dir, host: '127.0.0.1', httpsPort: await freePort(), sshPort: await freePort(), tlsCert: ca.tlsCert, tlsKey: ca.tlsKey, caFile: ca.caCert });
  balancers.add(balancer);
  const nodes: Node[] = [];
  for (let i = 0; i < o.size; i++) {
    nodes.push(
      await startMirrorNode(bench, `${o.name}-node-${i}`, primary, {
        MIRRORFARM_BASE_URL: `https://localhost:${balancer.options.httpsPort}`,
        MIRRORFARM_MIRROR_KEY_FILE: keyFile,
        MIRRORFARM_MIRROR_NODE_ID: `node-${i}`,
        MIRRORFARM_SSH_HOST_KEY_DIR: hostKeyDir,
        MIRRORFARM_SSH_PUBLIC_HOST: 'localhost',
        MIRRORFARM_SSH_PUBLIC_PORT: String(balancer.options.sshPort),
        MIRRORFARM_DISPLAY_NAME: `bench ${o.name} (${o.size} node${o.size === 1 ? '' : 's'})`,
      }),
    );
  }
  const { from } = await authorize(primary, nodes[0]!, { mirroringMode: 'SELECTED_PROJECTS', projectKeys: o.projectKeys });
  for (const [i, node] of nodes.entries()) await waitState(node, 'SYNCHRONIZED', 600_000, i === 0 ? from : 0);
  const rotation = startRotation({
    balancer,
    caFile: ca.caCert,
    nodes: () => nodes.filter((n) => n.alive()).map((n) => ({ name: n.name, httpPort: n.server.httpPort, sshPort: n.server.sshPort })),
    intervalMs: 500,
    onChange: () => o.onRotationChange?.(),
    onError: (err) => progress(`${o.name}: balancer reload failed: ${err.message}`),
  });
  const deadline = Date.now() + 60_000;
  while (rotation.current().length < o.size) {
    if (Date.now() > deadline) throw new Error(`${o.name}: only ${rotation.current().join(', ') || 'no node'} in rotation after 60 s`);
    await sleep(100);
  }
  return { name: o.name, size: o.size, nodes, balancer, rotation, gitDir: (node, id) => join(node.server.home, 'repos', `${id}.git`) };
}

export async function stopFarm(farm: Farm): Promise<void> {
  await farm.rotation.stop();
  await farm.balancer.stop();
  balancers.delete(farm.balancer);
}

/** For a failing run: stops every balancer still running. */
export async function stopAllBalancers(): Promise<void> {
  await Promise.allSettled([...balancers].map((b) => b.stop()));
}

export interface GitCounters {
  bytesOut: number;
  bytesIn: number;
  fetches: number;
}

/** The primary's SSH upload-pack counters (what mirror nodes fetch), from its /metrics. */
export async function primaryCounters(primary: Node): Promise<GitCounters> {
  const text = String(await mirrorGet<string>(primary, '/metrics'));
  const sum = (re: RegExp) => [...text.matchAll(re)].reduce((a, m) => a + Number(m[1]), 0);
  return {
    bytesOut: sum(/^mirrorfarm_git_bytes_total\{transport="ssh",service="upload-pack",direction="out"\} (\S+)$/gm),
    bytesIn: sum(/^mirrorfarm_git_bytes_total\{transport="ssh",service="upload-pack",direction="in"\} (\S+)$/gm),
    fetches: sum(/^mirrorfarm_git_operations_total\{transport="ssh",service="upload-pack",outcome="[a-z]+"\} (\S+)$/gm),
  };
}

/** Resolves with performance.now() once `ref` in the bare repository `gitDir` is `oid` (read every `pollMs`). */
export async function watchRefOnDisk(gitDir: string, oid: string, pollMs: number, timeoutMs: number, ref = 'refs/heads/main'): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (readRefOnDisk(gitDir, ref) === oid) return performance.now();
    await sleep(pollMs);
  }
  throw new Error(`${gitDir} did not show ${oid} within ${timeoutMs} ms`);
}

/** Commits a counter file and `payloadKb` KiB of fresh incompressible bytes in work tree `wt`; answers the oid. */
export async function commitPayload(wt: string, env: NodeJS.ProcessEnv, n: number, payloadKb: number): Promise<string> {
  writeFileSync(join(wt, 'counter.txt'), `push ${n}\n`);
  writeFileSync(join(wt, 'payload.bin'), randomBytes(payloadKb * 1024));
  await run('git', ['add', 'counter.txt', 'payload.bin'], { cwd: wt, env });
  await run('git', ['commit', '-q', '-m', `push ${n}`], { cwd: wt, env });
  return (await run('git', ['rev-parse', 'HEAD'], { cwd: wt, env })).stdout.trim();
}
