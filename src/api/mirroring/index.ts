// The primary's mirroring API under /rest/mirroring/1.0 (docs/mirroring-protocol.md): discovery, registration
// requests and their authorization, mirror server administration, the mirror-facing calls (self, snapshot,
// event stream, report, prepare/commit, delegated authentication) and "which mirrors have this repository".
// Mirror calls authenticate with the mirror's signed token (MirrorRegistry.authenticate), never with a user's
// credentials; administration and repository routes authenticate users like the rest of the REST API and ask
// the one policy function. Routes live in one encapsulated plugin, separate from /rest/api's authentication hook.
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../server/context.js';
import { registerAdminRoutes } from './admin.js';
import type { MirroringServices } from './common.js';
import { registerMembershipRoutes } from './membership.js';
import { registerMirrorRoutes } from './mirror.js';
import { registerPublicRoutes } from './public.js';
import { registerWebSessionRoutes } from './web-sessions.js';
import { tolerateEmptyJsonBody } from '../empty-json-body.js';

export type { MirroringServices } from './common.js';

export async function registerMirroringApi(app: FastifyInstance, context: AppContext, services: MirroringServices): Promise<void> {
  await app.register(async (api) => {
    tolerateEmptyJsonBody(api);
    registerPublicRoutes(api, context, services);
    registerAdminRoutes(api, context, services);
    registerMirrorRoutes(api, context, services);
    registerMembershipRoutes(api, context, services);
    registerWebSessionRoutes(api, services);
  });
}
