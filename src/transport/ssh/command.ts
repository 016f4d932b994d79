// Parses the command an SSH client asks to exec. Only git's two transport commands are accepted, with one
// repository path in Bitbucket's shape (PROJECT/repo, optionally with a leading "/" and a ".git" suffix).
// Everything else is refused with a message that names the fix. The parser is deliberately strict: the path
// ends up (as project key and slug) in a database lookup, never in a shell or on git's argv, but a strict
// grammar keeps surprises (options, "..", quoting tricks, NUL) out of every layer below.
import { Errors, type MirrorfarmError } from '../../errors.js';
import type { GitServiceName } from '../git-service.js';

export interface GitExecCommand {
  service: GitServiceName;
  projectKey: string;
  slug: string;
}

/** Longer than any legitimate "git-receive-pack '/PROJECT/repo.git'" by a wide margin. */
export const MAX_COMMAND_LENGTH = 1024;

const SERVICES: Record<string, GitServiceName> = {
  'git-upload-pack': 'upload-pack',
  'git upload-pack': 'upload-pack',
  'git-receive-pack': 'receive-pack',
  'git receive-pack': 'receive-pack',
};

const PROJECT_KEY = /^[A-Za-z0-9_]{1,128}$/;
const SLUG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/** Shows (part of) what the client sent without letting control characters into messages or logs. */
export function printable(text: string, max = 80): string {
  const cleaned = text.replace(/[^\x20-\x7e]/g, '?');
  return cleaned.length > max ? `${cleaned.slice(0, max)}...` : cleaned;
}

function invalidPath(path: string, why: string): MirrorfarmError {
  return Errors.invalid(`Invalid repository path "${printable(path)}": ${why}. Use ssh://git@HOST:PORT/PROJECT/repo.git.`);
}

/** Removes one level of the quoting git (or a person) puts around the path: '...', "..." or none. */
function unquote(arg: string): string {
  if (arg.startsWith("'")) {
    // git quotes with sq_quote(); a path that itself holds a quote cannot name a mirrorfarm repository.
    if (!/^'[^']*'$/.test(arg)) throw invalidPath(arg, 'unbalanced or nested single quotes');
    return arg.slice(1, -1);
  }
  if (arg.startsWith('"')) {
    if (!/^"[^"\\$`]*"$/.test(arg)) throw invalidPath(arg, 'unbalanced double quotes or shell characters');
    return arg.slice(1, -1);
  }
  if (!/^[A-Za-z0-9._~/-]+$/.test(arg)) throw invalidPath(arg, 'quote the path or leave out spaces and shell characters');
  return arg;
}

/** Throws an INVALID_INPUT MirrorfarmError with a message for the client when the command is not accepted. */
export function parseGitCommand(raw: string): GitExecCommand {
  if (raw.length > MAX_COMMAND_LENGTH) throw Errors.invalid(`Command refused: longer than ${MAX_COMMAND_LENGTH} characters.`);
  if (/[\0\r\n]/.test(raw)) throw Errors.invalid('Command refused: it contains NUL or line-break characters.');
  const command = raw.trim();
  const match = /^(git-upload-pack|git-receive-pack|git upload-pack|git receive-pack) +(\S.*)$/.exec(command);
  if (!match) {
    if (command === '') throw Errors.invalid('An empty command is not supported: mirrorfarm serves only git clone, fetch and push over SSH.');
    const name = command.split(/\s+/, 1)[0] ?? '';
    if (/^git-lfs-transfer\b/.test(command)) throw Errors.invalid('git-lfs-transfer is not offered: git-lfs falls back to git-lfs-authenticate and HTTPS by itself.');
    if (/^git[- ]upload-archive\b/.test(command)) throw Errors.invalid('git archive --remote is not supported; clone the repository or download an archive over HTTPS.');
    if (SERVICES[command.replace(/ +/g, ' ')]) throw Errors.invalid('Command refused: a repository path is missing. Use ssh://git@HOST:PORT/PROJECT/repo.git.');
    throw Errors.invalid(
      `Command "${printable(name, 40)}" is not supported: mirrorfarm serves only git clone, fetch and push over SSH (git-upload-pack and git-receive-pack).`,
    );
  }
  const service = SERVICES[match[1]!]!;
  const arg = match[2]!.trim();
  if (/^['"]?-/.test(arg)) throw invalidPath(arg.replace(/^(['"])(.*)\1$/, '$2'), 'it looks like an option');
  let path = unquote(arg);
  if (path.startsWith('-')) throw invalidPath(path, 'it looks like an option');
  if (path.startsWith('~') || path.startsWith('/~')) throw invalidPath(path, 'personal repositories (~user) are not supported');
  if (path.startsWith('/')) path = path.slice(1);
  const segments = path.split('/');
  if (segments.some((s) => s === '..' || s === '.')) throw invalidPath(path, '"." and ".." are not allowed');
  if (segments.some((s) => s.startsWith('-'))) throw invalidPath(path, 'it looks like an option');
  if (segments.length !== 2 || segments.some((s) => s === '')) throw invalidPath(path, 'expected exactly PROJECT/repo');
  const [projectKey, repo] = segments as [string, string];
  const slug = repo.endsWith('.git') ? repo.slice(0, -4) : repo;
  if (!PROJECT_KEY.test(projectKey)) throw invalidPath(path, 'a project key has only letters, digits and "_"');
  if (!SLUG.test(slug)) throw invalidPath(path, 'a repository slug has only letters, digits, ".", "_" and "-"');
  return { service, projectKey, slug };
}

export interface LfsAuthenticateCommand {
  projectKey: string;
  slug: string;
  operation: 'download' | 'upload';
}

/**
 * git-lfs over SSH runs `git-lfs-authenticate <path> <download|upload>` to get an HTTPS authorization for the
 * batch API. Returns undefined for any other command; the path follows the same strict grammar as git's.
 */
export function parseLfsAuthenticate(raw: string): LfsAuthenticateCommand | undefined {
  const match = /^git-lfs-authenticate +(\S+) +(\S+)$/.exec(raw.trim());
  if (!match) {
    if (/^git-lfs-authenticate\b/.test(raw.trim())) throw Errors.invalid('Usage: git-lfs-authenticate PROJECT/repo.git download|upload');
    return undefined;
  }
  const operation = match[2];
  if (operation !== 'download' && operation !== 'upload') throw Errors.invalid(`git-lfs-authenticate: the operation is "download" or "upload", not "${printable(operation ?? '', 20)}".`);
  if (raw.length > MAX_COMMAND_LENGTH || /[\0\r\n]/.test(raw)) throw Errors.invalid('Command refused: too long, or it contains NUL or line-break characters.');
  const { projectKey, slug } = parseGitCommand(`git-upload-pack ${match[1]}`);
  return { projectKey, slug, operation };
}

/**
 * `mirrorfarm-push PROJECT/repo.git`: a mirror passing on a user's push; the first line of input is its signed
 * assertion of the user (src/auth/push-assertion.ts). Undefined for any other command.
 */
export function parseMirrorPush(raw: string): GitExecCommand | undefined {
  const match = /^mirrorfarm-push +(\S+)$/.exec(raw.trim());
  if (!match) return undefined;
  return parseGitCommand(`git-receive-pack ${match[1]}`);
}
