// The only policy function. Every transport and every REST route asks `authorize` before acting; nothing else
// decides who may do what. Levels are ordered NONE < READ < WRITE < ADMIN.
import { Errors } from '../errors.js';

export enum Level {
  NONE = 0,
  READ = 1,
  WRITE = 2,
  ADMIN = 3,
}

export type Action = 'read' | 'write' | 'admin';

const REQUIRED: Record<Action, Level> = { read: Level.READ, write: Level.WRITE, admin: Level.ADMIN };

export type Principal =
  | { kind: 'anonymous' }
  | {
      kind: 'user';
      userId: number;
      name: string;
      sysadmin: boolean;
      via: 'password' | 'token' | 'ssh-key';
      /** For access tokens: the most the token allows, per scope. */
      tokenCap?: { project: Level; repository: Level };
    }
  /** A mirror fetching over SSH with its own key: read-only, and only in the projects it was given. */
  | { kind: 'mirror'; mirrorId: string };

export const ANONYMOUS: Principal = { kind: 'anonymous' };

/** What the policy needs to know about the principal's relation to one project or repository. */
export interface AccessFacts {
  isPublic: boolean;
  /** The user's direct grants; undefined for anonymous principals. */
  projectGrant: Level;
  repositoryGrant: Level;
  /** For mirror principals: whether the mirror carries this project. */
  mirrorCarries?: boolean;
}

export type Resource =
  | { kind: 'system' }
  | { kind: 'project'; key: string; facts: AccessFacts }
  | { kind: 'repository'; path: string; facts: AccessFacts };

export function effectiveLevel(principal: Principal, resource: Resource): Level {
  if (resource.kind === 'system') return principal.kind === 'user' && principal.sysadmin && !principal.tokenCap ? Level.ADMIN : Level.NONE;
  const { facts } = resource;
  if (principal.kind === 'mirror') return facts.mirrorCarries ? Level.READ : Level.NONE;
  let level = facts.isPublic ? Level.READ : Level.NONE;
  if (principal.kind === 'user') {
    level = Math.max(level, facts.projectGrant, resource.kind === 'repository' ? facts.repositoryGrant : Level.NONE);
    if (principal.sysadmin) level = Level.ADMIN;
    if (principal.tokenCap) {
      // A token never grants more than its scope, whatever the user may do; public reads stay public.
      const cap = resource.kind === 'project' ? principal.tokenCap.project : Math.max(principal.tokenCap.project, principal.tokenCap.repository);
      level = Math.max(Math.min(level, cap), facts.isPublic ? Level.READ : Level.NONE);
    }
  }
  return level;
}

/**
 * Throws unless the principal may perform the action. Someone who cannot even read the resource is told it
 * does not exist (404) when logged in, and asked to log in (401) when anonymous, so that names never leak.
 */
export function authorize(principal: Principal, resource: Resource, action: Action): void {
  const level = effectiveLevel(principal, resource);
  if (level >= REQUIRED[action]) return;
  if (principal.kind === 'anonymous') throw Errors.authenticationRequired();
  if (resource.kind === 'system') throw Errors.forbidden('administer this server');
  if (level === Level.NONE) {
    throw resource.kind === 'repository' ? Errors.repoNotFound(resource.path) : Errors.projectNotFound(resource.key);
  }
  const what = action === 'write' ? (resource.kind === 'repository' ? `push to ${resource.path}` : `write to project ${resource.key}`) : `administer ${resource.kind === 'repository' ? resource.path : `project ${resource.key}`}`;
  throw Errors.forbidden(what);
}

/** Bitbucket's permission names and the levels they stand for. */
export const PERMISSION_LEVELS: Record<string, { scope: 'project' | 'repository'; level: Level }> = {
  PROJECT_READ: { scope: 'project', level: Level.READ },
  PROJECT_WRITE: { scope: 'project', level: Level.WRITE },
  PROJECT_ADMIN: { scope: 'project', level: Level.ADMIN },
  REPO_READ: { scope: 'repository', level: Level.READ },
  REPO_WRITE: { scope: 'repository', level: Level.WRITE },
  REPO_ADMIN: { scope: 'repository', level: Level.ADMIN },
};

export function permissionName(scope: 'project' | 'repository', level: Level): string {
  return `${scope === 'project' ? 'PROJECT' : 'REPO'}_${Level[level]}`;
}
