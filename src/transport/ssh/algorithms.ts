// The SSH algorithms the server (primary and mirror alike) offers, and why. The client's preference decides
// among what both sides offer (RFC 4253 7.1: the first algorithm on the client's list that the server also
// has), so this offer is the only lever: it must hold something each supported client speaks, and nothing weak.
//
// What the clients can speak, as read from the libraries themselves (libssh2_session_supported_algs() of
// Debian 12's libssh2 1.10.0, JSch.getConfig() of the jsch.jar that Debian's JGit 4.11 uses, `ssh -Q`):
// - OpenSSH 9: everything below; default order chacha20-poly1305, aes*-ctr, then aes*-gcm.
// - libssh2 1.10 (libgit2, so pygit2 and many IDEs on Debian 12): kex curve25519, ECDH, DH group14/16/18-sha2;
//   host keys ed25519, ECDSA; ciphers aes128/192/256-ctr, then CBC, arcfour and the like; MACs
//   hmac-sha2-256/512 and SHA-1/MD5.
//   AES-GCM and ETM MACs came with libssh2 1.11 (its release notes).
// - JSch 0.1.54 (JGit 4.x: Jenkins, Eclipse): kex ecdh-sha2-nistp256/384/521, diffie-hellman-group-exchange-
//   sha256 and SHA-1 DH; host keys ECDSA, ssh-rsa, ssh-dss; ciphers aes128/192/256-ctr and CBC; MACs
//   hmac-sha2-256 and SHA-1/MD5. No curve25519, ed25519, GCM, chacha20 or hmac-sha2-512.
//
// So every client meets the server on strong algorithms of every kind, with no SHA-1 or CBC anywhere:
//   OpenSSH       curve25519-sha256, ssh-ed25519, chacha20-poly1305 (AEAD, no MAC)
//   libssh2 1.10  curve25519-sha256, ssh-ed25519, aes128-ctr + hmac-sha2-256
//   JSch 0.1.54   ecdh-sha2-nistp256, ecdsa-sha2-nistp256, aes128-ctr + hmac-sha2-256
// (test/integration/clients-ssh.test.ts checks each of these with the real client.)
//
// - kex: curve25519 first; ECDH NIST for JSch; DH group14/16 with SHA-2 for clients with neither. No
//   diffie-hellman-group1-sha1, group14-sha1 or group-exchange-sha1: no supported client needs them.
// - ciphers: AEAD first (chacha20-poly1305, AES-GCM), then AES-CTR for libssh2 1.10 and JSch, which have no AEAD
//   cipher; CTR with an SHA-2 MAC is sound. aes192-ctr adds nothing (both take aes128-ctr). No CBC, 3DES or
//   arcfour. chacha20-poly1305 is there for OpenSSH, whose default order puts AES-CTR before AES-GCM: without
//   chacha20, offering CTR would make OpenSSH pick aes128-ctr + HMAC. GCM measured slightly cheaper (~0.5 s of
//   server CPU per 300 MiB, against 0.54 s for chacha20 and 0.74 s for aes128-ctr + HMAC-SHA2), so the mirror's
//   own fetch client asks for GCM first (src/server/mirror.ts).
// - MACs (used only with CTR): SHA-2 only, ETM forms first for clients that have them (OpenSSH, libssh2 1.11);
//   plain hmac-sha2-256/512 for libssh2 1.10 and JSch 0.1.54. No hmac-sha1, MD5 or 96-bit truncations.
// - host keys: ed25519, then ECDSA P-256 (JSch 0.1.54's only choice without SHA-1; FIPS OpenSSH). No RSA: no
//   supported client needs it, and it would mainly invite ssh-rsa (SHA-1) signatures.
// - compression: none. Git packs are already compressed; zlib would only burn server CPU.
//
// User keys are checked in ssh-server.ts, which refuses SHA-1 RSA signatures (as OpenSSH 8.8+ does). libssh2
// 1.10 and JSch 0.1.54 sign with RSA keys only as ssh-rsa (SHA-1), so their users need an ed25519 key
// (libssh2) or an ECDSA key (JSch, in PEM form: JSch 0.1.54 cannot read the newer OpenSSH key format).
import type ssh2 from 'ssh2';

export const SSH_ALGORITHMS: ssh2.Algorithms = {
  kex: [
    'curve25519-sha256',
    'curve25519-sha256@libssh.org',
    'ecdh-sha2-nistp256',
    'ecdh-sha2-nistp384',
    'ecdh-sha2-nistp521',
    'diffie-hellman-group16-sha512',
    'diffie-hellman-group14-sha256',
  ],
  cipher: ['chacha20-poly1305@openssh.com', 'aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'aes128-ctr', 'aes256-ctr'],
  serverHostKey: ['ssh-ed25519', 'ecdsa-sha2-nistp256'],
  hmac: ['hmac-sha2-256-etm@openssh.com', 'hmac-sha2-512-etm@openssh.com', 'hmac-sha2-256', 'hmac-sha2-512'],
  compress: ['none'],
};

/**
 * The ciphers a mirror asks its primary for when it fetches, in order: AES-GCM first, measured a little cheaper
 * than chacha20-poly1305, which OpenSSH would pick by default; AEAD only, as every mirrorfarm primary offers both.
 */
export const MIRROR_FETCH_CIPHERS = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com'];
