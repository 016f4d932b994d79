// Git over SSH (ssh://git@HOST:PORT/proj/repo.git) with the ssh2 library. This module owns the listener, the
// per-connection limits, public-key authentication and the session requests; the git work itself is the
// shared GitService, exactly as for smart HTTP (transports differ only in identity and stdio).
//
// Security notes:
// - Identity is bound only after a signature has been verified with the offered key over this connection's
//   session data. A key offered without a signature (the "query" step) is answered "acceptable" or not and
//   binds nothing, so offering somebody else's public key never makes you them.
// - The verified key is remembered, not the user: every exec resolves the key's owner again, so a removed
//   key, a deactivated user or a changed sysadmin flag applies at once, even on long-lived multiplexed
//   connections (mirrors keep one open).
// - Unauthenticated connections are bounded in number and in time, auth attempts per connection are bounded,
//   and nothing but "env GIT_PROTOCOL" and "exec git-upload-pack|git-receive-pack PATH" is accepted.
import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import ssh2, { type AuthContext, type Connection, type NegotiatedAlgorithms, type PublicKeyAuthContext, type ServerChannel, type Session } from 'ssh2';
import { Counter, Gauge, type Registry } from 'prom-client';
import { fingerprintOf } from '../../domain/users.js';
import type { EventLog, LoggedEvent } from '../../events/log.js';
import type { Logger } from '../../obs/logger.js';
import type { Metrics } from '../../obs/metrics.js';
import { validGitProtocol } from '../git-service.js';
import { printable } from './command.js';
import { SSH_ALGORITHMS } from './algorithms.js';
import { runGitPiped, SshExecHandler, type ExecHandlerDeps, type ExecResult, type SshSessionIo } from './exec-handler.js';
import { loadOrCreateHostKeys, loadSharedHostKeys, type HostKey } from './host-keys.js';
import { DEFAULT_SSH_LIMITS, type SshLimits } from './limits.js';
import { CLIENT_CLOSE_WAIT_MS, sshConnectionsCounter, type SshFrontEnd, type SshFrontEndOptions } from './front-end.js';

export type { KeyOwner, SshKeyResolver } from './exec-handler.js';
export { DEFAULT_SSH_LIMITS, type SshLimits } from './limits.js';

/** The built-in server needs what every front end does, without the OpenSSH front end's own settings. */
export type SshServerOptions = Omit<SshFrontEndOptions, 'runDir' | 'sshdPath'>;

/** What the SSH server needs; a primary and a mirror provide it differently. */
export interface SshServerDeps extends ExecHandlerDeps {
  metrics: Metrics;
  /** The event log whose key, user and mirror changes revoke sessions at once (a primary's). */
  events?: EventLog;
}

interface ConnectionState {
  id: number;
  socket: Socket;
  remote: string;
  client?: Connection;
  authenticated: boolean;
  keyBlob?: Buffer;
  ownerId?: string;
  user?: string;
  fingerprint?: string;
  authRequests: number;
  authFailures: number;
  /** Offered a key (or other credentials); a connection that did and never authenticated counts as one failure. */
  triedCredentials: boolean;
  wrongUserBannerSent: boolean;
  sessions: number;
  /** Aborts the running git processes of this connection. */
  running: Set<AbortController>;
  /** The key or its user was revoked; the connection ends when its running git operations do. */
  revoked: boolean;
  graceTimer?: NodeJS.Timeout;
  closed: boolean;
}

interface SessionState {
  gitProtocol?: string;
  pty: boolean;
}

interface SshMetrics {
  connections: Counter<'outcome'>;
  open: Gauge<'state'>;
  handshakes: Counter<'kex' | 'host_key' | 'cipher' | 'mac'>;
}

function sshMetrics(registry: Registry): SshMetrics {
  // Registered here (on the server's own registry) because they exist only with the SSH transport; the
  // lookup keeps a second SshServer on the same registry from failing on duplicate registration.
  const connections = sshConnectionsCounter(registry);
  const open =
    (registry.getSingleMetric('mirrorfarm_ssh_connections_open') as Gauge<'state'> | undefined) ??
    new Gauge({
      name: 'mirrorfarm_ssh_connections_open',
      help: 'Open SSH connections, by state (unauthenticated, authenticated).',
      labelNames: ['state'] as const,
      registers: [registry],
    });
  // Which algorithms clients actually pick (labels are bounded by the offer in algorithms.ts): shows when the
  // CTR/HMAC fallback is still in use, before anyone considers dropping it.
  const handshakes =
    (registry.getSingleMetric('mirrorfarm_ssh_handshakes_total') as Counter<'kex' | 'host_key' | 'cipher' | 'mac'> | undefined) ??
    new Counter({
      name: 'mirrorfarm_ssh_handshakes_total',
      help: 'Completed SSH key exchanges (first and rekeys), by negotiated kex, host key, cipher and MAC ("implicit" for AEAD ciphers).',
      labelNames: ['kex', 'host_key', 'cipher', 'mac'] as const,
      registers: [registry],
    });
  return { connections, open, handshakes };
}

/**
 * ssh2 (1.x) cannot send SSH_MSG_USERAUTH_BANNER after the auth service started, but that is the only way to
 * tell a client why it was refused (RFC 4252 5.4 allows it at any time before success). This writes one
 * through ssh2's packet writer; if ssh2's internals ever change shape it quietly does nothing.
 */
function sendAuthBanner(client: Connection, text: string): boolean {
  type PacketWriter = { allocStart: number; alloc(n: number): Buffer; finalize(p: Buffer): Buffer };
  const proto = (client as unknown as { _protocol?: { _packetRW?: { write?: PacketWriter }; _cipher?: { encrypt(p: Buffer): void }; _kexinit?: unknown } })
    ._protocol;
  const writer = proto?._packetRW?.write;
  if (!proto || !writer || !proto._cipher || proto._kexinit !== undefined) return false;
  try {
    const message = Buffer.from(text.endsWith('\r\n') ? text : `${text}\r\n`, 'utf8');
    let p = writer.allocStart;
    const packet = writer.alloc(1 + 4 + message.length + 4);
    packet[p] = 53; // SSH_MSG_USERAUTH_BANNER
    packet.writeUInt32BE(message.length, ++p);
    message.copy(packet, (p += 4));
    packet.writeUInt32BE(0, p + message.length); // empty language tag
    proto._cipher.encrypt(writer.finalize(packet));
    return true;
  } catch {
    return false;
  }
}

/** Resolves once everything written to `stream` so far has been handed to the SSH layer (or the channel died). */
function flushed(stream: Writable, gone: Promise<void>): Promise<void> {
  if (stream.writableEnded || stream.destroyed) return Promise.resolve();
  // An empty write completes after every earlier chunk; ssh2 never calls back for a closed channel, hence `gone`.
  return Promise.race([new Promise<void>((resolve) => stream.write(Buffer.alloc(0), () => resolve())), gone]);
}

export class SshServer implements SshFrontEnd {
  private readonly log: Logger;
  private readonly limits: SshLimits;
  private readonly metrics: SshMetrics;
  private readonly handler: SshExecHandler;
  private hostKeys: HostKey[] = [];
  private listener?: NetServer;
  private ssh?: ssh2.Server;
  private readonly connections = new Set<ConnectionState>();
  private readonly sockets = new WeakMap<Socket, ConnectionState>();
  /** Authenticated connections by holder ("user:7", "mirror:ABCD-..."), so that a revocation finds them at once. */
  private readonly byOwner = new Map<string, Set<ConnectionState>>();
  private unauthenticated = 0;
  private nextId = 1;
  private closing = false;
  private closed?: Promise<void>;
  private unsubscribe?: () => void;
  private refusedSinceLog = 0;
  private refusedLoggedAt = 0;

  constructor(
    private readonly deps: SshServerDeps,
    private readonly options: SshServerOptions,
  ) {
    this.log = deps.log.child({ component: 'ssh' });
    this.limits = { ...DEFAULT_SSH_LIMITS, ...options.limits };
    this.metrics = sshMetrics(deps.metrics.registry);
    this.handler = new SshExecHandler(deps);
  }

  /** Starts listening; resolves with the bound port. */
  async listen(): Promise<number> {
    this.hostKeys = this.options.sharedHostKeys
      ? await loadSharedHostKeys(this.options.hostKeyDir)
      : await loadOrCreateHostKeys(this.options.hostKeyDir, this.log);
    this.ssh = new ssh2.Server({ hostKeys: this.hostKeys.map((k) => k.privateKey), algorithms: SSH_ALGORITHMS, ident: 'mirrorfarm' });
    this.ssh.on('connection', (client: Connection) => this.onClient(client));
    this.ssh.on('error', (err: Error) => this.log.error({ err }, 'SSH server error'));
    this.unsubscribe = this.deps.events?.subscribe((events) => {
      for (const event of events) this.onEvent(event);
    });
    // Our own TCP listener hands sockets to ssh2, so that limits and the login deadline apply from the first
    // byte (ssh2 only reports a connection after the client's version line).
    const listener = createServer((socket) => this.onSocket(socket));
    this.listener = listener;
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen({ host: this.options.host, port: this.options.port }, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    listener.on('error', (err) => this.log.error({ err }, 'SSH listener error'));
    const port = (listener.address() as AddressInfo).port;
    this.log.info({ host: this.options.host, port, hostKeys: this.hostKeys.map((k) => k.fingerprint) }, 'SSH listening');
    return port;
  }

  /** Public host keys in OpenSSH format ("ssh-ed25519 AAAA..."), for publishing over HTTPS. */
  hostPublicKeys(): string[] {
    return this.hostKeys.map((k) => k.publicKey);
  }

  /** Stops accepting connections; running sessions finish unless `force`. Resolves when all connections closed. */
  async close(force = false): Promise<void> {
    this.closing = true;
    this.unsubscribe?.();
    const listener = this.listener;
    this.closed ??= new Promise<void>((resolve) => {
      if (!listener?.listening) return resolve();
      // net.Server.close calls back once every accepted socket has closed.
      listener.close(() => resolve());
    });
    for (const conn of this.connections) {
      if (force || conn.running.size === 0) this.endConnection(conn, force ? 'server stopping' : 'server shutting down');
    }
    await this.closed;
  }

  /**
   * A removed key or a deleted or deactivated user loses SSH access at once: idle connections are closed now,
   * busy ones when their running git operation ends (and no new one starts: each exec resolves the key again).
   * A deleted or rejected mirror is cut off harder: its running fetches are killed and its connections closed
   * now, because a mirror holds one multiplexed connection open for hours and a removed mirror must fetch
   * nothing more (found by a test holding a fetch open across the DELETE).
   */
  private onEvent(event: LoggedEvent): void {
    let revoked: Iterable<ConnectionState>;
    let hard = false;
    if (event.type === 'ssh_key.removed') revoked = [...this.connections].filter((conn) => conn.fingerprint !== undefined && conn.fingerprint === event.fingerprint);
    else if (event.type === 'user.deleted' || (event.type === 'user.updated' && event.active === false)) revoked = [...(this.byOwner.get(`user:${String(event.userId)}`) ?? [])];
    else if (event.type === 'mirror.deleted' || event.type === 'mirror.rejected') {
      revoked = [...(this.byOwner.get(`mirror:${String(event.mirrorId)}`) ?? [])];
      hard = true;
    } else return;
    for (const conn of revoked) {
      conn.revoked = true;
      this.log.info({ conn: conn.id, remote: conn.remote, user: conn.user, fingerprint: conn.fingerprint, event: event.type, running: conn.running.size }, 'SSH access revoked');
      if (hard) for (const abort of conn.running) abort.abort();
      if (hard || conn.running.size === 0) this.endConnection(conn, 'access revoked');
    }
  }

  private addOwned(conn: ConnectionState, ownerId: string): void {
    let set = this.byOwner.get(ownerId);
    if (!set) this.byOwner.set(ownerId, (set = new Set()));
    set.add(conn);
  }

  private removeOwned(conn: ConnectionState): void {
    if (!conn.ownerId) return;
    const set = this.byOwner.get(conn.ownerId);
    set?.delete(conn);
    if (set?.size === 0) this.byOwner.delete(conn.ownerId);
  }

  // --- connections --------------------------------------------------------------------------------------

  private onSocket(socket: Socket): void {
    socket.on('error', () => {}); // reported through ssh2's client 'error'; never fatal for the server
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    let refusal: string | undefined;
    if (this.closing) refusal = 'shutting down';
    else if (this.unauthenticated >= this.limits.maxUnauthenticated) refusal = 'too many unauthenticated connections';
    else if (this.connections.size >= this.limits.maxConnections) refusal = 'too many connections';
    if (refusal) {
      this.metrics.connections.inc({ outcome: 'refused' });
      // At most one line per 10 s: a flood of connections must not become a flood of log lines.
      this.refusedSinceLog++;
      if (Date.now() - this.refusedLoggedAt >= 10_000) {
        this.log.warn({ remote, reason: refusal, refused: this.refusedSinceLog, unauthenticated: this.unauthenticated, connections: this.connections.size }, 'SSH connections refused');
        this.refusedLoggedAt = Date.now();
        this.refusedSinceLog = 0;
      }
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const conn: ConnectionState = {
      id: this.nextId++,
      socket,
      remote,
      authenticated: false,
      authRequests: 0,
      authFailures: 0,
      triedCredentials: false,
      wrongUserBannerSent: false,
      sessions: 0,
      running: new Set(),
      revoked: false,
      closed: false,
    };
    this.connections.add(conn);
    this.unauthenticated++;
    this.metrics.connections.inc({ outcome: 'accepted' });
    this.metrics.open.inc({ state: 'unauthenticated' });
    conn.graceTimer = setTimeout(() => {
      this.metrics.connections.inc({ outcome: 'login_timeout' });
      this.log.info({ conn: conn.id, remote }, 'SSH connection did not authenticate in time');
      this.endConnection(conn, 'login timeout');
    }, this.limits.loginGraceMs);
    conn.graceTimer.unref();
    socket.once('close', () => {
      conn.closed = true;
      clearTimeout(conn.graceTimer);
      this.connections.delete(conn);
      this.removeOwned(conn);
      if (conn.authenticated) this.metrics.open.dec({ state: 'authenticated' });
      else {
        this.unauthenticated--;
        this.metrics.open.dec({ state: 'unauthenticated' });
        // One login, one outcome (as for HTTP's one request): a client that tries three keys and gets in with the
        // third counts one success, not two failures and a success.
        if (conn.triedCredentials) this.deps.metrics.authentications.inc({ outcome: 'failure' });
      }
      for (const abort of conn.running) abort.abort();
      this.log.debug({ conn: conn.id, remote, user: conn.user }, 'SSH connection closed');
    });
    this.sockets.set(socket, conn);
    this.ssh!.injectSocket(socket);
  }

  private onClient(client: Connection): void {
    // ssh2 keeps the socket it was handed as `_sock`; that is how its Connection finds our state.
    const socket = (client as unknown as { _sock?: Socket })._sock;
    const conn = socket && this.sockets.get(socket);
    client.on('error', (err: Error & { level?: string }) => {
      if (conn) this.log.debug({ conn: conn.id, remote: conn.remote, err: err.message, level: err.level }, 'SSH client error');
    });
    if (!conn || conn.closed) {
      client.end();
      return;
    }
    conn.client = client;
    this.log.debug({ conn: conn.id, remote: conn.remote }, 'SSH connection');
    client.on('handshake', (negotiated: NegotiatedAlgorithms) => {
      const algorithms = { kex: negotiated.kex, host_key: negotiated.serverHostKey, cipher: negotiated.sc.cipher, mac: negotiated.sc.mac || 'implicit' };
      this.metrics.handshakes.inc(algorithms);
      this.log.debug({ conn: conn.id, ...algorithms }, 'SSH key exchange');
    });
    client.on('authentication', (ctx: AuthContext) => {
      this.authenticate(conn, ctx).catch((err: unknown) => {
        this.log.error({ err, conn: conn.id }, 'SSH authentication failed unexpectedly');
        try {
          ctx.reject(['publickey']);
        } catch {
          /* already answered or connection gone */
        }
      });
    });
    client.on('ready', () => {
      conn.authenticated = true;
      clearTimeout(conn.graceTimer);
      this.unauthenticated--;
      this.metrics.open.dec({ state: 'unauthenticated' });
      this.metrics.open.inc({ state: 'authenticated' });
    });
    client.on('session', (accept: () => Session, reject: () => void) => {
      if (!conn.authenticated || !conn.keyBlob || conn.sessions >= this.limits.maxSessions) return reject();
      const session = accept();
      if (!session) return;
      conn.sessions++;
      session.once('close', () => conn.sessions--);
      this.onSession(conn, session);
    });
  }

  private endConnection(conn: ConnectionState, reason: string): void {
    if (conn.closed) return;
    this.log.debug({ conn: conn.id, remote: conn.remote, reason }, 'ending SSH connection');
    try {
      conn.client?.end(); // sends SSH_MSG_DISCONNECT, then FIN
    } catch {
      /* socket already gone */
    }
    // A peer that never answers the FIN must not hold the connection (or shutdown) open.
    setTimeout(() => conn.socket.destroy(), 1000).unref();
    if (!conn.client) conn.socket.destroy();
  }

  // --- authentication -----------------------------------------------------------------------------------

  private authFailed(conn: ConnectionState, ctx: AuthContext, reason: string, extra: Record<string, unknown> = {}): void {
    conn.authFailures++;
    this.log.info({ conn: conn.id, remote: conn.remote, method: ctx.method, reason, ...extra }, 'SSH authentication refused');
    ctx.reject(['publickey']);
    if (conn.authFailures >= this.limits.maxAuthFailures) {
      this.metrics.connections.inc({ outcome: 'too_many_auth_attempts' });
      this.endConnection(conn, 'too many authentication failures');
    }
  }

  private async authenticate(conn: ConnectionState, ctx: AuthContext): Promise<void> {
    if (conn.closed) return;
    if (++conn.authRequests > this.limits.maxAuthRequests) {
      this.metrics.connections.inc({ outcome: 'too_many_auth_attempts' });
      this.log.info({ conn: conn.id, remote: conn.remote }, 'SSH connection made too many authentication requests');
      ctx.reject([]);
      this.endConnection(conn, 'too many authentication requests');
      return;
    }
    const loginName = this.options.user ?? 'git';
    if (ctx.username !== loginName) {
      conn.triedCredentials = true;
      if (!conn.wrongUserBannerSent && conn.client) {
        conn.wrongUserBannerSent = sendAuthBanner(
          conn.client,
          `mirrorfarm: log in as "${loginName}", not "${printable(ctx.username, 64)}": git clone ${this.handler.exampleCloneUrl()}`,
        );
      }
      return this.authFailed(conn, ctx, `user name is not "${loginName}"`, { username: printable(ctx.username, 64) });
    }
    if (ctx.method === 'none') {
      ctx.reject(['publickey']); // the client asks which methods exist
      return;
    }
    conn.triedCredentials = true;
    if (ctx.method !== 'publickey') return this.authFailed(conn, ctx, 'only public keys are accepted');

    const fingerprint = fingerprintOf(ctx.key.data);
    const problem = this.checkOfferedKey(ctx);
    if (problem) return this.authFailed(conn, ctx, problem, { fingerprint });

    if (!ctx.signature) {
      // The query step: "would this key be acceptable?". The answer binds nothing; only a signature does.
      const owner = await this.deps.keys.resolve(ctx.key.data);
      if (conn.closed) return;
      if (owner) {
        ctx.accept(); // SSH_MSG_USERAUTH_PK_OK
        return;
      }
      return this.authFailed(conn, ctx, 'key not registered', { fingerprint });
    }

    if (!this.signatureValid(ctx)) return this.authFailed(conn, ctx, 'signature does not verify', { fingerprint });
    const owner = await this.deps.keys.resolve(ctx.key.data);
    if (conn.closed) return;
    if (!owner) return this.authFailed(conn, ctx, 'key not registered (or its user is inactive)', { fingerprint });
    if (conn.keyBlob) return this.authFailed(conn, ctx, 'already authenticated', { fingerprint });
    // Bound here and only here: the key whose signature was just verified over this session.
    conn.keyBlob = Buffer.from(ctx.key.data);
    conn.ownerId = owner.ownerId;
    this.addOwned(conn, owner.ownerId);
    conn.user = owner.label;
    conn.fingerprint = fingerprint;
    this.deps.metrics.authentications.inc({ outcome: 'success' });
    this.log.info({ conn: conn.id, remote: conn.remote, user: owner.label, keyId: owner.keyId, fingerprint }, 'SSH authenticated');
    ctx.accept();
  }

  /** Refuses keys that cannot be verified as offered: unparseable, certificates, algorithm mismatch, SHA-1 RSA, DSA. */
  private checkOfferedKey(ctx: PublicKeyAuthContext): string | undefined {
    const parsed = ssh2.utils.parseKey(ctx.key.data);
    if (parsed instanceof Error || Array.isArray(parsed) || parsed.isPrivateKey()) return 'key cannot be parsed (certificates are not supported)';
    // parseKey also reads text formats; insist that what will be verified is exactly the blob looked up.
    if (!parsed.getPublicSSH().equals(ctx.key.data)) return 'key cannot be parsed';
    if (parsed.type !== ctx.key.algo) return 'key algorithm does not match the key';
    if (parsed.type === 'ssh-dss') return 'DSA keys are not accepted';
    if (parsed.type === 'ssh-rsa' && !ctx.hashAlgo) return 'RSA signatures with SHA-1 (ssh-rsa) are not accepted; use rsa-sha2-256/512';
    return undefined;
  }

  private signatureValid(ctx: PublicKeyAuthContext): boolean {
    if (!ctx.signature || !ctx.blob) return false;
    const key = ssh2.utils.parseKey(ctx.key.data);
    if (key instanceof Error || Array.isArray(key)) return false;
    // ctx.blob is built by ssh2 from this connection's session id and the request, never taken from the client.
    return key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true;
  }

  // --- sessions -----------------------------------------------------------------------------------------

  private onSession(conn: ConnectionState, session: Session): void {
    const state: SessionState = { pty: false };
    session.on('env', (accept, reject, info) => {
      if (info.key !== 'GIT_PROTOCOL') return reject?.();
      try {
        state.gitProtocol = validGitProtocol(info.val);
        accept?.();
      } catch {
        this.log.info({ conn: conn.id, user: conn.user, value: printable(info.val) }, 'SSH client sent a malformed GIT_PROTOCOL');
        reject?.();
      }
    });
    session.on('pty', (accept) => {
      // Accepted (and ignored) only so that a plain "ssh git@host" gets the friendly message below rather
      // than a "PTY allocation request failed" warning first. No terminal is ever allocated.
      state.pty = true;
      accept?.();
    });
    session.on('shell', (accept) => {
      const channel = accept();
      if (!channel) return;
      this.guard(conn, channel);
      this.log.info({ conn: conn.id, remote: conn.remote, user: conn.user }, 'SSH shell request refused');
      const eol = state.pty ? '\r\n' : '\n';
      void this.finishChannel(conn, channel, this.handler.shellMessage(conn.user ?? '', eol), 1);
    });
    session.on('exec', (accept, _reject, info) => {
      const channel = accept();
      if (!channel) return;
      this.guard(conn, channel);
      this.runExec(conn, session, state, channel, info.command).catch((err: unknown) => {
        this.log.error({ err, conn: conn.id }, 'SSH exec failed unexpectedly');
      });
    });
    session.on('subsystem', (_accept, reject, info) => {
      this.log.info({ conn: conn.id, user: conn.user, subsystem: printable(info.name) }, 'SSH subsystem refused');
      reject?.();
    });
    session.on('sftp', (_accept, reject) => {
      this.log.info({ conn: conn.id, user: conn.user, subsystem: 'sftp' }, 'SSH subsystem refused');
      reject?.();
    });
  }

  /**
   * A channel the client closes or abandons can still see writes that were under way (git's last output);
   * ssh2 reports them as stream errors, which must never become uncaught exceptions.
   */
  private guard(conn: ConnectionState, channel: ServerChannel): void {
    const report = (err: Error) => this.log.debug({ conn: conn.id, err: err.message }, 'SSH channel error');
    channel.on('error', report);
    channel.stderr.on('error', report);
  }

  /** Writes a message to the client's stderr, sends the exit status and closes the channel. */
  private async finishChannel(conn: ConnectionState, channel: ServerChannel, stderrText: string | undefined, code: number): Promise<void> {
    const gone = new Promise<void>((resolve) => {
      channel.once('close', resolve);
      conn.socket.once('close', resolve);
    });
    channel.resume(); // input is not needed any more; reading it lets ssh2 report the channel's close
    if (stderrText) channel.stderr.write(stderrText);
    await Promise.all([flushed(channel, gone), flushed(channel.stderr, gone)]);
    if (conn.closed) return;
    // Exit status must precede the channel close, and ssh2 closes a server channel as soon as it is ended.
    channel.exit(code);
    channel.end();
    // Ending the connection at once would cut off what the client still holds: OpenSSH's client drops output it
    // has not written out yet when a disconnect arrives (a clone during a graceful shutdown failed with
    // "unexpected disconnect while reading sideband packet"). The client closes its side of the channel once it
    // has, so a connection that is about to end waits for that, for a while at most.
    if (this.closing || conn.revoked) await Promise.race([gone, sleep(CLIENT_CLOSE_WAIT_MS, undefined, { ref: false })]);
    this.afterChannel(conn);
  }

  /** During a graceful shutdown or after a revocation, a connection goes away once its last git operation is done. */
  private afterChannel(conn: ConnectionState): void {
    if ((this.closing || conn.revoked) && conn.running.size === 0) this.endConnection(conn, this.closing ? 'server shutting down' : 'access revoked');
  }

  private async runExec(conn: ConnectionState, session: Session, state: SessionState, channel: ServerChannel, raw: string): Promise<void> {
    const abort = new AbortController();
    conn.running.add(abort);
    let done = false;
    // The client closed the channel or the connection before git finished: kill git (receive-pack then leaves
    // the refs as they were) and stop writing into the channel, which ssh2 has ended by now.
    const onGone = () => {
      if (!done) abort.abort();
    };
    session.once('close', onGone);
    channel.once('close', onGone);
    conn.socket.once('close', onGone);
    const io: SshSessionIo = {
      streams: () => ({ input: channel, output: channel, stderr: channel.stderr }),
      runGit: (launch) => runGitPiped(this.deps.git, launch, { input: channel, output: channel, stderr: channel.stderr }),
    };
    const caller = { keyBlob: conn.keyBlob!, ownerId: conn.ownerId!, logContext: { conn: conn.id, remote: conn.remote, user: conn.user } };
    let result: ExecResult;
    try {
      result = await this.handler.exec(caller, raw, state.gitProtocol, io, abort.signal, this.closing);
    } finally {
      done = true;
      conn.running.delete(abort);
      session.off('close', onGone);
      channel.off('close', onGone);
      conn.socket.off('close', onGone);
    }
    if (result.revoked) conn.revoked = true;
    if (conn.closed || abort.signal.aborted) return this.afterChannel(conn);
    if (result.stdout) channel.write(result.stdout);
    return this.finishChannel(conn, channel, result.stderr, result.code);
  }
}
