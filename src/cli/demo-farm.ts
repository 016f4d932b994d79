// `mirrorfarm demo --nodes N`: the demo's mirror as a farm of N nodes behind a real nginx, set up the way a
// production farm is: the nodes share one identity key (mirror.keyFile) and one set of SSH host keys
// (ssh.hostKeyDir) and announce the balancer's URL as theirs (baseUrl, ssh.publicPort); each keeps its own home
// (disk and database) and node id. nginx listens on the demo's mirror ports, so the clone commands printed go
// through it, and a rotation loop gives nginx only the nodes whose /ready answers 200, as a Kubernetes Service
// would.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateMirrorKey } from '../auth/mirror-token.js';
import { loadConfig } from '../config/load.js';
import { NginxBalancer } from '../farm/balancer.js';
import { startRotation, type Rotation } from '../farm/rotation.js';
import type { Logger } from '../obs/logger.js';
import { startMirror, type RunningMirror } from '../server/mirror.js';
import type { DevCaFiles } from '../tls/dev-ca.js';
import { loadOrCreateHostKeys } from '../transport/ssh/host-keys.js';

export interface FarmPorts {
  /** The balancer's listeners: the farm's HTTPS and SSH ports. */
  https: number;
  ssh: number;
  /** Node i listens on nodeBase + 2i (HTTPS) and nodeBase + 2i + 1 (SSH). */
  nodeBase: number;
}

/** The ports node i of the farm listens on (behind the balancer). */
export function nodePorts(nodeBase: number, i: number): { https: number; ssh: number } {
  return { https: nodeBase + 2 * i, ssh: nodeBase + 2 * i + 1 };
}

export interface DemoFarm {
  balancer: NginxBalancer;
  nodes: Array<{ name: string; mirror: RunningMirror }>;
  rotation: Rotation;
  mirrorId: string;
  dir: string;
  stop(): Promise<void>;
}

export interface DemoFarmOptions {
  nodes: number;
  ports: FarmPorts;
  nginx?: string;
  /** Authorizes the mirror on the primary once its registration request is pending. */
  authorize(mirrorId: string): Promise<void>;
}

/** The farm's shared secret: what Kubernetes would mount into every node from one Secret. */
async function sharedSecret(dir: string, log: Logger): Promise<{ keyFile: string; hostKeyDir: string }> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keyFile = join(dir, 'id_ed25519');
  if (!existsSync(keyFile)) writeFileSync(keyFile, generateMirrorKey().privateKeyOpenSsh, { mode: 0o600, flag: 'wx' });
  const hostKeyDir = join(dir, 'ssh');
  await loadOrCreateHostKeys(hostKeyDir, log);
  return { keyFile, hostKeyDir };
}

export async function startDemoFarm(home: string, ca: DevCaFiles, upstreamUrl: string, log: Logger, options: DemoFarmOptions): Promise<DemoFarm> {
  const dir = join(home, 'farm');
  const { keyFile, hostKeyDir } = await sharedSecret(join(dir, 'secret'), log);
  const { ports } = options;
  const balancer = await NginxBalancer.start({
    dir: join(dir, 'balancer'),
    host: '127.0.0.1',
    httpsPort: ports.https,
    sshPort: ports.ssh,
    tlsCert: ca.tlsCert,
    tlsKey: ca.tlsKey,
    caFile: ca.caCert,
    ...(options.nginx ? { nginx: options.nginx } : {}),
  });
  const nodes: DemoFarm['nodes'] = [];
  const rotation = startRotation({
    balancer,
    caFile: ca.caCert,
    nodes: () => nodes.map(({ name, mirror }) => ({ name, httpPort: mirror.httpPort, ...(mirror.sshPort ? { sshPort: mirror.sshPort } : {}) })),
    intervalMs: 500,
    onChange: (ready) => log.info({ ready }, 'balancer rotation changed'),
    onError: (err) => log.warn({ err }, 'balancer reload failed'),
  });
  const stop = async () => {
    await rotation.stop();
    await Promise.all(nodes.map((n) => n.mirror.stop()));
    await balancer.stop();
  };
  try {
    for (let i = 0; i < options.nodes; i++) {
      const name = `node-${i}`;
      const own = nodePorts(ports.nodeBase, i);
      // Built from defaults, not the environment, whose MIRRORFARM_* variables describe the primary.
      const config = loadConfig({
        env: {},
        overrides: {
          mode: 'mirror',
          home: join(dir, name),
          displayName: 'demo farm',
          baseUrl: `https://localhost:${ports.https}`,
          'mirror.upstreamUrl': upstreamUrl,
          'mirror.nodeId': name,
          'mirror.keyFile': keyFile,
          'trust.caFile': ca.caCert,
          'http.host': '127.0.0.1',
          'http.port': own.https,
          'http.tls.cert': ca.tlsCert,
          'http.tls.key': ca.tlsKey,
          'ssh.host': '127.0.0.1',
          'ssh.port': own.ssh,
          'ssh.hostKeyDir': hostKeyDir,
          'ssh.publicHost': 'localhost',
          'ssh.publicPort': ports.ssh,
          'log.level': process.env.MIRRORFARM_LOG_LEVEL ?? 'warn',
        },
      });
      nodes.push({ name, mirror: await startMirror(config, log.child({ node: name })) });
    }
    const first = nodes[0]!.mirror;
    const deadline = Date.now() + 60_000;
    const states = () => nodes.map((n) => n.mirror.controller.state);
    while (Date.now() < deadline && !states().some((s) => ['PENDING', 'SYNCHRONIZED', 'SYNCHRONIZING'].includes(s))) await sleep(100);
    if (states().includes('PENDING')) await options.authorize(first.mirrorId);
    while (Date.now() < deadline && !states().every((s) => s === 'SYNCHRONIZED')) await sleep(100);
    // Ready nodes are in rotation within a probe or two.
    while (Date.now() < deadline && rotation.current().length < states().filter((s) => s === 'SYNCHRONIZED').length) await sleep(100);
    return { balancer, nodes, rotation, mirrorId: first.mirrorId, dir, stop };
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
