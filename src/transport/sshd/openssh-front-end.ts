// OpenSSH's sshd as mirrorfarm's SSH front end (ssh.frontend: openssh), the road GitLab and Gitea offer for
// production: sshd does the SSH protocol (key exchange, ciphers, windows) in C, and git's pack data goes
// git -> sshd -> client without passing through Node. mirrorfarm manages it: it writes sshd's configuration
// (sshd-config.ts), runs and restarts it (sshd-process.ts), and answers its two callbacks over a Unix socket in
// HOME/run (0600): the AuthorizedKeysCommand ("who holds this key?", with the same resolvers as the built-in
// server) and the forced command of every session (what may this verified key run?, with the same exec handler).
//
// Security notes:
// - sshd binds a key only after verifying its signature; the keys command also runs for the unsigned query,
//   but its answer only tells sshd the key is acceptable. A session exists only after a verified signature,
//   and the session's key is checked twice: the fingerprint on the forced command line (from the keys answer)
//   must match the key sshd reports as verified in $SSH_USER_AUTH, or the session is refused.
// - Every session resolves the key's holder again, so a removed key or deactivated user cannot start anything
//   more; idle connections of such a key are closed (their sshd process ended), busy ones when their last
//   session ends. A deleted mirror's sessions are stopped at once (the script kills git).
// - The socket is owner-only; sshd runs as the server's own account, so nothing else can reach it.
import { mkdir, rm, writeFile, chmod, stat } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { userInfo } from 'node:os';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { fingerprintOf } from '../../domain/users.js';
import { MirrorfarmError } from '../../errors.js';
import type { LoggedEvent } from '../../events/log.js';
import type { Logger } from '../../obs/logger.js';
import { validGitProtocol } from '../git-service.js';
import { printable } from '../ssh/command.js';
import { SshExecHandler } from '../ssh/exec-handler.js';
import { CLIENT_CLOSE_WAIT_MS, type SshFrontEnd, type SshFrontEndOptions } from '../ssh/front-end.js';
import { loadOrCreateHostKeys, loadSharedHostKeys, type HostKey } from '../ssh/host-keys.js';
import { DEFAULT_SSH_LIMITS, type SshLimits } from '../ssh/limits.js';
import type { SshServerDeps } from '../ssh/ssh-server.js';
import { ControlSession } from './control-session.js';
import { Frame, frame, FrameReader, type SessionHello } from './frames.js';
import { checkKey, verifiedKey } from './key-check.js';
import { childrenOf, connectionProcess, endSshdProcess, isAlive } from './processes.js';
import { sshdLogCounter } from './sshd-log.js';
import { renderSshdConfig } from './sshd-config.js';
import { checkSshdBinary, SshdProcess, testSshdConfig } from './sshd-process.js';

/** The package root, whether this runs from dist/ (the server) or src/ (tests in process). */
const PACKAGE_ROOT = resolvePath(fileURLToPath(new URL('../../../', import.meta.url)));
/** sshd's AuthorizedKeysCommand and every session's forced command: small Perl scripts, for their start-up. */
export const KEYS_COMMAND = join(PACKAGE_ROOT, 'bin', 'mirrorfarm-sshd-keys');
export const SESSION_COMMAND = join(PACKAGE_ROOT, 'bin', 'mirrorfarm-sshd-session');

/** A path that goes into sshd_config and the forced command line unquoted. */
const SAFE_PATH = /^\/[A-Za-z0-9_./-]+$/;

interface ConnectionRecord {
  pid: number;
  ownerId: string;
  fingerprint: string;
  sessions: Set<ControlSession>;
  revoked: boolean;
}

interface Tracked {
  session: ControlSession;
  ownerId: string;
  fingerprint: string;
  connection?: ConnectionRecord;
}

export class OpenSshFrontEnd implements SshFrontEnd {
  private readonly log: Logger;
  private readonly limits: SshLimits;
  private readonly handler: SshExecHandler;
  private hostKeys: HostKey[] = [];
  private sshd?: SshdProcess;
  private control?: NetServer;
  private readonly controlSockets = new Set<Socket>();
  private readonly sessions = new Set<Tracked>();
  private readonly connections = new Map<number, ConnectionRecord>();
  /** Every listening sshd this front end started (a restarted sshd's old connections keep their parent pid). */
  private readonly listenerPids = new Set<number>();
  private closing = false;
  private closed?: Promise<void>;
  /** Connections being ended once their client has what it was sent (endWhenDone). */
  private readonly ending = new Set<Promise<void>>();
  private unsubscribe?: () => void;
  private pruneTimer?: NodeJS.Timeout;
  private socketPath = '';

  constructor(
    private readonly deps: SshServerDeps,
    private readonly options: SshFrontEndOptions,
  ) {
    this.log = deps.log.child({ component: 'ssh', frontend: 'openssh' });
    this.limits = { ...DEFAULT_SSH_LIMITS, ...options.limits };
    this.handler = new SshExecHandler(deps);
  }

  hostPublicKeys(): string[] {
    return this.hostKeys.map((k) => k.publicKey);
  }

  async listen(): Promise<number> {
    const user = this.options.user ?? 'git';
    const account = userInfo().username;
    if (user !== account) {
      throw new MirrorfarmError(
        'SSH_USER_MISMATCH',
        500,
        `ssh.user is "${user}" but mirrorfarm runs as "${account}": with ssh.frontend openssh, clients log in as the account sshd and mirrorfarm run as. Set ssh.user: ${account} (MIRRORFARM_SSH_USER), run mirrorfarm as "${user}", or set ssh.frontend: builtin.`,
      );
    }
    const binary = this.options.sshdPath ?? '/usr/sbin/sshd';
    await checkSshdBinary(binary);
    await this.checkScripts();
    this.hostKeys = this.options.sharedHostKeys ? await loadSharedHostKeys(this.options.hostKeyDir) : await loadOrCreateHostKeys(this.options.hostKeyDir, this.log);

    const dir = join(this.options.runDir, 'sshd');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    // Owner-only copies in OpenSSH's format: a shared key directory may hold PKCS#8 keys or files sshd would
    // find too open (a mounted Secret); these are the same keys.
    const hostKeyFiles: string[] = [];
    for (const key of this.hostKeys) {
      const file = join(dir, `ssh_host_${key.type.replace(/[^a-z0-9]+/g, '_')}_key`);
      await rm(file, { force: true });
      await writeFile(file, key.privateKey.endsWith('\n') ? key.privateKey : `${key.privateKey}\n`, { mode: 0o600 });
      hostKeyFiles.push(file);
    }
    // A root sshd insists on its privilege separation directory, which a Debian package creates only at boot.
    if (process.getuid?.() === 0) await mkdir('/run/sshd', { recursive: true, mode: 0o755 });

    await this.listenControl(join(this.options.runDir, 'sshd.sock'));
    if (!SAFE_PATH.test(this.socketPath)) throw new MirrorfarmError('SSHD_SETUP_UNUSABLE', 500, `${this.socketPath} cannot be used on sshd's command lines (only letters, digits and _./- are safe): move the home to such a path, or set ssh.frontend: builtin.`);

    const configFile = join(dir, 'sshd_config');
    const portChosen = this.options.port !== 0;
    for (let attempt = 1; ; attempt++) {
      const port = portChosen ? this.options.port : await freePort(this.options.host);
      await writeFile(
        configFile,
        renderSshdConfig({
          host: this.options.host,
          port,
          hostKeyFiles,
          user,
          authorizedKeysCommand: [KEYS_COMMAND, this.socketPath, '%t', '%k'],
          limits: this.limits,
        }),
        { mode: 0o600 },
      );
      await testSshdConfig(binary, configFile);
      const sshd = new SshdProcess({ binary, configFile, log: this.log.child({ component: 'sshd' }), onLine: sshdLogCounter(this.deps.metrics) });
      try {
        await sshd.start();
      } catch (err) {
        // With a port picked here, another process may have taken it in the meantime: pick again.
        if (!portChosen && attempt < 3 && /Address already in use/.test((err as Error).message)) continue;
        throw err;
      }
      this.sshd = sshd;
      if (sshd.pid) this.listenerPids.add(sshd.pid);
      this.unsubscribe = this.deps.events?.subscribe((events) => events.forEach((e) => this.onEvent(e)));
      this.pruneTimer = setInterval(() => this.pruneConnections(), 60_000).unref();
      this.log.info({ host: this.options.host, port, sshd: binary, config: configFile, hostKeys: this.hostKeys.map((k) => k.fingerprint) }, 'SSH listening (OpenSSH front end)');
      return port;
    }
  }

  /**
   * sshd runs the keys command only from a path that root owns all the way up (StrictModes); the session command
   * sits next to it and is held to the same, since it runs as the account clients log in as. Say so now rather
   * than at each login.
   */
  private async checkScripts(): Promise<void> {
    for (const file of [KEYS_COMMAND, SESSION_COMMAND]) {
      let mode: number;
      try {
        mode = (await stat(file)).mode;
      } catch {
        throw new MirrorfarmError('SSHD_SETUP_UNUSABLE', 500, `${file} is missing: the package is incomplete; reinstall it.`);
      }
      if ((mode & 0o111) === 0) throw new MirrorfarmError('SSHD_SETUP_UNUSABLE', 500, `${file} is not executable: the package is incomplete; reinstall it (or chmod 755 ${file}).`);
      if (!SAFE_PATH.test(file)) throw new MirrorfarmError('SSHD_SETUP_UNUSABLE', 500, `${file} cannot be used on sshd's command lines (only letters, digits and _./- are safe): install the package under such a path.`);
      for (let path = file; ; path = dirname(path)) {
        const info = await stat(path);
        if (info.uid !== 0 || (info.mode & 0o022) !== 0) {
          throw new MirrorfarmError(
            'SSHD_SETUP_UNUSABLE',
            500,
            `sshd will not run ${file}: ${path} must belong to root and not be writable by group or others (sshd's StrictModes check of every directory above an AuthorizedKeysCommand; the session command beside it is held to the same). Install the package in such a directory (e.g. /usr/lib/node_modules or /app owned by root), or set ssh.frontend: builtin.`,
          );
        }
        if (path === dirname(path)) break;
      }
    }
  }

  private async listenControl(path: string): Promise<void> {
    await rm(path, { force: true });
    const control = createServer((socket) => this.onControl(socket));
    this.control = control;
    await new Promise<void>((resolve, reject) => {
      control.once('error', reject);
      control.listen(path, () => {
        control.off('error', reject);
        resolve();
      });
    });
    await chmod(path, 0o600);
    control.on('error', (err) => this.log.error({ err }, 'SSH control socket error'));
    this.socketPath = path;
  }

  // --- the scripts' connections ----------------------------------------------------------------------

  private onControl(socket: Socket): void {
    this.controlSockets.add(socket);
    socket.once('close', () => this.controlSockets.delete(socket));
    socket.on('error', () => {});
    const reader = new FrameReader();
    let session: ControlSession | undefined;
    let started = false;
    const firstFrame = setTimeout(() => socket.destroy(), 10_000).unref();
    socket.on('data', (chunk: Buffer) => {
      let frames;
      try {
        frames = reader.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const { type, payload } of frames) {
        if (session) {
          session.onFrame(type, payload);
          continue;
        }
        if (started) continue;
        started = true;
        clearTimeout(firstFrame);
        if (type === Frame.KEYS) {
          this.answerKeys(socket, payload).catch((err: unknown) => {
            this.log.error({ err }, 'SSH key lookup failed unexpectedly');
            socket.destroy();
          });
        } else if (type === Frame.HELLO) {
          session = new ControlSession(socket, this.deps.git);
          const opened = session;
          this.runSession(opened, payload).catch((err: unknown) => {
            this.log.error({ err }, 'SSH session failed unexpectedly');
            opened.finish({ code: 1, stderr: 'mirrorfarm: internal error; see the server log.\n' });
          });
        } else socket.destroy();
      }
    });
  }

  /** The AuthorizedKeysCommand's question: one authorized_keys line for a registered key, or nothing. */
  private async answerKeys(socket: Socket, payload: Buffer): Promise<void> {
    let line = '';
    const asked = JSON.parse(payload.toString('utf8')) as { type?: unknown; key?: unknown };
    const type = typeof asked.type === 'string' ? asked.type : '';
    const key = typeof asked.key === 'string' ? asked.key : '';
    const problem = !/^[a-z0-9@.-]{1,64}$/.test(type) || !/^[A-Za-z0-9+/]+={0,2}$/.test(key) ? 'malformed key' : checkKey(type, Buffer.from(key, 'base64'));
    const blob = Buffer.from(key, 'base64');
    const fingerprint = problem === 'malformed key' ? '' : fingerprintOf(blob);
    if (problem) this.log.info({ fingerprint, type: printable(type, 64), reason: problem }, 'SSH key refused');
    else if (!this.closing) {
      const owner = await this.deps.keys.resolve(blob);
      if (owner) {
        // `restrict`: no TTY, forwarding, agent, X11 or ~/.ssh/rc; the session command is all the key can run.
        line = `restrict,command="${SESSION_COMMAND} ${this.socketPath} ${fingerprint}" ${type} ${key}`;
        this.log.debug({ fingerprint, user: owner.label }, 'SSH key accepted by the keys command');
      } else this.log.info({ fingerprint }, 'SSH key refused: not registered (or its user is inactive)');
    }
    if (!socket.destroyed) socket.end(frame(Frame.KEYS_ANSWER, line));
  }

  private async runSession(session: ControlSession, payload: Buffer): Promise<void> {
    const hello = JSON.parse(payload.toString('utf8')) as Partial<SessionHello>;
    const remote = typeof hello.connection === 'string' ? hello.connection.split(' ').slice(0, 2).join(':') : undefined;
    const fingerprint = typeof hello.fingerprint === 'string' ? hello.fingerprint : '';
    // The key sshd verified, as it wrote it for the session: exactly one public key, the one the forced command names.
    const verified = verifiedKey(hello.userAuth);
    if (!verified || fingerprintOf(verified) !== fingerprint) {
      this.log.warn({ remote, fingerprint: printable(fingerprint, 80), verified: verified ? fingerprintOf(verified) : undefined }, 'SSH session refused: the verified key does not match the forced command');
      session.finish({ code: 1, stderr: 'mirrorfarm: session refused: the key sshd verified does not match this session.\n' });
      return;
    }
    const owner = await this.deps.keys.resolve(verified);
    if (!owner) {
      session.finish({ code: 1, stderr: 'mirrorfarm: This SSH key is no longer registered, or its user was deactivated; log in again with a registered key.\n' });
      return;
    }
    const tracked: Tracked = { session, ownerId: owner.ownerId, fingerprint };
    // A restarted sshd has a new pid; connections of the old one keep theirs as parent.
    if (this.sshd?.pid) this.listenerPids.add(this.sshd.pid);
    const pid = typeof hello.ppid === 'number' ? connectionProcess(hello.ppid, this.listenerPids) : undefined;
    if (pid !== undefined) {
      let record = this.connections.get(pid);
      if (!record || record.ownerId !== owner.ownerId) this.connections.set(pid, (record = { pid, ownerId: owner.ownerId, fingerprint, sessions: new Set(), revoked: false }));
      record.sessions.add(session);
      tracked.connection = record;
    }
    this.sessions.add(tracked);
    const context = { remote, user: owner.label, fingerprint, sshdPid: pid };
    try {
      if (hello.command === undefined) {
        this.log.info(context, 'SSH shell request refused');
        session.finish({ code: 1, stderr: this.handler.shellMessage(owner.label, '\n') });
        return;
      }
      let gitProtocol: string | undefined;
      try {
        gitProtocol = validGitProtocol(hello.gitProtocol);
      } catch {
        this.log.info({ ...context, value: printable(String(hello.gitProtocol)) }, 'SSH client sent a malformed GIT_PROTOCOL');
      }
      const result = await this.handler.exec({ keyBlob: verified, ownerId: owner.ownerId, logContext: context }, hello.command, gitProtocol, session, session.abort.signal, this.closing);
      if (result.revoked && tracked.connection) tracked.connection.revoked = true;
      session.finish(result);
    } finally {
      this.sessions.delete(tracked);
      const record = tracked.connection;
      if (record) {
        record.sessions.delete(session);
        if ((record.revoked || this.closing) && record.sessions.size === 0) this.endWhenDone(record, record.revoked ? 'access revoked' : 'server shutting down');
      }
    }
  }

  /**
   * Ends a connection whose last session just finished, once sshd has delivered that session's output: stopping
   * sshd now would drop what it still holds (up to the channel window; a clone during a graceful shutdown
   * failed with "unexpected disconnect"). A client that got its command's end disconnects by itself; one that
   * keeps the connection (multiplexing) is ended after CLIENT_CLOSE_WAIT_MS. close() waits for these.
   */
  private endWhenDone(record: ConnectionRecord, reason: string): void {
    const deadline = Date.now() + CLIENT_CLOSE_WAIT_MS;
    this.ending.add(
      (async () => {
        while (isAlive(record.pid) && Date.now() < deadline && record.sessions.size === 0) await sleep(50);
        if (record.sessions.size === 0) this.endConnection(record, reason);
      })(),
    );
  }

  private endConnection(record: ConnectionRecord, reason: string): void {
    this.connections.delete(record.pid);
    if (endSshdProcess(record.pid)) this.log.info({ sshdPid: record.pid, fingerprint: record.fingerprint, reason }, 'SSH connection closed');
  }

  private pruneConnections(): void {
    for (const [pid, record] of this.connections) if (record.sessions.size === 0 && !isAlive(pid)) this.connections.delete(pid);
  }

  /** Revocations as the built-in server applies them (ssh-server.ts onEvent). */
  private onEvent(event: LoggedEvent): void {
    let matches: (ownerId: string, fingerprint: string) => boolean;
    let hard = false;
    if (event.type === 'ssh_key.removed') matches = (_o, f) => f === event.fingerprint;
    else if (event.type === 'user.deleted' || (event.type === 'user.updated' && event.active === false)) matches = (o) => o === `user:${String(event.userId)}`;
    else if (event.type === 'mirror.deleted' || event.type === 'mirror.rejected') {
      matches = (o) => o === `mirror:${String(event.mirrorId)}`;
      hard = true;
    } else return;
    if (hard) for (const tracked of this.sessions) if (matches(tracked.ownerId, tracked.fingerprint)) tracked.session.abort.abort();
    for (const record of [...this.connections.values()]) {
      if (!matches(record.ownerId, record.fingerprint)) continue;
      record.revoked = true;
      this.log.info({ sshdPid: record.pid, fingerprint: record.fingerprint, event: event.type, running: record.sessions.size }, 'SSH access revoked');
      if (hard || record.sessions.size === 0) this.endConnection(record, 'access revoked');
    }
  }

  async close(force = false): Promise<void> {
    this.closing = true;
    this.unsubscribe?.();
    clearInterval(this.pruneTimer);
    this.closed ??= (async () => {
      // sshd's connections outlive its listener: note them first, then end those that run nothing.
      const listener = this.sshd?.pid;
      const accepted = listener ? childrenOf(listener) : [];
      await this.sshd?.stop();
      const busy = new Set([...this.connections.values()].filter((r) => r.sessions.size > 0).map((r) => r.pid));
      for (const pid of new Set([...accepted, ...this.connections.keys()])) {
        if (!busy.has(pid)) endSshdProcess(pid);
      }
      const control = this.control;
      await new Promise<void>((resolve) => (control?.listening ? control.close(() => resolve()) : resolve()));
      await Promise.all(this.ending);
      await rm(this.socketPath, { force: true }).catch(() => {});
    })();
    if (force) {
      for (const tracked of this.sessions) tracked.session.abort.abort();
      for (const record of [...this.connections.values()]) this.endConnection(record, 'server stopping');
    }
    await this.closed;
  }
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen({ host, port: 0 }, () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
