// The two-phase publish coordinator and the farm's active set, in process where time can be controlled:
// agreement among members, eviction on timeout only once a laggard's lease has run out, superseded rounds,
// members that staged something newer, leaving, followers publishing only what the farm agreed on, and a node
// that published alone being told to stage again before it joins.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { PublishCoordinator, type EvictionStore, type FarmChannel } from '../../src/primary/coordinator.js';
import { FarmMembership, type LeaseTiming } from '../../src/primary/membership.js';

const log = pino({ level: 'silent' });
const H1 = `v1:${'1'.repeat(64)}`;
const H2 = `v1:${'2'.repeat(64)}`;
const H3 = `v1:${'3'.repeat(64)}`;

class FakeFarm implements FarmChannel, EvictionStore {
  evictedNodes = new Set<string>();
  served = new Map<string, string>();
  commits: Array<{ node: string; repositoryId: number; refStateHash: string }> = [];
  sendCommit(_mirrorId: string, nodeId: string, data: { repositoryId: number; refStateHash: string }): boolean {
    this.commits.push({ node: nodeId, ...data });
    return true;
  }
  async evict(_mirrorId: string, nodeIds: string[]): Promise<void> {
    for (const n of nodeIds) this.evictedNodes.add(n);
  }
  async clearEviction(_mirrorId: string, nodeId: string): Promise<void> {
    this.evictedNodes.delete(nodeId);
  }
  async servedHashes(): Promise<Map<string, string>> {
    return new Map(this.served);
  }
}

/** No lease by default, so that an eviction is not held back; tests of fencing give one. */
function setup(members: string[], prepareTimeoutMs = 150, timing: Partial<LeaseTiming> = {}) {
  const farm = new FakeFarm();
  const membership = new FarmMembership({ lagCutoffMs: 50, leaseMs: 0, marginMs: 0, renewMs: 10, ...timing }, async () => members);
  const c = new PublishCoordinator(farm, farm, membership, log, { prepareTimeoutMs });
  return { farm, membership, c };
}

async function until(check: () => boolean, ms = 3000): Promise<void> {
  const t0 = Date.now();
  while (!check() && Date.now() - t0 < ms) await sleep(5);
}

describe('two-phase publish coordinator', () => {
  it('commits a farm of one at once, and a node of a farm with no member at once', async () => {
    const solo = setup(['a']);
    assert.deepEqual(await solo.c.prepared('M', 'a', 1, H1), { commit: true });
    const empty = setup([]);
    assert.deepEqual(await empty.c.prepared('M', 'x', 1, H1), { commit: true });
    assert.deepEqual(solo.farm.commits, []);
  });

  it('commits when every member staged the same hash, telling the others on their streams', async () => {
    const { farm, c } = setup(['a', 'b', 'c']);
    assert.deepEqual(await c.prepared('M', 'a', 7, H1), { commit: false });
    assert.deepEqual(await c.prepared('M', 'b', 7, H1), { commit: false });
    assert.deepEqual(await c.prepared('M', 'c', 7, H1), { commit: true });
    assert.deepEqual(farm.commits.map((x) => x.node).sort(), ['a', 'b']);
    await sleep(250);
    assert.deepEqual([...farm.evictedNodes], [], 'a committed round leaves no timer behind');
    c.stop();
  });

  it('evicts a member that did not prepare in time and commits the others', async () => {
    const { farm, membership, c } = setup(['a', 'b', 'c']);
    const started = Date.now();
    await c.prepared('M', 'a', 7, H1);
    await c.prepared('M', 'b', 7, H1);
    await until(() => farm.commits.length >= 2);
    assert.ok(Date.now() - started >= 140, 'not before the timeout');
    assert.deepEqual([...farm.evictedNodes], ['c']);
    assert.deepEqual([...membership.members('M')].sort(), ['a', 'b']);
    assert.deepEqual(farm.commits.map((x) => [x.node, x.refStateHash]).sort(), [['a', H1], ['b', H1]]);
    farm.commits = [];
    assert.deepEqual(await c.prepared('M', 'a', 8, H2), { commit: false });
    assert.deepEqual(await c.prepared('M', 'b', 8, H2), { commit: true }, 'the evicted node is not waited for any more');
    assert.deepEqual((await c.renew('M', 'c')).member, false, 'and it learns so when it renews');
    c.stop();
  });

  it('does not evict a laggard before its lease and the balancer margin are over, and gives a lagging member no new lease', async () => {
    const { farm, c } = setup(['a', 'b'], 100, { lagCutoffMs: 30, leaseMs: 250, marginMs: 100 });
    const started = Date.now();
    assert.equal((await c.renew('M', 'b')).leaseMs, 250); // b may serve until about now + 350 ms
    await c.prepared('M', 'a', 7, H1);
    await sleep(60);
    assert.deepEqual(await c.renew('M', 'b'), { member: true, leaseMs: 0, memberCount: 2 }, 'b keeps the round waiting: no new lease');
    const a = await c.renew('M', 'a');
    assert.ok(a.leaseMs > 0, 'a staged it: renewed');
    await until(() => farm.evictedNodes.size > 0);
    assert.ok(Date.now() - started >= 340, `evicted after ${Date.now() - started} ms, not before b's lease and margin ran out`);
    assert.deepEqual(farm.commits, [{ node: 'a', repositoryId: 7, refStateHash: H1 }], 'then a publishes alone');
    assert.deepEqual(await c.prepared('M', 'a', 7, H1), { commit: true }, 'and is told so again when it asks again');
    c.stop();
  });

  it('lets a newer hash supersede a round, and does not evict a member that staged the newer hash', async () => {
    const { farm, c } = setup(['a', 'b']);
    assert.deepEqual(await c.prepared('M', 'a', 3, H1), { commit: false });
    assert.deepEqual(await c.prepared('M', 'b', 3, H2), { commit: false });
    assert.deepEqual(await c.prepared('M', 'a', 3, H2), { commit: true });
    assert.deepEqual(farm.commits, [{ node: 'b', repositoryId: 3, refStateHash: H2 }]);
    farm.commits = [];
    // a staged H3 first and then b stayed behind on nothing newer: b is the laggard of H3, a is never evicted.
    await c.prepared('M', 'b', 4, H1);
    await c.prepared('M', 'a', 4, H3);
    await sleep(300);
    assert.deepEqual([...farm.evictedNodes], ['b']);
    c.stop();
  });

  it('evicts a stuck member although every push supersedes the round before the timeout, and never one that keeps staging', async () => {
    const { farm, c } = setup(['a', 'b', 'c'], 200);
    const t0 = Date.now();
    let evictedAfter = 0;
    for (let i = 0; Date.now() - t0 < 600; i++) {
      const hash = `v1:${i.toString(16).padStart(64, '0')}`;
      await c.prepared('M', 'a', 1, hash);
      await sleep(5);
      await c.prepared('M', 'b', 1, hash); // b a step behind a, every time
      if (!evictedAfter && farm.evictedNodes.size) evictedAfter = Date.now() - t0;
      await sleep(20);
    }
    assert.deepEqual([...farm.evictedNodes], ['c']);
    assert.ok(evictedAfter >= 190 && evictedAfter < 450, `evicted after ${evictedAfter} ms`);
    assert.ok(farm.commits.length > 5, 'a and b publish every push after that');
    c.stop();
  });

  it('commits a waiting round when a member that has not prepared leaves the farm', async () => {
    const { farm, c } = setup(['a', 'b'], 10_000);
    assert.deepEqual(await c.prepared('M', 'a', 5, H1), { commit: false });
    await c.leave('M', 'b');
    assert.deepEqual(farm.commits, [{ node: 'a', repositoryId: 5, refStateHash: H1 }]);
    c.stop();
  });

  it('lets a follower publish only what the farm agreed on, and tells it when the farm commits what it staged', async () => {
    const { farm, c } = setup(['a', 'b'], 10_000);
    // Nothing committed since start: what every member reports serving is the agreed state.
    farm.served = new Map([['a', H1], ['b', H1]]);
    assert.deepEqual(await c.prepared('M', 'new', 9, H1), { commit: true });
    assert.deepEqual(await c.prepared('M', 'new', 9, H2), { commit: false }, 'ahead of the farm: wait');
    await c.prepared('M', 'a', 9, H2);
    assert.deepEqual(await c.prepared('M', 'b', 9, H2), { commit: true });
    assert.deepEqual(farm.commits.map((x) => x.node).sort(), ['a', 'new']);
    assert.deepEqual(await c.prepared('M', 'late', 9, H2), { commit: true }, 'the last committed hash');
    c.stop();
  });

  it('counts what a follower staged before any member did once it joins (regression: it was evicted for a round it had staged)', async () => {
    const { farm, c } = setup(['a'], 150);
    farm.served = new Map([['a', H1]]);
    assert.deepEqual(await c.prepared('M', 'x', 5, H2), { commit: false }, 'ahead of the farm: wait');
    assert.deepEqual(await c.join('M', 'x'), { member: true });
    assert.deepEqual(await c.prepared('M', 'a', 5, H2), { commit: true }, 'both members have staged H2');
    assert.deepEqual(farm.commits.map((x) => [x.node, x.refStateHash]), [['x', H2]], 'the joined node is told to publish');
    await sleep(250);
    assert.deepEqual([...farm.evictedNodes], []);
    c.stop();
  });

  it('tells a node that published alone to stage again once others joined, then admits it', async () => {
    const { membership, c } = setup([], 10_000);
    assert.deepEqual(await c.prepared('M', 'x', 1, H1), { commit: true });
    assert.deepEqual(await c.prepared('M', 'y', 1, H2), { commit: true });
    assert.deepEqual(await c.join('M', 'x'), { member: true }, 'the first member defines the farm');
    assert.deepEqual(await c.join('M', 'y'), { member: false, resync: true });
    assert.deepEqual(await c.prepared('M', 'y', 1, H2), { commit: false }, 'now a follower');
    assert.deepEqual(await c.join('M', 'y'), { member: true });
    assert.deepEqual([...membership.members('M')].sort(), ['x', 'y']);
    c.stop();
  });

  it('lets a member publish at once what every other member already serves, and evicts nobody for it', async () => {
    // A node that restaged everything before joining stages the state the others published long ago; they have
    // nothing left to stage, so a round for it would wait on them until the timeout and evict them.
    const { farm, membership, c } = setup(['a', 'b', 'c'], 100);
    farm.served = new Map([['a', H1], ['b', H1]]);
    assert.deepEqual(await c.prepared('M', 'c', 4, H1), { commit: true });
    assert.deepEqual(await c.prepared('M', 'a', 4, H2), { commit: false }, 'a state the others do not serve waits');
    await c.prepared('M', 'b', 4, H2);
    assert.deepEqual(await c.prepared('M', 'c', 4, H2), { commit: true });
    await sleep(200);
    assert.deepEqual([...farm.evictedNodes], []);
    assert.deepEqual([...membership.members('M')].sort(), ['a', 'b', 'c']);
    c.stop();
  });

  it('gives a lone member the long lease and members of a farm the short one', async () => {
    const { c, membership } = setup([], 10_000, { leaseMs: 100 });
    await c.join('M', 'a');
    assert.ok(membership.grant('M', 'a').leaseMs >= 10 * 60_000);
    await c.join('M', 'b');
    assert.deepEqual(membership.grant('M', 'a'), { leaseMs: 100, memberCount: 2 });
    c.stop();
  });
});
