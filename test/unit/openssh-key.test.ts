// Keys as Helm's genPrivateKey writes them (PKCS#8 PEM ed25519, SEC1 PEM ECDSA P-256): the chart generates the
// farm's mirror key and host keys that way, so the mirror and the SSH server must read them as they are.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadMirrorKey, mirrorIdFor } from '../../src/auth/mirror-token.js';
import { loadSharedHostKeys } from '../../src/transport/ssh/host-keys.js';
import { readableSshPrivateKey } from '../../src/util/openssh-key.js';
import { tempDir } from '../helpers/tmp.js';

function pkcs8Ed25519(): { pem: string; rawPublic: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { pem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), rawPublic: Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url') };
}

const sshPublicOf = (raw: Buffer) => {
  const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  return `ssh-ed25519 ${Buffer.concat([str(Buffer.from('ssh-ed25519')), str(raw)]).toString('base64')}`;
};

describe('PKCS#8 PEM private keys (what Helm generates)', () => {
  it('a PKCS#8 ed25519 mirror key loads, with the public key and mirror id of that key', () => {
    for (let i = 0; i < 50; i++) {
      const { pem, rawPublic } = pkcs8Ed25519();
      const key = loadMirrorKey(pem);
      assert.equal(key.publicKey, sshPublicOf(rawPublic));
      assert.equal(mirrorIdFor(key.publicKey), mirrorIdFor(sshPublicOf(rawPublic)));
      assert.match(key.privateKeyOpenSsh, /^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
    }
  });

  it("the rewritten key is one OpenSSH's ssh-keygen reads, with the same public key", () => {
    const dir = tempDir();
    const { pem, rawPublic } = pkcs8Ed25519();
    const file = join(dir, 'id_ed25519');
    writeFileSync(file, readableSshPrivateKey(pem), { mode: 0o600 });
    const printed = execFileSync('ssh-keygen', ['-y', '-f', file], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    assert.equal(printed.trim().split(' ').slice(0, 2).join(' '), sshPublicOf(rawPublic));
  });

  it('a shared host key dir with PKCS#8 ed25519 and PEM ECDSA keys serves both', async () => {
    const dir = tempDir();
    const { pem, rawPublic } = pkcs8Ed25519();
    writeFileSync(join(dir, 'ssh_host_ed25519_key'), pem, { mode: 0o600 });
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'sec1' }).toString();
    writeFileSync(join(dir, 'ssh_host_ecdsa_key'), ec, { mode: 0o600 });
    const keys = await loadSharedHostKeys(dir);
    assert.deepEqual(keys.map((k) => k.type), ['ssh-ed25519', 'ecdsa-sha2-nistp256']);
    assert.equal(keys[0]!.publicKey, sshPublicOf(rawPublic));
  });

  it('other text is left as it is, so a key ssh2 cannot read is still refused with the old message', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    assert.equal(readableSshPrivateKey(rsa), rsa);
    assert.throws(() => loadMirrorKey(rsa), /must be an unencrypted ed25519 private key/);
  });
});
