// The forced command of every SSH session when OpenSSH's sshd is the front end (ssh.frontend: openssh):
//   node session-script.js SOCKET FINGERPRINT
// It tells the running mirrorfarm server over its Unix socket which key sshd verified (the fingerprint on the
// command line, and $SSH_USER_AUTH, which sshd wrote) and what the client asked for, then does what the server
// answers:
// - EXEC: start git with the client's own stdin/stdout/stderr, so pack data goes git -> sshd -> client with
//   nothing in between; report git's exit code and exit with the server's final answer. If the server closes
//   the connection first (access revoked, forced shutdown) git is killed, and so it is after the timeout.
// - otherwise: pass stdin to the server and the server's stdout/stderr frames to the client (refusals, the
//   "no shell access" message, git-lfs-authenticate, pushes passed on by a mirror).
// Every session pays this script's start-up, so it loads only node:net, node:child_process and node:fs.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { Frame, frame, FrameReader, type SessionHello } from './frames.js';

interface CommandLine {
  file: string;
  args: string[];
  env: Record<string, string>;
  timeoutMs: number;
  killGraceMs: number;
}

const [socketPath, fingerprint] = process.argv.slice(2);

function fail(message: string): never {
  process.stderr.write(`mirrorfarm: ${message}\n`);
  process.exit(1);
}

if (!socketPath || !fingerprint) fail('the session command needs the server socket and the key fingerprint.');

let userAuth: string | undefined;
try {
  if (process.env.SSH_USER_AUTH) userAuth = readFileSync(process.env.SSH_USER_AUTH, 'utf8');
} catch {
  userAuth = undefined; // the server refuses a session without it
}
const hello: SessionHello = {
  fingerprint,
  ...(process.env.SSH_ORIGINAL_COMMAND !== undefined ? { command: process.env.SSH_ORIGINAL_COMMAND } : {}),
  ...(process.env.SSH_CONNECTION ? { connection: process.env.SSH_CONNECTION } : {}),
  ...(userAuth !== undefined ? { userAuth } : {}),
  ...(process.env.GIT_PROTOCOL ? { gitProtocol: process.env.GIT_PROTOCOL } : {}),
  ppid: process.ppid,
};

const socket = connect(socketPath);
const reader = new FrameReader();
let git: ChildProcess | undefined;
let gitExited = false;
let exitCode: number | undefined;
let streaming = false;

socket.on('connect', () => socket.write(frame(Frame.HELLO, JSON.stringify(hello))));
// The client went away while the server was talking to it: the session is over.
process.stdout.on('error', () => socket.destroy());
process.stderr.on('error', () => {});
socket.on('error', (err: NodeJS.ErrnoException) => {
  if (exitCode !== undefined) return;
  if (!git && (err.code === 'ENOENT' || err.code === 'ECONNREFUSED')) fail('the server is not running; try again in a moment.');
  stop();
});
socket.on('data', (chunk: Buffer) => {
  let frames;
  try {
    frames = reader.push(chunk);
  } catch {
    return stop();
  }
  for (const { type, payload } of frames) {
    if (type === Frame.EXEC) runGit(JSON.parse(payload.toString('utf8')) as CommandLine);
    else if (type === Frame.STREAM) stream();
    else if (type === Frame.STDOUT) {
      if (!process.stdout.write(payload)) {
        socket.pause();
        process.stdout.once('drain', () => socket.resume());
      }
    } else if (type === Frame.STDERR) process.stderr.write(payload);
    else if (type === Frame.EXIT) {
      exitCode = (JSON.parse(payload.toString('utf8')) as { code: number }).code;
      socket.end();
      // Exit once what was written reached sshd; a client that stopped reading cannot hold the session.
      let pending = 2;
      const done = () => --pending === 0 && process.exit(exitCode);
      process.stdout.write('', done);
      process.stderr.write('', done);
    }
  }
});
// The server ended the session without a final answer: it revoked access or is stopping. Nothing of git may
// outlive that.
socket.on('end', () => exitCode === undefined && stop());
socket.on('close', () => exitCode === undefined && stop());

function stop(): void {
  if (git && !gitExited) {
    git.kill('SIGTERM');
    setTimeout(() => git?.kill('SIGKILL'), 5000).unref();
    git.once('exit', () => process.exit(1));
    return;
  }
  process.exit(1);
}

function runGit(line: CommandLine): void {
  git = spawn(line.file, line.args, { env: line.env, stdio: 'inherit' });
  const timer = setTimeout(() => {
    git?.kill('SIGTERM');
    setTimeout(() => git?.kill('SIGKILL'), line.killGraceMs).unref();
  }, line.timeoutMs);
  timer.unref();
  git.on('error', (err) => {
    process.stderr.write(`mirrorfarm: cannot start git: ${err.message}\n`);
  });
  git.once('close', (code, signal) => {
    gitExited = true;
    clearTimeout(timer);
    if (socket.writable) socket.write(frame(Frame.GIT_EXIT, JSON.stringify({ code, signal })));
    else process.exit(code ?? 1);
  });
}

function stream(): void {
  if (streaming) return;
  streaming = true;
  process.stdin.on('data', (chunk: Buffer) => {
    if (!socket.write(frame(Frame.STDIN, chunk))) {
      process.stdin.pause();
      socket.once('drain', () => process.stdin.resume());
    }
  });
  process.stdin.once('end', () => socket.writable && socket.write(frame(Frame.STDIN_END)));
  process.stdin.on('error', () => {});
}
