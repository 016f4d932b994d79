// Who is calling and what they may touch. Every REST request is authenticated once (in the API's onRequest
// hook) and every route then asks `authorize` through these helpers, so the 401 / 404 / 403 rules are the same
// everywhere: anonymous callers are asked to log in, logged-in callers who cannot see a thing are told it does
// not exist, and callers who can see it but not change it are refused.
import type { FastifyRequest } from 'fastify';
import { authorize, type Action, type Principal } from '../access/authorize.js';
import type { RepositoryView } from '../domain/repositories.js';
import { Errors, MirrorfarmError } from '../errors.js';
import type { AppContext } from '../server/context.js';
import type { Project } from '../store/tables.js';

const principals = new WeakMap<FastifyRequest, Principal>();

export async function authenticate(context: AppContext, request: FastifyRequest): Promise<void> {
  principals.set(request, await context.authenticator.fromAuthorizationHeader(request.headers.authorization, { address: request.ip }));
}

export function principalOf(request: FastifyRequest): Principal {
  const principal = principals.get(request);
  // Routes are only reachable through the API plugin, whose hook authenticates first; anything else is a bug.
  if (!principal) throw new MirrorfarmError('INTERNAL_ERROR', 500, 'Request was not authenticated.');
  return principal;
}

export type UserPrincipal = Extract<Principal, { kind: 'user' }>;

/** Any logged-in user (password or token). */
export function requireUser(principal: Principal): UserPrincipal {
  if (principal.kind !== 'user') throw Errors.authenticationRequired();
  return principal;
}

/** A system administrator logged in with a password; tokens never carry system administration. */
export function requireSysadmin(principal: Principal): UserPrincipal {
  authorize(principal, { kind: 'system' }, 'admin');
  return principal as UserPrincipal;
}

export function isSysadmin(principal: Principal): boolean {
  try {
    authorize(principal, { kind: 'system' }, 'admin');
    return true;
  } catch {
    return false;
  }
}

/**
 * Account settings (SSH keys, access tokens) of `target`: the user themself logged in with a password, or a
 * sysadmin. A token may not manage credentials, or a token limited to REPO_READ could mint itself an SSH key
 * or a broader token.
 */
export function authorizeAccountOf(principal: Principal, target: string, what: string): UserPrincipal {
  const user = requireUser(principal);
  if (isSysadmin(principal)) return user;
  if (user.name !== target.toLowerCase()) throw Errors.forbidden(`manage the ${what} of another user`);
  if (user.via !== 'password') throw Errors.forbidden(`manage ${what} with an access token; log in with your password`);
  return user;
}

export async function findProject(context: AppContext, principal: Principal, key: string): Promise<Project> {
  const project = /^[A-Za-z0-9_]{1,128}$/.test(key) ? await context.projects.byKey(key) : undefined;
  if (!project) {
    if (principal.kind === 'anonymous') throw Errors.authenticationRequired();
    throw Errors.projectNotFound(key.toUpperCase());
  }
  return project;
}

export async function projectFor(context: AppContext, principal: Principal, key: string, action: Action): Promise<Project> {
  const project = await findProject(context, principal, key);
  try {
    authorize(principal, await context.permissions.projectResource(principal, project), action);
  } catch (refusal) {
    // Someone who sees the project through one of its repositories knows it exists: refuse, do not hide.
    if (action !== 'read' && refusal instanceof MirrorfarmError && refusal.code === Errors.projectNotFound.code) {
      await projectViewFor(context, principal, key);
      throw Errors.forbidden(action === 'write' ? `write to project ${project.key}` : `administer project ${project.key}`);
    }
    throw refusal;
  }
  return project;
}

export async function repositoryFor(context: AppContext, principal: Principal, key: string, slug: string, action: Action): Promise<RepositoryView> {
  const view = /^[A-Za-z0-9_]{1,128}$/.test(key) && /^[A-Za-z0-9._-]{1,128}$/.test(slug) ? await context.repositories.find(key, slug) : undefined;
  if (!view) {
    if (principal.kind === 'anonymous') throw Errors.authenticationRequired();
    throw Errors.repoNotFound(`${key.toUpperCase()}/${slug}`);
  }
  // Refusals name the repository as it was asked for, like a missing one: spelling it as stored (the slug's
  // case) would tell a caller who may not see it that it exists.
  const resource = await context.permissions.repositoryResource(principal, view.project, view.repo);
  authorize(principal, resource.kind === 'repository' ? { ...resource, path: `${key.toUpperCase()}/${slug}` } : resource, action);
  return view;
}

/**
 * A repository addressed by its numeric id (`repos/{repositoryId}/...`). A caller who walks ids must not learn
 * which ones exist nor what they are called: a missing id and one the caller cannot read get the same answer,
 * and every refusal names the id as given, never the project key or slug (found by walking ids on
 * repos/{id}/mirrors, which answered "Repository SEL/secretrepo does not exist...").
 */
export async function repositoryById(context: AppContext, principal: Principal, rawId: string, action: Action): Promise<{ project: Project; repo: RepositoryView['repo'] }> {
  const repo = /^\d{1,15}$/.test(rawId) ? await context.repositories.byId(Number(rawId)) : undefined;
  const project = repo ? await context.projects.byId(repo.project_id) : undefined;
  if (!repo || !project) {
    if (principal.kind === 'anonymous') throw Errors.authenticationRequired();
    throw Errors.repoNotFound(rawId);
  }
  const resource = await context.permissions.repositoryResource(principal, project, repo);
  // The policy names the resource by `path` in its refusals; by id, the path is the id.
  authorize(principal, resource.kind === 'repository' ? { ...resource, path: rawId } : resource, action);
  return { project, repo };
}

/**
 * Bitbucket's PROJECT_VIEW: a project is visible to whoever can read it, and also to whoever can read one of
 * its repositories (so that a user granted one repository can find it under its project).
 */
export async function projectViewFor(context: AppContext, principal: Principal, key: string): Promise<Project> {
  const project = await findProject(context, principal, key);
  const index = await context.permissions.accessIndex(principal);
  try {
    authorize(principal, index.project(project), 'read');
    return project;
  } catch (refusal) {
    const candidates = await context.repositories.listViews({ projectId: project.id, candidatesFor: { projectIds: [], repositoryIds: index.grantedRepositoryIds } }, 0, 10_000);
    if (candidates.some((v) => canRead(principal, index.repository(v.project, v.repo)))) return project;
    throw refusal;
  }
}

export function canRead(principal: Principal, resource: Parameters<typeof authorize>[1]): boolean {
  try {
    authorize(principal, resource, 'read');
    return true;
  } catch {
    return false;
  }
}
