// The checks a mirror makes before it registers (the setup wizard's checks), each failing with one coded,
// actionable message: the primary answers over HTTPS with a certificate that validates, it is a mirrorfarm
// primary with SSH enabled, its SSH host key is published (and then pinned), and the mirror's own base URL
// answers over valid HTTPS and reaches this process or another node of the same mirror (a farm's balancer).
//
// A base URL that does not answer at all (or a balancer that answers 502-504) is only a warning: the balancer
// in front of a farm sends traffic to ready nodes only, and the first node cannot be ready before it has passed
// preflight. What is surely wrong (an untrusted certificate, plain HTTP, another server) still stops here.
import { MirrorfarmError } from '../errors.js';
import { getJson, trustedCas } from './upstream.js';

export interface PrimaryInfo {
  product: string;
  version: string;
  baseUrl: string;
  displayName?: string;
  ssh: { enabled: boolean; host?: string; port?: number; user?: string; hostKeys?: string[] };
}

export interface PreflightResult {
  primary: PrimaryInfo;
  sshHost: string;
  sshPort: number;
  /** The account to log in as on the primary's SSH server (its ssh.user; "git" from primaries that do not say). */
  sshUser: string;
  hostKeys: string[];
  /** Set when baseUrl could not be checked (nothing answered there yet); shown in /status. */
  baseUrlWarning?: { code: string; message: string };
}

export class PreflightError extends MirrorfarmError {
  override name = 'PreflightError';
}

export interface PreflightOptions {
  upstreamUrl: string;
  baseUrl: string;
  caFile?: string;
  /** This process, and the mirror it is a node of. */
  instanceId: string;
  mirrorId: string;
}

export async function preflight(options: PreflightOptions): Promise<PreflightResult> {
  const ca = trustedCas(options.caFile);
  if (!options.upstreamUrl.startsWith('https://')) {
    throw new PreflightError('MIRROR_UPSTREAM_NOT_HTTPS', 400, `mirror.upstreamUrl "${options.upstreamUrl}" is not https://: mirrors reach their primary only over HTTPS.`);
  }
  const discovery = await getJson<PrimaryInfo>(`${options.upstreamUrl}/rest/mirroring/1.0/primary`, ca, 'UPSTREAM');
  const primary = discovery.body;
  if (discovery.status !== 200 || primary?.product !== 'mirrorfarm') {
    throw new PreflightError(
      'MIRROR_UPSTREAM_NOT_MIRRORFARM',
      502,
      `${options.upstreamUrl} answered, but is not a mirrorfarm primary (HTTP ${discovery.status} from /rest/mirroring/1.0/primary): check mirror.upstreamUrl.`,
    );
  }
  const ssh = primary.ssh;
  if (!ssh?.enabled || !ssh.port) {
    throw new PreflightError('MIRROR_UPSTREAM_SSH_DISABLED', 502, 'The primary has SSH disabled; mirrors fetch over SSH only: enable it on the primary (ssh.enabled).');
  }
  const hostKeys = (ssh.hostKeys ?? []).filter((k) => /^ssh-ed25519 [A-Za-z0-9+/=]+$|^(ecdsa-sha2-nistp\d+|rsa-sha2-\d+|ssh-rsa) [A-Za-z0-9+/=]+$/.test(k));
  if (hostKeys.length === 0) {
    throw new PreflightError('MIRROR_UPSTREAM_NO_HOST_KEY', 502, 'The primary did not publish an SSH host key, so it cannot be pinned: upgrade the primary.');
  }

  const sshUser = typeof ssh.user === 'string' && /^[a-z_][a-z0-9_.-]{0,31}$/.test(ssh.user) ? ssh.user : 'git';
  const result: PreflightResult = { primary, sshHost: ssh.host ?? new URL(options.upstreamUrl).hostname, sshPort: ssh.port, sshUser, hostKeys };
  let self: { status: number; body: { instanceId?: string; mirrorId?: string } | undefined };
  try {
    self = await getJson(`${options.baseUrl}/status`, ca, 'BASE_URL');
  } catch (err) {
    if ((err as MirrorfarmError).code !== 'MIRROR_BASE_URL_UNREACHABLE') throw err;
    return { ...result, baseUrlWarning: { code: 'MIRROR_BASE_URL_UNREACHABLE', message: (err as Error).message } };
  }
  if (self.body?.mirrorId === undefined && self.status >= 502 && self.status <= 504) {
    const message = `${options.baseUrl} answers HTTP ${self.status}, as a load balancer with no ready node behind it does: check it once this node is ready.`;
    return { ...result, baseUrlWarning: { code: 'MIRROR_BASE_URL_NO_NODE', message } };
  }
  if (self.body?.instanceId !== options.instanceId && self.body?.mirrorId !== options.mirrorId) {
    throw new PreflightError(
      'MIRROR_BASE_URL_WRONG_SERVER',
      502,
      `${options.baseUrl} answers, but not from this mirror (HTTP ${self.status}): point baseUrl (and the load balancer or DNS behind it) at this mirror.`,
    );
  }
  return result;
}
