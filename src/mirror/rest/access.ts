// Who is calling a mirror's REST API and what they may see. Credentials are the primary's (password, access token
// as Basic or Bearer): the delegated authenticator asks the primary, which answers READ or NONE per repository, and
// `authorize` (the only policy function) decides with those facts. The rules are the primary's: anonymous callers
// are asked to log in, logged-in callers get the same "does not exist" for missing and unreadable things, and
// a project is visible when it is public or one of its repositories is readable (Bitbucket's PROJECT_VIEW).
import type { FastifyRequest } from 'fastify';
import { authorize, Level, type Principal, type Resource } from '../../access/authorize.js';
import { canRead } from '../../api/access.js';
import type { RepositoryFilter, RepositoryView } from '../../domain/repositories.js';
import { Errors, MirrorfarmError } from '../../errors.js';
import type { Project } from '../../store/tables.js';
import type { Page } from '../../api/paging.js';
import { pageOf } from '../../api/paging.js';
import type { MirrorRestContext } from './context.js';

const KEY = /^[A-Za-z0-9_]{1,128}$/;
const SLUG = /^[A-Za-z0-9._-]{1,128}$/;
/** Rows read from the catalog per round; their access is asked of the primary in one call. */
const BATCH = 1000;

const principals = new WeakMap<FastifyRequest, Principal>();

export async function authenticate(context: MirrorRestContext, request: FastifyRequest): Promise<void> {
  principals.set(request, await context.auth.fromAuthorizationHeader(request.headers.authorization, { address: request.ip }));
}

export function principalOf(request: FastifyRequest): Principal {
  const principal = principals.get(request);
  // Routes are only reachable through the plugin whose hook authenticates first; anything else is a bug.
  if (!principal) throw new MirrorfarmError('INTERNAL_ERROR', 500, 'Request was not authenticated.');
  return principal;
}

/** A project's facts on a mirror: its visibility only (project grants show through readable repositories). */
export function projectResource(project: Project): Resource {
  return { kind: 'project', key: project.key, facts: { isPublic: !!project.is_public, projectGrant: Level.NONE, repositoryGrant: Level.NONE } };
}

/** The repository, when the caller may read it; otherwise the primary's 401 / 404 (same answer for missing). */
export async function repositoryFor(context: MirrorRestContext, principal: Principal, key: string, slug: string): Promise<RepositoryView> {
  const view = KEY.test(key) && SLUG.test(slug) ? await context.repositories.find(key, slug) : undefined;
  if (!view) {
    if (principal.kind === 'anonymous') throw Errors.authenticationRequired();
    throw Errors.repoNotFound(`${key.toUpperCase()}/${slug}`);
  }
  // Refusals name the repository as asked for, like a missing one, as the primary does.
  const resource = await context.auth.repositoryResource(principal, view.project, view.repo);
  authorize(principal, resource.kind === 'repository' ? { ...resource, path: `${key.toUpperCase()}/${slug}` } : resource, 'read');
  return view;
}

/** The repositories among `views` that the caller can read, in the same order. */
export async function readable(context: MirrorRestContext, principal: Principal, views: RepositoryView[]): Promise<RepositoryView[]> {
  if (views.length === 0) return [];
  const resources = await context.auth.repositoryResources(principal, views);
  return views.filter((v) => canRead(principal, resources.get(v.repo.id)!));
}

/** Readable repositories matching `filter`, paged in project key / slug order like the primary's listings. */
export async function visibleRepositories(context: MirrorRestContext, principal: Principal, filter: RepositoryFilter, start: number, limit: number): Promise<Page<RepositoryView>> {
  const wanted = start + limit + 1;
  const kept: RepositoryView[] = [];
  for (let offset = 0; kept.length < wanted; offset += BATCH) {
    const rows = await context.repositories.listViews(filter, offset, BATCH);
    kept.push(...(await readable(context, principal, rows)));
    if (rows.length < BATCH) break;
  }
  return pageOf(kept.slice(start, wanted), start, limit, true);
}

/** Ids of the projects in which the caller can read at least one repository on this mirror. */
async function projectsWithReadableRepositories(context: MirrorRestContext, principal: Principal, filter: RepositoryFilter = {}): Promise<Set<number>> {
  const ids = new Set<number>();
  for (let offset = 0; ; offset += BATCH) {
    const rows = await context.repositories.listViews(filter, offset, BATCH);
    for (const v of await readable(context, principal, rows.filter((r) => !ids.has(r.project.id)))) ids.add(v.project.id);
    if (rows.length < BATCH) return ids;
  }
}

export async function visibleProjects(context: MirrorRestContext, principal: Principal): Promise<Project[]> {
  const all = await context.projects.list();
  const viaRepositories = await projectsWithReadableRepositories(context, principal);
  return all.filter((p) => canRead(principal, projectResource(p)) || viaRepositories.has(p.id));
}

export async function projectViewFor(context: MirrorRestContext, principal: Principal, key: string): Promise<Project> {
  const project = KEY.test(key) ? await context.projects.byKey(key) : undefined;
  if (!project) {
    if (principal.kind === 'anonymous') throw Errors.authenticationRequired();
    throw Errors.projectNotFound(key.toUpperCase());
  }
  if (canRead(principal, projectResource(project))) return project;
  if ((await projectsWithReadableRepositories(context, principal, { projectId: project.id })).has(project.id)) return project;
  authorize(principal, projectResource(project), 'read');
  return project;
}

/**
 * Mirror administration (sync settings, farm nodes) needs a system administrator of the primary, logged in with a
 * password, as the primary's own administration does; the primary says who that is.
 */
export async function requirePrimaryAdmin(context: MirrorRestContext, principal: Principal): Promise<void> {
  authorize(await context.auth.systemPrincipal(principal), { kind: 'system' }, 'admin');
}
