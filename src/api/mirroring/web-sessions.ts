// Web sign-ins on a mirror, opened and ended by its nodes (src/primary/web-sessions.ts): any node of the farm
// opens one with the user's password, every node then checks it with authenticate `{type: "web-session"}`, and
// sign-out on any node ends it for all. Called with the mirror's signed token only; a session is its mirror's.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { MirrorfarmError } from '../../errors.js';
import type { AuthenticatedMirror } from '../../primary/mirrors.js';
import { errorResponses } from '../json.js';
import { PREFIX, TAGS, type MirroringServices } from './common.js';

const OpenBody = Type.Object({
  username: Type.String({ minLength: 1, maxLength: 255 }),
  password: Type.String({ minLength: 1, maxLength: 4096 }),
  clientAddress: Type.Optional(Type.String({ maxLength: 100, description: 'The IP address the user connected to the mirror from, for the login throttle.' })),
});

const OpenedJson = Type.Object({
  secret: Type.String({ description: 'For the browser\'s cookie only: the primary keeps its SHA-256, and answers it once.' }),
  id: Type.Integer({ description: 'Names the session in mirror.web_session_ended.' }),
  user: Type.Object({ id: Type.Integer(), name: Type.String() }),
  createdDate: Type.Integer(),
  idleTimeoutSeconds: Type.Integer(),
  maxAgeSeconds: Type.Integer(),
});

const RevokeBody = Type.Object({ secret: Type.String({ minLength: 1, maxLength: 100 }) });

export function registerWebSessionRoutes(app: FastifyInstance, services: MirroringServices): void {
  const { registry, webSessions } = services;
  const callers = new WeakMap<FastifyRequest, AuthenticatedMirror>();
  // Before the body is read, as for every mirror call: no password is parsed for a caller without a valid token.
  const onRequest = async (request: FastifyRequest) => {
    callers.set(request, await registry.authenticate(request.headers.authorization));
  };
  const mirrorOf = (request: FastifyRequest) => {
    const caller = callers.get(request);
    if (!caller) throw new MirrorfarmError('INTERNAL_ERROR', 500, 'Mirror request was not authenticated.');
    return caller.mirror;
  };

  app.post<{ Body: Static<typeof OpenBody> }>(
    `${PREFIX}/mirror/web-sessions`,
    {
      onRequest,
      schema: {
        tags: TAGS,
        summary: 'Open a web session on a mirror (mirror)',
        description:
          'A user signs in to a mirror\'s web pages: the primary checks the password (the login throttle counts `clientAddress`) and answers a random secret ' +
          'for the browser\'s cookie, valid on every node of this mirror and nowhere else, until sign-out, the primary\'s web.sessionIdleMinutes without use ' +
          'or web.sessionMaxHours. 401 BAD_CREDENTIALS for a wrong password, WEB_SIGN_IN_TOKEN for an access token, 429 with Retry-After while throttled.',
        body: OpenBody,
        response: { 200: OpenedJson, ...errorResponses },
      },
    },
    async (request) => {
      const mirror = mirrorOf(request);
      const { username, password, clientAddress } = request.body;
      const opened = await webSessions.open(mirror, username.trim(), password, clientAddress ?? `mirror:${mirror.id}`);
      request.log.info({ mirrorId: mirror.id, user: opened.user.name, sessionId: opened.id }, 'web session opened on a mirror');
      return { ...opened, idleTimeoutSeconds: Math.round(webSessions.idleMs / 1000), maxAgeSeconds: Math.round(webSessions.maxMs / 1000) };
    },
  );

  app.post<{ Body: Static<typeof RevokeBody> }>(
    `${PREFIX}/mirror/web-sessions/revoke`,
    {
      onRequest,
      schema: {
        tags: TAGS,
        summary: 'End a web session on a mirror (mirror)',
        description:
          'Sign-out: the session ends on every node at once (a `mirror.web_session_ended` event tells the nodes to drop what they cached). ' +
          'Answers 204 whether or not the session still existed; another mirror\'s session is left alone.',
        body: RevokeBody,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      await webSessions.revoke(mirrorOf(request), request.body.secret);
      return reply.status(204).send();
    },
  );
}
