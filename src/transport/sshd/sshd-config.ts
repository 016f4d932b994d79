// The sshd_config mirrorfarm writes for its OpenSSH front end (HOME/run/sshd/sshd_config, owner-only, rewritten
// on every start). It mirrors the built-in server: the same host keys and algorithms (algorithms.ts), the
// limits of SshLimits where sshd has an equivalent, public keys only, no TTY, forwarding, agent or X11, and no
// authorized_keys file: the only keys are those the AuthorizedKeysCommand gets from the running server, each
// with `restrict` and the forced session command.
//
// SshLimits in sshd terms: maxUnauthenticated -> MaxStartups (beyond it new connections are dropped at once),
// loginGraceMs -> LoginGraceTime (whole seconds, at least 1), maxAuthFailures -> MaxAuthTries, maxSessions ->
// MaxSessions. maxConnections and maxAuthRequests have no sshd counterpart and do not apply to this front end.
import { SSH_ALGORITHMS } from '../ssh/algorithms.js';
import type { SshLimits } from '../ssh/limits.js';

export interface SshdConfigInput {
  host: string;
  port: number;
  /** Files sshd reads its host keys from (owner-only copies of the server's). */
  hostKeyFiles: string[];
  /** The one account clients log in as: the account mirrorfarm and sshd run as. */
  user: string;
  /** The AuthorizedKeysCommand with its arguments, %t and %k last. */
  authorizedKeysCommand: string[];
  limits: SshLimits;
}

/** Values end up in a file sshd parses: refuse anything that could start another keyword or argument. */
function word(value: string, what: string): string {
  if (!/^[A-Za-z0-9_./:%@+=,-]+$/.test(value)) throw new Error(`${what} "${value}" holds characters sshd_config cannot take unquoted (only letters, digits and _./:%@+=,-)`);
  return value;
}

/** User keys accepted: what the built-in server verifies, without SHA-1 RSA, DSA or certificates. */
const PUBKEY_ALGORITHMS = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256'];

export function renderSshdConfig(input: SshdConfigInput): string {
  const lines = [
    '# Written by mirrorfarm on every start (ssh.frontend: openssh); changes here are lost.',
    `ListenAddress ${word(input.host.includes(':') ? `[${input.host}]:${input.port}` : `${input.host}:${input.port}`, 'ssh.host')}`,
    ...input.hostKeyFiles.map((file) => `HostKey ${word(file, 'host key file')}`),
    'PidFile none',
    'UsePAM no',
    `AllowUsers ${word(input.user, 'ssh.user')}`,
    // Only matters when the account is root; then only the forced command can run, never a shell.
    'PermitRootLogin forced-commands-only',
    'AuthenticationMethods publickey',
    'PubkeyAuthentication yes',
    `PubkeyAcceptedAlgorithms ${PUBKEY_ALGORITHMS.join(',')}`,
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'HostbasedAuthentication no',
    'GSSAPIAuthentication no',
    'AuthorizedKeysFile none',
    `AuthorizedKeysCommand ${input.authorizedKeysCommand.map((a, i) => (i >= input.authorizedKeysCommand.length - 2 ? a : word(a, 'AuthorizedKeysCommand argument'))).join(' ')}`,
    `AuthorizedKeysCommandUser ${word(input.user, 'ssh.user')}`,
    'StrictModes yes',
    // $SSH_USER_AUTH names a file with the key sshd verified: the session script passes it on, and the server
    // checks it against the fingerprint of the forced command (defence in depth).
    'ExposeAuthInfo yes',
    'AcceptEnv GIT_PROTOCOL',
    // sshd runs the forced command with the account's login shell, and bash started by sshd sources ~/.bashrc
    // unless it is a nested shell (SHLVL >= 2 once it counts itself): an rc file that prints anything would
    // corrupt the git protocol, and one that runs tools (pyenv, nvm) costs every session hundreds of
    // milliseconds. The account's own shell setup has no business in a git session.
    'SetEnv SHLVL=1',
    'PermitUserEnvironment no',
    'PermitUserRC no',
    'PermitTTY no',
    'DisableForwarding yes',
    'AllowAgentForwarding no',
    'AllowTcpForwarding no',
    'AllowStreamLocalForwarding no',
    'X11Forwarding no',
    'PermitTunnel no',
    'GatewayPorts no',
    'PrintMotd no',
    'PrintLastLog no',
    'UseDNS no',
    'Compression no',
    `KexAlgorithms ${(SSH_ALGORITHMS.kex as string[]).join(',')}`,
    `Ciphers ${(SSH_ALGORITHMS.cipher as string[]).join(',')}`,
    `MACs ${(SSH_ALGORITHMS.hmac as string[]).join(',')}`,
    `HostKeyAlgorithms ${(SSH_ALGORITHMS.serverHostKey as string[]).join(',')}`,
    `MaxStartups ${input.limits.maxUnauthenticated}`,
    `LoginGraceTime ${Math.max(1, Math.ceil(input.limits.loginGraceMs / 1000))}`,
    `MaxAuthTries ${input.limits.maxAuthFailures}`,
    `MaxSessions ${input.limits.maxSessions}`,
    'LogLevel INFO',
  ];
  return `${lines.join('\n')}\n`;
}
