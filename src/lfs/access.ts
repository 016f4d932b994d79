// Who is asking, and for which repository, on a Git LFS request. A Git LFS token (src/lfs/tokens.ts) stands for
// its user capped at its operation, and only for its repository; any other credential goes through the same
// authenticator as git over HTTPS. The repository is then found and authorized by GitService.open, the same
// path git takes, so authorize() decides and a repository the caller cannot read is "not found".
import { Level, type Principal, type Resource } from '../access/authorize.js';
import { userPrincipal } from '../auth/authenticator.js';
import type { Users } from '../domain/users.js';
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
}

export class LfsAccess {
  constructor(
    private readonly git: GitService,
    private readonly resources: AccessResolver,
    private readonly auth: HttpAuthenticator,
    private readonly users: Users,
    readonly tokens: LfsTokens,
  ) {}

  async principal(authorization: string | undefined, address: string): Promise<{ principal: Principal; boundTo?: number }> {
    const bearer = /^Bearer (\S+)$/i.exec(authorization ?? '');
    if (!bearer?.[1]?.startsWith(LFS_TOKEN_PREFIX)) return { principal: await this.auth.fromAuthorizationHeader(authorization, { address }) };
    const grant = await this.tokens.verify(bearer[1]);
    const user = await this.users.byId(grant.userId);
    if (!user || !user.active) throw Errors.lfsTokenInvalid('its user no longer exists or was deactivated');
    const cap = grant.operation === 'upload' ? Level.WRITE : Level.READ;
    const principal = userPrincipal(user, 'token', await this.users.isSysadmin(user));
    return { principal: principal.kind === 'user' ? { ...principal, tokenCap: { project: cap, repository: cap } } : principal, boundTo: grant.repositoryId };
  }

  /** Authenticates and authorizes `operation` on the repository; throws 401/403/404 like git does. */
  async open(authorization: string | undefined, address: string, project: string, repo: string, operation: LfsOperation): Promise<LfsTarget> {
    const { principal, boundTo } = await this.principal(authorization, address);
    const slug = repo.endsWith('.git') ? repo.slice(0, -4) : repo;
    const view = await this.git.open(principal, project, slug, operation === 'upload' ? 'receive-pack' : 'upload-pack');
    // A token for another repository proves nothing here; answered like a repository the caller cannot see.
    if (boundTo !== undefined && boundTo !== view.repo.id) throw Errors.repoNotFound(`${project.toUpperCase()}/${slug}`);
    return { principal, view, resource: await this.resources.repositoryResource(principal, view.project, view.repo) };
  }

  /** The header that authorizes the batch response's actions: a token for this user, repository and operation. */
  async actionHeader(principal: Principal, repositoryId: number, operation: LfsOperation): Promise<Record<string, string>> {
    if (principal.kind !== 'user') return {};
    const token = await this.tokens.issue({ userId: principal.userId, repositoryId, operation });
    return { Authorization: `Bearer ${token}` };
  }
}
