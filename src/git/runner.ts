// The one place that starts git. Trusted flags and untrusted values are different types, every process gets
// an isolated environment (private HOME and config, no system config, no prompts, C locale), a timeout, and is
// killed when the caller's AbortSignal fires (the client went away). Secrets never enter git's argv or env.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';

/** A flag written in our own source code. The template type keeps user input from being passed as one. */
export type GitFlag = `-${string}`;

export class UnsafeGitArgumentError extends Error {
  override name = 'UnsafeGitArgumentError';
}

export class GitCommand {
  private constructor(readonly args: readonly string[]) {}

  static of(subcommand: string, ...flags: GitFlag[]): GitCommand {
    return new GitCommand([subcommand, ...flags]);
  }

  flag(...flags: GitFlag[]): GitCommand {
    return new GitCommand([...this.args, ...flags]);
  }

  /** Values that may come from users: refused when git could read them as an option. */
  value(...values: string[]): GitCommand {
    for (const v of values) {
      if (v.startsWith('-')) throw new UnsafeGitArgumentError(`refusing git argument that starts with "-": ${JSON.stringify(v)}`);
      if (v.includes('\0')) throw new UnsafeGitArgumentError('refusing git argument with a NUL byte');
    }
    return new GitCommand([...this.args, ...values]);
  }
}

export interface GitRunOptions {
  gitDir?: string;
  input?: string | Buffer;
  /** Extra variables (e.g. GIT_PROTOCOL); never secrets. */
  env?: Record<string, string>;
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface GitResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

export class GitError extends Error {
  override name = 'GitError';
  constructor(
    readonly args: readonly string[],
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(`git ${args[0]} exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' / ')}`);
  }
}

export type GitProcess = ChildProcessByStdio<Writable, Readable, Readable> & { exited: Promise<number | null> };
/** A git whose stdout is a socket the caller handed over (spawnTo), so there is no stdout stream here. */
export type GitProcessTo = ChildProcessByStdio<Writable, null, Readable> & { exited: Promise<number | null> };

export interface GitRunnerOptions {
  binary: string;
  /** Private HOME holding the only global git config git reads. */
  home: string;
  defaultTimeoutMs: number;
}

export const KILL_GRACE_MS = 5000;

/** What another process needs to start git exactly as spawn() would (the OpenSSH front end's session script). */
export interface GitCommandLine {
  file: string;
  args: string[];
  env: Record<string, string>;
  timeoutMs: number;
  /** After SIGTERM on timeout or abort, SIGKILL follows this much later. */
  killGraceMs: number;
}

export class GitRunner {
  constructor(private readonly options: GitRunnerOptions) {}

  private environment(extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: this.options.home,
      XDG_CONFIG_HOME: this.options.home,
      LC_ALL: 'C',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_TERMINAL_PROMPT: '0',
      GIT_NO_REPLACE_OBJECTS: '1',
      ...extra,
    };
  }

  /** The binary, argv and isolated environment spawn() would use, for a process started elsewhere. */
  commandLine(command: GitCommand, options: Pick<GitRunOptions, 'gitDir' | 'env' | 'timeoutMs'> = {}): GitCommandLine {
    const args = options.gitDir ? ['--git-dir', options.gitDir, ...command.args] : [...command.args];
    const env = Object.fromEntries(Object.entries(this.environment(options.env)).filter((e): e is [string, string] => e[1] !== undefined));
    return { file: this.options.binary, args, env, timeoutMs: options.timeoutMs ?? this.options.defaultTimeoutMs, killGraceMs: KILL_GRACE_MS };
  }

  /** Starts git with piped stdio; the caller streams. `exited` resolves with the exit code (null when killed). */
  spawn(command: GitCommand, options: GitRunOptions = {}): GitProcess {
    return this.start(command, 'pipe', options) as GitProcess;
  }

  /**
   * Like spawn(), but git writes its stdout straight into `stdout`, a socket whose descriptor is duplicated into
   * git (the caller closes its own copy and reads the other end of the connection its own way).
   */
  spawnTo(command: GitCommand, stdout: Socket, options: GitRunOptions = {}): GitProcessTo {
    return this.start(command, stdout, options) as GitProcessTo;
  }

  private start(command: GitCommand, stdout: 'pipe' | Socket, options: GitRunOptions): GitProcess | GitProcessTo {
    const args = options.gitDir ? ['--git-dir', options.gitDir, ...command.args] : [...command.args];
    const child = spawn(this.options.binary, args, {
      env: this.environment(options.env),
      stdio: ['pipe', stdout, 'pipe'],
    }) as GitProcess | GitProcessTo;
    let killTimer: NodeJS.Timeout | undefined;
    const stop = () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM'); // lets git remove its quarantine and lock files
      killTimer ??= setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS).unref();
    };
    const timeout = setTimeout(stop, options.timeoutMs ?? this.options.defaultTimeoutMs).unref();
    options.signal?.addEventListener('abort', stop, { once: true });
    if (options.signal?.aborted) stop();
    child.exited = new Promise((resolve) => {
      child.once('close', (code) => {
        clearTimeout(timeout);
        if (killTimer) clearTimeout(killTimer);
        options.signal?.removeEventListener('abort', stop);
        resolve(code);
      });
      child.once('error', () => resolve(null));
    });
    // A client that goes away mid-stream must not crash the server with EPIPE.
    child.stdin.on('error', () => {});
    return child;
  }

  /** Runs git to completion, collecting output. Rejects with GitError on a non-zero exit. */
  async run(command: GitCommand, options: GitRunOptions & { allowExitCodes?: number[] } = {}): Promise<GitResult> {
    const child = this.spawn(command, options);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    let spawnError: Error | undefined;
    child.once('error', (e) => (spawnError = e));
    child.stdin.end(options.input ?? '');
    const code = await child.exited;
    if (spawnError) throw new GitError(command.args, null, `cannot start ${this.options.binary}: ${spawnError.message}`);
    const result = { code: code ?? -1, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') };
    if (code !== 0 && !(options.allowExitCodes ?? []).includes(code ?? -1)) throw new GitError(command.args, code, result.stderr);
    return result;
  }
}
