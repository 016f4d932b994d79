// A real nginx (Debian's package) as a farm's load balancer: HTTPS terminated and re-encrypted to the nodes
// (L7, round-robin, no stickiness, POSTs never retried on another node) and SSH passed through as TCP
// (stream module, round-robin). The set of nodes can change while it runs, as a Kubernetes Service's
// endpoints do when pods become ready or go away: the config is rewritten and nginx reloads it.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './server.js';
import { tempDir } from './tmp.js';

const NGINX = '/usr/sbin/nginx';
const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

export interface Upstream {
  httpPort: number;
  sshPort?: number;
}

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

/** Fails with the Debian package to install when nginx or its stream module is missing. */
export function assertNginxInstalled(): void {
  if (!existsSync(NGINX)) throw new Error(`nginx is not installed: apt-get install nginx libnginx-mod-stream (${NGINX} is missing)`);
  if (!existsSync(STREAM_MODULE)) throw new Error(`nginx's stream module is not installed: apt-get install libnginx-mod-stream (${STREAM_MODULE} is missing)`);
}

function servers(ports: number[]): string {
  // An upstream block may not be empty; a node marked down makes nginx answer 502 until one is added.
  if (ports.length === 0) return '    server 127.0.0.1:9 down;\n';
  return ports.map((port) => `    server 127.0.0.1:${port};\n`).join('');
}

function config(prefix: string, options: BalancerOptions, httpsPort: number, sshPort: number, upstreams: Upstream[]): string {
  const temp = join(prefix, 'tmp');
  const sshPorts = upstreams.flatMap((u) => (u.sshPort === undefined ? [] : [u.sshPort]));
  return `load_module ${STREAM_MODULE};
${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes 1;
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'error.log')} warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${temp}/body;
  proxy_temp_path ${temp}/proxy;
  fastcgi_temp_path ${temp}/fastcgi;
  uwsgi_temp_path ${temp}/uwsgi;
  scgi_temp_path ${temp}/scgi;
  # Clones and pushes are streamed both ways and may be large and slow.
  client_max_body_size 0;
  proxy_request_buffering off;
  proxy_buffering off;
  proxy_read_timeout 300s;
  proxy_send_timeout 300s;
  upstream farm_https {
${servers(upstreams.map((u) => u.httpPort))}  }
  server {
    listen 127.0.0.1:${httpsPort} ssl;
    ssl_certificate ${options.tlsCert};
    ssl_certificate_key ${options.tlsKey};
    location / {
      proxy_pass https://farm_https;
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate ${options.caFile};
      proxy_ssl_name ${options.upstreamTlsName ?? 'localhost'};
      proxy_ssl_server_name on;
      # Retried on another node only when no byte reached the first one, and never for POSTs.
      proxy_next_upstream error timeout;
    }
  }
}
stream {
  upstream farm_ssh {
${servers(sshPorts)}  }
  server {
    listen 127.0.0.1:${sshPort};
    proxy_pass farm_ssh;
  }
}
`;
}

export async function startBalancer(options: BalancerOptions, upstreams: Upstream[]): Promise<Balancer> {
  assertNginxInstalled();
  const prefix = tempDir('mf-nginx-');
  mkdirSync(join(prefix, 'tmp'));
  const confFile = join(prefix, 'nginx.conf');
  const errorLogFile = join(prefix, 'error.log');
  const [httpsPort, sshPort] = [await freePort(), await freePort()];
  writeFileSync(confFile, config(prefix, options, httpsPort, sshPort, upstreams));
  const child: ChildProcess = spawn(NGINX, ['-p', prefix, '-c', confFile, '-e', errorLogFile, '-g', 'daemon off;'], {
    env: { PATH: process.env.PATH },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const errorLog = () => (existsSync(errorLogFile) ? readFileSync(errorLogFile, 'utf8') : '') + stderr;

  // Listening once a TCP connection to the SSH side is accepted.
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}:\n${errorLog()}`);
    if (await canConnect(sshPort)) break;
    if (i > 100) {
      child.kill('SIGKILL');
      throw new Error(`nginx did not start within 5 s:\n${errorLog()}`);
    }
    await sleep(50);
  }

  let generation = 0;
  return {
    httpsPort,
    sshPort,
    baseUrl: `https://localhost:${httpsPort}`,
    errorLog,
    async setUpstreams(next) {
      writeFileSync(confFile, config(prefix, options, httpsPort, sshPort, next));
      const before = errorLog();
      child.kill('SIGHUP');
      generation++;
      // nginx logs nothing at warn level on a good reload; give the new workers a moment to take over.
      await sleep(200);
      const added = errorLog().slice(before.length);
      if (/\[emerg\]/.test(added)) throw new Error(`nginx refused configuration ${generation}:\n${added}`);
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGQUIT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
