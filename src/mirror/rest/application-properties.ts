// GET /rest/api/1.0/application-properties on a mirror: what clients call first to detect the server. Anonymous,
// as in Bitbucket.
import { statSync } from 'node:fs';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { VERSION } from '../../version.js';
import type { MirrorRestContext } from './context.js';

const ApplicationPropertiesJson = Type.Object(
  { version: Type.String(), buildNumber: Type.String(), buildDate: Type.String(), displayName: Type.String() },
  { description: "Bitbucket's RestApplicationProperties." },
);

/** Bitbucket's numbers: buildNumber encodes the version (1.2.3 -> "1002003"), buildDate is epoch milliseconds. */
function applicationProperties(displayName: string) {
  const [major = 0, minor = 0, patch = 0] = VERSION.split(/[.-]/).map((n) => Number.parseInt(n, 10) || 0);
  const built = statSync(new URL('../../../package.json', import.meta.url)).mtimeMs;
  return { version: VERSION, buildNumber: String(major * 1_000_000 + minor * 1000 + patch), buildDate: String(Math.floor(built)), displayName };
}

export function registerMirrorApplicationProperties(app: FastifyInstance, context: MirrorRestContext): void {
  app.get('/rest/api/1.0/application-properties', { schema: { response: { 200: ApplicationPropertiesJson } } }, async () => applicationProperties(context.config.displayName));
}
