// A mirror farm is one identity: whichever node a client reaches through the load balancer, it must meet the same
// server (base URL, SSH URL, SSH host keys). The first node that registers fixes what the farm presents; every
// other node registering later (each node registers on every start, before it syncs or serves) must present the
// same, or it is refused with a code naming the setting to fix. The node that fixed it may change it while no
// other node of its farm is in contact (a single mirror moved to a new URL is not a mismatch: there is nobody to
// disagree with). An administrator resets the identity (rotating host keys or moving a farm that keeps running):
// the next node to register fixes it again. Nodes that say nothing about a part (older versions) are not checked
// on it.
import ssh2 from 'ssh2';
import { keyBlob } from '../auth/mirror-token.js';
import { fingerprintOf } from '../domain/users.js';
import { Errors } from '../errors.js';
import type { Mirror } from '../store/tables.js';
import type { SshUrlBase } from './mirror-state.js';

/** What a registering node presents. */
export interface PresentedIdentity {
  nodeId: string;
  baseUrl: string;
  /** OpenSSH public host keys; undefined when the node does not say (an older node). */
  sshHostKeys?: string[];
  sshUrlBase?: SshUrlBase;
}

/** The columns of `mirrors` to set so that the farm's identity includes what this node presented. */
export interface IdentityUpdate {
  base_url?: string;
  ssh_host_keys?: string;
  ssh_url_base?: string;
  identity_fixed_at?: number;
  identity_node_id?: string;
}

export const MAX_HOST_KEYS = 16;

/** "type base64" of each key, sorted and without duplicates, so that two key sets compare as sets. */
export function normalizeHostKeys(keys: string[]): string[] {
  if (keys.length > MAX_HOST_KEYS) throw Errors.invalid(`A node presents at most ${MAX_HOST_KEYS} SSH host keys.`);
  const out = new Set<string>();
  for (const key of keys) {
    const parsed = ssh2.utils.parseKey(key);
    if (parsed instanceof Error || Array.isArray(parsed) || parsed.isPrivateKey()) throw Errors.invalid('sshHostKeys must be OpenSSH public keys ("ssh-ed25519 AAAA...").');
    out.add(`${parsed.type} ${parsed.getPublicSSH().toString('base64')}`);
  }
  return [...out].sort();
}

export function hostKeyFingerprint(key: string): string {
  return fingerprintOf(keyBlob(key));
}

export function farmHostKeys(mirror: Pick<Mirror, 'ssh_host_keys'>): string[] | undefined {
  return mirror.ssh_host_keys ? (JSON.parse(mirror.ssh_host_keys) as string[]) : undefined;
}

export function farmSshUrlBase(mirror: Pick<Mirror, 'ssh_url_base'>): SshUrlBase | undefined {
  return mirror.ssh_url_base ? (JSON.parse(mirror.ssh_url_base) as SshUrlBase) : undefined;
}

const urlOf = (base: SshUrlBase) => `ssh://${base.user ?? 'git'}@${base.host.includes(':') ? `[${base.host}]` : base.host}:${base.port}`;

/**
 * Checks a registering node of an existing (pending or active) mirror against its farm's identity. Answers the
 * columns to update: all of it while the identity is open (first node, after a reset, or the node that fixed it
 * while `othersInContact` is false), otherwise only parts the farm did not know yet. Throws the mismatch error
 * otherwise.
 */
export function checkIdentity(mirror: Mirror, node: PresentedIdentity, othersInContact: boolean, now = Date.now()): IdentityUpdate {
  const keys = node.sshHostKeys && normalizeHostKeys(node.sshHostKeys);
  if (mirror.identity_fixed_at === null || (mirror.identity_node_id === node.nodeId && !othersInContact)) {
    return {
      base_url: node.baseUrl,
      ...(keys ? { ssh_host_keys: JSON.stringify(keys) } : {}),
      ...(node.sshUrlBase ? { ssh_url_base: JSON.stringify(node.sshUrlBase) } : {}),
      identity_fixed_at: now,
      identity_node_id: node.nodeId,
    };
  }
  if (node.baseUrl !== mirror.base_url) throw Errors.mirrorBaseUrlMismatch(mirror.id, node.nodeId, node.baseUrl, mirror.base_url);
  const update: IdentityUpdate = {};
  const farmKeys = farmHostKeys(mirror);
  if (keys && farmKeys && keys.join('\n') !== farmKeys.join('\n')) {
    throw Errors.mirrorHostKeyMismatch(mirror.id, node.nodeId, keys.map(hostKeyFingerprint), farmKeys.map(hostKeyFingerprint));
  }
  if (keys && !farmKeys) update.ssh_host_keys = JSON.stringify(keys);
  const farmSsh = farmSshUrlBase(mirror);
  if (node.sshUrlBase && farmSsh && urlOf(node.sshUrlBase) !== urlOf(farmSsh)) {
    throw Errors.mirrorSshUrlMismatch(mirror.id, node.nodeId, urlOf(node.sshUrlBase), urlOf(farmSsh));
  }
  if (node.sshUrlBase && !farmSsh) update.ssh_url_base = JSON.stringify(node.sshUrlBase);
  return update;
}

/** The identity columns of a new mirror: its first node fixes them. */
export function initialIdentity(node: PresentedIdentity, now = Date.now()): { ssh_host_keys: string | null; ssh_url_base: string | null; identity_fixed_at: number; identity_node_id: string } {
  return {
    ssh_host_keys: node.sshHostKeys ? JSON.stringify(normalizeHostKeys(node.sshHostKeys)) : null,
    ssh_url_base: node.sshUrlBase ? JSON.stringify(node.sshUrlBase) : null,
    identity_fixed_at: now,
    identity_node_id: node.nodeId,
  };
}
