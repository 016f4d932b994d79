// Every error a client can see, in one place: a stable code, an HTTP status and a message that names the fix.
// Transports map these: HTTP status + body, SSH stderr + exit code, git's "ERR" packet.
// Where Bitbucket Data Center answers the same condition with a named exception class, the entry carries that
// name too, and REST bodies put it in `exceptionName` (what Bitbucket clients branch on); mirrorfarm's own code
// stays in the body's `code`. Only classes Bitbucket publishes (its API javadoc) or is seen answering are named.

export class MirrorfarmError extends Error {
  override name = 'MirrorfarmError';
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    /** Extra context for logs only; never shown to clients. */
    readonly detail?: Record<string, unknown>,
    /** Bitbucket's exception class for the same condition, e.g. com.atlassian.bitbucket.project.NoSuchProjectException. */
    readonly bitbucketException?: string,
  ) {
    super(message);
  }
  /** Seconds the client should wait before retrying (HTTP Retry-After), for 429 and 503 answers. */
  retryAfterSeconds?: number;
}

/** One error: its stable code, HTTP status, message, and (optionally) the Bitbucket exception class it maps to. */
function define<A extends unknown[]>(code: string, status: number, message: (...args: A) => string, bitbucketException?: string) {
  const make = (...args: A) => new MirrorfarmError(code, status, message(...args), undefined, bitbucketException);
  make.code = code;
  make.bitbucketException = bitbucketException;
  return make;
}

// Bitbucket's class names, from its published API (com.atlassian.bitbucket.*).
const BB = {
  authorisation: 'com.atlassian.bitbucket.AuthorisationException',
  incorrectPassword: 'com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException',
  noSuchProject: 'com.atlassian.bitbucket.project.NoSuchProjectException',
  noSuchRepository: 'com.atlassian.bitbucket.repository.NoSuchRepositoryException',
  noSuchUser: 'com.atlassian.bitbucket.user.NoSuchUserException',
  noSuchGroup: 'com.atlassian.bitbucket.user.NoSuchGroupException',
  noSuchBranch: 'com.atlassian.bitbucket.repository.NoSuchBranchException',
  noSuchTag: 'com.atlassian.bitbucket.repository.NoSuchTagException',
  noSuchEntity: 'com.atlassian.bitbucket.NoSuchEntityException',
  duplicateRef: 'com.atlassian.bitbucket.repository.DuplicateRefException',
  integrity: 'com.atlassian.bitbucket.IntegrityException',
  argumentValidation: 'com.atlassian.bitbucket.validation.ArgumentValidationException',
} as const;

export const Errors = {
  // Bitbucket answers an anonymous call to something that needs a login with 401 and AuthorisationException.
  authenticationRequired: define('AUTHENTICATION_REQUIRED', 401, () => 'Authentication required: log in with your username and password or a personal access token.', BB.authorisation),
  badCredentials: define('BAD_CREDENTIALS', 401, () => 'Authentication failed: check your username and password or access token.', BB.incorrectPassword),
  tooManyLoginAttempts: define(
    'TOO_MANY_LOGIN_ATTEMPTS',
    429,
    (seconds: number, scope: 'address' | 'account') =>
      `Too many failed login attempts ${scope === 'address' ? 'from your address' : 'for this account'}: wait ${seconds} s before trying again, and check your username and password (or use a personal access token).`,
  ),
  forbidden: define('FORBIDDEN', 403, (what: string) => `You do not have permission to ${what}. Ask an administrator for access.`, BB.authorisation),
  repoNotFound: define('REPOSITORY_NOT_FOUND', 404, (path: string) => `Repository ${path} does not exist or you do not have permission to see it.`, BB.noSuchRepository),
  projectNotFound: define('PROJECT_NOT_FOUND', 404, (key: string) => `Project ${key} does not exist or you do not have permission to see it.`, BB.noSuchProject),
  userNotFound: define('USER_NOT_FOUND', 404, (name: string) => `User ${name} does not exist.`, BB.noSuchUser),
  groupNotFound: define('GROUP_NOT_FOUND', 404, (name: string) => `Group ${name} does not exist; list groups with GET /rest/api/1.0/admin/groups.`, BB.noSuchGroup),
  notFound: define('NOT_FOUND', 404, (what: string) => `${what} does not exist.`, BB.noSuchEntity),
  // The same stable code as notFound; only Bitbucket's finer class differs.
  branchNotFound: define('NOT_FOUND', 404, (what: string) => `${what} does not exist.`, BB.noSuchBranch),
  tagNotFound: define('NOT_FOUND', 404, (what: string) => `${what} does not exist.`, BB.noSuchTag),
  conflict: define('CONFLICT', 409, (what: string) => what),
  refExists: define('CONFLICT', 409, (ref: string) => `${ref} already exists.`, BB.duplicateRef),
  projectNotEmpty: define('CONFLICT', 409, (key: string) => `Project ${key} still has repositories; delete or move them first.`, BB.integrity),
  invalid: define('INVALID_INPUT', 400, (what: string) => what, BB.argumentValidation),
  tooLarge: define('REQUEST_TOO_LARGE', 413, (limit: number, setting: string) => `Request body exceeds the limit of ${limit} bytes (server setting ${setting}).`),
  unsupportedMediaType: define('UNSUPPORTED_MEDIA_TYPE', 415, (expected: string) => `Content-Type must be ${expected}.`),
  readOnly: define('READ_ONLY', 405, (what: string) => what),
  shuttingDown: define('SHUTTING_DOWN', 503, () => 'The server is shutting down; retry in a moment.'),
  lfsObjectTooLarge: define('LFS_OBJECT_TOO_LARGE', 413, (size: number, limit: number) => `The Git LFS object is ${size} bytes, more than this server's limit of ${limit} bytes (server setting lfs.maxObjectBytes).`),
  lfsRepositoryFull: define('LFS_REPOSITORY_FULL', 507, (limit: number) => `The repository's Git LFS storage would exceed its limit of ${limit} bytes (server setting lfs.maxRepositoryBytes); delete the repository's unused objects or ask an administrator to raise the limit.`),
  lfsSizeMismatch: define('LFS_SIZE_MISMATCH', 400, (expected: number, got: number) => `The Git LFS upload has ${got} bytes or more where ${expected} were announced; nothing was stored. Retry the push.`),
  lfsHashMismatch: define('LFS_HASH_MISMATCH', 400, (oid: string, actual: string) => `The Git LFS upload for ${oid} has SHA-256 ${actual}: the content is corrupt and was not stored. Retry the push.`),
  lfsObjectNotFound: define('LFS_OBJECT_NOT_FOUND', 404, (oid: string) => `Git LFS object ${oid} does not exist in this repository; push it from a clone that has it (git lfs push --all).`),
  lfsTokenInvalid: define('LFS_TOKEN_INVALID', 401, (why: string) => `The Git LFS authorization is not valid (${why}); run the git lfs command again to get a new one.`),
  lfsLockExists: define('LFS_LOCK_EXISTS', 409, (path: string, owner: string) => `${path} is already locked by ${owner}.`),
  lfsLockNotOwned: define('LFS_LOCK_NOT_OWNED', 403, (path: string, owner: string) => `${path} is locked by ${owner}; only they can unlock it, or a repository administrator with git lfs unlock --force.`),
  gitFailed: define('GIT_FAILED', 500, (what: string) => `git failed: ${what}`),

  // A mirror farm is one identity: every node must present the mirror key, base URL, SSH URL and SSH host keys
  // its farm presents, or clients meeting two nodes would see two servers. Checked whenever a node registers
  // (each node does on every start, before it syncs or serves); see README "Troubleshooting".
  mirrorHostKeyMismatch: define(
    'MIRROR_HOST_KEY_MISMATCH',
    409,
    (mirrorId: string, node: string, mine: string[], farm: string[]) =>
      `Node ${node} of mirror ${mirrorId} presents the SSH host keys ${keyList(mine)}, but its farm presents ${keyList(farm)}: an SSH client meeting both would refuse one as a changed host key. ` +
      `Give every node of the farm the same ssh.hostKeyDir (MIRRORFARM_SSH_HOST_KEY_DIR; one Secret in Kubernetes). When you rotate the farm's host keys, reset its identity on the primary first: ` +
      `DELETE /rest/mirroring/1.0/mirrorServers/${mirrorId}/farmIdentity (npx mirrorfarm admin mirror reset-identity ${mirrorId}).`,
  ),
  mirrorBaseUrlMismatch: define(
    'MIRROR_BASE_URL_MISMATCH',
    409,
    (mirrorId: string, node: string, mine: string, farm: string) =>
      `Node ${node} of mirror ${mirrorId} has baseUrl ${mine}, but its farm's is ${farm}: every node must name the farm's load balancer in baseUrl (MIRRORFARM_BASE_URL), never its own address. ` +
      `To move the farm to a new URL, reset its identity on the primary (DELETE /rest/mirroring/1.0/mirrorServers/${mirrorId}/farmIdentity) and restart the nodes with the new baseUrl.`,
  ),
  mirrorSshUrlMismatch: define(
    'MIRROR_SSH_URL_MISMATCH',
    409,
    (mirrorId: string, node: string, mine: string, farm: string) =>
      `Node ${node} of mirror ${mirrorId} would hand out SSH clone URLs at ${mine}, but its farm's are at ${farm}: set ssh.publicHost and ssh.publicPort (MIRRORFARM_SSH_PUBLIC_HOST, MIRRORFARM_SSH_PUBLIC_PORT) ` +
      `to the load balancer's SSH address on every node, or reset the farm's identity on the primary (DELETE /rest/mirroring/1.0/mirrorServers/${mirrorId}/farmIdentity) when it moved.`,
  ),
  mirrorIdentityMismatch: define(
    'MIRROR_IDENTITY_MISMATCH',
    409,
    (baseUrl: string, mirrorId: string, fingerprint: string, otherId: string, otherFingerprint: string) =>
      `${baseUrl} is already the base URL of mirror ${otherId} (key ${otherFingerprint}); this node's key ${fingerprint} makes it another mirror (${mirrorId}). ` +
      `Every node of a farm must use the farm's mirror key: give it the same mirror.keyFile (MIRRORFARM_MIRROR_KEY_FILE; one Secret in Kubernetes). ` +
      `If it is a new mirror, give it its own baseUrl, or delete mirror ${otherId} on the primary first.`,
  ),
  // The web UI. Every state-changing form carries its session's token; a form from another site (or an old tab
  // after signing out) has none that matches.
  csrfInvalid: define('CSRF_TOKEN_INVALID', 403, () => 'This form has expired or did not come from this site. Reload the page and try again.'),
  webTokenSignIn: define('WEB_SIGN_IN_TOKEN', 401, () => 'Sign in to the web interface with your password; access tokens are for git and the REST API.'),
  // The farm's load balancer (nginx) that `mirrorfarm demo --nodes N` runs.
  balancerNginxMissing: define('BALANCER_NGINX_MISSING', 500, (binary: string, problem: string, install: string) => `nginx is not installed (${binary} ${problem}); the farm's load balancer is nginx: ${install} (or point MIRRORFARM_NGINX at an nginx binary).`),
  balancerStreamMissing: define('BALANCER_STREAM_MISSING', 500, (binary: string, module: string, install: string) => `nginx's stream module, which balances SSH, is not installed (${binary} has no built-in stream and ${module} is missing): ${install}.`),
} as const;

function keyList(fingerprints: string[]): string {
  return fingerprints.length ? fingerprints.join(', ') : 'none (its SSH server is disabled)';
}

/** Code and message of the first entry of a REST error body: mirrorfarm's `code`, or `exceptionName` from a primary that predates `code`. */
export function errorOfBody(body: unknown): { code?: string; message?: string } | undefined {
  const first = (body as { errors?: Array<{ code?: unknown; exceptionName?: unknown; message?: unknown }> } | undefined)?.errors?.[0];
  if (!first) return undefined;
  const code = typeof first.code === 'string' ? first.code : typeof first.exceptionName === 'string' ? first.exceptionName : undefined;
  return { ...(code !== undefined ? { code } : {}), ...(typeof first.message === 'string' ? { message: first.message } : {}) };
}

export function isMirrorfarmError(err: unknown): err is MirrorfarmError {
  return err instanceof MirrorfarmError;
}
