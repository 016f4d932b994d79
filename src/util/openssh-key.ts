// Private keys in PKCS#8 PEM ("BEGIN PRIVATE KEY") rewritten as OpenSSH key files. ssh2 reads OpenSSH keys and
// PEM RSA/ECDSA keys, but not ed25519 in PKCS#8, which is what Helm's genPrivateKey and `openssl genpkey`
// write. The chart generates the farm's mirror key and host keys with Helm, so those must be readable as they
// are; everything else keeps using the text unchanged.
import { createPrivateKey, randomBytes } from 'node:crypto';

const PKCS8_HEADER = '-----BEGIN PRIVATE KEY-----';

function sshString(data: Buffer | string): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

function uint32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value);
  return out;
}

/** The unencrypted "openssh-key-v1" file (PROTOCOL.key in OpenSSH) for an ed25519 seed and public key. */
function openSshEd25519(seed: Buffer, publicKey: Buffer): string {
  const publicBlob = Buffer.concat([sshString('ssh-ed25519'), sshString(publicKey)]);
  const check = randomBytes(4);
  let secret = Buffer.concat([check, check, publicBlob, sshString(Buffer.concat([seed, publicKey])), sshString('')]);
  const padding = (8 - (secret.length % 8)) % 8;
  secret = Buffer.concat([secret, Buffer.from(Array.from({ length: padding }, (_, i) => i + 1))]);
  const body = Buffer.concat([Buffer.from('openssh-key-v1\0'), sshString('none'), sshString('none'), sshString(''), uint32(1), sshString(publicBlob), sshString(secret)]);
  const lines = body.toString('base64').match(/.{1,70}/g) ?? [];
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

/**
 * Returns the key text as ssh2 can read it: an unencrypted PKCS#8 ed25519 key becomes an OpenSSH key file,
 * any other text is returned as it is (and read, or refused, by ssh2 as before).
 */
export function readableSshPrivateKey(text: string): string {
  if (!text.trimStart().startsWith(PKCS8_HEADER)) return text;
  let key;
  try {
    key = createPrivateKey({ key: text, format: 'pem' });
  } catch {
    return text;
  }
  if (key.asymmetricKeyType !== 'ed25519') return text;
  const jwk = key.export({ format: 'jwk' });
  if (!jwk.d || !jwk.x) return text;
  return openSshEd25519(Buffer.from(jwk.d, 'base64url'), Buffer.from(jwk.x, 'base64url'));
}
