// HTTPS reference for the clone benchmark: Debian's nginx terminating TLS (the same certificate and key as
// mirrorfarm, TLS 1.3 only, so both negotiate the same cipher with git's libcurl), fcgiwrap, and
// `git http-backend` with GIT_PROJECT_ROOT on the benchmark's bare repository. It is what a plain Git
// server behind nginx runs (the setup git-http-backend(1) documents), tuned the way such a deployment would
// be: responses buffered in memory only (no temp files), large buffers, no access log.
//
// CPU accounting, like the OpenSSH reference: nginx's master and worker are read directly (workers are not
// reaped while nginx runs), and so is fcgiwrap's own CPU. fcgiwrap ignores SIGCHLD, so its CGI children are
// reaped by the kernel and never show in its cutime: the CGI script is therefore a bash stand-in that runs
// git http-backend as its child and records its own /proc stat when it has exited (its utime+stime and
// cutime+cstime: the stand-in, http-backend, upload-pack and pack-objects). http-backend starts upload-pack as
// $GIT_EXEC_PATH/git, where a second stand-in records upload-pack's (+ pack-objects') cutime+cstime the same
// way. One file per run (a v2 clone runs both three times: advertisement, ls-refs, fetch). So "beyond git" for
// this server = nginx + fcgiwrap + the CGI side minus upload-pack (http-backend, and two bash stand-ins of a
// few ms each, as the OpenSSH reference's -u wrapper).
import { existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { clockTicks, freePort, killGroup, readCpu, run, sleep, spawnTracked, tail, waitForPort, type ProcCpu } from './proc.js';

const NGINX = '/usr/sbin/nginx';
const FCGIWRAP = '/usr/sbin/fcgiwrap';
const HTTP_BACKEND = '/usr/lib/git-core/git-http-backend';

export interface GitHttpBackend {
  /** https URL of the repository. */
  url: string;
  port: number;
  nginxPid: number;
  fcgiwrapPid: number;
  /** self: nginx (master + workers) and fcgiwrap; children: the CGI side (http-backend, git), in ticks. */
  readCpu(): ProcCpu;
  /** Sum of upload-pack CPU (seconds) recorded since the last call; the records are removed. */
  takeUploadPackCpu(): number | undefined;
  stop(): Promise<void>;
}

const GIT_EXEC_PATH = '/usr/lib/git-core';

const GIT_STANDIN = `#!/bin/bash
# Stands in for git in git http-backend's GIT_EXEC_PATH. upload-pack runs as a child so that this shell's
# cutime+cstime, read from /proc once it has exited, is the CPU of upload-pack and the pack-objects it reaped.
export GIT_EXEC_PATH=${GIT_EXEC_PATH}
if [ "$1" = upload-pack ]; then
  ${GIT_EXEC_PATH}/git "$@"
  rc=$?
  IFS= read -r stat < /proc/$$/stat
  printf '%s\\n' "$stat" > "$BENCH_CPU_DIR/upload-pack-$$.stat"
  exit $rc
fi
exec ${GIT_EXEC_PATH}/git "$@"
`;

const BACKEND_STANDIN = `#!/bin/bash
# The CGI script fcgiwrap runs: git http-backend as a child, then this shell's own and children's CPU.
${HTTP_BACKEND}
rc=$?
IFS= read -r stat < /proc/$$/stat
printf '%s\\n' "$stat" > "$BENCH_CPU_DIR/backend-$$.stat"
exit $rc
`;

/** utime+stime and cutime+cstime of a recorded /proc/<pid>/stat line, in ticks. */
function statTicks(stat: string): { self: number; children: number } | undefined {
  const rest = stat.slice(stat.lastIndexOf(')') + 2).trim().split(' ');
  const f = (field: number) => Number(rest[field - 3]);
  const t = { self: f(14) + f(15), children: f(16) + f(17) };
  return Number.isFinite(t.self) && Number.isFinite(t.children) ? t : undefined;
}

/** pid plus direct children (nginx's workers) CPU, self only: workers are not reaped while nginx runs. */
function treeSelfTicks(pid: number): number {
  let total = 0;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (Number(name) === pid || ppid === pid) total += readCpu(Number(name)).self;
    } catch {
      // exited
    }
  }
  return total;
}

export function nginxGitConfig(o: { prefix: string; port: number; cert: string; key: string; socket: string; projectRoot: string; backend: string; execPath: string; cpuDir: string }): string {
  const temp = join(o.prefix, 'tmp');
  return `# git http-backend behind nginx + fcgiwrap: the clone benchmark's HTTPS reference.
${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes 1;
pid ${join(o.prefix, 'nginx.pid')};
error_log ${join(o.prefix, 'error.log')} warn;
events { worker_connections 256; }

http {
  access_log off;
  client_body_temp_path ${temp}/body;
  proxy_temp_path ${temp}/proxy;
  fastcgi_temp_path ${temp}/fastcgi;
  uwsgi_temp_path ${temp}/uwsgi;
  scgi_temp_path ${temp}/scgi;
  client_max_body_size 0;
  client_body_buffer_size 1m;
  sendfile on;
  keepalive_timeout 60s;

  server {
    listen 127.0.0.1:${o.port} ssl;
    ssl_certificate ${o.cert};
    ssl_certificate_key ${o.key};
    ssl_protocols TLSv1.3;
    ssl_session_cache shared:SSL:1m;

    location ~ ^/git(/.*)$ {
      include /etc/nginx/fastcgi_params;
      fastcgi_pass unix:${o.socket};
      fastcgi_param SCRIPT_FILENAME ${o.backend};
      fastcgi_param PATH_INFO $1;
      fastcgi_param GIT_PROJECT_ROOT ${o.projectRoot};
      fastcgi_param GIT_HTTP_EXPORT_ALL "";
      fastcgi_param GIT_CONFIG_NOSYSTEM 1;
      fastcgi_param HOME ${o.prefix};
      fastcgi_param PATH /usr/bin:/bin;
      fastcgi_param GIT_EXEC_PATH ${o.execPath};
      fastcgi_param BENCH_CPU_DIR ${o.cpuDir};
      # The Git-Protocol header reaches http-backend as HTTP_GIT_PROTOCOL (protocol v2).
      # Pack data is buffered in memory (1 MiB), never in temp files, and streamed on.
      fastcgi_buffering on;
      fastcgi_buffer_size 64k;
      fastcgi_buffers 16 64k;
      fastcgi_busy_buffers_size 128k;
      fastcgi_max_temp_file_size 0;
      fastcgi_read_timeout 3600s;
      fastcgi_send_timeout 3600s;
    }
  }
}
`;
}

export async function startGitHttpBackend(dir: string, repoPath: string, tls: { cert: string; key: string }): Promise<GitHttpBackend> {
  for (const bin of [NGINX, FCGIWRAP, HTTP_BACKEND]) {
    if (!existsSync(bin)) throw new Error(`${bin} not found: install it with 'apt-get update && apt-get install -y nginx fcgiwrap git'`);
  }
  const prefix = resolve(dir);
  rmSync(prefix, { recursive: true, force: true });
  mkdirSync(join(prefix, 'tmp'), { recursive: true, mode: 0o700 });
  const bin = join(prefix, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'git'), GIT_STANDIN, { mode: 0o755 });
  const backend = join(prefix, 'git-http-backend.sh');
  writeFileSync(backend, BACKEND_STANDIN, { mode: 0o755 });
  const cpuDir = join(prefix, 'cpu');
  mkdirSync(cpuDir);
  const socket = join(prefix, 'fcgiwrap.sock');
  const port = await freePort();
  writeFileSync(
    join(prefix, 'nginx.conf'),
    nginxGitConfig({ prefix, port, cert: resolve(tls.cert), key: resolve(tls.key), socket, projectRoot: dirname(resolve(repoPath)), backend, execPath: bin, cpuDir }),
  );

  // One fcgiwrap process (-c 1) that forks each CGI request itself: a v2 clone's requests come one after another.
  const fcgiLog = openSync(join(prefix, 'fcgiwrap.log'), 'w');
  const fcgi = spawnTracked('fcgiwrap', FCGIWRAP, ['-c', '1', '-s', `unix:${socket}`], { stdio: ['ignore', fcgiLog, fcgiLog], env: { PATH: '/usr/bin:/bin' }, group: true });
  for (let i = 0; !existsSync(socket); i++) {
    if (fcgi.cp.exitCode !== null || i > 200) {
      killGroup(fcgi.cp);
      throw new Error(`fcgiwrap did not create ${socket}\n${tail(readFileSync(join(prefix, 'fcgiwrap.log'), 'utf8'))}`);
    }
    await sleep(25);
  }
  const args = ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'error.log'), '-g', 'daemon off;'];
  const nginx = spawnTracked('nginx', NGINX, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: '/usr/bin:/bin' }, group: true });
  let nginxAlive = true;
  void nginx.exited.then(() => (nginxAlive = false));
  try {
    await waitForPort(port, 10_000, () => nginxAlive);
  } catch (e) {
    killGroup(nginx.cp);
    killGroup(fcgi.cp);
    const log = existsSync(join(prefix, 'error.log')) ? readFileSync(join(prefix, 'error.log'), 'utf8') : '';
    throw new Error(`nginx did not start: ${String(e)}\n${tail(log)}`);
  }
  const nginxPid = nginx.cp.pid as number;
  const fcgiwrapPid = fcgi.cp.pid as number;
  // Totals of the recorded stat files, in ticks; each file is read once and removed.
  let cgiTicks = 0;
  let uploadPackTicks = 0;
  let uploadPackTaken = 0;
  let unreadable = 0;
  const collect = () => {
    for (const name of readdirSync(cpuDir)) {
      const file = join(cpuDir, name);
      const t = statTicks(readFileSync(file, 'utf8'));
      rmSync(file, { force: true });
      if (!t) unreadable++;
      else if (name.startsWith('backend-')) cgiTicks += t.self + t.children;
      else uploadPackTicks += t.children;
    }
  };
  return {
    url: `https://127.0.0.1:${port}/git/${basename(repoPath)}`,
    port,
    nginxPid,
    fcgiwrapPid,
    readCpu() {
      collect();
      return { self: treeSelfTicks(nginxPid) + readCpu(fcgiwrapPid).self, children: cgiTicks };
    },
    takeUploadPackCpu() {
      collect();
      const ticks = uploadPackTicks - uploadPackTaken;
      uploadPackTaken = uploadPackTicks;
      return unreadable === 0 && ticks > 0 ? ticks / clockTicks() : undefined;
    },
    async stop() {
      if (nginxAlive) {
        nginx.cp.kill('SIGQUIT');
        await Promise.race([nginx.exited, sleep(5000)]);
      }
      killGroup(nginx.cp);
      fcgi.cp.kill('SIGTERM');
      await Promise.race([fcgi.exited, sleep(2000)]);
      killGroup(fcgi.cp);
    },
  };
}

/** TLS version and cipher git's libcurl negotiates with `url` (from GIT_CURL_VERBOSE), or undefined. */
export async function negotiatedTls(url: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const r = await run('git', ['ls-remote', url, 'refs/heads/main'], {
    env: { ...process.env, ...env, GIT_CURL_VERBOSE: '1', GIT_TRACE_CURL_NO_DATA: '1' },
    check: false,
    timeoutMs: 30_000,
  }).catch(() => undefined);
  return r ? /SSL connection using ([^\n]+)/.exec(r.stderr)?.[1]?.trim() : undefined;
}
