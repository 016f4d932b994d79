// The package version, read once from package.json, and the build facts derived from it that clients see in
// application-properties.
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/**
 * Bitbucket's build number encodes the version (7.21.0 -> 7021000), and clients compare it as a number; the same
 * rule is applied to ours so it grows with every release. A pre-release suffix is ignored.
 */
export function buildNumberOf(version: string): string {
  const [major = 0, minor = 0, patch = 0] = version.split(/[-+]/)[0]!.split('.').map((n) => Number.parseInt(n, 10) || 0);
  return String(major * 1_000_000 + minor * 1_000 + patch);
}

export const BUILD_NUMBER: string = buildNumberOf(VERSION);

/**
 * When this build was made, in epoch milliseconds: the time the running module was written (by `npm run build`
 * for an installed server), so every node started from one image reports the same date.
 */
export const BUILD_DATE: number = Math.floor(statSync(fileURLToPath(import.meta.url)).mtimeMs);

/** The product name clients are shown, as Bitbucket answers "Bitbucket". */
export const PRODUCT_NAME = 'mirrorfarm';
