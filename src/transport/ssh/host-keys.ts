// The server's persistent SSH host keys. Generated once on first start into a private directory (0700, files
// 0600) and reused on every later start, so that the fingerprints clients and mirrors pinned stay valid.
// A farm's nodes instead read one shared set (ssh.hostKeyDir, mounted from one Secret) and never generate
// keys of their own: a client meeting node B after node A must see the same host key.
//
// Two keys: ed25519 (what every current client negotiates) and ECDSA P-256 for clients without ed25519, such
// as OpenSSH in FIPS mode (RHEL) and Apache MINA SSHD (JGit's SSH) without its optional EdDSA provider.
// ECDSA is also the one host key type of JSch 0.1.54 (JGit 4.x) without SHA-1 (see algorithms.ts). No RSA: every
// client we support has ed25519 or ECDSA, RSA would mainly invite SHA-1 ssh-rsa signatures, and RSA-3072 takes
// about a second to generate where ECDSA takes a millisecond (every test server pays that).
import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { MirrorfarmError } from '../../errors.js';
import type { Logger } from '../../obs/logger.js';
import { fingerprintOf } from '../../domain/users.js';
import { readableSshPrivateKey } from '../../util/openssh-key.js';
import { generateKeyPair } from '../../util/ssh-keygen.js';

export interface HostKey {
  type: string;
  /** OpenSSH private key text, as ssh2's Server takes it. */
  privateKey: string;
  /** OpenSSH one-line public key without comment: "ssh-ed25519 AAAA...". */
  publicKey: string;
  fingerprint: string;
}

const KEYS = [
  { file: 'ssh_host_ed25519_key', generate: () => generateKeyPair('ed25519') },
  { file: 'ssh_host_ecdsa_key', generate: () => generateKeyPair('ecdsa', { bits: 256 }) },
] as const;

function hostKey(keyText: string, file: string): HostKey {
  // A shared host key dir may hold ed25519 keys as PKCS#8 PEM (the chart generates them with Helm).
  const privateKeyText = readableSshPrivateKey(keyText);
  const parsed = ssh2.utils.parseKey(privateKeyText);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error || !key.isPrivateKey()) {
    throw new Error(`SSH host key ${file} cannot be read${key instanceof Error ? `: ${key.message}` : ''}; move it away to generate a new one (clients will then see a changed host key).`);
  }
  const blob = key.getPublicSSH();
  return { type: key.type, privateKey: privateKeyText, publicKey: `${key.type} ${blob.toString('base64')}`, fingerprint: fingerprintOf(blob) };
}

/** Writes a file only if it does not exist yet, atomically: a crash never leaves a half-written key behind. */
async function createExclusive(path: string, content: string): Promise<boolean> {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(temp, content, { mode: 0o600, flag: 'wx' });
  try {
    await link(temp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false; // another process won the race
    throw err;
  } finally {
    await unlink(temp).catch(() => {});
  }
}

/** Reads a configured (shared) host key directory; every key file there is used, none is generated. */
export async function loadSharedHostKeys(dir: string): Promise<HostKey[]> {
  const keys: HostKey[] = [];
  for (const spec of KEYS) {
    const path = join(dir, spec.file);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new MirrorfarmError('SSH_HOST_KEY_UNREADABLE', 500, `SSH host key ${path} cannot be read (${(err as Error).message}); check ssh.hostKeyDir and the file's owner.`);
    }
    keys.push(hostKey(text, path));
  }
  if (keys.length === 0) {
    throw new MirrorfarmError(
      'SSH_HOST_KEY_MISSING',
      500,
      `ssh.hostKeyDir ${dir} holds none of ${KEYS.map((k) => k.file).join(', ')}; create them once (ssh-keygen -t ed25519 -N '' -f ${join(dir, KEYS[0].file)}) and give every node of the farm the same files.`,
    );
  }
  return keys;
}

export async function loadOrCreateHostKeys(dir: string, log: Logger): Promise<HostKey[]> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (((await stat(dir)).mode & 0o077) !== 0) await chmod(dir, 0o700);
  const keys: HostKey[] = [];
  for (const spec of KEYS) {
    const path = join(dir, spec.file);
    let text: string | undefined;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (text === undefined) {
      const pair = spec.generate();
      if (await createExclusive(path, pair.private)) {
        await writeFile(`${path}.pub`, `${pair.public.trim()}\n`, { mode: 0o600 }); // public, but the home is owner-only throughout
        log.info({ file: path, fingerprint: hostKey(pair.private, path).fingerprint }, 'generated SSH host key');
      }
      text = await readFile(path, 'utf8');
    } else if (((await stat(path)).mode & 0o077) !== 0) {
      // Private keys readable by others are a mistake worth fixing rather than refusing to start over.
      await chmod(path, 0o600);
      log.warn({ file: path }, 'SSH host key was readable by other users; changed its mode to 0600');
    }
    keys.push(hostKey(text, path));
  }
  return keys;
}
