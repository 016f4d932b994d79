// A repository's pages on the primary: its overview (clone box with HTTPS, SSH and the mirrors that serve it in
// sync, the user's preferred mirror first; branches and tags; recent commits; the files at the top), a file
// tree and file view of any branch, tag or commit, a raw download, and the commit list of a branch. Every page
// first asks repositoryFor(), the REST API's own lookup with authorize(), so a repository the user may not read
// answers the same 404 as one that does not exist, its files and downloads included.
//
// What a request names is never handed to git as given: `at` must be one of the repository's own branches or
// tags (full or short name) or a full commit id that exists, and a path must pass checkPath() (no "..", ".",
// empty segment, leading "/", NUL). Git then only ever sees a commit id and a checked path.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { effectiveLevel, Level, type Principal } from '../access/authorize.js';
import { repositoryFor } from '../api/access.js';
import { repositoryMirrors } from '../api/mirroring/public.js';
import type { RepositoryView } from '../domain/repositories.js';
import { Errors } from '../errors.js';
import { checkPath, COMMIT_ID } from '../git/browse.js';
import type { Mirroring } from '../primary/wire.js';
import type { AppContext } from '../server/context.js';
import { pageLinks, startOf } from './paging.js';
import type { Web } from './plugin.js';
import type { UserPreferences } from './preferences.js';
import { sendPage } from './render.js';

type Params = { key: string; slug: string; '*'?: string };
type Query = { at?: string; done?: string };

const MIRROR_ID = /^[0-9A-F]{4}(-[0-9A-F]{4}){3}$/;
const LIST_LIMIT = 100;
const COMMITS_PER_PAGE = 50;
const NOTICES: Record<string, string> = {
  preferred: 'Saved: this mirror is listed first on every repository it serves.',
  cleared: 'Your preferred mirror is cleared.',
};

/** A resolved `at`: the commit and how the pages name it. */
interface Revision {
  commit: string;
  /** What links carry as `at` (a full ref name or the commit id). */
  at: string;
  /** Shown to the user: the short branch or tag name, or the abbreviated commit. */
  label: string;
  kind: 'branch' | 'tag' | 'commit';
}

export const repoPath = (project: string, slug: string) => `/projects/${encodeURIComponent(project)}/repos/${encodeURIComponent(slug)}`;
const pathHref = (path: string) => path.split('/').map(encodeURIComponent).join('/');
const atQuery = (rev: Revision) => `?at=${encodeURIComponent(rev.at)}`;

export function formatDate(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
}

export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export function registerRepositoryPages(app: FastifyInstance, web: Web, context: AppContext, mirroring: Pick<Mirroring, 'state'>, preferences: UserPreferences): void {
  const { repositories, browser, store } = context;
  const BASE = '/projects/:key/repos/:slug';

  const view = (request: FastifyRequest<{ Params: Params }>, principal: Principal) => repositoryFor(context, principal, request.params.key, request.params.slug, 'read');

  async function refs(v: RepositoryView) {
    const [branches, tags, head] = await Promise.all([
      repositories.listRefsOrdered(v.repo, 'refs/heads/', { orderBy: 'ALPHABETICAL' }),
      repositories.listRefsOrdered(v.repo, 'refs/tags/', { orderBy: 'ALPHABETICAL' }),
      repositories.defaultBranchOf(v.repo),
    ]);
    return { branches, tags, head };
  }

  /** `at` as one of the repository's refs or commits; undefined for an empty repository without `at`. */
  async function resolve(v: RepositoryView, raw: unknown, known: Awaited<ReturnType<typeof refs>>): Promise<Revision | undefined> {
    const at = typeof raw === 'string' ? raw : '';
    if (at.startsWith('-') || at.includes('\0')) throw Errors.invalid('That is not a branch, tag or commit of this repository.');
    const { branches, tags, head } = known;
    if (!at) {
      const branch = branches.find((b) => b.ref === head) ?? branches[0];
      return branch ? { commit: branch.commit, at: branch.ref, label: branch.ref.slice(11), kind: 'branch' } : undefined;
    }
    const branch = branches.find((b) => b.ref === at || b.ref === `refs/heads/${at}`);
    if (branch) return { commit: branch.commit, at: branch.ref, label: branch.ref.slice(11), kind: 'branch' };
    const tag = tags.find((t) => t.ref === at || t.ref === `refs/tags/${at}`);
    if (tag) return { commit: tag.commit, at: tag.ref, label: tag.ref.slice(10), kind: 'tag' };
    if (COMMIT_ID.test(at) && (await browser.isCommit(store.pathOf(v.repo.id), at))) return { commit: at, at, label: at.slice(0, 11), kind: 'commit' };
    throw Errors.notFound(`Branch, tag or commit "${at.slice(0, 100)}" of ${v.project.key}/${v.repo.slug}`);
  }

  /** What every page of the repository shows at its top. */
  async function header(request: FastifyRequest, v: RepositoryView, known: Awaited<ReturnType<typeof refs>>, rev: Revision | undefined, tab: string) {
    const base = repoPath(v.project.key, v.repo.slug);
    const principal = web.state(request).principal;
    // Settings is offered to whom authorize() lets administer the repository; the settings pages ask again.
    const canAdmin = principal.kind === 'user' && effectiveLevel(principal, await context.permissions.repositoryResource(principal, v.project, v.repo)) >= Level.ADMIN;
    return {
      canAdmin,
      ...web.layout(request, `${v.repo.name} · ${v.project.name}`, 'projects'),
      project: { key: v.project.key, name: v.project.name },
      repo: { name: v.repo.name, slug: v.repo.slug, description: v.repo.description, public: !!v.repo.is_public },
      base,
      tab,
      rev,
      refQuery: rev ? atQuery(rev) : '',
      branchNames: known.branches.slice(0, LIST_LIMIT).map((b) => ({ ref: b.ref, name: b.ref.slice(11) })),
      tagNames: known.tags.slice(0, LIST_LIMIT).map((t) => ({ ref: t.ref, name: t.ref.slice(10) })),
    };
  }

  async function cloneBox(request: FastifyRequest, v: RepositoryView) {
    const state = web.state(request);
    const preferred = state.session ? await preferences.preferredMirror(state.session.userId) : undefined;
    const mirrors = (await repositoryMirrors(mirroring.state, v.project, v.repo)).map((m) => ({
      id: m.mirrorServer.id,
      name: m.mirrorServer.name,
      http: m.links.clone.find((l) => l.name === 'http')?.href,
      ssh: m.links.clone.find((l) => l.name === 'ssh')?.href,
      preferred: m.mirrorServer.id === preferred,
    }));
    mirrors.sort((a, b) => Number(b.preferred) - Number(a.preferred) || a.name.localeCompare(b.name));
    return {
      http: context.urls.httpClone(v.project.key, v.repo.slug),
      ssh: context.urls.sshClone(v.project.key, v.repo.slug),
      mirrors,
      hasPreferred: mirrors.some((m) => m.preferred),
      signedIn: !!state.session,
    };
  }

  app.get<{ Params: Params; Querystring: Query }>(BASE, async (request, reply) => {
    const principal = web.state(request).principal;
    const v = await view(request, principal);
    const known = await refs(v);
    const rev = await resolve(v, request.query.at, known);
    const gitDir = store.pathOf(v.repo.id);
    const [commits, entries] = rev ? await Promise.all([browser.log(gitDir, rev.commit, 10), browser.tree(gitDir, rev.commit, '')]) : [[], []];
    const base = repoPath(v.project.key, v.repo.slug);
    return sendPage(reply, 'repo', {
      ...(await header(request, v, known, rev, 'overview')),
      notice: NOTICES[request.query.done ?? ''],
      clone: await cloneBox(request, v),
      head: known.head,
      branches: known.branches.slice(0, LIST_LIMIT).map((b) => ({
        name: b.ref.slice(11),
        commit: b.commit.slice(0, 11),
        isDefault: b.ref === known.head,
        href: `${base}/browse?at=${encodeURIComponent(b.ref)}`,
        commitsHref: `${base}/commits?at=${encodeURIComponent(b.ref)}`,
      })),
      moreBranches: Math.max(0, known.branches.length - LIST_LIMIT),
      tags: known.tags.slice(0, LIST_LIMIT).map((t) => ({ name: t.ref.slice(10), commit: t.commit.slice(0, 11), href: `${base}/browse?at=${encodeURIComponent(t.ref)}` })),
      moreTags: Math.max(0, known.tags.length - LIST_LIMIT),
      commits: commits.map((c) => commitRow(base, c)),
      entries: rev ? entries.map((e) => entryRow(base, rev, '', e)) : [],
    });
  });

  async function browse(request: FastifyRequest<{ Params: Params; Querystring: Query }>, reply: import('fastify').FastifyReply) {
    const principal = web.state(request).principal;
    const v = await view(request, principal);
    const path = checkPath(request.params['*'] ?? '');
    const known = await refs(v);
    const rev = await resolve(v, request.query.at, known);
    const missing = () => Errors.notFound(`${path ? `"${path.slice(0, 200)}"` : 'The tree'} at ${rev?.label ?? 'this revision'} of ${v.project.key}/${v.repo.slug}`);
    if (!rev) throw missing();
    const gitDir = store.pathOf(v.repo.id);
    const type = await browser.typeOf(gitDir, rev.commit, path);
    if (!type) throw missing();
    const base = repoPath(v.project.key, v.repo.slug);
    const crumbs = breadcrumbs(base, rev, path);
    if (type === 'tree') {
      const entries = (await browser.tree(gitDir, rev.commit, path)).map((e) => entryRow(base, rev, path, e));
      return sendPage(reply, 'repo-tree', { ...(await header(request, v, known, rev, 'files')), path, crumbs, entries });
    }
    const file = await browser.file(gitDir, rev.commit, path);
    return sendPage(reply, 'repo-file', {
      ...(await header(request, v, known, rev, 'files')),
      path,
      crumbs,
      name: path.split('/').pop(),
      file,
      size: formatSize(file.size),
      lines: file.kind === 'text' ? file.text.split('\n').length - (file.text.endsWith('\n') ? 1 : 0) : 0,
      rawHref: `${base}/raw/${pathHref(path)}${atQuery(rev)}`,
    });
  }
  app.get<{ Params: Params; Querystring: Query }>(`${BASE}/browse`, browse);
  app.get<{ Params: Params; Querystring: Query }>(`${BASE}/browse/*`, browse);

  // A file's bytes, always as a download: never rendered by the browser as this site's page (an HTML file in a
  // repository must not run with the site's cookies), whatever its name says.
  app.get<{ Params: Params; Querystring: Query }>(`${BASE}/raw/*`, async (request, reply) => {
    const v = await view(request, web.state(request).principal);
    const path = checkPath(request.params['*'] ?? '');
    const rev = await resolve(v, request.query.at, await refs(v));
    const gitDir = store.pathOf(v.repo.id);
    if (!rev || !path || (await browser.typeOf(gitDir, rev.commit, path)) !== 'blob') throw Errors.notFound(`File "${path.slice(0, 200)}" of ${v.project.key}/${v.repo.slug}`);
    const abort = new AbortController();
    request.raw.once('close', () => abort.abort());
    const { size, stream } = await browser.raw(gitDir, rev.commit, path, abort.signal);
    const name = path.split('/').pop()!;
    return reply
      .type('application/octet-stream')
      .header('content-length', String(size))
      .header('content-disposition', `attachment; filename="${name.replace(/[^\x20-\x7e]|["\\]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(name)}`)
      .header('cache-control', 'private, no-store')
      .send(stream);
  });

  app.get<{ Params: Params; Querystring: Query }>(`${BASE}/commits`, async (request, reply) => {
    const v = await view(request, web.state(request).principal);
    const known = await refs(v);
    const rev = await resolve(v, request.query.at, known);
    const base = repoPath(v.project.key, v.repo.slug);
    // One more than a page: whether a "next" page exists, without counting the whole history.
    const start = startOf(request);
    const commits = rev ? await browser.log(store.pathOf(v.repo.id), rev.commit, COMMITS_PER_PAGE + 1, '', start) : [];
    const paging = pageLinks(`${base}/commits`, { at: request.query.at ?? '' }, start, COMMITS_PER_PAGE, commits.length > COMMITS_PER_PAGE);
    return sendPage(reply, 'repo-commits', { ...(await header(request, v, known, rev, 'commits')), commits: commits.slice(0, COMMITS_PER_PAGE).map((c) => commitRow(base, c)), paging, start });
  });

  // The user's preferred mirror: only one that serves this repository in sync now can be chosen.
  app.post<{ Params: Params; Body: Record<string, unknown> }>(`${BASE}/preferred-mirror`, async (request, reply) => {
    const state = web.state(request);
    if (!state.session) throw Errors.authenticationRequired();
    const v = await view(request, state.principal);
    const base = repoPath(v.project.key, v.repo.slug);
    const raw = typeof request.body?.mirror === 'string' ? request.body.mirror.toUpperCase() : '';
    if (raw === '') {
      await preferences.setPreferredMirror(state.session.userId, undefined);
      return reply.redirect(`${base}?done=cleared`, 303);
    }
    const serving = await repositoryMirrors(mirroring.state, v.project, v.repo);
    if (!MIRROR_ID.test(raw) || !serving.some((m) => m.mirrorServer.id === raw)) throw Errors.invalid('Choose one of the mirrors listed for this repository.');
    await preferences.setPreferredMirror(state.session.userId, raw);
    return reply.redirect(`${base}?done=preferred`, 303);
  });
}

function commitRow(base: string, c: { id: string; author: string; date: number; subject: string }) {
  return { id: c.id, short: c.id.slice(0, 11), author: c.author, date: formatDate(c.date), iso: new Date(c.date).toISOString(), subject: c.subject, href: `${base}/browse?at=${c.id}` };
}

function entryRow(base: string, rev: Revision, dir: string, e: { name: string; type: string; size?: number }) {
  const full = dir ? `${dir}/${e.name}` : e.name;
  return {
    name: e.name,
    type: e.type,
    size: e.size === undefined ? '' : formatSize(e.size),
    // A submodule points into another repository: shown, not linked.
    href: e.type === 'commit' ? undefined : `${base}/browse/${pathHref(full)}${atQuery(rev)}`,
  };
}

function breadcrumbs(base: string, rev: Revision, path: string) {
  const crumbs = [{ name: 'Files', href: `${base}/browse${atQuery(rev)}` }];
  const segments = path ? path.split('/') : [];
  segments.forEach((s, i) => crumbs.push({ name: s, href: `${base}/browse/${pathHref(segments.slice(0, i + 1).join('/'))}${atQuery(rev)}` }));
  return crumbs;
}
