// Mirror identity and the short-lived tokens a mirror signs for every call to its primary.
// A mirror's identity is an ed25519 key pair (shared by all nodes of a farm); its id is derived from the public
// key, so the id cannot be claimed without the key. Tokens are EdDSA JWTs (jose) with issuer = mirror id,
// audience = the primary's base URL, a lifetime of one minute and a unique id that the primary refuses to see
// twice. No shared password exists anywhere.
import { createHash, createPrivateKey, createPublicKey, randomUUID, type KeyObject } from 'node:crypto';
import { decodeJwt, errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import ssh2 from 'ssh2';
import { MirrorfarmError } from '../errors.js';
import { readableSshPrivateKey } from '../util/openssh-key.js';
import { generateKeyPair } from '../util/ssh-keygen.js';

export const TOKEN_LIFETIME_SECONDS = 60;
/** Clocks may differ this much before tokens are refused with an explicit clock error. */
export const CLOCK_TOLERANCE_SECONDS = 30;

export interface MirrorKey {
  /** OpenSSH one-line public key, "ssh-ed25519 AAAA...". */
  publicKey: string;
  privateKey: KeyObject;
  /** The OpenSSH-format private key text, for the ssh client. */
  privateKeyOpenSsh: string;
}

export function generateMirrorKey(): { privateKeyOpenSsh: string } {
  return { privateKeyOpenSsh: generateKeyPair('ed25519').private };
}

/** Takes the key in OpenSSH format or as PKCS#8 PEM (what Helm's genPrivateKey "ed25519" writes). */
export function loadMirrorKey(keyText: string): MirrorKey {
  const privateKeyOpenSsh = readableSshPrivateKey(keyText);
  const parsed = ssh2.utils.parseKey(privateKeyOpenSsh);
  if (parsed instanceof Error || Array.isArray(parsed) || parsed.type !== 'ssh-ed25519' || !parsed.isPrivateKey()) {
    throw new Error('the mirror key must be an unencrypted ed25519 private key, in OpenSSH format or PKCS#8 PEM');
  }
  return {
    publicKey: `ssh-ed25519 ${parsed.getPublicSSH().toString('base64')}`,
    privateKey: createPrivateKey(parsed.getPrivatePEM()),
    privateKeyOpenSsh,
  };
}

export function publicKeyObject(publicKey: string): KeyObject {
  const parsed = ssh2.utils.parseKey(publicKey);
  if (parsed instanceof Error || Array.isArray(parsed) || parsed.type !== 'ssh-ed25519' || parsed.isPrivateKey()) {
    throw new MirrorfarmError('MIRROR_KEY_INVALID', 400, 'The mirror public key must be an OpenSSH ed25519 public key ("ssh-ed25519 AAAA...").');
  }
  return createPublicKey(parsed.getPublicPEM());
}

export function keyBlob(publicKey: string): Buffer {
  return Buffer.from(publicKey.trim().split(/\s+/)[1] ?? '', 'base64');
}

/** "ABCD-EF01-2345-6789": readable, stable for a key pair, and shared by every node holding the key. */
export function mirrorIdFor(publicKey: string): string {
  const hex = createHash('sha256').update(keyBlob(publicKey)).digest('hex').slice(0, 16).toUpperCase();
  return hex.match(/.{4}/g)!.join('-');
}

export async function signMirrorToken(key: MirrorKey, audience: string, nodeId: string, now = Date.now()): Promise<string> {
  return new SignJWT({ node: nodeId })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
    .setIssuer(mirrorIdFor(key.publicKey))
    .setAudience(audience)
    .setIssuedAt(Math.floor(now / 1000))
    .setExpirationTime(Math.floor(now / 1000) + TOKEN_LIFETIME_SECONDS)
    .setJti(randomUUID())
    .sign(key.privateKey);
}

/** The claimed issuer, read without verification, to find which key to verify with. */
export function claimedMirrorId(token: string): string | undefined {
  try {
    const iss = decodeJwt(token).iss;
    return typeof iss === 'string' ? iss : undefined;
  } catch {
    return undefined;
  }
}

const invalid = (why: string) => new MirrorfarmError('MIRROR_TOKEN_INVALID', 401, `The mirror's token was refused: ${why}.`);

export interface VerifiedMirrorToken {
  mirrorId: string;
  nodeId: string;
}

/** Refuses tokens whose id was already seen until they expire. */
export class ReplayGuard {
  private readonly seen = new Map<string, number>();

  check(jti: string, expiresAtMs: number, now = Date.now()): boolean {
    if (this.seen.size > 10_000) for (const [id, exp] of this.seen) if (exp < now) this.seen.delete(id);
    if (this.seen.has(jti)) return false;
    this.seen.set(jti, expiresAtMs);
    return true;
  }
}

export async function verifyMirrorToken(token: string, publicKey: string, audience: string, replay: ReplayGuard, now = Date.now()): Promise<VerifiedMirrorToken> {
  const expectedIssuer = mirrorIdFor(publicKey);
  let payload;
  try {
    ({ payload } = await jwtVerify(token, publicKeyObject(publicKey), {
      algorithms: ['EdDSA'],
      audience,
      issuer: expectedIssuer,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      currentDate: new Date(now),
      maxTokenAge: TOKEN_LIFETIME_SECONDS + CLOCK_TOLERANCE_SECONDS,
      requiredClaims: ['iat', 'exp', 'jti'],
    }));
  } catch (err) {
    const claims = (() => {
      try {
        return decodeJwt(token);
      } catch {
        return undefined;
      }
    })();
    const skew = claims?.iat !== undefined ? Math.round(claims.iat - now / 1000) : 0;
    // A token from the future can only come from a clock that is ahead. An old one may be a replay or a clock
    // that is behind; the message names both.
    if (skew > CLOCK_TOLERANCE_SECONDS) {
      throw new MirrorfarmError('MIRROR_CLOCK_SKEW', 401, `The mirror's clock is ${skew} s ahead of the primary's (at most ${CLOCK_TOLERANCE_SECONDS} s allowed): synchronise both with NTP.`);
    }
    if (err instanceof joseErrors.JWTExpired || (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'iat')) {
      throw new MirrorfarmError(
        'MIRROR_TOKEN_EXPIRED',
        401,
        `The mirror's token has expired (issued ${-skew} s ago, lifetime ${TOKEN_LIFETIME_SECONDS} s). If the mirror made it just now, its clock is behind the primary's: synchronise both with NTP.`,
      );
    }
    if (err instanceof joseErrors.JWTClaimValidationFailed) throw invalid(`claim "${err.claim}" is wrong (${err.reason})`);
    // The issuer names a mirror, but another key signed: typically a farm node given its own key file.
    throw invalid(`its signature does not verify with the key registered for mirror ${expectedIssuer}; every node of a farm must use the farm's mirror key (the same mirror.keyFile)`);
  }
  // jwtVerify bounds the token's age (now - iat) but not how far ahead `exp` lies: a token signed with exp a day
  // ahead would stay usable for a day if it leaked (logs, a proxy), and the replay guard would have to remember
  // it that long. Both its declared lifetime and what is left of it must fit the documented 60 s; only the
  // second depends on the two clocks, so only it gets the skew allowance.
  const lifetime = (payload.exp ?? 0) - (payload.iat ?? 0);
  if (lifetime > TOKEN_LIFETIME_SECONDS) throw invalid(`its lifetime (exp - iat) is ${lifetime} s, more than the ${TOKEN_LIFETIME_SECONDS} s allowed`);
  const remaining = (payload.exp ?? 0) - Math.floor(now / 1000);
  if (remaining > TOKEN_LIFETIME_SECONDS + CLOCK_TOLERANCE_SECONDS) {
    throw invalid(`it expires in ${remaining} s, more than the ${TOKEN_LIFETIME_SECONDS} s lifetime allowed (plus ${CLOCK_TOLERANCE_SECONDS} s for clock skew)`);
  }
  if (!payload.jti || !replay.check(payload.jti, (payload.exp ?? 0) * 1000 + CLOCK_TOLERANCE_SECONDS * 1000, now)) throw invalid('it was already used (replay)');
  return { mirrorId: expectedIssuer, nodeId: typeof payload.node === 'string' ? payload.node : 'default' };
}
