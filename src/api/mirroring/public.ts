// Routes for anyone: discovery of the primary (what a mirror's setup checks and pins), and for users who can
// read a repository, the mirrors that serve it in sync, with clone links on each mirror.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { farmSshUrlBase } from '../../primary/farm-identity.js';
import type { AppContext } from '../../server/context.js';
import type { Mirror, Project, Repository } from '../../store/tables.js';
import { repositoryById } from '../access.js';
import { errorResponses } from '../json.js';
import { PageQuery, Paged, pageBounds, pageOf } from '../paging.js';
import { callerOf, PREFIX, TAGS, type MirroringServices } from './common.js';
import { DiscoveryJson, MirroredRepositoryDescriptorJson, mirrorServerJson } from './json.js';

const RepositoryIdParams = Type.Object({ repositoryId: Type.String({ description: 'The repository id (as in RestRepository.id).' }) });

/**
 * The mirrors that serve `repo` at the primary's current state on every active node, with its clone URLs there:
 * the answer of repos/{id}/mirrors, also shown on the repository's web page. The caller has authorized the read.
 */
export async function repositoryMirrors(state: MirroringServices['state'], project: Project, repo: Repository) {
  const mirrors = await state.mirrorsInSync(repo.id, project.id, repo.ref_state_hash);
  const path = `${project.key.toLowerCase()}/${repo.slug}.git`;
  const descriptor = (m: Mirror) => {
    // The farm's SSH URL, never the one a node reported last.
    const ssh = farmSshUrlBase(m);
    const host = ssh && (ssh.host.includes(':') ? `[${ssh.host}]` : ssh.host);
    return {
      mirrorServer: mirrorServerJson(m),
      links: {
        self: [{ href: `${m.base_url}/rest/api/1.0/projects/${project.key}/repos/${repo.slug}` }],
        clone: [{ href: `${m.base_url}/scm/${path}`, name: 'http' }, ...(ssh ? [{ href: `ssh://${ssh.user ?? 'git'}@${host}:${ssh.port}/${path}`, name: 'ssh' }] : [])],
      },
      available: true,
      refStateHash: repo.ref_state_hash!,
    };
  };
  return mirrors.map(descriptor);
}

export function registerPublicRoutes(app: FastifyInstance, context: AppContext, services: MirroringServices): void {
  const { state } = services;

  app.get(
    `${PREFIX}/primary`,
    {
      schema: {
        tags: TAGS,
        summary: 'Discover the primary',
        description:
          'Anonymous. What a mirror checks before registering: that this is a mirrorfarm primary, its base URL, and its SSH endpoint with the host keys ' +
          'to pin (learned over this validated HTTPS connection, so the SSH connection needs no trust on first use).',
        security: [{}],
        response: { 200: DiscoveryJson },
      },
    },
    async () => {
      const ssh = context.config.ssh.enabled ? context.sshUrlBase() : undefined;
      return {
        product: 'mirrorfarm' as const,
        version: context.version,
        baseUrl: context.urls.base(),
        displayName: context.config.displayName,
        ssh: ssh ? { enabled: true, host: ssh.host, port: ssh.port, user: context.config.ssh.user, hostKeys: context.sshHostKeys() } : { enabled: false, hostKeys: [] },
      };
    },
  );

  app.get<{ Params: Static<typeof RepositoryIdParams>; Querystring: Static<typeof PageQuery> }>(
    `${PREFIX}/repos/:repositoryId/mirrors`,
    {
      schema: {
        tags: TAGS,
        summary: 'Get mirrors for repository',
        description:
          'Needs REPO_READ. The mirrors that serve the repository at the primary\'s current state on every active node, with its clone URLs there. ' +
          'A mirror that has not yet synchronized the latest push is not listed.',
        params: RepositoryIdParams,
        querystring: PageQuery,
        response: { 200: Paged(MirroredRepositoryDescriptorJson, 'A page of mirrors.'), ...errorResponses },
      },
    },
    async (request) => {
      const { project, repo } = await repositoryById(context, await callerOf(context, request), request.params.repositoryId, 'read');
      const { start, limit } = pageBounds(request.query);
      return pageOf(await repositoryMirrors(state, project, repo), start, limit);
    },
  );
}
