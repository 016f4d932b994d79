// Who is in a mirror farm's active set, and until when each member may serve without hearing from the primary
// (its lease). The coordinator counts only members when it decides that a change may be published; a node
// joins once it is in sync, leaves on shutdown, and is evicted when it does not stage a change in time.
//
// Leases are what make an eviction safe while the evicted node may still be in the load balancer's rotation
// (partitioned, or just slow): a node reports ready only while its lease runs (the node measures it from the
// moment it sent the request, so clocks need not agree), the primary stops renewing the lease of a member that
// a round has waited on for a third of the prepare timeout, and it never commits without a member before that
// member's lease plus the time the balancer needs to take it out of rotation have passed. With the three
// thirds (lag cutoff, lease, balancer margin) adding up to the prepare timeout, eviction happens on time in the
// common case; see "Consistency across a farm" in docs/mirroring-protocol.md.
//
// The only member of a farm gets a long lease, so that a single mirror keeps serving while its primary is
// away (nothing can diverge from a node that has no peers); a second node joining such a farm while the first
// is cut off waits for that long lease before it can publish without it.
//
// State is in memory. After a primary restart the nodes recorded as live and not evicted are presumed members
// with a lease granted at start, so that nothing is published without a member that still serves.

/** A lone member's lease: about as long as a mirror serves users verified before the primary went away. */
export const SOLO_LEASE_MS = 15 * 60_000;

export interface LeaseTiming {
  /** A member that a round has waited on this long gets no new lease. */
  lagCutoffMs: number;
  /** A member of a farm of several serves this long after its last renewal. */
  leaseMs: number;
  /** Time the load balancer gets to take a node whose lease ran out (or that leaves) out of rotation. */
  marginMs: number;
  /** How often members renew. */
  renewMs: number;
}

export function leaseTiming(prepareTimeoutMs: number): LeaseTiming {
  const third = Math.floor(prepareTimeoutMs / 3);
  return { lagCutoffMs: third, leaseMs: third, marginMs: third, renewMs: Math.max(100, Math.floor(third / 4)) };
}

interface Member {
  grantedAt: number;
  leaseMs: number;
}

export interface Grant {
  leaseMs: number;
  memberCount: number;
}

export class FarmMembership {
  private readonly farms = new Map<string, Map<string, Member>>();
  /** Nodes that published freely while their farm had no member: their state was agreed with nobody. */
  private readonly unagreed = new Map<string, Set<string>>();
  private readonly loaded = new Set<string>();

  constructor(
    readonly timing: LeaseTiming,
    private readonly presumed: (mirrorId: string) => Promise<string[]>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Loads the presumed members of a mirror once per process (after a primary restart). */
  async ensureLoaded(mirrorId: string): Promise<void> {
    if (this.loaded.has(mirrorId)) return;
    const nodes = await this.presumed(mirrorId);
    if (this.loaded.has(mirrorId)) return;
    this.loaded.add(mirrorId);
    const farm = this.farmOf(mirrorId);
    const leaseMs = nodes.length === 1 ? SOLO_LEASE_MS : this.timing.leaseMs;
    for (const node of nodes) if (!farm.has(node)) farm.set(node, { grantedAt: this.now(), leaseMs });
  }

  private farmOf(mirrorId: string): Map<string, Member> {
    let farm = this.farms.get(mirrorId);
    if (!farm) this.farms.set(mirrorId, (farm = new Map()));
    return farm;
  }

  members(mirrorId: string): Set<string> {
    return new Set(this.farms.get(mirrorId)?.keys() ?? []);
  }

  isMember(mirrorId: string, nodeId: string): boolean {
    return this.farms.get(mirrorId)?.has(nodeId) ?? false;
  }

  /** Adds a node to the active set (no lease yet: `grant` gives it). */
  admit(mirrorId: string, nodeId: string): void {
    const farm = this.farmOf(mirrorId);
    if (!farm.has(nodeId)) farm.set(nodeId, { grantedAt: this.now(), leaseMs: 0 });
    this.unagreed.get(mirrorId)?.delete(nodeId);
  }

  /** Renews a member's lease from now; a lone member gets the long one. */
  grant(mirrorId: string, nodeId: string): Grant {
    const farm = this.farmOf(mirrorId);
    const leaseMs = farm.size <= 1 ? SOLO_LEASE_MS : this.timing.leaseMs;
    farm.set(nodeId, { grantedAt: this.now(), leaseMs });
    return { leaseMs, memberCount: farm.size };
  }

  remove(mirrorId: string, nodeId: string): boolean {
    return this.farms.get(mirrorId)?.delete(nodeId) ?? false;
  }

  /** When a member is surely out of the balancer's rotation if it has not renewed since (ms since epoch). */
  fencedAt(mirrorId: string, nodeId: string): number {
    const member = this.farms.get(mirrorId)?.get(nodeId);
    if (!member) return 0;
    return member.grantedAt + member.leaseMs + this.timing.marginMs;
  }

  markUnagreed(mirrorId: string, nodeId: string): void {
    let set = this.unagreed.get(mirrorId);
    if (!set) this.unagreed.set(mirrorId, (set = new Set()));
    set.add(nodeId);
  }

  /** True (once) when the node published while its farm was empty, so it must stage everything again first. */
  takeUnagreed(mirrorId: string, nodeId: string): boolean {
    return this.unagreed.get(mirrorId)?.delete(nodeId) ?? false;
  }

  forget(mirrorId: string): void {
    this.farms.delete(mirrorId);
    this.unagreed.delete(mirrorId);
    this.loaded.delete(mirrorId);
  }
}
