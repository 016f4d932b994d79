// Short-lived Git LFS authorizations: what the batch API puts in each action's header, and what
// `git-lfs-authenticate` hands an SSH user for the HTTPS batch call. Each is an HS256 JWT (jose) bound to one
// subject, one repository (by immutable id) and one operation. The subject is `user:<id>` on a primary (secret
// kept in its home) and `key:<public key>` on a mirror (the SSH key it verified; the secret is derived from the
// farm's identity key, so every node of a farm accepts every node's tokens). A token proves who was
// authorized, never what they may do now: every request that carries one is authorized again by authorize()
// with the subject's current permissions, capped at the token's operation.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { Errors } from '../errors.js';

export type LfsOperation = 'download' | 'upload';

export interface LfsGrant {
  subject: string;
  repositoryId: number;
  operation: LfsOperation;
}

const AUDIENCE = 'mirrorfarm-lfs';
/** Marks our tokens apart from personal access tokens, which also travel as "Bearer". */
export const LFS_TOKEN_PREFIX = 'lfs.';

export class LfsTokens {
  constructor(
    private readonly secret: Uint8Array,
    readonly lifetimeSeconds: number,
  ) {}

  /** Reads the signing secret from `file`, creating it (owner-only) on first start. */
  static async load(file: string, lifetimeSeconds: number): Promise<LfsTokens> {
    let secret: Buffer;
    try {
      secret = Buffer.from((await readFile(file, 'utf8')).trim(), 'base64url');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      secret = randomBytes(32);
      await writeFile(file, `${secret.toString('base64url')}\n`, { mode: 0o600, flag: 'wx' }).catch(async (e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e;
        secret = Buffer.from((await readFile(file, 'utf8')).trim(), 'base64url');
      });
    }
    if (secret.length < 32) throw new Error(`${file} holds a Git LFS signing secret shorter than 32 bytes; delete it to have a new one made`);
    return new LfsTokens(secret, lifetimeSeconds);
  }

  async issue(grant: LfsGrant): Promise<string> {
    const jwt = await new SignJWT({ repo: grant.repositoryId, op: grant.operation })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(grant.subject)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(`${this.lifetimeSeconds}s`)
      .sign(this.secret);
    return `${LFS_TOKEN_PREFIX}${jwt}`;
  }

  /** Checks signature, audience and expiry; throws LFS_TOKEN_INVALID otherwise. */
  async verify(token: string): Promise<LfsGrant> {
    if (!token.startsWith(LFS_TOKEN_PREFIX)) throw Errors.lfsTokenInvalid('not a Git LFS token');
    try {
      const { payload } = await jwtVerify(token.slice(LFS_TOKEN_PREFIX.length), this.secret, { algorithms: ['HS256'], audience: AUDIENCE });
      const { repo, op, sub } = payload as { repo?: unknown; op?: unknown; sub?: unknown };
      if (typeof sub !== 'string' || typeof repo !== 'number' || (op !== 'download' && op !== 'upload')) throw Errors.lfsTokenInvalid('malformed');
      return { subject: sub, repositoryId: repo, operation: op };
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw Errors.lfsTokenInvalid('expired');
      if (err instanceof joseErrors.JOSEError) throw Errors.lfsTokenInvalid('bad signature or claims');
      throw err;
    }
  }
}
