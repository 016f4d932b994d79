// A farm's load balancer: a real nginx, run as a child process, in front of a mirror farm's nodes. It is what
// the demo runs and what the tests and benchmarks use, and its configuration is the example the README gives:
//   - HTTPS terminated and re-encrypted to the nodes (L7), whose certificates are checked against a CA;
//     round-robin per request with no stickiness, which the two-phase publish makes safe;
//   - a request is retried on another node only when no byte of it reached the first one, and never a POST
//     (nginx's default without `non_idempotent`): a push or fetch negotiation must not run twice;
//   - request and response bodies are streamed both ways (no buffering, no body size limit) and timeouts are
//     long, so that a clone of a large repository neither waits for nginx nor is cut off;
//   - SSH is passed through as TCP by the `stream` module, round-robin per connection: every node presents
//     the farm's host keys, so a client meets the same server whichever node answers.
// The set of nodes changes while it runs, as a Kubernetes Service's endpoints do when pods become ready or go
// away: the configuration is rewritten, checked with `nginx -t`, and nginx reloads it (SIGHUP) without
// dropping transfers under way.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Errors } from '../errors.js';

/** Where Debian's package puts nginx; `MIRRORFARM_NGINX` or an explicit path overrides it. */
export const DEFAULT_NGINX = '/usr/sbin/nginx';
const DEBIAN_PACKAGES = 'apt-get install nginx libnginx-mod-stream';

export interface NginxInstall {
  binary: string;
  /** The `load_module` path of the stream module, or undefined when nginx has it built in. */
  streamModule: string | undefined;
  version: string;
}

/**
 * Finds nginx and its stream module. Fails with BALANCER_NGINX_MISSING or BALANCER_STREAM_MISSING, whose
 * messages name the Debian packages to install.
 */
export async function findNginx(binary = process.env.MIRRORFARM_NGINX || DEFAULT_NGINX): Promise<NginxInstall> {
  if (!existsSync(binary)) throw Errors.balancerNginxMissing(binary, 'is missing', DEBIAN_PACKAGES);
  // `nginx -V` prints its version and build options (on stderr): whether `stream` is there, and where dynamic
  // modules live.
  const info = await new Promise<string>((done, fail) => {
    execFile(binary, ['-V'], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) fail(Errors.balancerNginxMissing(binary, `does not run: ${err.message.split('\n')[0]}`, DEBIAN_PACKAGES));
      else done(`${stdout}${stderr}`);
    });
  });
  const version = /nginx version: (\S+)/.exec(info)?.[1] ?? 'nginx';
  const options = info.split(/\s+/);
  if (options.includes('--with-stream')) return { binary, streamModule: undefined, version };
  const modulesPath = options.find((o) => o.startsWith('--modules-path='))?.slice('--modules-path='.length) ?? join(resolve(binary, '../..'), 'lib/nginx/modules');
  const streamModule = join(modulesPath, 'ngx_stream_module.so');
  if (!options.includes('--with-stream=dynamic') || !existsSync(streamModule)) throw Errors.balancerStreamMissing(binary, streamModule, 'apt-get install libnginx-mod-stream');
  return { binary, streamModule, version };
}

export interface Upstream {
  /** Loopback unless given. */
  host?: string;
  httpPort: number;
  sshPort?: number;
}

export interface BalancerOptions {
  /** nginx's prefix: its configuration, pid file, error log and temp files live here. */
  dir: string;
  /** Address the balancer listens on. */
  host: string;
  httpsPort: number;
  sshPort: number;
  /** Certificate the balancer presents (PEM files) and the CA it checks the nodes' certificates with. */
  tlsCert: string;
  tlsKey: string;
  caFile: string;
  /** Name the nodes' certificates are checked for (default localhost). */
  upstreamTlsName?: string;
  /** nginx binary; default MIRRORFARM_NGINX, else Debian's /usr/sbin/nginx. */
  nginx?: string;
}

function servers(targets: string[]): string {
  // An upstream block may not be empty; a server marked down makes nginx refuse (502, closed TCP) until a
  // node is added, as a Service without ready endpoints does.
  if (targets.length === 0) return '    server 127.0.0.1:9 down;\n';
  return targets.map((t) => `    server ${t};\n`).join('');
}

const target = (host: string | undefined, port: number) => `${host && host.includes(':') ? `[${host}]` : (host ?? '127.0.0.1')}:${port}`;

/** The whole nginx.conf for a farm. Paths are absolute, so nginx needs no other file. */
export function nginxConfig(install: Pick<NginxInstall, 'streamModule'>, options: BalancerOptions, upstreams: readonly Upstream[]): string {
  const prefix = resolve(options.dir);
  const temp = join(prefix, 'tmp');
  const listen = options.host.includes(':') ? `[${options.host}]` : options.host;
  const https = upstreams.map((u) => target(u.host, u.httpPort));
  const ssh = upstreams.flatMap((u) => (u.sshPort === undefined ? [] : [target(u.host, u.sshPort)]));
  return `# Written by mirrorfarm for a mirror farm's balancer; rewritten whenever the set of ready nodes changes.
${install.streamModule ? `load_module ${install.streamModule};\n` : ''}${process.getuid?.() === 0 ? '# Running as root: workers keep root so they can read the files under this prefix.\nuser root;\n' : ''}worker_processes 1;
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

  # Clones and pushes are streamed both ways, and may be large and slow: no body limit, no buffering,
  # long timeouts (a timeout counts between two reads or writes, not for the whole transfer).
  client_max_body_size 0;
  proxy_request_buffering off;
  proxy_buffering off;
  proxy_connect_timeout 10s;
  proxy_read_timeout 3600s;
  proxy_send_timeout 3600s;
  client_body_timeout 3600s;
  send_timeout 3600s;

  # Round-robin, no stickiness. Only ready nodes are listed (readiness is /ready on each node).
  upstream farm_https {
${servers(https)}  }

  server {
    listen ${listen}:${options.httpsPort} ssl;
    ssl_certificate ${resolve(options.tlsCert)};
    ssl_certificate_key ${resolve(options.tlsKey)};
    location / {
      proxy_pass https://farm_https;
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
      # TLS to the nodes, checked against the CA that issued their certificates.
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate ${resolve(options.caFile)};
      proxy_ssl_name ${options.upstreamTlsName ?? 'localhost'};
      proxy_ssl_server_name on;
      # Another node is tried only when the first could not be reached, and never for a POST once sent.
      proxy_next_upstream error timeout;
    }
  }
}

# SSH: TCP passthrough, round-robin per connection; every node presents the farm's host keys.
stream {
  upstream farm_ssh {
${servers(ssh)}  }
  server {
    listen ${listen}:${options.sshPort};
    proxy_pass farm_ssh;
    proxy_connect_timeout 10s;
    proxy_timeout 3600s;
  }
}
`;
}

export class NginxBalancer {
  private generation = 0;
  private readonly exited: Promise<void>;
  private stderr = '';

  private constructor(
    readonly install: NginxInstall,
    readonly options: BalancerOptions,
    private readonly child: ChildProcess,
  ) {
    child.stderr!.on('data', (c: Buffer) => (this.stderr = (this.stderr + c.toString('utf8')).slice(-64 * 1024)));
    this.exited = new Promise((done) => child.once('exit', () => done()));
  }

  get configFile(): string {
    return join(resolve(this.options.dir), 'nginx.conf');
  }

  get errorLogFile(): string {
    return join(resolve(this.options.dir), 'error.log');
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Writes the configuration for `upstreams`, starts nginx and waits until it listens. */
  static async start(options: BalancerOptions, upstreams: readonly Upstream[] = []): Promise<NginxBalancer> {
    const install = await findNginx(options.nginx);
    const prefix = resolve(options.dir);
    mkdirSync(join(prefix, 'tmp'), { recursive: true, mode: 0o700 });
    writeFileSync(join(prefix, 'nginx.conf'), nginxConfig(install, options, upstreams));
    await checkConfig(install, prefix);
    const child = spawn(install.binary, ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'error.log'), '-g', 'daemon off;'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const balancer = new NginxBalancer(install, options, child);
    // Listening once a TCP connection to the SSH side is accepted.
    for (let i = 0; ; i++) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nginx exited with ${child.exitCode ?? child.signalCode}:\n${balancer.errorLog()}`);
      if (await canConnect(options.host, options.sshPort)) break;
      if (i > 200) {
        child.kill('SIGKILL');
        throw new Error(`nginx did not start within 10 s:\n${balancer.errorLog()}`);
      }
      await sleep(50);
    }
    return balancer;
  }

  /** What nginx logged (warnings and errors) and printed. */
  errorLog(): string {
    return (existsSync(this.errorLogFile) ? readFileSync(this.errorLogFile, 'utf8') : '') + this.stderr;
  }

  /** Replaces the set of nodes and waits until nginx runs workers with the new configuration. */
  async setUpstreams(upstreams: readonly Upstream[]): Promise<void> {
    const generation = ++this.generation;
    writeFileSync(this.configFile, nginxConfig(this.install, this.options, upstreams));
    try {
      await checkConfig(this.install, resolve(this.options.dir));
    } catch (err) {
      throw new Error(`nginx refused configuration ${generation}: ${(err as Error).message}`);
    }
    const before = workers(this.child.pid!);
    this.child.kill('SIGHUP');
    // The master starts new workers with the new configuration, then tells the old ones to stop: each renames
    // itself "worker process is shutting down" and closes its listening sockets in the same step, and goes on
    // with its transfers under way. So the reload is done once a new worker runs and no old one still listens.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const now = workers(this.child.pid!);
      if (now === undefined || before === undefined) {
        await sleep(200); // no /proc to look at: give the new workers a moment
        break;
      }
      const started = now.some((pid) => !before.includes(pid));
      const oldListening = before.filter((pid) => now.includes(pid) && !processTitle(pid).includes('shutting down'));
      if (started && oldListening.length === 0) break;
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`nginx exited during a reload:\n${this.errorLog()}`);
      if (Date.now() > deadline) throw new Error(`nginx did not reload within 10 s:\n${this.errorLog()}`);
      await sleep(5);
    }
  }

  /** Graceful stop (SIGQUIT: transfers under way finish), SIGKILL after `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGQUIT');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** `nginx -t`: a configuration nginx would refuse is reported before it is loaded. */
function checkConfig(install: NginxInstall, prefix: string): Promise<void> {
  return new Promise((done, fail) => {
    execFile(install.binary, ['-t', '-q', '-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'error.log')], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, timeout: 10_000 }, (err, _stdout, stderr) => {
      if (err) fail(new Error(stderr.trim() || err.message));
      else done();
    });
  });
}

/** Pids of the nginx master's children (its workers), from /proc; undefined where /proc is not available. */
function workers(master: number): number[] | undefined {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  const out: number[] = [];
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === master) out.push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

function processTitle(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return 'exited';
  }
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host, port }, () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}
