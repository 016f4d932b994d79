// What an SSH session may run, independent of the SSH implementation in front (the built-in ssh2 server or
// OpenSSH's sshd with mirrorfarm's session script): parsing the exec command, resolving the verified key's
// holder again, authorizing, and running git-upload-pack / git-receive-pack, git-lfs-authenticate, a mirror's
// push through and the primary's `mirrorfarm-push`. Front ends differ only in how they reach the client's
// stdio and how git is started (in this process with piped stdio, or by the session script with the client's
// own file descriptors), so both give the same answers to the same requests.
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import ssh2 from 'ssh2';
import type { Principal } from '../../access/authorize.js';
import type { RepositoryView } from '../../domain/repositories.js';
import { Errors, isMirrorfarmError, MirrorfarmError } from '../../errors.js';
import type { LfsService } from '../../lfs/service.js';
import type { SshPushForwarder } from '../../mirror/push-through/ssh.js';
import type { Logger } from '../../obs/logger.js';
import type { PushAssertions } from '../../primary/push-assertions.js';
import { errPacket } from '../../protocol/pkt-line.js';
import type { GitService, GitServiceName } from '../git-service.js';
import { parseGitCommand, parseLfsAuthenticate, parseMirrorPush, type GitExecCommand } from './command.js';
import { readFirstLine } from './first-line.js';

/** Who holds a key: a user (on a primary, or through the primary on a mirror) or a mirror fetching. */
export interface KeyOwner {
  principal: Principal;
  /** Stable identity of the holder ("user:7", "mirror:ABCD-..."), to notice when a key changes hands. */
  ownerId: string;
  /** For messages and logs: the user name, or the mirror's name. */
  label: string;
  keyId?: number;
}

/** Resolves a public key blob (whose signature has been verified, or is about to be) to its holder. */
export interface SshKeyResolver {
  resolve(blob: Buffer): Promise<KeyOwner | undefined>;
}

/** The holder of a session, bound when the front end verified the key's signature. */
export interface SshCaller {
  /** The key whose signature was verified over this connection. */
  keyBlob: Buffer;
  /** Who held it then; a different holder now (the key changed hands) counts as revoked. */
  ownerId: string;
  /** Fields for log lines (connection id, remote address, user). */
  logContext: Record<string, unknown>;
}

export interface SshStreams {
  input: Readable;
  output: Writable;
  stderr: Writable;
}

export interface GitLaunch {
  view: RepositoryView;
  service: GitServiceName;
  principal: Principal;
  gitProtocol: string | undefined;
  signal: AbortSignal;
}

/** How a front end reaches the client: its stdio, and how it runs git with it. */
export interface SshSessionIo {
  streams(): SshStreams;
  /** Runs git for the client; resolves with git's exit code once its output is delivered (or the client is gone). */
  runGit(launch: GitLaunch): Promise<number>;
}

/** How an exec ends: what to write still, and the exit status. */
export interface ExecResult {
  code: number;
  stdout?: string | Buffer;
  stderr?: string;
  /** The key lost its holder (removed, user deactivated): the front end ends the connection when idle. */
  revoked?: boolean;
}

export interface ExecHandlerDeps {
  log: Logger;
  git: GitService;
  keys: SshKeyResolver;
  /** Answers git-lfs-authenticate; absent where Git LFS is off. */
  lfs?: LfsService;
  /** A primary's: accepts pushes that mirrors pass on for their users (`mirrorfarm-push`). */
  pushAssertions?: PushAssertions;
  /** A mirror's: passes pushes on to the primary instead of running receive-pack here. */
  pushThrough?: SshPushForwarder;
  /** An example clone URL for friendly messages. */
  exampleCloneUrl(): string | undefined;
}

const revokedError = () =>
  new MirrorfarmError(Errors.badCredentials.code, 401, 'This SSH key is no longer registered, or its user was deactivated; log in again with a registered key.');

/** "type base64" of a public key blob ('' when it cannot be parsed). */
export function publicKeyText(blob: Buffer): string {
  const parsed = ssh2.utils.parseKey(blob);
  return parsed && !(parsed instanceof Error) && !Array.isArray(parsed) ? `${parsed.type} ${blob.toString('base64')}` : '';
}

/**
 * git in this process, its stdio piped through the session's streams (the built-in server's channel, or the
 * OpenSSH front end's socket once the session's input was read here). Resolves with git's exit code once its
 * output is delivered, or at once when the client is gone (`launch.signal`).
 */
export async function runGitPiped(git: GitService, launch: GitLaunch, streams: SshStreams): Promise<number> {
  const run = git.run(launch.view, launch.service, { transport: 'ssh', principal: launch.principal, mode: 'stream', gitProtocol: launch.gitProtocol, signal: launch.signal });
  // git's stdout goes through a PassThrough, not straight into the channel: piping would end the channel
  // when git's output ends, and ssh2 closes an ended server channel at once, before the exit status.
  const output = new PassThrough({ highWaterMark: 256 * 1024 });
  output.pipe(streams.output, { end: false });
  run.connect(streams.input, output);
  run.child.stderr.pipe(streams.stderr, { end: false });
  const gone = new Promise<void>((resolve) => {
    const detach = () => {
      output.unpipe(streams.output);
      output.resume(); // whatever git still writes is discarded, so that it never blocks on a dead channel
      run.child.stderr.unpipe(streams.stderr);
      resolve();
    };
    if (launch.signal.aborted) detach();
    else launch.signal.addEventListener('abort', detach, { once: true });
  });
  const exitCode = await run.child.exited;
  await run.done;
  await Promise.race([finished(output).catch(() => {}), gone]);
  return exitCode ?? 1;
}

export class SshExecHandler {
  private readonly log: Logger;

  constructor(private readonly deps: ExecHandlerDeps) {
    this.log = deps.log.child({ component: 'ssh' });
  }

  exampleCloneUrl(): string {
    const url = this.deps.exampleCloneUrl();
    return url ? url.replace(/\/proj\/repo\.git$/, '/PROJ/repo.git') : 'ssh://git@HOST:PORT/PROJ/repo.git';
  }

  /** What a shell request gets (exit status 1): no shell, and how to clone instead. */
  shellMessage(user: string, eol: string): string {
    return `Hi ${user}! You've successfully authenticated, but mirrorfarm does not provide shell access.${eol}Clone with: git clone ${this.exampleCloneUrl()}${eol}`;
  }

  /** The principal for one exec, resolved again from the verified key (revocations apply at once). */
  async principalFor(caller: SshCaller): Promise<Principal | undefined> {
    const owner = await this.deps.keys.resolve(caller.keyBlob);
    if (!owner || owner.ownerId !== caller.ownerId) return undefined;
    return owner.principal;
  }

  /**
   * Runs one exec request to its end. `signal` fires when the client went away or access was cut off; the
   * result then only matters for the log. `closing` refuses new work during a shutdown.
   */
  async exec(caller: SshCaller, raw: string, gitProtocol: string | undefined, io: SshSessionIo, signal: AbortSignal, closing: boolean): Promise<ExecResult> {
    const started = Date.now();
    const context = caller.logContext;
    let command: GitExecCommand;
    let mirrorPush = false;
    try {
      if (closing) throw Errors.shuttingDown();
      const lfs = this.deps.lfs ? parseLfsAuthenticate(raw) : undefined;
      if (lfs) {
        const principal = await this.principalFor(caller);
        if (!principal) return { code: 1, stderr: `mirrorfarm: ${revokedError().message}\n`, revoked: true };
        const answer = await this.deps.lfs!.authenticate({ principal, publicKey: publicKeyText(caller.keyBlob) }, lfs.projectKey, lfs.slug, lfs.operation);
        this.log.info({ ...context, repository: `${lfs.projectKey.toUpperCase()}/${lfs.slug}`, operation: lfs.operation }, 'git-lfs-authenticate answered');
        return { code: 0, stdout: `${JSON.stringify(answer)}\n` };
      }
      const pushed = this.deps.pushAssertions ? parseMirrorPush(raw) : undefined;
      mirrorPush = pushed !== undefined;
      command = pushed ?? parseGitCommand(raw);
    } catch (err) {
      const known = isMirrorfarmError(err);
      this.log[known ? 'info' : 'error']({ ...context, command: raw.slice(0, 200).replace(/[^\x20-\x7e]/g, '?'), ...(known ? { reason: err.message } : { err }) }, 'SSH exec refused');
      return { code: 1, stderr: `mirrorfarm: ${known ? err.message : 'internal error; see the server log.'}\n` };
    }
    const repository = `${command.projectKey.toUpperCase()}/${command.slug}`;
    try {
      let principal = await this.principalFor(caller);
      if (!principal) {
        const err = revokedError();
        this.log.info({ ...context, repository, service: command.service, code: err.code, reason: err.message }, 'SSH exec refused');
        return { code: 1, stderr: `mirrorfarm: ${err.message}\n`, revoked: true };
      }
      // A mirror passing on a user's push: the user its signed assertion names pushes, under their own permissions.
      if (mirrorPush) principal = await this.deps.pushAssertions!.userFor(principal, await readFirstLine(io.streams().input), command.projectKey, command.slug);
      if (command.service === 'receive-pack' && this.deps.pushThrough) {
        const streams = io.streams();
        const forwarded = await this.deps.pushThrough.start({ principal, publicKey: publicKeyText(caller.keyBlob) }, command, streams, signal);
        signal.addEventListener('abort', () => forwarded.detach(), { once: true });
        const code = await forwarded.exited;
        this.log.info({ ...context, repository, service: command.service, code, passedOn: true, seconds: (Date.now() - started) / 1000 }, 'SSH push passed on to the primary');
        return { code };
      }
      const view = await this.deps.git.open(principal, command.projectKey, command.slug, command.service);
      if (signal.aborted) return { code: 1 };
      const code = await io.runGit({ view, service: command.service, principal, gitProtocol, signal });
      this.log.info({ ...context, repository, service: command.service, code, aborted: signal.aborted, seconds: (Date.now() - started) / 1000 }, 'SSH git operation finished');
      return { code };
    } catch (err) {
      const known = isMirrorfarmError(err);
      this.log[known ? 'info' : 'error']({ ...context, repository, service: command.service, ...(known ? { code: err.code, reason: err.message } : { err }) }, 'SSH exec refused');
      // A read-only mirror's refusal goes where every git client reads it: an ERR packet instead of the ref
      // advertisement ("remote error: ..."); libgit2 does not show what arrives on stderr.
      if (known && err.code === 'MIRROR_READ_ONLY') return { code: 1, stdout: errPacket(err.message) };
      return { code: 1, stderr: `mirrorfarm: ${known ? err.message : 'internal error; see the server log.'}\n` };
    }
  }
}
