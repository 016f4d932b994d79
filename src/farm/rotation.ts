// Readiness-driven rotation, as a Kubernetes Service keeps its endpoints: every node's /ready is probed over
// HTTPS, and the balancer is given exactly the nodes that answered 200. A node that is still synchronizing,
// evicted or out of sync answers 503 and gets no client traffic; it comes back by itself once it is in sync.
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import type { NginxBalancer, Upstream } from './balancer.js';

export interface RotationNode {
  name: string;
  /** The node's own HTTPS listener (not the farm's URL, which is the balancer). */
  httpPort: number;
  sshPort?: number;
  host?: string;
}

export interface RotationOptions {
  balancer: Pick<NginxBalancer, 'setUpstreams'>;
  /** The nodes that exist right now (read on every probe, so nodes may come and go). */
  nodes: () => readonly RotationNode[];
  caFile: string;
  /** Name the nodes' certificates are checked for. */
  tlsName?: string;
  /** How often readiness is probed (a readinessProbe's periodSeconds). */
  intervalMs?: number;
  onChange?: (ready: string[]) => void;
  onError?: (err: Error) => void;
}

export interface Rotation {
  /** Names of the nodes the balancer sends traffic to. */
  current(): string[];
  /** Probes once now and applies the result. */
  probe(): Promise<void>;
  stop(): Promise<void>;
}

export function startRotation(options: RotationOptions): Rotation {
  const ca = readFileSync(options.caFile);
  let rotation: string[] | undefined;
  let stopped = false;

  const probeOnce = async () => {
    const nodes = [...options.nodes()];
    const answers = await Promise.all(nodes.map((n) => ready(n, ca, options.tlsName ?? 'localhost')));
    const live = nodes.filter((_, i) => answers[i]).sort((a, b) => a.name.localeCompare(b.name));
    const names = live.map((n) => n.name);
    if (stopped || (rotation && names.join() === rotation.join())) return;
    await options.balancer.setUpstreams(live.map((n): Upstream => ({ httpPort: n.httpPort, ...(n.sshPort ? { sshPort: n.sshPort } : {}), ...(n.host ? { host: n.host } : {}) })));
    rotation = names;
    options.onChange?.(names);
  };

  // One probe at a time: a slow reload must not overlap the next one.
  let chain: Promise<void> = Promise.resolve();
  const probe = () => (chain = chain.then(probeOnce).catch((err: Error) => options.onError?.(err)));
  const timer = setInterval(() => void probe(), options.intervalMs ?? 500);
  timer.unref();

  return {
    current: () => [...(rotation ?? [])],
    probe,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await chain;
    },
  };
}

/** GET /ready on the node itself: 200 within two seconds means ready; anything else (503, refused, slow) does not. */
function ready(node: RotationNode, ca: Buffer, servername: string): Promise<boolean> {
  return new Promise((done) => {
    const req = request({ host: node.host ?? '127.0.0.1', port: node.httpPort, path: '/ready', ca, servername, timeout: 2_000, agent: false }, (res) => {
      res.resume();
      done(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => done(false));
    req.end();
  });
}
