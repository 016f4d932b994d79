// Settings of a project and of a repository, for their administrators: rename, delete (after a page that says
// what happens), create a repository in a project, create a project (system administrators), and the user and
// group permissions of each (grant, change, revoke). The REST API's own lookups decide who may: projectFor() and
// repositoryFor() with 'admin' (authorize() underneath), requireSysadmin() for new projects; the grants go through
// the Permissions service with the same guard as the REST API, so nobody lowers their own access here.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { effectiveLevel, Level, PERMISSION_LEVELS, type Principal } from '../access/authorize.js';
import { projectFor, repositoryFor, requireSysadmin } from '../api/access.js';
import { actorOf } from '../api/repos.js';
import type { Grantee, Target } from '../domain/permissions.js';
import { Errors } from '../errors.js';
import type { AppContext } from '../server/context.js';
import { formError, PROJECT_PERMISSIONS, REPO_PERMISSIONS } from './account-pages.js';
import type { Web } from './plugin.js';
import { sendPage } from './render.js';
import { repoPath } from './repo-pages.js';

type Body = Record<string, unknown>;
const field = (body: Body | undefined, name: string) => (typeof body?.[name] === 'string' ? (body[name] as string).trim() : '');
const projectPath = (key: string) => `/projects/${encodeURIComponent(key)}`;

const NOTICES: Record<string, string> = {
  saved: 'Saved.',
  granted: 'The permission is granted. It applies at once.',
  revoked: 'The permission is revoked. It applies at once.',
  created: 'Created.',
  moved: 'The repository is moved: these are its new clone URLs; the old ones no longer work.',
  rekeyed: 'The project key is changed: its repositories have new clone URLs; the old ones no longer work.',
};

export function registerSettingsPages(app: FastifyInstance, web: Web, context: AppContext): void {
  const { permissions, users, groups, projects, repositories } = context;

  const principalOf = (request: FastifyRequest, reply?: FastifyReply): Principal | undefined => {
    if (reply && web.requireSignIn(request, reply)) return undefined;
    const state = web.state(request);
    if (!state.session) throw Errors.authenticationRequired();
    return state.principal;
  };

  async function grants(target: Target) {
    const userGrants = target.repo ? await permissions.repositoryGrants(target.repo) : await permissions.projectGrants(target.project);
    return {
      userGrants: userGrants.map((g) => ({ name: g.user.name, displayName: g.user.display_name, permission: g.permission })),
      groupGrants: (await permissions.groupGrants(target)).map((g) => ({ name: g.group.name, permission: g.permission })),
      permissionNames: target.repo ? REPO_PERMISSIONS : PROJECT_PERMISSIONS,
    };
  }

  async function grantees(kind: string, name: string): Promise<Grantee[]> {
    if (!name) throw Errors.invalid(`Enter the name of a ${kind === 'group' ? 'group' : 'user'}.`);
    return kind === 'group' ? [{ kind: 'group', group: await groups.require(name.toLowerCase()) }] : [{ kind: 'user', user: await users.require(name.toLowerCase()) }];
  }

  /** Grant (or with `revoke`, remove) a permission on the target: the REST API's rules, its self-guard included. */
  async function changePermission(principal: Principal, target: Target, body: Body | undefined, revoke: boolean): Promise<void> {
    const kind = field(body, 'kind') === 'group' ? 'group' : 'user';
    const who = await grantees(kind, field(body, 'name'));
    if (revoke) {
      await permissions.set(target, who, null, { principal, refusal: () => Errors.conflict('You cannot revoke your own permission here; ask another administrator.') });
      return;
    }
    const permission = field(body, 'permission');
    if (PERMISSION_LEVELS[permission]?.scope !== (target.repo ? 'repository' : 'project')) throw Errors.invalid('Choose a permission from the list.');
    await permissions.set(target, who, permission, { principal, refusal: () => Errors.forbidden('lower your own permission here; ask another administrator') });
  }

  // --- projects ----------------------------------------------------------------------------------------------

  async function projectPage(request: FastifyRequest, reply: FastifyReply, key: string, extra: Record<string, unknown> = {}, status = 200) {
    const principal = principalOf(request)!;
    const project = await projectFor(context, principal, key, 'admin');
    const repos = (await repositories.inProject(project.id)).map((r) => ({ name: r.name, slug: r.slug, href: repoPath(project.key, r.slug) }));
    const query = request.query as { done?: string } | undefined;
    return sendPage(
      reply,
      'project-settings',
      {
        ...web.layout(request, `Settings of ${project.name}`, 'projects'),
        project: { key: project.key, name: project.name, description: project.description, public: !!project.is_public },
        base: projectPath(project.key),
        repos,
        ...(await grants({ project })),
        form: {},
        notice: NOTICES[query?.done ?? ''],
        ...extra,
      },
      status,
    );
  }

  app.get('/projects/new', async (request, reply) => {
    const principal = principalOf(request, reply);
    if (!principal) return reply;
    requireSysadmin(principal);
    return sendPage(reply, 'project-new', { ...web.layout(request, 'New project', 'projects'), form: {} });
  });

  app.post<{ Body: Body }>('/projects/new', async (request, reply) => {
    requireSysadmin(principalOf(request)!);
    const form = { key: field(request.body, 'key'), name: field(request.body, 'name'), description: field(request.body, 'description') };
    try {
      const project = await projects.create({ key: form.key, name: form.name || form.key, description: form.description || null, public: field(request.body, 'public') === 'on' });
      return reply.redirect(`${projectPath(project.key)}/settings?done=created`, 303);
    } catch (err) {
      return sendPage(reply, 'project-new', { ...web.layout(request, 'New project', 'projects'), form, error: formError(err) }, 400);
    }
  });

  app.get<{ Params: { key: string } }>('/projects/:key/settings', async (request, reply) => {
    if (!principalOf(request, reply)) return reply;
    return projectPage(request, reply, request.params.key);
  });

  app.post<{ Params: { key: string }; Body: Body }>('/projects/:key/settings', async (request, reply) => {
    const project = await projectFor(context, principalOf(request)!, request.params.key, 'admin');
    try {
      const name = field(request.body, 'name');
      if (!name) throw Errors.invalid('A project needs a name.');
      await projects.update(project, { name, description: field(request.body, 'description') || null, public: field(request.body, 'public') === 'on' });
    } catch (err) {
      return projectPage(request, reply, project.key, { settingsError: formError(err) }, 400);
    }
    return reply.redirect(`${projectPath(project.key)}/settings?done=saved`, 303);
  });

  // Bitbucket allows a new key (PUT /projects/{key} with key): the repositories keep their ids, their URLs change.
  app.post<{ Params: { key: string }; Body: Body }>('/projects/:key/key', async (request, reply) => {
    const project = await projectFor(context, principalOf(request)!, request.params.key, 'admin');
    const key = field(request.body, 'key');
    let updated = project;
    try {
      if (!key) throw Errors.invalid('Enter the new key.');
      updated = await projects.update(project, { key });
    } catch (err) {
      return projectPage(request, reply, project.key, { keyError: formError(err), form: { key } }, 400);
    }
    request.log.info({ from: project.key, to: updated.key }, 'project key changed in the web interface');
    return reply.redirect(`${projectPath(updated.key)}/settings?done=${updated.key === project.key ? 'saved' : 'rekeyed'}`, 303);
  });

  app.post<{ Params: { key: string }; Body: Body }>('/projects/:key/repos/new', async (request, reply) => {
    const principal = principalOf(request)!;
    const project = await projectFor(context, principal, request.params.key, 'admin');
    const name = field(request.body, 'name');
    try {
      const repo = await repositories.create(project, { name, public: field(request.body, 'public') === 'on' }, actorOf(principal));
      return reply.redirect(`${repoPath(project.key, repo.slug)}`, 303);
    } catch (err) {
      return projectPage(request, reply, project.key, { repoError: formError(err), form: { repoName: name } }, 400);
    }
  });

  for (const [suffix, revoke] of [['permissions', false], ['permissions/revoke', true]] as const) {
    app.post<{ Params: { key: string }; Body: Body }>(`/projects/:key/${suffix}`, async (request, reply) => {
      const principal = principalOf(request)!;
      const project = await projectFor(context, principal, request.params.key, 'admin');
      try {
        await changePermission(principal, { project }, request.body, revoke);
      } catch (err) {
        return projectPage(request, reply, project.key, { permissionError: formError(err) }, 400);
      }
      return reply.redirect(`${projectPath(project.key)}/settings?done=${revoke ? 'revoked' : 'granted'}`, 303);
    });
  }

  app.get<{ Params: { key: string } }>('/projects/:key/delete', async (request, reply) => {
    const principal = principalOf(request, reply);
    if (!principal) return reply;
    const project = await projectFor(context, principal, request.params.key, 'admin');
    const count = (await repositories.inProject(project.id)).length;
    return sendPage(reply, 'confirm-delete', {
      ...web.layout(request, `Delete ${project.name}`, 'projects'),
      what: `project ${project.name}`,
      consequences: count
        ? [`It still has ${count} ${count === 1 ? 'repository' : 'repositories'}: delete or move them first; until then the project cannot be deleted.`]
        : ['Its permissions go with it.', 'Mirrors that carry it stop serving it.'],
      action: `${projectPath(project.key)}/delete`,
      cancel: `${projectPath(project.key)}/settings`,
      button: 'Delete project',
    });
  });

  app.post<{ Params: { key: string } }>('/projects/:key/delete', async (request, reply) => {
    const project = await projectFor(context, principalOf(request)!, request.params.key, 'admin');
    await projects.remove(project);
    return reply.redirect('/?done=deleted', 303);
  });

  // --- repositories ------------------------------------------------------------------------------------------

  const repoView = (request: FastifyRequest<{ Params: { key: string; slug: string } }>, principal: Principal) => repositoryFor(context, principal, request.params.key, request.params.slug, 'admin');

  async function repoPage(request: FastifyRequest<{ Params: { key: string; slug: string } }>, reply: FastifyReply, extra: Record<string, unknown> = {}, status = 200) {
    const v = await repoView(request, principalOf(request)!);
    const base = repoPath(v.project.key, v.repo.slug);
    const query = request.query as { done?: string } | undefined;
    return sendPage(
      reply,
      'repo-settings',
      {
        ...web.layout(request, `Settings of ${v.repo.name}`, 'projects'),
        project: { key: v.project.key, name: v.project.name },
        repo: { name: v.repo.name, slug: v.repo.slug, description: v.repo.description, public: !!v.repo.is_public },
        base,
        tab: 'settings',
        canAdmin: true,
        refQuery: '',
        ...(await grants({ project: v.project, repo: v.repo })),
        moveTargets: await moveTargets(principalOf(request)!, v.project.id),
        notice: NOTICES[query?.done ?? ''],
        ...extra,
      },
      status,
    );
  }

  /** The projects this user may move a repository to: those they administer (PROJECT_ADMIN, as the REST API asks). */
  async function moveTargets(principal: Principal, currentId: number) {
    const index = await permissions.accessIndex(principal);
    return (await projects.list()).filter((p) => p.id !== currentId && effectiveLevel(principal, index.project(p)) >= Level.ADMIN).map((p) => ({ key: p.key, name: p.name }));
  }

  // Bitbucket's PUT repos/{slug} with project.key: PROJECT_ADMIN on the target too (projectFor() decides, and
  // answers 404 for a project the user cannot see, as for any other).
  app.post<{ Params: { key: string; slug: string }; Body: Body }>('/projects/:key/repos/:slug/move', async (request, reply) => {
    const principal = principalOf(request)!;
    const v = await repoView(request, principal);
    const key = field(request.body, 'project');
    let moved;
    try {
      if (!key) throw Errors.invalid('Choose the project to move the repository to.');
      const target = await projectFor(context, principal, key, 'admin');
      if (target.id === v.project.id) throw Errors.invalid(`The repository is already in ${target.key}.`);
      moved = { project: target, repo: await repositories.update(v, { project: target }) };
    } catch (err) {
      return repoPage(request, reply, { moveError: formError(err) }, 400);
    }
    request.log.info({ repositoryId: v.repo.id, from: v.project.key, to: moved.project.key }, 'repository moved in the web interface');
    return reply.redirect(`${repoPath(moved.project.key, moved.repo.slug)}/settings?done=moved`, 303);
  });

  app.get<{ Params: { key: string; slug: string } }>('/projects/:key/repos/:slug/settings', async (request, reply) => {
    if (!principalOf(request, reply)) return reply;
    return repoPage(request, reply);
  });

  app.post<{ Params: { key: string; slug: string }; Body: Body }>('/projects/:key/repos/:slug/settings', async (request, reply) => {
    const v = await repoView(request, principalOf(request)!);
    let slug = v.repo.slug;
    try {
      const name = field(request.body, 'name');
      if (!name) throw Errors.invalid('A repository needs a name.');
      // A new name gives a new slug (Bitbucket's rule); the repository keeps its id, so clones only change URL.
      slug = (await repositories.update(v, { ...(name !== v.repo.name ? { name } : {}), description: field(request.body, 'description') || null, public: field(request.body, 'public') === 'on' })).slug;
    } catch (err) {
      return repoPage(request, reply, { settingsError: formError(err) }, 400);
    }
    return reply.redirect(`${repoPath(v.project.key, slug)}/settings?done=saved`, 303);
  });

  for (const [suffix, revoke] of [['permissions', false], ['permissions/revoke', true]] as const) {
    app.post<{ Params: { key: string; slug: string }; Body: Body }>(`/projects/:key/repos/:slug/${suffix}`, async (request, reply) => {
      const principal = principalOf(request)!;
      const v = await repoView(request, principal);
      try {
        await changePermission(principal, { project: v.project, repo: v.repo }, request.body, revoke);
      } catch (err) {
        return repoPage(request, reply, { permissionError: formError(err) }, 400);
      }
      return reply.redirect(`${repoPath(v.project.key, v.repo.slug)}/settings?done=${revoke ? 'revoked' : 'granted'}`, 303);
    });
  }

  app.get<{ Params: { key: string; slug: string } }>('/projects/:key/repos/:slug/delete', async (request, reply) => {
    const principal = principalOf(request, reply);
    if (!principal) return reply;
    const v = await repoView(request, principal);
    const base = repoPath(v.project.key, v.repo.slug);
    return sendPage(reply, 'confirm-delete', {
      ...web.layout(request, `Delete ${v.repo.name}`, 'projects'),
      what: `repository ${v.project.key}/${v.repo.slug}`,
      consequences: ['Its branches, tags, commits and files are deleted from this server; this cannot be undone.', 'Mirrors remove it too; clones elsewhere keep what they have.'],
      action: `${base}/delete`,
      cancel: `${base}/settings`,
      button: 'Delete repository',
    });
  });

  app.post<{ Params: { key: string; slug: string } }>('/projects/:key/repos/:slug/delete', async (request, reply) => {
    const principal = principalOf(request)!;
    const v = await repoView(request, principal);
    await repositories.remove(v, actorOf(principal));
    return reply.redirect(`/?done=deleted`, 303);
  });
}
