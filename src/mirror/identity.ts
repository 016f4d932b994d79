// The mirror's identity: its ed25519 key (generated on first start unless a shared key file is configured, so
// that every node of a farm is the same mirror) and this node's id.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { generateMirrorKey, keyBlob, loadMirrorKey, mirrorIdFor, type MirrorKey } from '../auth/mirror-token.js';
import type { Config } from '../config/schema.js';
import { fingerprintOf } from '../domain/users.js';

export interface MirrorIdentity {
  key: MirrorKey;
  keyFile: string;
  /** The key as the ssh client gets it: OpenSSH format in a file only this user can read (see sshKeyFileFor). */
  sshKeyFile: string;
  mirrorId: string;
  nodeId: string;
  /** SHA256 fingerprint of the public key, as `ssh-keygen -lf` prints it and the primary shows it (publicKeyFingerprint). */
  fingerprint: string;
}

export function loadIdentity(config: Config): MirrorIdentity {
  const keyFile = config.mirror.keyFile ?? join(config.home, 'mirror', 'id_ed25519');
  if (!existsSync(keyFile)) {
    if (config.mirror.keyFile) throw new Error(`mirror.keyFile ${keyFile} does not exist: point it at the farm's shared key, or unset it to generate one`);
    mkdirSync(dirname(keyFile), { recursive: true, mode: 0o700 });
    writeFileSync(keyFile, generateMirrorKey().privateKeyOpenSsh, { mode: 0o600, flag: 'wx' });
  }
  let key: MirrorKey;
  try {
    key = loadMirrorKey(readFileSync(keyFile, 'utf8'));
  } catch (err) {
    throw new Error(`cannot use the mirror key ${keyFile}: ${(err as Error).message}`);
  }
  const sshKeyFile = config.mirror.keyFile ? sshKeyFileFor(config.home, key.privateKeyOpenSsh) : keyFile;
  const nodeId = config.mirror.nodeId ?? (hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64) || 'node');
  return { key, keyFile, sshKeyFile, mirrorId: mirrorIdFor(key.publicKey), nodeId, fingerprint: fingerprintOf(keyBlob(key.publicKey)) };
}

/**
 * A shared key file is often a mounted Kubernetes Secret: group-readable (fsGroup), which OpenSSH's ssh refuses
 * ("UNPROTECTED PRIVATE KEY FILE"), and possibly PKCS#8 PEM, which not every ssh reads. The ssh client therefore
 * gets a private copy in OpenSSH format, rewritten on every start so that it always matches the shared key.
 */
function sshKeyFileFor(home: string, privateKeyOpenSsh: string): string {
  const dir = join(home, 'mirror');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'shared_id_ed25519');
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, privateKeyOpenSsh, { mode: 0o600 });
  renameSync(temp, file);
  return file;
}
