// The README's Troubleshooting table (code, cause, fix), so that a mirror's page explains its error where the
// operator looks first. test/unit/web-troubleshooting.test.ts keeps the two in step: every code of the README's
// table is here with the same cause and fix.
const ROWS: Array<[codes: string[], cause: string, fix: string]> = [
  [['MIRROR_UPSTREAM_NOT_HTTPS'], 'mirror.upstreamUrl is http:// (refused at startup), or the port does not speak TLS', 'use the primary\'s https:// URL'],
  [['MIRROR_UPSTREAM_UNREACHABLE'], 'connection refused, DNS failure or timeout', 'check the URL, DNS and firewalls between mirror and primary'],
  [['MIRROR_UPSTREAM_CERT_UNTRUSTED'], 'the primary\'s certificate is self-signed or from a CA the mirror does not trust', 'use a certificate from a trusted CA, or add your CA to trust.caFile'],
  [['MIRROR_UPSTREAM_CERT_EXPIRED'], 'the primary\'s certificate is expired or not yet valid', 'renew it; check both clocks'],
  [['MIRROR_UPSTREAM_CERT_HOSTNAME'], 'the certificate does not cover the host name in mirror.upstreamUrl', 'issue it for that name, or use the name it covers'],
  [['MIRROR_UPSTREAM_NOT_MIRRORFARM'], 'the URL answers, but not as a mirrorfarm primary', 'point mirror.upstreamUrl at the primary\'s base URL'],
  [['MIRROR_UPSTREAM_SSH_DISABLED'], 'the primary has SSH turned off; mirrors fetch over SSH only', 'enable ssh.enabled on the primary'],
  [['MIRROR_UPSTREAM_NO_HOST_KEY'], 'the primary published no SSH host key to pin', 'upgrade the primary'],
  [['MIRROR_BASE_URL_UNREACHABLE', 'MIRROR_BASE_URL_CERT_UNTRUSTED', 'MIRROR_BASE_URL_CERT_EXPIRED', 'MIRROR_BASE_URL_CERT_HOSTNAME', 'MIRROR_BASE_URL_NOT_HTTPS'], 'the mirror cannot reach its own baseUrl over valid HTTPS', 'fix DNS, the load balancer, or the mirror\'s certificate'],
  [['MIRROR_BASE_URL_WRONG_SERVER'], 'baseUrl answers, but from another server', 'point baseUrl (and the load balancer behind it) at this mirror'],
  [['MIRROR_CLOCK_SKEW', 'MIRROR_TOKEN_EXPIRED'], 'the mirror\'s clock is more than 30 s ahead of or behind the primary\'s', 'synchronise both with NTP'],
  [['MIRROR_NOT_AUTHORIZED'], 'the request waits for an administrator', 'authorize it on the primary'],
  [['MIRROR_REJECTED', 'MIRROR_REMOVED'], 'an administrator rejected or deleted the mirror', 'uninstall it, or restart it to send a new request'],
  [['MIRROR_HOST_KEY_MISMATCH'], 'this node presents other SSH host keys than its farm (both fingerprints are named)', 'give every node the same ssh.hostKeyDir; when rotating keys, mirror reset-identity first'],
  [['MIRROR_BASE_URL_MISMATCH'], 'this node\'s baseUrl is not its farm\'s (e.g. its own address)', 'set baseUrl to the farm\'s load balancer URL on every node; to move a running farm, mirror reset-identity first'],
  [['MIRROR_SSH_URL_MISMATCH'], 'this node would hand out SSH clone URLs at another host or port than its farm', 'set ssh.publicHost / ssh.publicPort to the balancer\'s SSH address on every node'],
  [['MIRROR_IDENTITY_MISMATCH', 'MIRROR_TOKEN_INVALID'], 'a node with its own mirror key behind another mirror\'s baseUrl, or a token for the mirror not signed by its key', 'give every node of the farm the same mirror.keyFile'],
  [['SSHD_NOT_FOUND'], "ssh.frontend is openssh but ssh.sshdPath (/usr/sbin/sshd) cannot be run (startup)", "install OpenSSH's server (Debian/Ubuntu: apt-get install openssh-server), set ssh.sshdPath, or use ssh.frontend: builtin"],
  [['SSH_USER_MISMATCH'], 'with openssh, ssh.user is not the account mirrorfarm runs as (startup)', 'set ssh.user to that account, or run mirrorfarm as the ssh.user account'],
  [
    ['SSHD_SETUP_UNUSABLE'],
    "with openssh, the package's keys or session command sits under a directory that is not root's or is group/world-writable (sshd would refuse it), one is missing or not executable (an incomplete package), or a path holds characters sshd's command lines cannot take (startup)",
    'install the package under root-owned directories (e.g. /opt/mirrorfarm), reinstall it, or move the home to a plain path',
  ],
  [['SSHD_CONFIG_INVALID', 'SSHD_START_FAILED'], "sshd refused the configuration mirrorfarm wrote (sshd -t), or exited at start, e.g. the port is taken (startup; sshd's words are in the message)", 'fix what sshd names (ssh.host, ssh.port, the host keys)'],
  [['SSH_HOST_KEY_MISSING', 'SSH_HOST_KEY_UNREADABLE'], 'ssh.hostKeyDir is set but holds no readable ssh_host_ed25519_key / ssh_host_ecdsa_key', 'create the keys once (the message gives the ssh-keygen command) and give every node of the farm the same files'],
  [['BALANCER_NGINX_MISSING', 'BALANCER_STREAM_MISSING'], 'npm start -- --nodes N found no nginx, or one without the stream module it balances SSH with', 'apt-get install nginx libnginx-mod-stream (Debian), or point --nginx / MIRRORFARM_NGINX at an nginx that has it'],
];

export interface Explanation {
  cause: string;
  fix: string;
}

export const TROUBLESHOOTING: ReadonlyMap<string, Explanation> = new Map(ROWS.flatMap(([codes, cause, fix]) => codes.map((code) => [code, { cause, fix }] as const)));

export function explain(code: string | undefined): Explanation | undefined {
  return code === undefined ? undefined : TROUBLESHOOTING.get(code);
}
