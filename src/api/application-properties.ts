// GET /rest/api/1.0/application-properties: what server this is, in Bitbucket's shape. Clients call it first to
// detect the server and its version, often before they log in, so it answers anonymous callers. It reads only
// build facts (src/version.ts), never the database, so a mirror serves it with the same registrar.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { BUILD_DATE, BUILD_NUMBER, PRODUCT_NAME, VERSION } from '../version.js';
import { errorResponses } from './json.js';

export const ApplicationPropertiesJson = Type.Object(
  {
    version: Type.String({ description: 'The mirrorfarm version, e.g. 0.1.0.', examples: ['0.1.0'] }),
    buildNumber: Type.String({ description: 'The version as one number (major * 1000000 + minor * 1000 + patch), as Bitbucket counts it.', examples: ['1000'] }),
    buildDate: Type.String({ description: 'When this build was made, in epoch milliseconds (a string, as Bitbucket sends it).', examples: ['1735689600000'] }),
    displayName: Type.String({ description: 'The product name.', examples: [PRODUCT_NAME] }),
  },
  { description: "Bitbucket's RestApplicationProperties." },
);
export type ApplicationPropertiesJson = Static<typeof ApplicationPropertiesJson>;

export function applicationProperties(): ApplicationPropertiesJson {
  return { version: VERSION, buildNumber: BUILD_NUMBER, buildDate: String(BUILD_DATE), displayName: PRODUCT_NAME };
}

/**
 * Registers the route on `app`. The caller decides how requests are authenticated: the route itself needs no
 * principal, so anonymous callers are answered, while wrong credentials are still refused by the caller's hook.
 */
export function registerApplicationPropertiesRoute(app: FastifyInstance): void {
  app.get(
    '/rest/api/1.0/application-properties',
    {
      schema: {
        tags: ['System'],
        summary: 'Get application properties',
        description: 'Version and build of this server; anonymous callers may ask.',
        security: [{}, { basic: [] }, { bearer: [] }],
        response: { 200: ApplicationPropertiesJson, ...errorResponses },
      },
    },
    async () => applicationProperties(),
  );
}
