// SSH key pairs from ssh2, checked. ssh2 1.17's ed25519 generator drops a leading zero byte of the public key
// in about one key in 200, and no parser reads the result; such a pair is discarded and generated again.
import ssh2 from 'ssh2';

type KeyType = 'ed25519' | 'ecdsa';

export function generateKeyPair(type: KeyType, options?: { bits?: number }): { private: string; public: string } {
  for (let attempt = 1; ; attempt++) {
    const pair = options ? ssh2.utils.generateKeyPairSync(type as 'ecdsa', options as { bits: 256 }) : ssh2.utils.generateKeyPairSync(type as 'ed25519');
    const parsedPrivate = ssh2.utils.parseKey(pair.private);
    const parsedPublic = ssh2.utils.parseKey(pair.public);
    if (!(parsedPrivate instanceof Error) && !(parsedPublic instanceof Error)) return pair;
    if (attempt >= 10) throw new Error(`could not generate a readable ${type} key pair`);
  }
}
