// The ref-state hash ("content hash"): a versioned, order-independent digest of a repository's visible refs
// and HEAD's target. Primary and mirrors compute it the same way, so comparing one string per repository tells
// whether a mirror serves exactly what the primary has.
import { createHash } from 'node:crypto';
import type { RefState } from './repo-store.js';

export const REF_HASH_VERSION = 'v1';
/** Refs the server keeps for itself (staging of mirror fetches); never part of the visible state. */
export const HIDDEN_REF_PREFIX = 'refs/mirrorfarm/';

export function refStateHash(state: RefState): string {
  const refs = [...state.entries()].filter(([ref]) => ref !== 'HEAD' && !ref.startsWith(HIDDEN_REF_PREFIX));
  // Byte order, not locale order, so every implementation sorts the same way.
  refs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const hash = createHash('sha256');
  for (const [ref, oid] of refs) hash.update(`${ref} ${oid}\n`);
  const head = state.get('HEAD');
  hash.update(`HEAD ${head?.startsWith('ref: ') ? head.slice(5) : (head ?? '')}\n`);
  return `${REF_HASH_VERSION}:${hash.digest('hex')}`;
}
