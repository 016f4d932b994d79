// The OpenSSH front end's session command (bin/mirrorfarm-sshd-session), the forced command sshd runs for every
// session, against the other end of its control socket played by the test: what it tells the server, how it runs
// git (the client's own stdio, exactly the environment it is given, the timeout), what it does when the server
// hangs up, and how it passes a streamed session's input and output on, with backpressure. The server's side of
// the same exchanges runs in test/integration/ssh-openssh.test.ts and the SSH suites (MF_SSH_FRONTEND=openssh).
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { GitCommandLine } from '../../src/git/runner.js';
import { execPayload, Frame, frame, FrameReader, MAX_FRAME_BYTES } from '../../src/transport/sshd/frames.js';
import { ROOT } from '../helpers/server.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

const SESSION_COMMAND = join(ROOT, 'bin', 'mirrorfarm-sshd-session');
const FINGERPRINT = 'SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';

/** The server's end of one script's connection: the frames it sent, and a way to answer. */
class Peer {
  readonly frames: Array<{ type: number; payload: Buffer }> = [];
  readonly closed: Promise<void>;
  private readonly reader = new FrameReader();
  private waiters: Array<() => void> = [];

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.frames.push(...this.reader.push(chunk));
      for (const wake of this.waiters.splice(0)) wake();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        for (const wake of this.waiters.splice(0)) wake();
        resolve();
      }),
    );
  }

  /** The first frame of this type (waits for it). */
  async next(type: number): Promise<Buffer> {
    for (;;) {
      const found = this.frames.find((f) => f.type === type);
      if (found) return found.payload;
      if (this.socket.destroyed) throw new Error(`the connection closed without a frame of type ${type}`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  send(type: number, payload?: Buffer | string): void {
    this.socket.write(frame(type, payload));
  }
}

let dir: string;
let socketPath: string;
let control: Server;
const peers: Peer[] = [];
let nextPeer: ((peer: Peer) => void) | undefined;

before(async () => {
  dir = tempDir();
  socketPath = join(dir, 'sshd.sock');
  control = createServer((socket) => {
    const peer = new Peer(socket);
    peers.push(peer);
    nextPeer?.(peer);
  });
  await new Promise<void>((resolve) => control.listen(socketPath, resolve));
});

after(async () => {
  for (const peer of peers) peer.socket.destroy();
  await new Promise<void>((resolve) => control.close(() => resolve()));
  removeTempDirs();
});

interface Session {
  child: ChildProcessWithoutNullStreams;
  stdout: () => Buffer;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts the session command as sshd would, with `env` as its whole environment. */
function startSession(env: Record<string, string> = {}, args = [socketPath, FINGERPRINT]): Session {
  const child = spawn(SESSION_COMMAND, args, { env: { PATH: '/usr/bin:/bin', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => err.push(c));
  child.stdin.on('error', () => {});
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  return { child, stdout: () => Buffer.concat(out), stderr: () => Buffer.concat(err).toString('utf8'), exited };
}

/** A session connected to the test's end: waits for its connection. */
async function connectedSession(env: Record<string, string> = {}): Promise<{ session: Session; peer: Peer }> {
  const connected = new Promise<Peer>((resolve) => (nextPeer = resolve));
  const session = startSession(env);
  const peer = await connected;
  nextPeer = undefined;
  return { session, peer };
}

const commandLine = (file: string, args: string[], extra: Partial<GitCommandLine> = {}): GitCommandLine => ({
  file,
  args,
  env: { PATH: '/usr/bin:/bin', MF_ONLY: 'this one' },
  timeoutMs: 60_000,
  killGraceMs: 5000,
  ...extra,
});

const gitExit = async (peer: Peer) => JSON.parse((await peer.next(Frame.GIT_EXIT)).toString('utf8')) as { code: number | null; signal: string | null };

describe('the session command (bin/mirrorfarm-sshd-session)', () => {
  it('says so when the server is not running, or when sshd gave it no socket and fingerprint', async () => {
    const absent = startSession({}, [join(dir, 'absent.sock'), FINGERPRINT]);
    assert.deepEqual(await absent.exited, { code: 1, signal: null });
    assert.equal(absent.stderr(), 'mirrorfarm: the server is not running; try again in a moment.\n');
    const bare = startSession({}, []);
    assert.deepEqual(await bare.exited, { code: 1, signal: null });
    assert.equal(bare.stderr(), 'mirrorfarm: the session command needs the server socket and the key fingerprint.\n');
  });

  it('tells the server the fingerprint, the command, the connection, the verified key, GIT_PROTOCOL and its parent', async () => {
    const authFile = join(dir, 'auth');
    writeFileSync(authFile, 'publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmX\n');
    const command = `git-upload-pack '/proj/"odd"\\name\u0001\t\n/é.git'`;
    const { session, peer } = await connectedSession({ SSH_ORIGINAL_COMMAND: command, SSH_CONNECTION: '127.0.0.1 40000 127.0.0.1 7999', SSH_USER_AUTH: authFile, GIT_PROTOCOL: 'version=2' });
    const hello = JSON.parse((await peer.next(Frame.HELLO)).toString('utf8')) as unknown;
    assert.deepEqual(hello, { fingerprint: FINGERPRINT, command, connection: '127.0.0.1 40000 127.0.0.1 7999', userAuth: 'publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmX\n', gitProtocol: 'version=2', ppid: process.pid });
    peer.send(Frame.EXIT, '0');
    assert.deepEqual(await session.exited, { code: 0, signal: null });

    // A shell request has no command; empty values are left out, except an empty command.
    const shell = await connectedSession({ SSH_CONNECTION: '', GIT_PROTOCOL: '', SSH_USER_AUTH: join(dir, 'unreadable') });
    assert.deepEqual(JSON.parse((await shell.peer.next(Frame.HELLO)).toString('utf8')), { fingerprint: FINGERPRINT, ppid: process.pid });
    shell.peer.send(Frame.EXIT, '1');
    assert.deepEqual(await shell.session.exited, { code: 1, signal: null });
    const empty = await connectedSession({ SSH_ORIGINAL_COMMAND: '' });
    assert.deepEqual(JSON.parse((await empty.peer.next(Frame.HELLO)).toString('utf8')), { fingerprint: FINGERPRINT, command: '', ppid: process.pid });
    empty.peer.send(Frame.EXIT, '0');
    await empty.session.exited;
  });

  it('EXEC runs the command line with the client\'s own stdio and exactly the environment given, then exits with the server\'s code', async () => {
    const { session, peer } = await connectedSession({ SSH_ORIGINAL_COMMAND: "git-upload-pack '/p/r.git'", SECRET_OF_THE_SESSION: 'x' });
    await peer.next(Frame.HELLO);
    // Reads a line of the client's input, and prints its environment, its open descriptors and ignored signals.
    const probe = 'my $line = <STDIN>; print "line=$line"; print "args=", join("|", @ARGV), "\\n"; print "env=", join(",", map { "$_=$ENV{$_}" } sort keys %ENV), "\\n"; print "fds=", join(",", grep { -e "/proc/self/fd/$_" } 0 .. 63), "\\n"; print STDERR "to stderr\\n"; exit 3';
    peer.send(Frame.EXEC, execPayload(commandLine('/usr/bin/perl', ['-e', probe, '', 'an argument'])));
    session.child.stdin.end('from the client\n');
    assert.deepEqual(await gitExit(peer), { code: 3, signal: null });
    assert.equal(session.stdout().toString('utf8'), 'line=from the client\nargs=|an argument\nenv=MF_ONLY=this one,PATH=/usr/bin:/bin\nfds=0,1,2\n');
    assert.equal(session.stderr(), 'to stderr\n');
    peer.send(Frame.EXIT, '7');
    assert.deepEqual(await session.exited, { code: 7, signal: null });
    assert.deepEqual(peer.frames.map((f) => f.type), [Frame.HELLO, Frame.GIT_EXIT], 'nothing of git passed through the socket');

    // The script ignores SIGPIPE (and perl SIGFPE); git must not inherit that.
    const signals = await connectedSession();
    signals.peer.send(Frame.EXEC, execPayload(commandLine('/bin/grep', ['^SigIgn', '/proc/self/status'])));
    assert.deepEqual(await gitExit(signals.peer), { code: 0, signal: null });
    assert.equal(signals.session.stdout().toString('utf8'), 'SigIgn:\t0000000000000000\n', 'git ignores no signal');
    signals.peer.send(Frame.EXIT, '0');
    await signals.session.exited;
  });

  it('EXEC of a program that cannot start says so and reports 127', async () => {
    const { session, peer } = await connectedSession();
    peer.send(Frame.EXEC, execPayload(commandLine('/nonexistent/git', ['upload-pack'])));
    assert.deepEqual(await gitExit(peer), { code: 127, signal: null });
    peer.send(Frame.EXIT, '1');
    assert.deepEqual(await session.exited, { code: 1, signal: null });
    assert.equal(session.stderr(), 'mirrorfarm: cannot start git: No such file or directory\n');
  });

  it('stops git at the timeout with SIGTERM, and with SIGKILL when it outlives the grace time', async () => {
    const patient = await connectedSession();
    patient.peer.send(Frame.EXEC, execPayload(commandLine('/bin/sleep', ['30'], { timeoutMs: 100 })));
    assert.deepEqual(await gitExit(patient.peer), { code: null, signal: 'SIGTERM' });
    patient.peer.send(Frame.EXIT, '1');
    await patient.session.exited;

    const stubborn = await connectedSession();
    stubborn.peer.send(Frame.EXEC, execPayload(commandLine('/usr/bin/perl', ['-e', '$SIG{TERM} = "IGNORE"; sleep 30'], { timeoutMs: 1500, killGraceMs: 300 })));
    assert.deepEqual(await gitExit(stubborn.peer), { code: null, signal: 'SIGKILL' });
    stubborn.peer.send(Frame.EXIT, '1');
    assert.deepEqual(await stubborn.session.exited, { code: 1, signal: null });
  });

  it('stops git and exits 1 when the server hangs up before the final answer', async () => {
    const { session, peer } = await connectedSession();
    peer.send(Frame.EXEC, execPayload(commandLine('/usr/bin/perl', ['-e', 'syswrite STDOUT, "$$\\n"; sleep 30'])));
    while (!session.stdout().includes('\n')) await new Promise((resolve) => setTimeout(resolve, 20));
    const gitPid = Number(session.stdout().toString('utf8').trim());
    peer.socket.end();
    assert.deepEqual(await session.exited, { code: 1, signal: null });
    assert.equal(existsSync(`/proc/${gitPid}`), false, 'git is gone');
    assert.equal(peer.frames.some((f) => f.type === Frame.GIT_EXIT), false);
  });

  it('STREAM passes the input on in frames of at most 64 KiB, ended by STDIN_END, and the output to stdout and stderr', async () => {
    const { session, peer } = await connectedSession();
    peer.send(Frame.STREAM);
    // The test's end echoes the input back as it arrives, so both directions are busy at once.
    let echoed = 0;
    peer.socket.on('data', () => {
      for (const f of peer.frames.slice(echoed)) if (f.type === Frame.STDIN) peer.send(Frame.STDOUT, f.payload);
      echoed = peer.frames.length;
    });
    const input = Buffer.alloc(3 << 20);
    for (let i = 0; i < input.length; i++) input[i] = (i * 7 + (i >> 12)) & 0xff;
    session.child.stdin.end(input);
    await peer.next(Frame.STDIN_END);
    const chunks = peer.frames.filter((f) => f.type === Frame.STDIN);
    assert.ok(chunks.every((f) => f.payload.length > 0 && f.payload.length <= 65536), 'no STDIN frame is larger than 64 KiB');
    assert.ok(Buffer.concat(chunks.map((f) => f.payload)).equals(input), 'the input arrives whole and in order');
    peer.send(Frame.STDERR, 'a note\n');
    peer.send(Frame.EXIT, '5');
    assert.deepEqual(await session.exited, { code: 5, signal: null });
    assert.ok(session.stdout().equals(input), 'everything the server sent reached stdout before the exit');
    assert.equal(session.stderr(), 'a note\n');
  });

  it('STREAM holds the server back while the client does not read (backpressure), and delivers everything before exiting', async () => {
    const { session, peer } = await connectedSession();
    peer.send(Frame.STREAM);
    session.child.stdout.pause();
    const output = Buffer.alloc(16 << 20, 'x');
    for (let i = 0; i < output.length; i += 65536) peer.send(Frame.STDOUT, output.subarray(i, i + 65536));
    peer.send(Frame.EXIT, '0');
    // Once the script stops taking frames, most of the output is still queued on the test's side.
    let queued = -1;
    while (peer.socket.writableLength !== queued) {
      queued = peer.socket.writableLength;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    assert.ok(queued > 8 << 20, `the script took only what its pipes hold (${queued} bytes still queued)`);
    assert.equal(session.child.exitCode, null, 'it does not exit before its output is written');
    session.child.stdout.resume();
    assert.deepEqual(await session.exited, { code: 0, signal: null });
    assert.equal(session.stdout().length, output.length);
  });

  it('ends cleanly when the client goes away (EPIPE, not SIGPIPE), and drops the server connection', async () => {
    const { session, peer } = await connectedSession();
    peer.send(Frame.STREAM);
    session.child.stdout.destroy();
    for (let i = 0; i < 8; i++) peer.send(Frame.STDOUT, Buffer.alloc(65536, 'y'));
    assert.deepEqual(await session.exited, { code: 1, signal: null });
    await peer.closed;
  });

  it('ends the session on a frame larger than 1 MiB', async () => {
    const { session, peer } = await connectedSession();
    const head = Buffer.alloc(5);
    head[0] = Frame.STDOUT;
    head.writeUInt32BE(MAX_FRAME_BYTES + 1, 1);
    peer.socket.write(head);
    assert.deepEqual(await session.exited, { code: 1, signal: null });
    assert.equal(session.stdout().length, 0);
  });
});
