import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SignJWT } from 'jose';
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

  it('refuse a token whose lifetime exceeds 60 s (regression: exp a day ahead was accepted)', async () => {
    const guard = new ReplayGuard();
    const now = Math.floor(Date.now() / 1000);
    const sign = (iat: number, exp: number) =>
      new SignJWT({ node: 'n' })
        .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
        .setIssuer(mirrorIdFor(key.publicKey))
        .setAudience(AUD)
        .setIssuedAt(iat)
        .setExpirationTime(exp)
        .setJti(crypto.randomUUID())
        .sign(key.privateKey);
    assert.match(await codeOf(verifyMirrorToken(await sign(now, now + 86_400), key.publicKey, AUD, guard)), /MIRROR_TOKEN_INVALID: .*lifetime \(exp - iat\) is 86400 s, more than the 60 s allowed/);
    assert.match(await codeOf(verifyMirrorToken(await sign(now, now + 61), key.publicKey, AUD, guard)), /MIRROR_TOKEN_INVALID: .*lifetime .* is 61 s/);
    assert.match(await codeOf(verifyMirrorToken(await sign(now - 20, now + 50), key.publicKey, AUD, guard)), /MIRROR_TOKEN_INVALID: .*lifetime .* is 70 s/);
    assert.equal(await codeOf(verifyMirrorToken(await sign(now, now + 60), key.publicKey, AUD, guard)), 'ok', 'the documented 60 s');
    assert.equal(await codeOf(verifyMirrorToken(await sign(now + 20, now + 80), key.publicKey, AUD, guard)), 'ok', 'a clock 20 s ahead, within the skew allowance');
  });
});
