// Driving the mirrorfarm server for the benchmark: dev CA, start/stop `serve`,
// REST setup (project, repository, SSH key) and loading the repository by push.
import { existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { killGroup, run, sleep, spawnTracked, tail } from './proc.js';

export class MirrorfarmUnavailable extends Error {
  override name = 'MirrorfarmUnavailable';
}

export interface Tls {
  dir: string;
  ca: string;
  cert: string;
  key: string;
}

export interface Endpoints {
  pid: number;
  baseUrl: string;
  httpPort: number;
  sshPort: number;
}

export interface ServerHandle extends Endpoints {
  home: string;
  logPath: string;
  /** Resolves with the exit code when the server process exits. */
  exited: Promise<number>;
  stop(): Promise<void>;
}

export function cliPath(root: string): string {
  return join(root, 'dist', 'cli', 'main.js');
}

export async function makeDevCa(root: string, dir: string): Promise<Tls> {
  const cli = cliPath(root);
  if (!existsSync(cli)) {
    throw new MirrorfarmUnavailable(`${cli} does not exist (run 'npm run build' once the server sources are in place)`);
  }
  mkdirSync(dir, { recursive: true });
  const r = await run(process.execPath, [cli, 'dev-ca', '--out', dir, '--host', 'localhost', '--host', '127.0.0.1'], {
    check: false,
    timeoutMs: 60_000,
  });
  const tls: Tls = { dir, ca: join(dir, 'ca.crt'), cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') };
  if (r.code !== 0 || !existsSync(tls.ca) || !existsSync(tls.cert) || !existsSync(tls.key)) {
    throw new MirrorfarmUnavailable(
      `'mirrorfarm dev-ca --out ${dir}' failed (exit ${r.code}); expected ca.crt, tls.crt, tls.key\n${tail(r.stderr + r.stdout)}`,
    );
  }
  return tls;
}

export interface StartOptions {
  root: string;
  home: string;
  tls: Tls;
  password: string;
  logPath: string;
  timeoutMs: number;
  /** Extra MIRRORFARM_* settings (e.g. the SSH front end). */
  env?: NodeJS.ProcessEnv;
}

export async function startServer(o: StartOptions): Promise<ServerHandle> {
  const cli = cliPath(o.root);
  if (!existsSync(cli)) throw new MirrorfarmUnavailable(`${cli} does not exist`);
  mkdirSync(o.home, { recursive: true });
  const endpointsPath = join(o.home, 'run', 'endpoints.json');
  rmSync(endpointsPath, { force: true });
  const logFd = openSync(o.logPath, 'w');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    MIRRORFARM_HOME: o.home,
    MIRRORFARM_HTTP_HOST: '127.0.0.1',
    MIRRORFARM_HTTP_PORT: '0',
    MIRRORFARM_SSH_HOST: '127.0.0.1',
    MIRRORFARM_SSH_PORT: '0',
    MIRRORFARM_HTTP_TLS_CERT: o.tls.cert,
    MIRRORFARM_HTTP_TLS_KEY: o.tls.key,
    MIRRORFARM_ADMIN_PASSWORD: o.password,
    MIRRORFARM_LOG_LEVEL: 'warn',
    ...o.env,
  };
  const { cp, exited } = spawnTracked('mirrorfarm serve', process.execPath, [cli, 'serve'], {
    cwd: o.root,
    env,
    stdio: ['ignore', logFd, logFd],
    group: true,
  });
  let code: number | undefined;
  void exited.then((c) => {
    code = c;
  });
  const deadline = Date.now() + o.timeoutMs;
  let endpoints: Endpoints | undefined;
  while (endpoints === undefined) {
    if (code !== undefined) {
      killGroup(cp);
      throw new MirrorfarmUnavailable(
        `'mirrorfarm serve' exited with code ${code} before writing ${endpointsPath}\n--- ${o.logPath} (tail) ---\n${logTail(o.logPath)}`,
      );
    }
    if (Date.now() > deadline) {
      cp.kill('SIGKILL');
      killGroup(cp);
      throw new MirrorfarmUnavailable(
        `'mirrorfarm serve' did not write ${endpointsPath} within ${o.timeoutMs / 1000} s\n--- ${o.logPath} (tail) ---\n${logTail(o.logPath)}`,
      );
    }
    if (existsSync(endpointsPath)) {
      try {
        const e = JSON.parse(readFileSync(endpointsPath, 'utf8')) as Partial<Endpoints>;
        if (typeof e.pid === 'number' && typeof e.baseUrl === 'string' && typeof e.httpPort === 'number' && typeof e.sshPort === 'number') {
          endpoints = { pid: e.pid, baseUrl: e.baseUrl, httpPort: e.httpPort, sshPort: e.sshPort };
          break;
        }
      } catch {
        // partially written; retry
      }
    }
    await sleep(50);
  }
  if (endpoints.pid !== cp.pid) {
    process.stderr.write(`bench: note: endpoints.json pid ${endpoints.pid} differs from spawned pid ${cp.pid}; measuring ${endpoints.pid}\n`);
  }
  return {
    ...endpoints,
    home: o.home,
    logPath: o.logPath,
    exited,
    async stop() {
      if (code === undefined) {
        cp.kill('SIGTERM');
        const res = await Promise.race([exited, sleep(15_000).then(() => 'timeout' as const)]);
        if (res === 'timeout') process.stderr.write('bench: mirrorfarm did not exit within 15 s of SIGTERM; killing it\n');
      }
      killGroup(cp);
    },
  };
}

function logTail(path: string): string {
  try {
    return tail(readFileSync(path, 'utf8'), 30);
  } catch {
    return '(no log)';
  }
}

export interface RestResult {
  status: number;
  body: string;
}

export function basicAuth(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** JSON request over HTTPS with the dev CA and Basic auth (node:https; fetch has no `ca`). */
export function rest(
  baseUrl: string,
  ca: string,
  auth: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<RestResult> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const url = new URL(path, baseUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        ca: readFileSync(ca),
        headers: {
          authorization: auth,
          accept: 'application/json',
          ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
        },
        timeout: 30_000,
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          data += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${url.href}: timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

async function restOk(
  s: ServerHandle,
  tls: Tls,
  auth: string,
  method: string,
  path: string,
  body: unknown,
  allowConflict: boolean,
): Promise<void> {
  const r = await rest(s.baseUrl, tls.ca, auth, method, path, body);
  if (r.status >= 200 && r.status < 300) return;
  if (allowConflict && r.status === 409) return;
  throw new MirrorfarmUnavailable(`${method} ${path} -> HTTP ${r.status}: ${r.body.slice(0, 500)}`);
}

/** Create project BENCH, repository big, and register the SSH key for admin. */
export async function setupRepo(s: ServerHandle, tls: Tls, password: string, publicKey: string): Promise<void> {
  const auth = basicAuth('admin', password);
  await restOk(s, tls, auth, 'POST', '/rest/api/1.0/projects', { key: 'BENCH', name: 'Bench' }, true);
  await restOk(s, tls, auth, 'POST', '/rest/api/1.0/projects/BENCH/repos', { name: 'big' }, true);
  await restOk(s, tls, auth, 'POST', '/rest/ssh/1.0/keys?user=admin', { text: publicKey }, true);
}

/** Environment for git over HTTPS to the server: CA and Basic auth header, nothing on argv. */
export function gitHttpsEnv(tls: Tls, password: string): NodeJS.ProcessEnv {
  return {
    GIT_SSL_CAINFO: tls.ca,
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_COUNT: '1',
    GIT_CONFIG_KEY_0: 'http.extraHeader',
    GIT_CONFIG_VALUE_0: `Authorization: ${basicAuth('admin', password)}`,
  };
}

/**
 * Find the server's on-disk copy of the pushed repository (a bare repo under
 * MIRRORFARM_HOME holding a pack), so it can also be cloned via file:// to tell
 * transport overhead from repository-layout differences. Undefined if not found.
 */
export function findServerRepo(home: string): string | undefined {
  const found: Array<{ path: string; bytes: number }> = [];
  const walk = (dir: string, depth: number): void => {
    if (depth > 7) return;
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    if (entries.includes('HEAD') && entries.includes('objects') && entries.includes('refs')) {
      const packDir = join(dir, 'objects', 'pack');
      let bytes = 0;
      try {
        for (const f of readdirSync(packDir)) if (f.endsWith('.pack')) bytes += statSync(join(packDir, f)).size;
      } catch {
        // no packs
      }
      found.push({ path: dir, bytes });
      return;
    }
    for (const e of entries) {
      const p = join(dir, e);
      try {
        if (statSync(p).isDirectory()) walk(p, depth + 1);
      } catch {
        // vanished
      }
    }
  };
  walk(home, 0);
  found.sort((a, b) => b.bytes - a.bytes);
  return found[0] && found[0].bytes > 0 ? found[0].path : undefined;
}
