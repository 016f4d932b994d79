// What the SSH server asks of Git LFS: the answer to `git-lfs-authenticate`, on a primary or a mirror.
import type { Principal } from '../access/authorize.js';
import type { LfsOperation } from './tokens.js';

export interface LfsAuthenticateAnswer {
  href: string;
  header: Record<string, string>;
  expires_in: number;
}

export interface LfsSshCaller {
  principal: Principal;
  /** The key whose signature the SSH server verified, "type base64". */
  publicKey: string;
}

export interface LfsService {
  /** What `git-lfs-authenticate PROJ/repo.git download|upload` prints for an SSH user. */
  authenticate(caller: LfsSshCaller, projectKey: string, slug: string, operation: LfsOperation): Promise<LfsAuthenticateAnswer>;
}
