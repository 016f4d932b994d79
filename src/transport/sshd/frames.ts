// The wire format between mirrorfarm's server and the two small Perl scripts OpenSSH's sshd runs for it (the
// AuthorizedKeysCommand, bin/mirrorfarm-sshd-keys, and the forced session command, bin/mirrorfarm-sshd-session),
// over the Unix socket HOME/run/sshd.sock: frames of one type byte, a 32-bit big-endian length and the payload.
// The scripts parse no JSON (a JSON parser would cost more start-up than the rest of a script, and every key
// offered and every session pays that start-up): what they send is JSON written by hand, what the server sends
// them is plain text, NUL-separated fields and decimal numbers.

import type { GitCommandLine } from '../../git/runner.js';

export const Frame = {
  // script -> server
  /** The keys script's question: {"type": "ssh-ed25519", "key": "AAAA..."}. */
  KEYS: 1,
  /** The session script's opening: fingerprint, command, connection, verified key (see SessionHello). */
  HELLO: 2,
  /** The client's input (stream mode only). */
  STDIN: 3,
  STDIN_END: 4,
  /** git, started by the session script, has exited: {"code": n | null, "signal": s | null}. */
  GIT_EXIT: 5,
  // server -> script
  /** The answer to KEYS: one authorized_keys line, or empty. */
  KEYS_ANSWER: 16,
  /** Run git with the client's stdio: a GitCommandLine as execPayload() writes it. */
  EXEC: 17,
  /** Start passing the client's input on (STDIN frames): the server talks to the client itself. */
  STREAM: 18,
  STDOUT: 19,
  STDERR: 20,
  /** The session is over: the exit code in decimal ("0"); the script exits with it. */
  EXIT: 21,
} as const;

/** More than any hello or command line, and than a chunk of a stream (64 KiB). */
export const MAX_FRAME_BYTES = 1 << 20;

export function frame(type: number, payload: Buffer | string = Buffer.alloc(0)): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const head = Buffer.allocUnsafe(5);
  head[0] = type;
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** Cuts a byte stream into frames; throws on a frame larger than MAX_FRAME_BYTES. */
export class FrameReader {
  private buffered: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Array<{ type: number; payload: Buffer }> {
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    const frames: Array<{ type: number; payload: Buffer }> = [];
    while (this.buffered.length >= 5) {
      const length = this.buffered.readUInt32BE(1);
      if (length > MAX_FRAME_BYTES) throw new Error(`frame of ${length} bytes is too large`);
      if (this.buffered.length < 5 + length) break;
      frames.push({ type: this.buffered[0]!, payload: this.buffered.subarray(5, 5 + length) });
      this.buffered = this.buffered.subarray(5 + length);
    }
    return frames;
  }
}

/**
 * EXEC's payload: timeoutMs, killGraceMs, file, the number of arguments, each argument, then NAME=VALUE for each
 * variable of git's whole environment, every field ended by a NUL (which none of them can hold: it could not
 * reach execve either).
 */
export function execPayload(line: GitCommandLine): Buffer {
  const fields = [String(Math.ceil(line.timeoutMs)), String(Math.ceil(line.killGraceMs)), line.file, String(line.args.length), ...line.args, ...Object.entries(line.env).map(([name, value]) => `${name}=${value}`)];
  for (const field of fields) if (field.includes('\0')) throw new Error(`git's command line holds a NUL byte: ${JSON.stringify(field)}`);
  for (const name of Object.keys(line.env)) if (name === '' || name.includes('=')) throw new Error(`${JSON.stringify(name)} cannot name an environment variable`);
  return Buffer.from(fields.map((f) => `${f}\0`).join(''), 'utf8');
}

/** What the session script tells the server about the session sshd started it for. */
export interface SessionHello {
  /** The fingerprint the AuthorizedKeysCommand's answer put on the forced command line. */
  fingerprint: string;
  /** SSH_ORIGINAL_COMMAND; absent for a shell request. */
  command?: string;
  /** SSH_CONNECTION: "client-address client-port server-address server-port". */
  connection?: string;
  /** The contents of the file SSH_USER_AUTH names (ExposeAuthInfo): "publickey TYPE BASE64" per method used. */
  userAuth?: string;
  /** GIT_PROTOCOL, passed by the client (AcceptEnv). */
  gitProtocol?: string;
  /** The script's parent: the sshd process of the connection (the server checks it is one of its sshd's). */
  ppid: number;
}
