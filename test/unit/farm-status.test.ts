// The rules of a farm's identity (who fixes it, who is checked, what a mismatch names) and of the node states and
// roles the primary shows, and the publish-round timing behind the farm metrics, without servers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generateMirrorKey, loadMirrorKey } from '../../src/auth/mirror-token.js';
import { MirrorfarmError } from '../../src/errors.js';
import { checkIdentity, hostKeyFingerprint, initialIdentity, normalizeHostKeys } from '../../src/primary/farm-identity.js';
import { PublishRounds, SLOW_ROUND_MS } from '../../src/primary/metrics.js';
import { nodeRole, nodeState, type NodeFacts } from '../../src/primary/node-status.js';
import type { Mirror } from '../../src/store/tables.js';

const hostKey = () => loadMirrorKey(generateMirrorKey().privateKeyOpenSsh).publicKey;
const [A, B, C] = [hostKey(), hostKey(), hostKey()];
const LB = 'https://farm.example';

function mirror(fixedBy: string, extra: Partial<Mirror> = {}): Mirror {
  const node = { nodeId: fixedBy, baseUrl: LB, sshHostKeys: [A, B], sshUrlBase: { host: 'farm.example', port: 7999 } };
  return {
    id: 'AAAA-BBBB-CCCC-DDDD',
    name: 'farm',
    base_url: LB,
    public_key: 'ssh-ed25519 AAAA',
    fingerprint: 'SHA256:x',
    product_version: '0.1.0',
    state: 'ACTIVE',
    mirroring_mode: 'ALL_PROJECTS',
    created_at: 0,
    updated_at: 0,
    last_seen_at: 0,
    ...initialIdentity(node, 1),
    ...extra,
  };
}

const refusal = (fn: () => unknown): MirrorfarmError => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof MirrorfarmError);
    return err;
  }
  assert.fail('expected a refusal');
};

describe('farm identity', () => {
  it('compares host keys as sets, whatever their order and comments', () => {
    assert.deepEqual(normalizeHostKeys([`${B} node-1`, A, A]), [A, B].sort());
    assert.deepEqual(checkIdentity(mirror('node-0'), { nodeId: 'node-1', baseUrl: LB, sshHostKeys: [B, A] }, true), {});
  });

  it('refuses another node with other host keys, naming both fingerprints, the setting and the reset', () => {
    const err = refusal(() => checkIdentity(mirror('node-0'), { nodeId: 'node-1', baseUrl: LB, sshHostKeys: [C] }, true));
    assert.deepEqual([err.code, err.status], ['MIRROR_HOST_KEY_MISMATCH', 409]);
    for (const fp of [A, B, C].map(hostKeyFingerprint)) assert.ok(err.message.includes(fp), err.message);
    assert.match(err.message, /ssh\.hostKeyDir/);
    assert.match(err.message, /DELETE \/rest\/mirroring\/1\.0\/mirrorServers\/AAAA-BBBB-CCCC-DDDD\/farmIdentity/);
    assert.match(refusal(() => checkIdentity(mirror('node-0'), { nodeId: 'node-1', baseUrl: LB, sshHostKeys: [] }, true)).message, /none \(its SSH server is disabled\)/);
  });

  it('refuses another node with another baseUrl or SSH URL', () => {
    const url = refusal(() => checkIdentity(mirror('node-0'), { nodeId: 'node-1', baseUrl: 'https://node-1.internal:7990' }, true));
    assert.equal(url.code, 'MIRROR_BASE_URL_MISMATCH');
    assert.ok(url.message.includes('https://node-1.internal:7990') && url.message.includes(LB), url.message);
    const ssh = refusal(() => checkIdentity(mirror('node-0'), { nodeId: 'node-1', baseUrl: LB, sshUrlBase: { host: 'farm.example', port: 30022 } }, true));
    assert.equal(ssh.code, 'MIRROR_SSH_URL_MISMATCH');
    assert.match(ssh.message, /ssh:\/\/git@farm\.example:30022.*ssh:\/\/git@farm\.example:7999/);
    assert.match(ssh.message, /ssh\.publicPort/);
  });

  it('lets the node that fixed the identity change it while no other node is in contact (a single mirror moving), never while one is', () => {
    const moved = { nodeId: 'node-0', baseUrl: 'https://new.example', sshHostKeys: [C] };
    const update = checkIdentity(mirror('node-0'), moved, false, 5);
    assert.deepEqual(update, { base_url: 'https://new.example', ssh_host_keys: JSON.stringify([C]), identity_fixed_at: 5, identity_node_id: 'node-0' });
    assert.equal(refusal(() => checkIdentity(mirror('node-0'), moved, true)).code, 'MIRROR_BASE_URL_MISMATCH');
    assert.equal(refusal(() => checkIdentity(mirror('node-0'), { ...moved, nodeId: 'node-1' }, false)).code, 'MIRROR_BASE_URL_MISMATCH');
  });

  it('after a reset, the next node fixes everything; an older node that tells nothing is not checked on what it did not tell', () => {
    const open = mirror('node-0', { ssh_host_keys: null, ssh_url_base: null, identity_fixed_at: null, identity_node_id: null });
    assert.deepEqual(checkIdentity(open, { nodeId: 'node-7', baseUrl: LB, sshHostKeys: [C] }, true, 9), { base_url: LB, ssh_host_keys: JSON.stringify([C]), identity_fixed_at: 9, identity_node_id: 'node-7' });
    assert.deepEqual(checkIdentity(mirror('node-0'), { nodeId: 'node-1', baseUrl: LB }, true), {});
    const unknownKeys = mirror('node-0', { ssh_host_keys: null });
    assert.deepEqual(checkIdentity(unknownKeys, { nodeId: 'node-1', baseUrl: LB, sshHostKeys: [A] }, true), { ssh_host_keys: JSON.stringify([A]) });
  });
});

describe('node state and role', () => {
  const now = 1_000_000;
  const facts = (f: Partial<NodeFacts>): NodeFacts => ({ lastSeenAt: now - 1000, evicted: false, member: true, reportedState: 'SYNCHRONIZED', failing: 0, ...f });
  const offline = 30_000;

  it('derives SYNCHRONIZED, SYNCHRONIZING, OUT_OF_SYNC, EVICTED and OFFLINE, in that precedence', () => {
    assert.equal(nodeState(facts({}), offline, now), 'SYNCHRONIZED');
    assert.equal(nodeState(facts({ reportedState: 'READY' }), offline, now), 'SYNCHRONIZED');
    for (const reported of ['SYNCHRONIZING', 'INITIALIZING', undefined]) assert.equal(nodeState(facts({ reportedState: reported }), offline, now), 'SYNCHRONIZING');
    assert.equal(nodeState(facts({ reportedState: 'ERROR' }), offline, now), 'OUT_OF_SYNC');
    assert.equal(nodeState(facts({ failing: 2 }), offline, now), 'OUT_OF_SYNC');
    assert.equal(nodeState(facts({ evicted: true, failing: 2 }), offline, now), 'EVICTED');
    assert.equal(nodeState(facts({ evicted: true, lastSeenAt: now - offline - 1 }), offline, now), 'OFFLINE');
    assert.equal(nodeState(facts({ lastSeenAt: now - offline }), offline, now), 'SYNCHRONIZED', 'exactly at the limit is still in contact');
  });

  it('is ACTIVE with a stream, STANDBY without, EVICTED when evicted', () => {
    assert.equal(nodeRole({ evicted: false, member: true }), 'ACTIVE');
    assert.equal(nodeRole({ evicted: false, member: false }), 'STANDBY');
    assert.equal(nodeRole({ evicted: true, member: true }), 'EVICTED');
  });
});

describe('publish rounds', () => {
  it('times a round from the first prepared to the commit, counts it as waiting once slow, and ignores an already agreed hash', () => {
    const rounds = new PublishRounds();
    rounds.prepared('M', 1, 'h1', 1000);
    rounds.prepared('M', 1, 'h2', 1200); // superseded by a newer push: still the same round
    rounds.prepared('N', 1, 'h1', 1000);
    assert.deepEqual([...rounds.waiting(1000 + SLOW_ROUND_MS)], [], 'not slow yet');
    assert.deepEqual([...rounds.waiting(1001 + SLOW_ROUND_MS)], [['M', 1], ['N', 1]]);
    assert.equal(rounds.committed('M', 1, 1500), 0.5);
    assert.equal(rounds.committed('M', 1, 1600), undefined, 'one observation per round');
    rounds.prepared('M', 2, 'h3', 2000);
    rounds.settled('M', 2, 'h3');
    assert.equal(rounds.committed('M', 2, 2100), undefined, 'a hash the farm had agreed on opens no round');
    rounds.forget('N');
    assert.deepEqual([...rounds.waiting(10_000)], []);
  });
});
