// The REST API a mirror serves for what it carries: the read-only part of /rest/api/1.0 (projects, repositories,
// branches, tags, default branch, application properties) in the primary's shapes, and Bitbucket's mirror-side
// resources under /rest/mirroring/1.0. Users authenticate with their primary credentials (Basic or Bearer), checked
// by the primary through delegated authentication, in one hook before any route runs. Writes are refused with the
// primary's URL: a mirror is read-only.
import type { FastifyInstance } from 'fastify';
import { registerApplicationPropertiesRoute } from '../../api/application-properties.js';
import { MirrorfarmError } from '../../errors.js';
import { authenticate } from './access.js';
import type { MirrorRestContext } from './context.js';
import { registerMirrorMirroringRoutes } from './mirroring.js';
import { registerMirrorProjectRoutes } from './projects.js';
import { registerMirrorRefRoutes } from './refs.js';
import { registerMirrorRepositoryRoutes } from './repos.js';

export type { MirrorRestContext } from './context.js';

export async function registerMirrorRestApi(app: FastifyInstance, context: MirrorRestContext): Promise<void> {
  await app.register(async (api) => {
    api.addHook('onRequest', async (request) => authenticate(context, request));
    registerApplicationPropertiesRoute(api);
    registerMirrorProjectRoutes(api, context);
    registerMirrorRepositoryRoutes(api, context);
    registerMirrorRefRoutes(api, context);
    registerMirrorMirroringRoutes(api, context);
    api.route({
      method: ['POST', 'PUT', 'DELETE', 'PATCH'],
      url: '/rest/api/1.0/*',
      handler: async (request) => {
        const path = request.url.split('?')[0] ?? '';
        throw new MirrorfarmError('MIRROR_READ_ONLY', 405, `This is a read-only mirror. Send ${request.method} ${path} to the primary instead: ${context.config.mirror.upstreamUrl}${path}`);
      },
    });
  });
}
