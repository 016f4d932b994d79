import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generateMirrorKey, loadMirrorKey, mirrorIdFor, ReplayGuard, signMirrorToken, verifyMirrorToken } from '../../src/auth/mirror-token.js';

const AUD = 'https://primary.example.com';
const key = loadMirrorKey(generateMirrorKey().privateKeyOpenSsh);
const other = loadMirrorKey(generateMirrorKey().privateKeyOpenSsh);

const codeOf = async (p: Promise<unknown>) => {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return `${(err as { code: string }).code}: ${(err as Error).message}`;
  }
};

describe('mirror tokens', () => {
  it('derive a stable id from the public key', () => {
    assert.match(mirrorIdFor(key.publicKey), /^[0-9A-F]{4}(-[0-9A-F]{4}){3}$/);
    assert.equal(mirrorIdFor(key.publicKey), mirrorIdFor(loadMirrorKey(key.privateKeyOpenSsh).publicKey));
    assert.notEqual(mirrorIdFor(key.publicKey), mirrorIdFor(other.publicKey));
  });

  it('verify once, with the right key and audience', async () => {
    const guard = new ReplayGuard();
    const token = await signMirrorToken(key, AUD, 'node-1');
    assert.deepEqual(await verifyMirrorToken(token, key.publicKey, AUD, guard), { mirrorId: mirrorIdFor(key.publicKey), nodeId: 'node-1' });
    assert.match(await codeOf(verifyMirrorToken(token, key.publicKey, AUD, guard)), /MIRROR_TOKEN_INVALID: .*replay/);
  });

  it('refuse forged, misdirected and expired tokens', async () => {
    const guard = new ReplayGuard();
    const forged = await signMirrorToken(other, AUD, 'n');
    assert.match(await codeOf(verifyMirrorToken(forged, key.publicKey, AUD, guard)), /MIRROR_TOKEN_INVALID/);
    const elsewhere = await signMirrorToken(key, 'https://other.example.com', 'n');
    assert.match(await codeOf(verifyMirrorToken(elsewhere, key.publicKey, AUD, guard)), /MIRROR_TOKEN_INVALID: .*"aud"/);
    const old = await signMirrorToken(key, AUD, 'n', Date.now() - 90_000);
    assert.match(await codeOf(verifyMirrorToken(old, key.publicKey, AUD, guard)), /MIRROR_TOKEN_EXPIRED: .*issued (89|90|91) s ago/);
    const tampered = (await signMirrorToken(key, AUD, 'n')).replace(/\.[^.]+\./, (m) => m.slice(0, -3) + 'AA.');
    assert.match(await codeOf(verifyMirrorToken(tampered, key.publicKey, AUD, guard)), /MIRROR_TOKEN_INVALID/);
  });

  it('explain clock skew explicitly', async () => {
    const guard = new ReplayGuard();
    const ahead = await signMirrorToken(key, AUD, 'n', Date.now() + 300_000);
    assert.match(await codeOf(verifyMirrorToken(ahead, key.publicKey, AUD, guard)), /MIRROR_CLOCK_SKEW: .*(299|300) s ahead of the primary's.*NTP/);
    const behind = await signMirrorToken(key, AUD, 'n', Date.now() - 300_000);
    assert.match(await codeOf(verifyMirrorToken(behind, key.publicKey, AUD, guard)), /MIRROR_TOKEN_EXPIRED: .*clock is behind the primary's/);
    const slightlyAhead = await signMirrorToken(key, AUD, 'n', Date.now() + 10_000);
    assert.equal(await codeOf(verifyMirrorToken(slightlyAhead, key.publicKey, AUD, guard)), 'ok', 'small skew is tolerated');
  });
});
