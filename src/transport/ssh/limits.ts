// Limits of an SSH front end, per connection and in total. The built-in server enforces each itself; the
// OpenSSH front end maps them onto sshd's own settings (src/transport/sshd/sshd-config.ts says which).
export interface SshLimits {
  /** Connections that have not authenticated yet; more are dropped on accept (OpenSSH's MaxStartups). */
  maxUnauthenticated: number;
  /** All connections, authenticated or not. */
  maxConnections: number;
  /** Time from TCP accept to successful authentication (OpenSSH's LoginGraceTime). */
  loginGraceMs: number;
  /** Authentication requests per connection, queries included; the connection is dropped beyond. */
  maxAuthRequests: number;
  /** Refused authentication requests per connection (OpenSSH's MaxAuthTries). */
  maxAuthFailures: number;
  /** Open sessions (channels) per connection (OpenSSH's MaxSessions). */
  maxSessions: number;
}

export const DEFAULT_SSH_LIMITS: SshLimits = {
  maxUnauthenticated: 64,
  maxConnections: 1024,
  loginGraceMs: 30_000,
  maxAuthRequests: 24,
  maxAuthFailures: 10,
  maxSessions: 10,
};

