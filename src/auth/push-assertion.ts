// A push over SSH through a mirror: the mirror's SSH server verified the user's key signature, and tells the
// primary so with an assertion signed by the mirror's own key, sent as the first line of a `mirrorfarm-push`
// session that the mirror opened with that same key. This is a privilege boundary: the primary accepts an
// assertion only
//   - on an SSH connection authenticated as an ACTIVE mirror, signed by that mirror's key (issuer = its id);
//   - for the repository the session names, in a project the mirror carries;
//   - for a key registered to an active user on the primary (the user is looked up by that key, never by name);
//   - within 60 s of signing (plus clock tolerance), once (its id is remembered until it expires).
// Then the user's own permissions decide, through authorize(), as for a push made directly.
import { randomUUID } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import { MirrorfarmError } from '../errors.js';
import { CLOCK_TOLERANCE_SECONDS, mirrorIdFor, publicKeyObject, type MirrorKey, type ReplayGuard, TOKEN_LIFETIME_SECONDS } from './mirror-token.js';

export interface PushAssertion {
  mirrorId: string;
  /** The user's SSH public key the mirror verified, "type base64". */
  userKey: string;
  /** PROJECT/slug, the project key upper-cased. */
  repository: string;
}

export const pushAudience = (primaryBaseUrl: string) => `${primaryBaseUrl}#ssh-push`;

export async function signPushAssertion(key: MirrorKey, audience: string, userKey: string, repository: string, now = Date.now()): Promise<string> {
  return new SignJWT({ user_key: userKey, repo: repository })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
    .setIssuer(mirrorIdFor(key.publicKey))
    .setAudience(audience)
    .setIssuedAt(Math.floor(now / 1000))
    .setExpirationTime(Math.floor(now / 1000) + TOKEN_LIFETIME_SECONDS)
    .setJti(randomUUID())
    .sign(key.privateKey);
}

const refused = (why: string) => new MirrorfarmError('MIRROR_PUSH_ASSERTION_INVALID', 403, `The mirror's push assertion was refused: ${why}.`);

export async function verifyPushAssertion(token: string, mirrorPublicKey: string, audience: string, replay: ReplayGuard): Promise<PushAssertion> {
  let payload;
  try {
    ({ payload } = await jwtVerify(token, publicKeyObject(mirrorPublicKey), {
      algorithms: ['EdDSA'],
      audience,
      issuer: mirrorIdFor(mirrorPublicKey),
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      maxTokenAge: TOKEN_LIFETIME_SECONDS + CLOCK_TOLERANCE_SECONDS,
      requiredClaims: ['iat', 'exp', 'jti'],
    }));
  } catch (err) {
    throw refused(`${(err as Error).message}; check that the mirror's clock is synchronised`);
  }
  const { user_key: userKey, repo, jti, exp, iat } = payload as { user_key?: unknown; repo?: unknown; jti?: string; exp?: number; iat?: number };
  if (typeof userKey !== 'string' || typeof repo !== 'string') throw refused('it names no user key or repository');
  if (exp! - iat! > TOKEN_LIFETIME_SECONDS) throw refused(`it is valid for longer than ${TOKEN_LIFETIME_SECONDS} s`);
  if (!replay.check(jti!, exp! * 1000)) throw refused('it was used before');
  return { mirrorId: mirrorIdFor(mirrorPublicKey), userKey, repository: repo };
}
