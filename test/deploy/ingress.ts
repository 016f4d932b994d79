// nginx as the cluster's ingress controller and load balancer, configured from rendered objects the way
// ingress-nginx does it: each Ingress becomes a TLS server for its host (certificate from the Secret named in
// spec.tls) whose paths proxy to the ready endpoints of the backend Service; the nginx.ingress.kubernetes.io
// annotations become the directives they stand for. Each Service with an `ssh` port is reachable as TCP at its
// release's public address (a LoadBalancer, or ingress-nginx's TCP passthrough). Every change of endpoints
// rewrites the configuration and reloads nginx; a reload is done once a control server answers with the new
// generation.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_NGINX } from '../../src/farm/balancer.js';
import { run } from '../helpers/run.js';
import { tempDir } from '../helpers/tmp.js';

const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

export interface IngressSite {
  /** The Ingress's name, for comments and error messages. */
  name: string;
  host: string;
  address: string;
  port: number;
  tlsCert: string;
  tlsKey: string;
  path: string;
  annotations: Record<string, string>;
  /** Ready endpoints of the backend Service, ip:port. */
  endpoints: string[];
}

export interface TcpService {
  name: string;
  address: string;
  port: number;
  endpoints: string[];
}

/** The directives an ingress-nginx annotation stands for (only those the chart sets; others are ignored, as cert-manager's are). */
function annotationDirectives(a: Record<string, string>): string[] {
  const out: string[] = [];
  const p = 'nginx.ingress.kubernetes.io/';
  if (a[`${p}proxy-body-size`] !== undefined) out.push(`client_max_body_size ${a[`${p}proxy-body-size`]};`);
  if (a[`${p}proxy-request-buffering`] !== undefined) out.push(`proxy_request_buffering ${a[`${p}proxy-request-buffering`]};`);
  if (a[`${p}proxy-buffering`] !== undefined) out.push(`proxy_buffering ${a[`${p}proxy-buffering`]};`);
  for (const t of ['read', 'send', 'connect']) if (a[`${p}proxy-${t}-timeout`] !== undefined) out.push(`proxy_${t}_timeout ${a[`${p}proxy-${t}-timeout`]}s;`);
  // affinity "" is ingress-nginx's default: round-robin, no cookie. Anything else would need sticky sessions.
  if (a[`${p}affinity`]) throw new Error(`affinity ${a[`${p}affinity`]} is not emulated`);
  return out;
}

const upstream = (name: string, endpoints: string[]) =>
  `upstream ${name} {\n${endpoints.length ? endpoints.map((e) => `    server ${e};`).join('\n') : '    server 127.0.0.1:9 down;'}\n  }`;

export class IngressController {
  private generation = 0;
  private child: ChildProcess | undefined;
  private readonly dir = tempDir('mf-ingress-');
  private sites: IngressSite[] = [];
  private tcp: TcpService[] = [];

  /** controlAddress:controlPort answers with the configuration's generation. */
  constructor(
    private readonly controlAddress: string,
    private readonly controlPort: number,
  ) {
    mkdirSync(join(this.dir, 'tmp'), { recursive: true });
  }

  config(): string {
    const tmp = join(this.dir, 'tmp');
    const servers = this.sites.map((s, i) => {
      const name = `ingress_${i}`;
      const noEndpoints = s.endpoints.length === 0;
      return `  ${upstream(name, s.endpoints)}
  # Ingress ${s.name}
  server {
    listen ${s.address}:${s.port} ssl;
    server_name ${s.host};
    ssl_certificate ${s.tlsCert};
    ssl_certificate_key ${s.tlsKey};
    ${annotationDirectives(s.annotations).join('\n    ')}
    location ${s.path} {
      ${noEndpoints ? 'return 503; # no ready endpoints, as ingress-nginx answers' : `proxy_pass http://${name};`}
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Port ${s.port};
      proxy_set_header X-Real-IP $remote_addr;
      proxy_next_upstream error timeout;
    }
  }`;
    });
    const streams = this.tcp.map(
      (t, i) => `  ${upstream(`tcp_${i}`, t.endpoints)}
  # Service ${t.name}
  server {
    listen ${t.address}:${t.port};
    proxy_pass tcp_${i};
    proxy_connect_timeout 10s;
    proxy_timeout 3600s;
  }`,
    );
    return `load_module ${STREAM_MODULE};
${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes 1;
pid ${join(this.dir, 'nginx.pid')};
error_log ${join(this.dir, 'error.log')} warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;
  server {
    listen ${this.controlAddress}:${this.controlPort};
    location / { return 200 "${this.generation}"; }
  }
${servers.join('\n')}
}
stream {
${streams.join('\n')}
}
`;
  }

  errorLog(): string {
    const file = join(this.dir, 'error.log');
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  /** Loads the given sites and TCP services (starting nginx the first time) and waits until nginx serves them. */
  async apply(sites: IngressSite[], tcp: TcpService[]): Promise<void> {
    const generation = ++this.generation;
    this.sites = sites;
    this.tcp = tcp;
    const file = join(this.dir, 'nginx.conf');
    writeFileSync(file, this.config());
    const check = await run(DEFAULT_NGINX, ['-t', '-q', '-p', this.dir, '-c', file, '-e', join(this.dir, 'error.log')], { env: { PATH: process.env.PATH } });
    if (check.code !== 0) throw new Error(`nginx refused the configuration:\n${check.stderr}\n${this.config()}`);
    if (!this.child) {
      this.child = spawn(DEFAULT_NGINX, ['-p', this.dir, '-c', file, '-e', join(this.dir, 'error.log'), '-g', 'daemon off;'], { env: { PATH: process.env.PATH }, stdio: 'ignore' });
    } else {
      this.child.kill('SIGHUP');
    }
    const deadline = Date.now() + 10_000;
    while ((await this.loaded().catch(() => -1)) !== generation) {
      if (this.child.exitCode !== null) throw new Error(`nginx exited:\n${this.errorLog()}`);
      if (Date.now() > deadline) throw new Error(`nginx did not load generation ${generation}:\n${this.errorLog()}`);
      await sleep(20);
    }
  }

  private loaded(): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = request({ host: this.controlAddress, port: this.controlPort, path: '/', agent: false, timeout: 1000 }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(Number(body)));
      });
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.end();
    });
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGQUIT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}
