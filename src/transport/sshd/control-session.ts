// The server's end of one session script's connection: the session's stdio as streams (STDIN frames in,
// STDOUT/STDERR frames out) for everything the server answers itself, or git's command line for the script to
// run with the client's own stdio (EXEC), and the final exit status. Implements the SshSessionIo that the
// transport-independent exec handler drives, exactly as the built-in server's channels do.
import type { Socket } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import type { GitService } from '../git-service.js';
import { runGitPiped, type GitLaunch, type SshSessionIo, type SshStreams } from '../ssh/exec-handler.js';
import { execPayload, Frame, frame } from './frames.js';

/** How long a script that was told to stop may take to kill git before its connection is dropped. */
const STOP_GRACE_MS = 8000;

export class ControlSession implements SshSessionIo {
  readonly abort = new AbortController();
  private stdio?: SshStreams;
  private input?: PassThrough;
  private gitExit?: (code: number | null) => void;
  readonly closed: Promise<void>;

  constructor(
    private readonly socket: Socket,
    private readonly git: GitService,
  ) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    void this.closed.then(() => {
      this.gitExit?.(null);
      this.input?.end();
      if (!this.abort.signal.aborted) this.abort.abort();
    });
    // Told to stop (revoked, forced shutdown): the script sees our end of the connection, kills git and exits.
    this.abort.signal.addEventListener('abort', () => {
      if (this.socket.destroyed) return;
      this.socket.end();
      setTimeout(() => this.socket.destroy(), STOP_GRACE_MS).unref();
    });
  }

  /** A frame from the script after its hello. */
  onFrame(type: number, payload: Buffer): void {
    if (type === Frame.STDIN && this.input) {
      if (!this.input.write(payload)) {
        this.socket.pause();
        this.input.once('drain', () => this.socket.resume());
      }
    } else if (type === Frame.STDIN_END) this.input?.end();
    else if (type === Frame.GIT_EXIT) {
      const { code } = JSON.parse(payload.toString('utf8')) as { code: number | null };
      this.gitExit?.(typeof code === 'number' ? code : null);
    }
  }

  streams(): SshStreams {
    if (this.stdio) return this.stdio;
    this.socket.write(frame(Frame.STREAM));
    this.input = new PassThrough();
    const writer = (type: number) =>
      new Writable({
        write: (chunk: Buffer, _encoding, callback) => {
          if (this.socket.destroyed || !this.socket.writable) return callback();
          this.socket.write(frame(type, chunk), () => callback());
        },
      });
    this.stdio = { input: this.input, output: writer(Frame.STDOUT), stderr: writer(Frame.STDERR) };
    return this.stdio;
  }

  async runGit(launch: GitLaunch): Promise<number> {
    // The session's input is already being read here (a mirror's push: its first line is the assertion), so
    // git cannot take over the client's stdin any more: it runs here, piped through the socket.
    if (this.stdio) return runGitPiped(this.git, launch, this.stdio);
    const plan = this.git.plan(launch.view, launch.service, { transport: 'ssh', principal: launch.principal, mode: 'stream', gitProtocol: launch.gitProtocol, signal: launch.signal });
    const exited = new Promise<number | null>((resolve) => (this.gitExit = resolve));
    if (this.socket.writable) this.socket.write(frame(Frame.EXEC, execPayload(plan.commandLine)));
    else this.gitExit?.(null);
    const code = await exited;
    // Recorded (a push's ref changes included) before the client learns the exit status, as with the built-in server.
    await plan.finish(code);
    return code ?? 1;
  }

  /** Sends what is left and the exit status, and ends the connection; the script exits with `code`. */
  finish(result: { code: number; stdout?: string | Buffer; stderr?: string }): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    if (result.stdout) this.socket.write(frame(Frame.STDOUT, result.stdout));
    if (result.stderr) this.socket.write(frame(Frame.STDERR, result.stderr));
    this.socket.write(frame(Frame.EXIT, String(result.code)));
    this.socket.end();
  }
}
