// The server's persistent SSH host keys. Generated once on first start into a private directory (0700, files
// 0600) and reused on every later start, so that the fingerprints clients and mirrors pinned stay valid.
//
// Two keys: ed25519 (what every current client negotiates) and ECDSA P-256 for clients without ed25519, such
// as OpenSSH in FIPS mode (RHEL) and Apache MINA SSHD (JGit's SSH) without its optional EdDSA provider.
// ECDSA rather than RSA: it is generated in a millisecond where RSA-3072 takes about a second (every test
// server pays that), and the clients that have neither ed25519 nor ECDSA also lack the AES-GCM this server
// requires, so an RSA host key would not let them in either.
import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import type { Logger } from '../../obs/logger.js';
import { fingerprintOf } from '../../domain/users.js';
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

function hostKey(privateKeyText: string, file: string): HostKey {
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
