// Bitbucket tolerates an empty body sent with Content-Type: application/json (common on DELETE from client
// libraries); Fastify's own parser refuses it. Parsing otherwise stays Fastify's, which guards against
// prototype poisoning.
import type { FastifyInstance } from 'fastify';

export function tolerateEmptyJsonBody(api: FastifyInstance): void {
  const parseJson = api.getDefaultJsonParser('error', 'error');
  api.removeContentTypeParser('application/json');
  api.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, undefined);
    return parseJson(request, text, done);
  });
}
