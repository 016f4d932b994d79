// Every error a client can see, in one place: a stable code, an HTTP status and a message that names the fix.
// Transports map these: HTTP status + body, SSH stderr + exit code, git's "ERR" packet.

export class MirrorfarmError extends Error {
  override name = 'MirrorfarmError';
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    /** Extra context for logs only; never shown to clients. */
    readonly detail?: Record<string, unknown>,
  ) {
    super(message);
  }
  /** Seconds the client should wait before retrying (HTTP Retry-After), for 429 and 503 answers. */
  retryAfterSeconds?: number;
}

function define<A extends unknown[]>(code: string, status: number, message: (...args: A) => string) {
  const make = (...args: A) => new MirrorfarmError(code, status, message(...args));
  make.code = code;
  return make;
}

export const Errors = {
  authenticationRequired: define('AUTHENTICATION_REQUIRED', 401, () => 'Authentication required: log in with your username and password or a personal access token.'),
  badCredentials: define('BAD_CREDENTIALS', 401, () => 'Authentication failed: check your username and password or access token.'),
  tooManyLoginAttempts: define(
    'TOO_MANY_LOGIN_ATTEMPTS',
    429,
    (seconds: number, scope: 'address' | 'account') =>
      `Too many failed login attempts ${scope === 'address' ? 'from your address' : 'for this account'}: wait ${seconds} s before trying again, and check your username and password (or use a personal access token).`,
  ),
  forbidden: define('FORBIDDEN', 403, (what: string) => `You do not have permission to ${what}. Ask an administrator for access.`),
  repoNotFound: define('REPOSITORY_NOT_FOUND', 404, (path: string) => `Repository ${path} does not exist or you do not have permission to see it.`),
  projectNotFound: define('PROJECT_NOT_FOUND', 404, (key: string) => `Project ${key} does not exist or you do not have permission to see it.`),
  userNotFound: define('USER_NOT_FOUND', 404, (name: string) => `User ${name} does not exist.`),
  notFound: define('NOT_FOUND', 404, (what: string) => `${what} does not exist.`),
  conflict: define('CONFLICT', 409, (what: string) => what),
  invalid: define('INVALID_INPUT', 400, (what: string) => what),
  tooLarge: define('REQUEST_TOO_LARGE', 413, (limit: number, setting: string) => `Request body exceeds the limit of ${limit} bytes (server setting ${setting}).`),
  unsupportedMediaType: define('UNSUPPORTED_MEDIA_TYPE', 415, (expected: string) => `Content-Type must be ${expected}.`),
  readOnly: define('READ_ONLY', 405, (what: string) => what),
  shuttingDown: define('SHUTTING_DOWN', 503, () => 'The server is shutting down; retry in a moment.'),
  gitFailed: define('GIT_FAILED', 500, (what: string) => `git failed: ${what}`),
} as const;

export function isMirrorfarmError(err: unknown): err is MirrorfarmError {
  return err instanceof MirrorfarmError;
}
