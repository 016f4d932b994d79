// The mirror's identity: its ed25519 key (generated on first start unless a shared key file is configured, so
// that every node of a farm is the same mirror) and this node's id.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { generateMirrorKey, keyBlob, loadMirrorKey, mirrorIdFor, type MirrorKey } from '../auth/mirror-token.js';
import type { Config } from '../config/schema.js';
import { fingerprintOf } from '../domain/users.js';

export interface MirrorIdentity {
  key: MirrorKey;
  keyFile: string;
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
  const nodeId = config.mirror.nodeId ?? (hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64) || 'node');
  return { key, keyFile, mirrorId: mirrorIdFor(key.publicKey), nodeId, fingerprint: fingerprintOf(keyBlob(key.publicKey)) };
}
