// What the rest of the server sees of SSH, whichever front end serves it (ssh.frontend): the built-in ssh2
// server (ssh-server.ts; the laptop demo and the default) or OpenSSH's sshd managed by mirrorfarm
// (../sshd/openssh-front-end.ts; production, as GitLab and Gitea offer it). Both run the same exec handler.
import { Counter, type Registry } from 'prom-client';
import type { SshLimits } from './limits.js';

/**
 * SSH connections by outcome, counted by both front ends. Registered on first use (on the server's own registry,
 * as it exists only with SSH); the lookup keeps a second front end on the same registry from failing on a
 * duplicate registration.
 */
export function sshConnectionsCounter(registry: Registry): Counter<'outcome'> {
  return (
    (registry.getSingleMetric('mirrorfarm_ssh_connections_total') as Counter<'outcome'> | undefined) ??
    new Counter({
      name: 'mirrorfarm_ssh_connections_total',
      help: 'SSH connections, by outcome: accepted, refused (limits or shutdown), login_timeout, too_many_auth_attempts.',
      labelNames: ['outcome'] as const,
      registers: [registry],
    })
  );
}

/**
 * How long a connection that is to end (graceful shutdown, revoked access) may take to close by itself after its
 * last git operation: the client still has to read what was sent (OpenSSH's client drops output it has not
 * written out when a disconnect arrives, and sshd drops what it has not sent when it is stopped).
 */
export const CLIENT_CLOSE_WAIT_MS = 10_000;

export interface SshFrontEnd {
  /** Starts listening; resolves with the bound port. */
  listen(): Promise<number>;
  /** Public host keys in OpenSSH format ("ssh-ed25519 AAAA..."), for publishing over HTTPS. */
  hostPublicKeys(): string[];
  /** Stops accepting connections; running sessions finish unless `force`. */
  close(force?: boolean): Promise<void>;
}

export interface SshFrontEndOptions {
  host: string;
  port: number;
  /** Directory holding the persistent host keys. */
  hostKeyDir: string;
  /** The keys are a farm's shared set (ssh.hostKeyDir): read them, never generate any. */
  sharedHostKeys?: boolean;
  /** Overrides for tests and tuning; defaults in limits.ts. */
  limits?: Partial<SshLimits>;
  /** The one login name clients use (ssh.user, shown in clone URLs); default "git". */
  user?: string;
  /** OpenSSH front end: HOME/run, for sshd's configuration and the control socket. */
  runDir: string;
  /** OpenSSH front end: the sshd binary (ssh.sshdPath). */
  sshdPath?: string;
}
