// A push over SSH to a mirror, passed on to the primary as the same user. The mirror's SSH server has verified
// the user's key signature; the mirror opens its own SSH session to the primary (the OpenSSH client with the
// mirror key and the pinned host key, over the connection its fetches share), runs `mirrorfarm-push` there and
// sends, as the first line, an assertion of the user's key signed by the mirror key (src/auth/push-assertion.ts
// has the rules the primary applies). After that line the session is git's receive-pack protocol, passed
// through both ways byte for byte; the end is held until the farm serves what the primary accepted.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import type { Readable, Writable } from 'node:stream';
import type { Principal } from '../../access/authorize.js';
import type { MirrorKey } from '../../auth/mirror-token.js';
import { signPushAssertion } from '../../auth/push-assertion.js';
import { MirrorfarmError } from '../../errors.js';
import type { Logger } from '../../obs/logger.js';
import type { GitService } from '../../transport/git-service.js';
import type { GitExecCommand } from '../../transport/ssh/command.js';
import { PushRequestReader } from './protocol.js';
import { holdUntilServed, type PublishedSource } from './read-your-writes.js';

export interface SshPushCaller {
  principal: Principal;
  /** The key whose signature the SSH server verified, "type base64". */
  publicKey: string;
}

export interface SshPushIo {
  input: Readable;
  output: Writable;
  stderr: Writable;
}

/** What the SSH server runs instead of receive-pack on a mirror that passes pushes on. */
export interface SshPushForwarder {
  start(caller: SshPushCaller, command: GitExecCommand, io: SshPushIo, signal: AbortSignal): Promise<{ exited: Promise<number>; detach(): void }>;
}

export interface SshPushThroughDeps {
  git: GitService;
  key: MirrorKey;
  /** The audience of push assertions (the primary's base URL + "#ssh-push"). */
  audience: () => string;
  /** The OpenSSH client command line the mirror fetches with (GIT_SSH_COMMAND). */
  sshCommand: string;
  env: NodeJS.ProcessEnv;
  /** Where the primary's SSH server is. */
  target: () => { host: string; port: number; user: string };
  published: PublishedSource;
  waitMs: number;
  log: Logger;
}

export class SshPushThrough implements SshPushForwarder {
  constructor(private readonly deps: SshPushThroughDeps) {}

  async start(caller: SshPushCaller, command: GitExecCommand, io: SshPushIo, signal: AbortSignal) {
    const { deps } = this;
    // Read access here first: whoever may not see the repository on the mirror gets the answer a clone gets.
    const view = await deps.git.open(caller.principal, command.projectKey, command.slug, 'upload-pack');
    if (!caller.publicKey) throw new MirrorfarmError('INTERNAL_ERROR', 500, 'The verified SSH key is not known.');
    const assertion = await signPushAssertion(deps.key, deps.audience(), caller.publicKey, `${view.project.key}/${view.repo.slug}`);
    const { host, port, user } = deps.target();
    // The shell only joins the configured command with the arguments after it ("$@"), none of which it parses.
    const child = spawn(
      'sh',
      ['-c', `${deps.sshCommand} "$@"`, 'ssh', '-p', String(port), `${user}@${host}`, `mirrorfarm-push '${view.project.key.toLowerCase()}/${view.repo.slug}.git'`],
      { env: deps.env, stdio: ['pipe', 'pipe', 'pipe'], signal },
    );
    child.on('error', () => {});
    child.stdin.on('error', () => {});
    child.stdin.write(`${assertion}\n`);
    const reader = new PushRequestReader();
    io.input.on('data', (chunk: Buffer) => reader.feed(chunk));
    io.input.pipe(child.stdin);
    const hold = holdUntilServed(deps, view, reader);
    child.stdout.on('data', (chunk: Buffer) => hold.record(chunk));
    child.stdout.pipe(hold.stream).pipe(io.output, { end: false });
    child.stderr.pipe(io.stderr, { end: false });
    const exited = (async () => {
      const [code] = (await once(child, 'close')) as [number | null];
      await finished(hold.stream).catch(() => {});
      // OpenSSH exits 255 when it could not reach or log in to the primary; git never exits so.
      if (code === 255) io.stderr.write('mirrorfarm: pushes go to the primary, whose SSH server cannot be reached from this mirror right now; nothing was changed. Try again later, or push to the primary directly.\n');
      return code ?? 1;
    })();
    return {
      exited,
      detach: () => {
        io.input.unpipe(child.stdin);
        hold.stream.unpipe(io.output);
        hold.stream.resume();
        child.stderr.unpipe(io.stderr);
      },
    };
  }
}
