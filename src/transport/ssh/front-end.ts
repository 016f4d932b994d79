// What the rest of the server sees of SSH, whichever front end serves it (ssh.frontend): the built-in ssh2
// server (ssh-server.ts; the laptop demo and the default) or OpenSSH's sshd managed by mirrorfarm
// (../sshd/openssh-front-end.ts; production, as GitLab and Gitea offer it). Both run the same exec handler.
import type { SshLimits } from './limits.js';

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
  hostKeyDir: string;
  sharedHostKeys?: boolean;
  limits?: Partial<SshLimits>;
  /** The login name clients use (ssh.user). */
  user?: string;
  /** OpenSSH front end: HOME/run, for sshd's configuration and the control socket. */
  runDir: string;
  /** OpenSSH front end: the sshd binary (ssh.sshdPath). */
  sshdPath?: string;
}
