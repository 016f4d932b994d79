// Who is asking, and for which repository, on a Git LFS request. A Git LFS token (src/lfs/tokens.ts) stands for
// its subject capped at its operation, and only for its repository; any other credential goes through the same
// authenticator as git over HTTPS (on a mirror: the primary, through delegated authentication). The repository is then found and authorized by GitService.open, the same
// path git takes, so authorize() decides and a repository the caller cannot read is "not found".
import { Level, type Principal, type Resource } from '../access/authorize.js';
import type { RepositoryView } from '../domain/repositories.js';
import { Errors } from '../errors.js';
import type { AccessResolver, GitService } from '../transport/git-service.js';
import type { HttpAuthenticator } from '../transport/http/smart-http.js';
import { LFS_TOKEN_PREFIX, type LfsOperation, type LfsTokens } from './tokens.js';

export interface LfsTarget {
  principal: Principal;
  view: RepositoryView;
  /** For decisions beyond the operation itself (breaking someone else's lock). */
  resource: Resource;
  /** The subject of the LFS token the request carried, if it carried one. */
  tokenSubject?: string;
}

/** How a server names its callers in LFS tokens, and finds them again. */
export interface LfsSubjects {
  /** The subject that a batch answer's action tokens are issued to; undefined: no token (anonymous, or the client resends its own credentials). */
  subjectOf(target: LfsTarget): string | undefined;
  /**
   * The principal a token's subject stands for now, allowed at most `cap` (the token's operation); throws
   * LFS_TOKEN_INVALID when it no longer exists.
   */
  resolve(subject: string, cap: Level): Promise<Principal>;
}

export class LfsAccess {
  constructor(
    private readonly git: GitService,
    private readonly resources: AccessResolver,
    private readonly auth: HttpAuthenticator,
    readonly tokens: LfsTokens,
    private readonly subjects: LfsSubjects,
  ) {}

  async principal(authorization: string | undefined, address: string): Promise<{ principal: Principal; boundTo?: number; subject?: string }> {
    const bearer = /^Bearer (\S+)$/i.exec(authorization ?? '');
    if (!bearer?.[1]?.startsWith(LFS_TOKEN_PREFIX)) return { principal: await this.auth.fromAuthorizationHeader(authorization, { address }) };
    const grant = await this.tokens.verify(bearer[1]);
    const principal = await this.subjects.resolve(grant.subject, grant.operation === 'upload' ? Level.WRITE : Level.READ);
    return { principal, boundTo: grant.repositoryId, subject: grant.subject };
  }

  /** Authenticates and authorizes `operation` on the repository; throws 401/403/404 like git does. */
  async open(authorization: string | undefined, address: string, project: string, repo: string, operation: LfsOperation): Promise<LfsTarget> {
    const { principal, boundTo, subject } = await this.principal(authorization, address);
    const slug = repo.endsWith('.git') ? repo.slice(0, -4) : repo;
    const view = await this.git.open(principal, project, slug, operation === 'upload' ? 'receive-pack' : 'upload-pack');
    // A token for another repository proves nothing here; answered like a repository the caller cannot see.
    if (boundTo !== undefined && boundTo !== view.repo.id) throw Errors.repoNotFound(`${project.toUpperCase()}/${slug}`);
    return { principal, view, resource: await this.resources.repositoryResource(principal, view.project, view.repo), ...(subject ? { tokenSubject: subject } : {}) };
  }

  /** The header that authorizes a batch answer's actions for `subject` (none for an anonymous caller). */
  async actionHeader(target: LfsTarget, operation: LfsOperation): Promise<Record<string, string>> {
    const subject = this.subjects.subjectOf(target);
    if (!subject) return {};
    const repositoryId = target.view.repo.id;
    const token = await this.tokens.issue({ subject, repositoryId, operation });
    return { Authorization: `Bearer ${token}` };
  }
}
