// How the primary describes one node of a farm to administrators (mirrorServers) and to the node itself (its
// /status): a state that says whether it serves the primary's state, and its role in the two-phase publish.
// Pure functions of what the primary knows, so the rules are in one place and tested on their own.

/**
 * SYNCHRONIZED: in contact, in the farm, and says it serves everything at the primary's state.
 * SYNCHRONIZING: catching up (first sync, joining, or applying a push).
 * OUT_OF_SYNC: in contact and not evicted, but it cannot get there on its own: repositories fail on it, or it
 *   reports an error.
 * EVICTED: taken out of the active set because it did not prepare a change in time.
 * OFFLINE: no contact (stream ping, report, any call) for `mirroring.nodeOfflineSeconds`.
 */
export type FarmNodeState = 'SYNCHRONIZING' | 'SYNCHRONIZED' | 'OUT_OF_SYNC' | 'EVICTED' | 'OFFLINE';

/**
 * ACTIVE: a member of the farm's active set (src/primary/membership.ts): every change waits for this node to
 *   prepare it.
 * STANDBY: not counted: starting, syncing before it joins, or gone (left on shutdown, lease run out).
 * EVICTED: not counted until it has resynced and joined again.
 */
export type FarmNodeRole = 'ACTIVE' | 'STANDBY' | 'EVICTED';

export interface NodeFacts {
  lastSeenAt: number;
  evicted: boolean;
  /** In the active set right now. */
  member: boolean;
  /** What the node last said about itself (SYNCHRONIZED, SYNCHRONIZING, ERROR, ...; READY from older nodes). */
  reportedState?: string;
  /** Repositories whose last sync failed on this node. */
  failing: number;
}

export const DEFAULT_NODE_OFFLINE_SECONDS = 30;

export function nodeState(node: NodeFacts, offlineMs: number, now = Date.now()): FarmNodeState {
  if (now - node.lastSeenAt > offlineMs) return 'OFFLINE';
  if (node.evicted) return 'EVICTED';
  if (node.reportedState === 'ERROR' || node.failing > 0) return 'OUT_OF_SYNC';
  if (node.reportedState === 'SYNCHRONIZED' || node.reportedState === 'READY') return 'SYNCHRONIZED';
  return 'SYNCHRONIZING';
}

export function nodeRole(node: Pick<NodeFacts, 'evicted' | 'member'>): FarmNodeRole {
  if (node.evicted) return 'EVICTED';
  return node.member ? 'ACTIVE' : 'STANDBY';
}
