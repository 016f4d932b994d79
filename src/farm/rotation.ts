// Readiness-driven rotation, as a Kubernetes Service keeps its endpoints: every node's /ready is probed over
// HTTPS, and the balancer is given the nodes that are ready. A node that is still synchronizing, evicted, out of
// sync or draining answers 503 and leaves the rotation at once; it comes back by itself once it is in sync. A node
// that does not answer at all (slow under load, or gone) leaves only after `failureThreshold` probes in a row, as
// with a readinessProbe's failureThreshold: a single slow answer of the only ready node must not empty the
// rotation (nginx then refuses everything with 502), and a node that is really gone costs nothing meanwhile,
// since nginx passes a connection it cannot open to the next node.
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
  /** How long a probe may take (a readinessProbe's timeoutSeconds); default 2 s. */
  timeoutMs?: number;
  /** Unanswered probes in a row after which a ready node leaves the rotation; default 3. */
  failureThreshold?: number;
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
  const threshold = options.failureThreshold ?? 3;
  let rotation: string[] | undefined;
  let applied: string | undefined;
  /** Unanswered probes in a row, per node in rotation. */
  const misses = new Map<string, number>();
  let stopped = false;

  const probeOnce = async () => {
    const nodes = [...options.nodes()];
    const answers = await Promise.all(nodes.map((n) => readiness(n, ca, options.tlsName ?? 'localhost', options.timeoutMs ?? 2_000)));
    const live = nodes
      .filter((node, i) => {
        const answer = answers[i];
        const missed = answer === 'unanswered' ? (misses.get(node.name) ?? 0) + 1 : 0;
        const keep = answer === 'ready' || (answer === 'unanswered' && (rotation ?? []).includes(node.name) && missed < threshold);
        if (keep) misses.set(node.name, missed);
        else misses.delete(node.name);
        return keep;
      })
      .sort((a, b) => a.name.localeCompare(b.name));
    const names = live.map((n) => n.name);
    // Compared with the ports too: a node restarted on other ports under the same name is a new upstream.
    const targets = live.map((n) => `${n.name}@${n.host ?? ''}:${n.httpPort}:${n.sshPort ?? ''}`).join();
    if (stopped || targets === applied) return;
    await options.balancer.setUpstreams(live.map((n): Upstream => ({ httpPort: n.httpPort, ...(n.sshPort ? { sshPort: n.sshPort } : {}), ...(n.host ? { host: n.host } : {}) })));
    rotation = names;
    applied = targets;
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

type Readiness = 'ready' | 'unready' | 'unanswered';

/** GET /ready on the node itself: 200 is ready, any other answer is the node saying it is not; no answer in time (refused, slow, a TLS failure) is unanswered. */
function readiness(node: RotationNode, ca: Buffer, servername: string, timeoutMs: number): Promise<Readiness> {
  return new Promise((done) => {
    const req = request({ host: node.host ?? '127.0.0.1', port: node.httpPort, path: '/ready', ca, servername, timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      done(res.statusCode === 200 ? 'ready' : 'unready');
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => done('unanswered'));
    req.end();
  });
}
