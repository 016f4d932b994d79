// What HTTP and SSH have in common: find the repository, authorize the principal, and run upload-pack or
// receive-pack. Transports differ only in how they establish the principal and wire up stdio.
import { randomUUID } from 'node:crypto';
import { Socket } from 'node:net';
import { authorize, type Principal } from '../access/authorize.js';
import type { Resource } from '../access/authorize.js';
import type { Repositories, RepositoryView } from '../domain/repositories.js';
import { Errors } from '../errors.js';
import type { HookEndpoint } from '../git/hook-endpoint.js';
import type { RepoStore } from '../git/repo-store.js';
import { GitCommand, type GitCommandLine, type GitProcess, type GitProcessTo, type GitRunner } from '../git/runner.js';
import type { Readable, Writable } from 'node:stream';
import type { Logger } from '../obs/logger.js';
import type { Metrics } from '../obs/metrics.js';

export type GitServiceName = 'upload-pack' | 'receive-pack';
export type Transport = 'http' | 'ssh';

/** Git-Protocol / GIT_PROTOCOL: colon-separated key[=value] items, e.g. "version=2". */
const GIT_PROTOCOL = /^[A-Za-z0-9._-]+(=[A-Za-z0-9._-]*)?(:[A-Za-z0-9._-]+(=[A-Za-z0-9._-]*)?)*$/;

export function validGitProtocol(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (value.length > 256 || !GIT_PROTOCOL.test(value)) {
    throw Errors.invalid('Malformed Git-Protocol header: expected items like "version=2" separated by ":".');
  }
  return value;
}

export interface GitRunOptions {
  transport: Transport;
  principal: Principal;
  /** HTTP's first step (ref advertisement) or its stateless request; SSH runs neither. */
  mode: 'advertise' | 'stateless' | 'stream';
  gitProtocol?: string;
  signal?: AbortSignal;
  /** Where git writes its stdout instead of a pipe (HTTP's GitOutput), and its byte count once read to the end. */
  stdout?: { socket: Socket; bytes: Promise<number> };
}

export interface GitRun {
  /** `child.stdout` is null when the caller gave git a socket to write to (GitRunOptions.stdout). */
  child: GitProcess | GitProcessTo;
  /** Streams the client's input into git (none for a ref advertisement) and git's output to the client. */
  connect(input: Readable | null, output: Writable): void;
  /** Streams the client's input into git only; the caller reads `child.stdout` and writes it out itself. */
  connectInput(input: Readable | null): void;
  /** The start of git's stderr (for error mapping and logs; never sent to clients verbatim). */
  stderr(): string;
  /** Resolves when git has exited and the push (if any) is recorded; true when git succeeded. */
  done: Promise<boolean>;
}

/** Where the facts for the policy come from: the local database on a primary, the primary on a mirror. */
export interface AccessResolver {
  repositoryResource(principal: Principal, project: RepositoryView['project'], repo: RepositoryView['repo']): Promise<Resource>;
}

/** Extra rules of a server that does not own its repositories (a mirror). */
export interface ServingPolicy {
  /** Throws when the repository cannot be served yet (e.g. not synchronized). */
  checkAvailable(view: RepositoryView): Promise<void>;
  /** The error for a push, naming where to push instead. */
  refusePush(view: RepositoryView): Error;
}

export class GitService {
  private active = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly repositories: Repositories,
    private readonly access: AccessResolver,
    private readonly store: RepoStore,
    private readonly git: GitRunner,
    /** Absent on a mirror, where nothing is pushed. */
    private readonly hooks: HookEndpoint | undefined,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly policy?: ServingPolicy,
  ) {}

  /** Finds the repository and checks the principal may use the service on it. */
  async open(principal: Principal, projectKey: string, slug: string, service: GitServiceName): Promise<RepositoryView> {
    const path = `${projectKey.toUpperCase()}/${slug}`;
    const view = /^[A-Za-z0-9_]+$/.test(projectKey) && /^[A-Za-z0-9._-]+$/.test(slug) ? await this.repositories.find(projectKey, slug) : undefined;
    if (!view) {
      // Anonymous callers are asked to log in rather than told the repository is missing, so that names of
      // private repositories never leak.
      if (principal.kind === 'anonymous') throw Errors.authenticationRequired();
      throw Errors.repoNotFound(path);
    }
    // Named as asked for, like a missing repository, so that the stored spelling does not reveal that it exists.
    const found = await this.access.repositoryResource(principal, view.project, view.repo);
    const resource = found.kind === 'repository' ? { ...found, path } : found;
    if (this.policy) {
      // Read access is checked first, so that someone who may not see the repository learns nothing about it.
      authorize(principal, resource, 'read');
      if (service === 'receive-pack') throw this.policy.refusePush(view);
      await this.policy.checkAvailable(view);
      return view;
    }
    authorize(principal, resource, service === 'receive-pack' ? 'write' : 'read');
    return view;
  }

  /** Starts git. The caller streams its stdio and must wait for `done`. */
  run(view: RepositoryView, service: GitServiceName, options: GitRunOptions): GitRun {
    const tracked = this.begin(view, service, options);
    const spawnOptions = { env: tracked.env, ...(options.signal ? { signal: options.signal } : {}) };
    const child = options.stdout ? this.git.spawnTo(tracked.command, options.stdout.socket, spawnOptions) : this.git.spawn(tracked.command, spawnOptions);
    const stderr: Buffer[] = [];
    child.stderr.on('data', (c: Buffer) => stderr.length < 64 && stderr.push(c));
    const connectInput = (input: Readable | null) => {
      if (input) input.pipe(child.stdin);
      else child.stdin.end();
    };
    const connect = (input: Readable | null, output: Writable) => {
      if (!child.stdout) throw new Error('connect() needs git stdout as a pipe');
      connectInput(input);
      child.stdout.pipe(output);
    };
    const done = child.exited.then(async (code) => {
      // Bytes are the pipes' own totals once git's stdio has closed, instead of a 'data' listener per chunk
      // (a full clone is ~15,000 chunks; the listener also kept git's stdout from being read in other ways).
      const bytesIn = child.stdin instanceof Socket ? child.stdin.bytesWritten : 0;
      const bytesOut = options.stdout ? await options.stdout.bytes : child.stdout instanceof Socket ? child.stdout.bytesRead : 0;
      return tracked.finish(code, { bytesIn, bytesOut, stderr: Buffer.concat(stderr).toString('utf8') });
    });
    return { child, done, connect, connectInput, stderr: () => Buffer.concat(stderr).toString('utf8') };
  }

  /**
   * For a front end that starts git in another process with the client's stdio (the OpenSSH front end's session
   * script): the exact command line run() would use, and `finish`, to call with git's exit code. The operation
   * counts as running (metrics, shutdown drain) until then; its bytes are not seen here and are not counted.
   */
  plan(view: RepositoryView, service: GitServiceName, options: GitRunOptions): { commandLine: GitCommandLine; finish(code: number | null): Promise<boolean> } {
    const tracked = this.begin(view, service, options);
    const commandLine = this.git.commandLine(tracked.command, { env: tracked.env });
    let finished: Promise<boolean> | undefined;
    return { commandLine, finish: (code) => (finished ??= tracked.finish(code, {})) };
  }

  /** What every run shares: the environment (push token for the hooks), metrics, and the bookkeeping at the end. */
  private begin(view: RepositoryView, service: GitServiceName, options: GitRunOptions) {
    const labels = { transport: options.transport, service };
    const env: Record<string, string> = {};
    if (options.gitProtocol) env.GIT_PROTOCOL = options.gitProtocol;
    let pushToken: string | undefined;
    if (service === 'receive-pack') {
      if (!this.hooks) throw new Error('receive-pack needs the hook endpoint');
      pushToken = randomUUID();
      this.hooks.register(pushToken, {
        repositoryId: view.repo.id,
        cause: { via: options.transport, ...(options.principal.kind === 'user' ? { actor: options.principal.name } : {}) },
      });
      env.MIRRORFARM_PUSH_TOKEN = pushToken;
      env.MIRRORFARM_HOOK_SOCKET = this.store.layout.hookSocket;
    }
    let command = GitCommand.of(service);
    if (options.mode !== 'stream') command = command.flag('--stateless-rpc');
    if (options.mode === 'advertise') command = command.flag('--advertise-refs');
    command = command.value(this.store.pathOf(view.repo.id));

    const started = process.hrtime.bigint();
    this.active++;
    this.metrics.gitActive.inc(labels);
    const finish = async (code: number | null, seen: { bytesIn?: number; bytesOut?: number; stderr?: string }) => {
      try {
        if (pushToken) await this.hooks?.finish(pushToken);
      } catch (err) {
        this.log.error({ err, repositoryId: view.repo.id }, 'recording ref changes failed');
      }
      const ok = code === 0;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.metrics.gitOperations.inc({ ...labels, outcome: ok ? 'success' : options.signal?.aborted ? 'aborted' : 'failure' });
      this.metrics.gitDuration.observe(labels, seconds);
      if (seen.bytesIn !== undefined) this.metrics.gitBytes.inc({ ...labels, direction: 'in' }, seen.bytesIn);
      if (seen.bytesOut !== undefined) this.metrics.gitBytes.inc({ ...labels, direction: 'out' }, seen.bytesOut);
      this.metrics.gitActive.dec(labels);
      const entry = { repository: `${view.project.key}/${view.repo.slug}`, ...labels, mode: options.mode, code, seconds, bytesIn: seen.bytesIn, bytesOut: seen.bytesOut };
      if (ok || options.signal?.aborted) this.log.info(entry, 'git operation finished');
      else this.log.warn({ ...entry, ...(seen.stderr !== undefined ? { stderr: seen.stderr.slice(0, 2000) } : {}) }, 'git operation failed');
      if (--this.active === 0) this.idleWaiters.splice(0).forEach((resolve) => resolve());
      return ok;
    };
    return { command, env, finish };
  }

  /** For graceful shutdown: resolves when no git operation is running. */
  idle(): Promise<void> {
    return this.active === 0 ? Promise.resolve() : new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
