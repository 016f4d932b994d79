// A real nginx (Debian's package) as a farm's load balancer, as the product runs it (src/farm/balancer.ts):
// HTTPS terminated and re-encrypted to the nodes (L7, round-robin, no stickiness, POSTs never retried on another
// node) and SSH passed through as TCP (stream module, round-robin), on random loopback ports in a temp dir.
// The set of nodes can change while it runs; setUpstreams() rewrites the config and waits for nginx's reload.
import { existsSync } from 'node:fs';
import { DEFAULT_NGINX, NginxBalancer, type Upstream } from '../../src/farm/balancer.js';
import { freePort } from './server.js';
import { tempDir } from './tmp.js';

export type { Upstream };

const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

export interface BalancerOptions {
  /** Certificate the balancer presents (PEM files) and the CA it checks the nodes' certificates with. */
  tlsCert: string;
  tlsKey: string;
  caFile: string;
  /** Name the nodes' certificates are checked for. */
  upstreamTlsName?: string;
}

export interface Balancer {
  httpsPort: number;
  sshPort: number;
  baseUrl: string;
  /** Replaces the set of nodes and waits until nginx has loaded it. */
  setUpstreams(upstreams: Upstream[]): Promise<void>;
  errorLog(): string;
  stop(): Promise<void>;
}

/** Fails with the Debian package to install when nginx or its stream module is missing (a quick, synchronous look). */
export function assertNginxInstalled(): void {
  if (!existsSync(DEFAULT_NGINX)) throw new Error(`nginx is not installed: apt-get install nginx libnginx-mod-stream (${DEFAULT_NGINX} is missing)`);
  if (!existsSync(STREAM_MODULE)) throw new Error(`nginx's stream module is not installed: apt-get install libnginx-mod-stream (${STREAM_MODULE} is missing)`);
}

export async function startBalancer(options: BalancerOptions, upstreams: Upstream[]): Promise<Balancer> {
  const [httpsPort, sshPort] = [await freePort(), await freePort()];
  const nginx = await NginxBalancer.start(
    {
      dir: tempDir('mf-nginx-'),
      host: '127.0.0.1',
      httpsPort,
      sshPort,
      tlsCert: options.tlsCert,
      tlsKey: options.tlsKey,
      caFile: options.caFile,
      ...(options.upstreamTlsName ? { upstreamTlsName: options.upstreamTlsName } : {}),
      nginx: DEFAULT_NGINX, // never a binary named by the machine's environment
    },
    upstreams,
  );
  return {
    httpsPort,
    sshPort,
    baseUrl: `https://localhost:${httpsPort}`,
    errorLog: () => nginx.errorLog(),
    setUpstreams: (next) => nginx.setUpstreams(next),
    stop: () => nginx.stop(),
  };
}
