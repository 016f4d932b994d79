// Runs OpenSSH's sshd as a child process (`sshd -D -e -f CONFIG`) for the OpenSSH front end: checks the
// configuration with `sshd -t` first, waits until it listens, passes every line it logs on to our logger (and
// to a listener, which turns some into metrics), restarts it when it dies, and stops it on shutdown. Stopping
// sshd's listener leaves the connections it accepted running (each is a process of its own); the front end
// decides what happens to them.
//
// sshd runs under a small sh watchdog that reads our pipe: if this process dies without stopping sshd (even by
// SIGKILL), the pipe closes and the watchdog stops sshd's listener, so no orphaned sshd keeps the port.
import { spawn, type ChildProcess } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { MirrorfarmError } from '../../errors.js';
import type { Logger } from '../../obs/logger.js';

export interface SshdProcessOptions {
  binary: string;
  configFile: string;
  log: Logger;
  /** Every line sshd logs, after it is logged. */
  onLine?(line: string): void;
}

const RESTART_MIN_MS = 500;

/** Starts sshd ("$@"), prints its pid, and stops it when our end of its stdin closes; exits with sshd's status. */
const WATCHDOG = 'exec 3<&0; "$@" 3<&- </dev/null & pid=$!; echo "$pid"; (read _ <&3; kill -TERM "$pid" 2>/dev/null) & watcher=$!; wait "$pid"; code=$?; kill "$watcher" 2>/dev/null; exit "$code"';
const RESTART_MAX_MS = 30_000;

export async function checkSshdBinary(binary: string): Promise<void> {
  try {
    await access(binary, constants.X_OK);
  } catch {
    throw new MirrorfarmError(
      'SSHD_NOT_FOUND',
      500,
      `ssh.frontend is openssh but ${binary} cannot be run: install OpenSSH's server (Debian/Ubuntu: apt-get install openssh-server), set ssh.sshdPath to its sshd, or set ssh.frontend: builtin.`,
    );
  }
}

/** `sshd -t`: sshd's own verdict on the configuration and host keys, before anything listens. */
export async function testSshdConfig(binary: string, configFile: string): Promise<void> {
  const child = spawn(binary, ['-t', '-f', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => {
    child.once('close', resolve);
    child.once('error', () => resolve(-1));
  });
  if (code !== 0) {
    throw new MirrorfarmError('SSHD_CONFIG_INVALID', 500, `sshd refuses the configuration mirrorfarm wrote (${configFile}): ${output.trim().split('\n').slice(-3).join(' / ') || `exit ${code}`}. Check ssh.host, ssh.user and the host keys, or set ssh.frontend: builtin.`);
  }
}

export class SshdProcess {
  private child?: ChildProcess;
  private sshdPid?: number;
  private stopping = false;
  private restartDelay = RESTART_MIN_MS;
  private restartTimer?: NodeJS.Timeout;
  private exited?: Promise<void>;

  constructor(private readonly options: SshdProcessOptions) {}

  /** The pid of the listening sshd (its connections are its children). */
  get pid(): number | undefined {
    return this.sshdPid;
  }

  /** Starts sshd; resolves once it listens, rejects with what it said when it exits first. */
  start(): Promise<void> {
    return this.spawnOnce();
  }

  private spawnOnce(): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', WATCHDOG, 'sshd', this.options.binary, '-D', '-e', '-f', this.options.configFile], { stdio: ['pipe', 'pipe', 'pipe'] });
      this.child = child;
      this.sshdPid = undefined;
      child.stdin!.on('error', () => {});
      child.stdout!.once('data', (c: Buffer) => (this.sshdPid = Number(c.toString('utf8').trim()) || undefined));
      let listening = false;
      let lastLines: string[] = [];
      let partial = '';
      child.stderr!.on('data', (chunk: Buffer) => {
        const lines = (partial + chunk.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines.map((l) => l.trim()).filter(Boolean)) {
          lastLines = [...lastLines.slice(-4), line];
          this.options.log.info({ sshd: line }, 'sshd');
          this.options.onLine?.(line);
          if (!listening && /^Server listening on /.test(line)) {
            listening = true;
            this.restartDelay = RESTART_MIN_MS;
            resolve();
          }
        }
      });
      this.exited = new Promise<void>((done) => {
        child.once('error', (err) => {
          if (!listening) reject(new MirrorfarmError('SSHD_NOT_FOUND', 500, `cannot start ${this.options.binary}: ${err.message}`));
          done();
        });
        child.once('exit', (code, signal) => {
          done();
          if (!listening) {
            reject(new MirrorfarmError('SSHD_START_FAILED', 500, `sshd exited at start (${signal ?? `exit ${code}`}): ${lastLines.join(' / ')}`));
            return;
          }
          if (this.stopping) return;
          // Connections already accepted live on in their own processes; only new ones wait for the restart.
          this.options.log.error({ code, signal, delayMs: this.restartDelay, lastLines }, 'sshd exited; restarting it');
          this.scheduleRestart();
        });
      });
    });
  }

  private scheduleRestart(): void {
    if (this.stopping) return;
    this.restartTimer = setTimeout(() => {
      this.spawnOnce().catch((err: Error) => {
        this.options.log.error({ err: err.message, delayMs: this.restartDelay }, 'sshd restart failed; trying again');
        this.scheduleRestart();
      });
    }, this.restartDelay);
    this.restartDelay = Math.min(RESTART_MAX_MS, this.restartDelay * 2);
  }

  /** Stops the listener (SIGTERM) and waits until it exited. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    // Closing the watchdog's stdin makes it stop sshd and wait for it.
    this.child?.stdin?.end();
    await this.exited;
  }
}
