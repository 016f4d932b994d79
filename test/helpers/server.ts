// Starts a real mirrorfarm server (the built CLI) as a child process on random loopback ports, with its own
// home and a development CA, and gives tests clients for it: git over HTTPS/SSH and the REST API.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeDevCa, type DevCaFiles } from '../../src/tls/dev-ca.js';
import { run, type RunResult } from './run.js';
import { tempDir } from './tmp.js';

export const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/cli/main.js');

let sharedCa: Promise<DevCaFiles> | undefined;

/** One development CA per test process, for localhost and 127.0.0.1. */
export function testCa(): Promise<DevCaFiles> {
  sharedCa ??= writeDevCa({ outDir: join(tempDir('mf-ca-'), 'ca'), hosts: ['localhost', '127.0.0.1'] });
  return sharedCa;
}

export const ADMIN_PASSWORD = 'admin-password-1';

/**
 * The SSH front end test servers use: MF_SSH_FRONTEND=openssh runs the SSH suites against OpenSSH's sshd
 * (managed by the server), anything else against the built-in server. With sshd, clients log in as the
 * account the tests (and so the server) run as.
 */
export const SSH_FRONTEND: 'builtin' | 'openssh' = process.env.MF_SSH_FRONTEND === 'openssh' ? 'openssh' : 'builtin';

function sshFrontendEnv(): Record<string, string> {
  return SSH_FRONTEND === 'openssh' ? { MIRRORFARM_SSH_FRONTEND: 'openssh', MIRRORFARM_SSH_USER: userInfo().username } : {};
}

export interface Credentials {
  user: string;
  secret: string;
}

export interface TestServer {
  home: string;
  baseUrl: string;
  httpPort: number;
  sshPort: number;
  /** The account SSH clients log in as (ssh.user). */
  sshUser: string;
  ca: DevCaFiles;
  process: ChildProcess;
  /** Everything the server printed, for failure messages. */
  output(): string;
  httpUrl(project: string, slug: string, creds?: Credentials): string;
  sshUrl(project: string, slug: string): string;
  /** Stops with SIGTERM (graceful) and waits for exit. */
  stop(): Promise<number | null>;
  /** Starts again on the same home (new ports). */
  restart(env?: Record<string, string>): Promise<TestServer>;
}

export interface StartOptions {
  home?: string;
  env?: Record<string, string>;
}

export async function startServer(options: StartOptions = {}): Promise<TestServer> {
  const ca = await testCa();
  const home = options.home ?? join(tempDir('mf-server-'), 'home');
  const endpointsFile = join(home, 'run', 'endpoints.json');
  rmSync(endpointsFile, { force: true });
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    MIRRORFARM_HOME: home,
    MIRRORFARM_HTTP_HOST: '127.0.0.1',
    MIRRORFARM_HTTP_PORT: '0',
    MIRRORFARM_SSH_HOST: '127.0.0.1',
    MIRRORFARM_SSH_PORT: '0',
    MIRRORFARM_HTTP_TLS_CERT: ca.tlsCert,
    MIRRORFARM_HTTP_TLS_KEY: ca.tlsKey,
    MIRRORFARM_ADMIN_PASSWORD: ADMIN_PASSWORD,
    MIRRORFARM_LOG_LEVEL: 'info',
    MIRRORFARM_SHUTDOWN_TIMEOUT_SECONDS: '10',
    ...sshFrontendEnv(),
    ...options.env,
  };
  const child = spawn(process.execPath, [CLI, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString('utf8')));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  type Endpoints = { pid: number; baseUrl: string; httpPort: number; sshPort: number; sshUser?: string };
  let endpoints = undefined as Endpoints | undefined;
  for (let i = 0; i < 300 && !endpoints; i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${output}`);
    if (existsSync(endpointsFile)) {
      try {
        const parsed = JSON.parse(readFileSync(endpointsFile, 'utf8')) as Endpoints;
        if (parsed?.pid === child.pid) endpoints = parsed;
      } catch {
        // being written; read it again in a moment
      }
    }
    if (!endpoints) await sleep(50);
  }
  if (!endpoints) {
    child.kill('SIGKILL');
    throw new Error(`server did not start within 15 s:\n${output}`);
  }
  const server: TestServer = {
    home,
    baseUrl: endpoints.baseUrl,
    httpPort: endpoints.httpPort,
    sshPort: endpoints.sshPort,
    sshUser: endpoints.sshUser ?? 'git',
    ca,
    process: child,
    output: () => output,
    httpUrl: (project, slug, creds) =>
      `https://${creds ? `${encodeURIComponent(creds.user)}:${encodeURIComponent(creds.secret)}@` : ''}127.0.0.1:${endpoints!.httpPort}/scm/${project}/${slug}.git`,
    sshUrl: (project, slug) => `ssh://${endpoints!.sshUser ?? 'git'}@127.0.0.1:${endpoints!.sshPort}/${project.toLowerCase()}/${slug}.git`,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    restart: async (extraEnv) => {
      await server.stop();
      return startServer({ home, env: { ...options.env, ...extraEnv } });
    },
  };
  return server;
}

// --- REST client ------------------------------------------------------------------------------------------

export interface ApiResponse<T = any> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
  text: string;
}

export const ADMIN: Credentials = { user: 'admin', secret: ADMIN_PASSWORD };

export function api<T = any>(server: TestServer, method: string, path: string, body?: unknown, creds: Credentials | null = ADMIN, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      {
        host: '127.0.0.1',
        port: server.httpPort,
        method,
        path,
        ca: readFileSync(server.ca.caCert),
        headers: {
          ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          ...(creds ? { authorization: `Basic ${Buffer.from(`${creds.user}:${creds.secret}`).toString('base64')}` } : {}),
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = undefined;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed as T, text });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

// --- git and ssh clients ----------------------------------------------------------------------------------

export interface SshKeyPair {
  privateKey: string;
  publicKey: string;
}

export async function sshKeyPair(comment = 'test'): Promise<SshKeyPair> {
  const dir = tempDir('mf-key-');
  const privateKey = join(dir, 'id_ed25519');
  const r = await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', privateKey]);
  if (r.code !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
  return { privateKey, publicKey: readFileSync(`${privateKey}.pub`, 'utf8').trim() };
}

export function sshCommand(key: SshKeyPair): string {
  return `ssh -i ${key.privateKey} -o IdentitiesOnly=yes -o IdentityAgent=none -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes`;
}

/** Runs `command` over SSH on the server as the key's holder, with a complete environment (no agent, no config). */
export function sshExec(server: TestServer, key: SshKeyPair, command: string[], input?: string): Promise<RunResult> {
  const args = ['-F', '/dev/null', '-i', key.privateKey, '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes'];
  return run('ssh', [...args, '-p', String(server.sshPort), `${server.sshUser}@127.0.0.1`, ...command], { env: { PATH: process.env.PATH, HOME: tempDir('mf-ssh-home-') }, ...(input === undefined ? {} : { input }) });
}

export interface GitClientOptions {
  cwd?: string;
  /** HTTP credentials, sent as a header so they never show up on argv or in URLs. */
  creds?: Credentials;
  sshKey?: SshKeyPair;
  protocol?: 0 | 1 | 2;
  env?: Record<string, string>;
}

/** The git client, isolated from the machine's config, trusting the test CA. */
export async function git(server: TestServer | null, args: string[], options: GitClientOptions = {}): Promise<RunResult> {
  const home = tempDir('mf-git-home-');
  const config: Array<[string, string]> = [
    ['user.name', 'Test User'],
    ['user.email', 'test@example.com'],
    ['init.defaultBranch', 'main'],
    ['advice.detachedHead', 'false'],
  ];
  if (options.protocol !== undefined) config.push(['protocol.version', String(options.protocol)]);
  if (options.creds) config.push(['http.extraHeader', `Authorization: Basic ${Buffer.from(`${options.creds.user}:${options.creds.secret}`).toString('base64')}`]);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    LC_ALL: 'C',
    GIT_SSH_COMMAND: options.sshKey ? sshCommand(options.sshKey) : 'ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR',
    ...(server ? { GIT_SSL_CAINFO: server.ca.caCert } : {}),
    GIT_CONFIG_COUNT: String(config.length),
    ...Object.fromEntries(config.flatMap(([k, v], i) => [[`GIT_CONFIG_KEY_${i}`, k], [`GIT_CONFIG_VALUE_${i}`, v]])),
    ...options.env,
  };
  const result = await run('git', args, { cwd: options.cwd, env });
  rmSync(home, { recursive: true, force: true });
  return result;
}

/** git, failing the test with git's stderr when it does not exit 0. */
export async function gitOk(server: TestServer | null, args: string[], options: GitClientOptions = {}): Promise<string> {
  const r = await git(server, args, options);
  if (r.code !== 0) throw new Error(`git ${args.join(' ')} exited ${r.code}:\n${r.stderr}${server ? `\n--- server output ---\n${server.output().slice(-4000)}` : ''}`);
  return r.stdout;
}

/** A local work tree with one commit per entry of `files`, on branch main. */
export async function makeWorkTree(files: Array<Record<string, string>> = [{ 'README.md': 'hello\n' }]): Promise<string> {
  const { writeFileSync } = await import('node:fs');
  const dir = tempDir('mf-wt-');
  await gitOk(null, ['init', '-q', dir]);
  let n = 0;
  for (const commit of files) {
    for (const [name, content] of Object.entries(commit)) writeFileSync(join(dir, name), content);
    await gitOk(null, ['add', '-A'], { cwd: dir });
    await gitOk(null, ['commit', '-q', '-m', `commit ${++n}`], { cwd: dir });
  }
  return dir;
}

/** `git ls-remote` output as a map ref -> oid. */
export function parseLsRemote(stdout: string): Map<string, string> {
  return new Map(
    stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [oid, ref] = l.split('\t') as [string, string];
        return [ref, oid];
      }),
  );
}

// --- mirrors ----------------------------------------------------------------------------------------------

/** A free loopback port (a mirror's base URL must name its port before it starts). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Starts a mirror node of `primary` as its own process, trusting the test CA. */
export async function startMirror(primary: TestServer, options: StartOptions = {}): Promise<TestServer> {
  const port = await freePort();
  const ca = await testCa();
  return startServer({
    ...options,
    env: {
      MIRRORFARM_MODE: 'mirror',
      MIRRORFARM_MIRROR_UPSTREAM_URL: primary.baseUrl,
      MIRRORFARM_BASE_URL: `https://127.0.0.1:${port}`,
      MIRRORFARM_HTTP_PORT: String(port),
      MIRRORFARM_TRUST_CA_FILE: ca.caCert,
      MIRRORFARM_DISPLAY_NAME: 'test mirror',
      ...options.env,
    },
  });
}

/** Polls `check` until it returns a value (not undefined/false) or the time is up. */
export async function eventually<T>(check: () => Promise<T | undefined | false>, what: string, timeoutMs = 15_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(intervalMs);
  }
}
