// A mirror farm as it runs in production: N mirror nodes (separate processes, each with its own home) sharing
// one identity key and one SSH host key set, behind a real nginx. Like a Kubernetes Service, the balancer sends
// traffic only to ready nodes: the rotation `npm start -- --nodes N` runs (src/farm/rotation.ts) probes every
// node's /ready and gives nginx the ready ones.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startRotation } from '../../src/farm/rotation.js';
import { startBalancer, type Balancer } from './nginx.js';
import { run } from './run.js';
import { freePort, startMirror, type TestServer } from './server.js';
import { tempDir } from './tmp.js';

export interface Farm {
  balancer: Balancer;
  /** The farm's shared identity key and SSH host key directory (what a Kubernetes Secret would hold). */
  keyFile: string;
  hostKeyDir: string;
  /** Live nodes by name (node-0, node-1, ...). */
  nodes: Map<string, TestServer>;
  /** Clone URLs through the balancer. */
  httpUrl(project: string, slug: string): string;
  sshUrl(project: string, slug: string): string;
  /** Starts one more node; `env` overrides its environment (e.g. a foreign MIRRORFARM_SSH_HOST_KEY_DIR). */
  addNode(env?: Record<string, string>): Promise<string>;
  /** SIGTERM (graceful) or SIGKILL. */
  stopNode(name: string, signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Starts a stopped node again on its own home. */
  restartNode(name: string): Promise<void>;
  /** Names of the nodes the balancer currently sends traffic to. */
  inRotation(): string[];
  stop(): Promise<void>;
}

export interface FarmOptions {
  nodes: number;
  /** Extra environment for every node. */
  env?: Record<string, string>;
  /** How often readiness is probed (a Kubernetes readinessProbe's periodSeconds). */
  probeIntervalMs?: number;
}

/** A fresh identity key and SSH host key directory, as one farm shares them (also for a node given the wrong ones). */
export async function farmSecrets(): Promise<{ keyFile: string; hostKeyDir: string }> {
  const dir = tempDir('mf-farm-secret-');
  const hostKeyDir = join(dir, 'ssh');
  mkdirSync(hostKeyDir, { mode: 0o700 });
  const env = { PATH: process.env.PATH, HOME: dir };
  const keyFile = join(dir, 'id_ed25519');
  for (const [type, file] of [['ed25519', keyFile], ['ed25519', join(hostKeyDir, 'ssh_host_ed25519_key')], ['ecdsa', join(hostKeyDir, 'ssh_host_ecdsa_key')]] as const) {
    const r = await run('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', 'farm', '-f', file], { env });
    if (r.code !== 0) throw new Error(`ssh-keygen: ${r.stderr}`);
  }
  return { keyFile, hostKeyDir };
}

export async function startFarm(primary: TestServer, options: FarmOptions): Promise<Farm> {
  const { keyFile, hostKeyDir } = await farmSecrets();
  const balancer = await startBalancer({ tlsCert: primary.ca.tlsCert, tlsKey: primary.ca.tlsKey, caFile: primary.ca.caCert }, []);
  const nodes = new Map<string, TestServer>();
  const homes = new Map<string, string>();
  const envs = new Map<string, Record<string, string>>();
  let next = 0;

  const nodeEnv = async (name: string, extra: Record<string, string> = {}) => ({
    MIRRORFARM_BASE_URL: balancer.baseUrl,
    MIRRORFARM_HTTP_PORT: String(await freePort()),
    MIRRORFARM_MIRROR_KEY_FILE: keyFile,
    MIRRORFARM_MIRROR_NODE_ID: name,
    MIRRORFARM_SSH_HOST_KEY_DIR: hostKeyDir,
    MIRRORFARM_SSH_PUBLIC_HOST: 'localhost',
    MIRRORFARM_SSH_PUBLIC_PORT: String(balancer.sshPort),
    MIRRORFARM_DISPLAY_NAME: 'test farm',
    ...options.env,
    ...extra,
  });

  const start = async (name: string) => {
    const node = await startMirror(primary, { home: homes.get(name)!, env: await nodeEnv(name, envs.get(name)) });
    nodes.set(name, node);
  };

  let rotation: string[] = [];
  const rotationLoop = startRotation({
    balancer,
    nodes: () => [...nodes].map(([name, node]) => ({ name, httpPort: node.httpPort, sshPort: node.sshPort })),
    caFile: primary.ca.caCert,
    intervalMs: options.probeIntervalMs ?? 500,
    // Like a readinessProbe's timeoutSeconds: a node that hangs (SIGSTOP) must not stall the loop.
    timeoutMs: 1000,
    onChange: (names) => (rotation = names),
  });

  const farm: Farm = {
    balancer,
    keyFile,
    hostKeyDir,
    nodes,
    httpUrl: (project, slug) => `${balancer.baseUrl}/scm/${project}/${slug}.git`,
    sshUrl: (project, slug) => `ssh://${[...nodes.values()][0]?.sshUser ?? 'git'}@localhost:${balancer.sshPort}/${project.toLowerCase()}/${slug}.git`,
    async addNode(env) {
      const name = `node-${next++}`;
      homes.set(name, join(tempDir(`mf-${name}-`), 'home'));
      if (env) envs.set(name, env);
      await start(name);
      return name;
    },
    async stopNode(name, signal = 'SIGTERM') {
      const node = nodes.get(name);
      if (!node) return;
      nodes.delete(name);
      if (signal === 'SIGKILL') node.process.kill('SIGKILL');
      await node.stop();
    },
    async restartNode(name) {
      await start(name);
    },
    inRotation: () => [...rotation],
    async stop() {
      await rotationLoop.stop();
      await Promise.all([...nodes.values()].map((n) => n.stop()));
      nodes.clear();
      await balancer.stop();
    },
  };
  for (let i = 0; i < options.nodes; i++) await farm.addNode();
  return farm;
}
