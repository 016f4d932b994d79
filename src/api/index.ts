// The REST API: Bitbucket Data Center's paths, parameters and JSON shapes (so existing scripts and client
// libraries work unchanged) plus mirrorfarm's event log, and an OpenAPI document generated from the routes'
// schemas at /rest/api/openapi.json. Routes live in one file per area; this file wires them up inside one
// encapsulated plugin whose hook authenticates every request before any route runs.
import swagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../server/context.js';
import { authenticate } from './access.js';
import { registerApplicationPropertiesRoute } from './application-properties.js';
import { registerEventRoutes } from './events.js';
import { registerGroupRoutes } from './groups.js';
import { registerPermissionRoutes } from './permissions.js';
import { registerProjectRoutes } from './projects.js';
import { registerRefRoutes } from './refs.js';
import { registerRepositoryRoutes } from './repos.js';
import { registerSshKeyRoutes } from './ssh-keys.js';
import { registerTokenRoutes } from './tokens.js';
import { registerUserRoutes } from './users.js';
import { tolerateEmptyJsonBody } from './empty-json-body.js';
import { OperationIds } from './openapi.js';

export const OPENAPI_PATH = '/rest/api/openapi.json';

const DESCRIPTION = `
REST API of a mirrorfarm primary. Paths, parameters and JSON follow Bitbucket Data Center's published REST API
(/rest/api/1.0, /rest/branch-utils/1.0, /rest/git/1.0, /rest/ssh/1.0, /rest/access-tokens/1.0), so Bitbucket
scripts and client libraries work unchanged; /rest/mirroring/1.0 holds what Bitbucket does not publish.
As in Bitbucket, \`latest\` is an alias of the current version on every root: /rest/api/latest/projects is
/rest/api/1.0/projects, /rest/mirroring/latest/... is /rest/mirroring/1.0/..., and so on; links in answers name 1.0.

Authenticate with HTTP Basic (user name and password, or user name and personal access token) or with
\`Authorization: Bearer TOKEN\`. Anonymous callers see public projects and repositories only.
Errors: 401 when credentials are missing or wrong, 404 when the caller cannot see the resource (whether or not it
exists), 403 when the caller can see it but may not do this, 400 for invalid input, 409 for conflicts; bodies are
\`{"errors":[{"context":null,"message":"...","exceptionName":"...","code":"CODE"}]}\`, where \`exceptionName\` is
Bitbucket's exception class for the same condition (e.g. com.atlassian.bitbucket.project.NoSuchProjectException) or,
where Bitbucket has none, the same as \`code\`, mirrorfarm's stable error code.
Paged lists take \`start\` and \`limit\` (default 25, at most 1000) and answer
\`{size, limit, isLastPage, start, nextPageStart?, values}\`.
`.trim();

export async function registerRestApi(app: FastifyInstance, context: AppContext): Promise<void> {
  const operationIds = new OperationIds();
  // Swagger collects routes through an onRoute hook, so it is registered before any API route. Routes added
  // earlier (git's /scm routes, /status, /metrics) are not collected; /scm routes are hidden in any case.
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'mirrorfarm REST API', version: context.version, description: DESCRIPTION },
      components: {
        securitySchemes: {
          basic: { type: 'http', scheme: 'basic', description: 'User name and password, or user name and personal access token.' },
          bearer: { type: 'http', scheme: 'bearer', description: 'A personal access token.' },
        },
      },
      security: [{ basic: [] }, { bearer: [] }, {}],
    },
    transform: ({ schema, url, route }) => {
      // The document is the REST API's: git, Git LFS, web pages and health endpoints are described elsewhere.
      if (!url.startsWith('/rest/')) return { schema: { ...schema, hide: true }, url };
      const method = typeof route.method === 'string' ? route.method : (route.method[0] ?? 'GET');
      const explicit = (schema as { operationId?: string } | undefined)?.operationId;
      return { schema: { ...schema, operationId: operationIds.idFor(method, url, explicit) }, url };
    },
  });

  await app.register(async (api) => {
    tolerateEmptyJsonBody(api);

    api.addHook('onRequest', async (request) => authenticate(context, request));

    registerApplicationPropertiesRoute(api);
    registerProjectRoutes(api, context);
    registerRepositoryRoutes(api, context);
    registerRefRoutes(api, context);
    registerPermissionRoutes(api, context);
    registerUserRoutes(api, context);
    registerGroupRoutes(api, context);
    registerSshKeyRoutes(api, context);
    registerTokenRoutes(api, context);
    registerEventRoutes(api, context);
  });

  // The base URL is known only once the server listens (it may come from the listener), so the one server entry
  // is added when the document is served.
  app.get(OPENAPI_PATH, { schema: { hide: true } }, async () => ({
    ...app.swagger(),
    servers: [{ url: context.urls.base(), description: 'This server (its configured baseUrl, or the listener when none is set).' }],
  }));
}
