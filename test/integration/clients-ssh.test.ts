// Git over SSH with clients that do not use OpenSSH's cryptography, against a primary and a mirror: pygit2
// (libgit2 + libssh2 1.10, which has no AES-GCM, chacha20 or ETM MACs) and JGit 4.11 (JSch 0.1.54, which has
// no curve25519, ed25519, GCM or chacha20), plus Dulwich (its own git protocol over OpenSSH). Each clone pins
// the server's host key and checks the content and HEAD commit; the server's handshake metric shows which
// algorithms each client landed on. Then what is not offered: weak ciphers, key exchanges, MACs and host key
// types are refused by name, and OpenSSH still gets an AEAD cipher.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CLIENTS,
  clientEnv,
  DEBIAN_PYTHON,
  FILE_CONTENT,
  handshakesDuring,
  knownHostsFile,
  metricValue,
  requireDulwich,
  requireJgit,
  requirePygit2,
  runClient,
  startClientFixture,
  type ClientFixture,
} from '../helpers/clients.js';
import { run } from '../helpers/run.js';
import { MIRROR_FETCH_CIPHERS } from '../../src/transport/ssh/algorithms.js';
import { gitOk, SSH_FRONTEND, type TestServer } from '../helpers/server.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

let f: ClientFixture;

before(async () => {
  f = await startClientFixture();
});

after(async () => {
  await f?.mirror.stop();
  await f?.primary.stop();
  removeTempDirs();
});

const sshUrl = (server: TestServer) => server.sshUrl('CLI', 'tools');

async function assertCloned(dir: string, reportedHead: string): Promise<void> {
  assert.equal(readFileSync(join(dir, 'README.md'), 'utf8'), FILE_CONTENT);
  assert.equal(reportedHead, f.head);
  assert.equal((await gitOk(null, ['rev-parse', 'HEAD'], { cwd: dir })).trim(), f.head, 'the clone checked out the primary\'s HEAD');
}

describe('pygit2 (libgit2 1.5, libssh2 1.10) over SSH', () => {
  for (const which of ['primary', 'mirror'] as const) {
    it(`clones from the ${which} with an ed25519 key, host key pinned in known_hosts, over AES-CTR + HMAC-SHA2-256`, async () => {
      await requirePygit2();
      const server = which === 'primary' ? f.primary : f.mirror;
      const env = clientEnv();
      // libgit2 reads $HOME/.ssh/known_hosts itself and reports whether the host key matched.
      knownHostsFile(server, join(env.HOME!, '.ssh'));
      const dest = join(tempDir(), 'clone');
      let out = '';
      const count = await handshakesDuring(server, { kex: 'curve25519-sha256', cipher: 'aes128-ctr', mac: 'hmac-sha2-256' }, async () => {
        out = await runClient(server, DEBIAN_PYTHON, [join(CLIENTS, 'pygit2_clone.py'), sshUrl(server), dest, f.ed25519.privateKey], env);
      });
      const result = JSON.parse(out) as { head: string; verified: boolean; libgit2: string };
      assert.equal(result.verified, true, 'libgit2 verified the host key against known_hosts');
      await assertCloned(dest, result.head);
      assert.ok(count === undefined || count >= 1, `libssh2 negotiated curve25519-sha256, aes128-ctr and hmac-sha2-256 (${count} handshakes)`);
    });
  }

  it('refuses to clone when the host key is not the pinned one', async () => {
    await requirePygit2();
    const env = clientEnv();
    // The mirror's host keys, pinned for the primary's address: a server with another key.
    knownHostsFile({ ...f.mirror, sshPort: f.primary.sshPort }, join(env.HOME!, '.ssh'));
    const r = await run(DEBIAN_PYTHON, [join(CLIENTS, 'pygit2_clone.py'), sshUrl(f.primary), join(tempDir(), 'clone'), f.ed25519.privateKey], { env });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /certificate|hostkey/i);
  });
});

describe('JGit 4.11 (JSch 0.1.54) over SSH', () => {
  for (const which of ['primary', 'mirror'] as const) {
    it(`clones from the ${which} with an ECDSA key, host key pinned, over ECDH P-256 + ECDSA + AES-CTR + HMAC-SHA2-256`, async () => {
      const classPath = await requireJgit();
      const server = which === 'primary' ? f.primary : f.mirror;
      const env = clientEnv();
      const knownHosts = knownHostsFile(server);
      const dest = join(tempDir(), 'clone');
      let out = '';
      const algorithms = { kex: 'ecdh-sha2-nistp256', host_key: 'ecdsa-sha2-nistp256', cipher: 'aes128-ctr', mac: 'hmac-sha2-256' };
      const count = await handshakesDuring(server, algorithms, async () => {
        out = await runClient(server, 'java', [`-Duser.home=${env.HOME}`, '-cp', classPath, join(CLIENTS, 'JGitClone.java'), sshUrl(server), dest, f.ecdsaPem.privateKey, knownHosts], env);
      });
      await assertCloned(dest, out.trim());
      assert.ok(count === undefined || count >= 1, `JSch negotiated ${JSON.stringify(algorithms)} (${count} handshakes)`);
    });
  }

  it('refuses to clone when the host key is not the pinned one', async () => {
    const classPath = await requireJgit();
    const env = clientEnv();
    const wrong = knownHostsFile({ ...f.mirror, sshPort: f.primary.sshPort });
    const r = await run('java', [`-Duser.home=${env.HOME}`, '-cp', classPath, join(CLIENTS, 'JGitClone.java'), sshUrl(f.primary), join(tempDir(), 'clone'), f.ecdsaPem.privateKey, wrong], { env });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /HostKey has been changed|reject HostKey/);
  });
});

describe('Dulwich 0.21 over SSH (through OpenSSH, as GIT_SSH_COMMAND says)', () => {
  for (const which of ['primary', 'mirror'] as const) {
    it(`clones from the ${which}`, async () => {
      await requireDulwich();
      const server = which === 'primary' ? f.primary : f.mirror;
      const sshCommand = ['ssh', '-F', '/dev/null', '-i', f.ed25519.privateKey, '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none', '-o', `UserKnownHostsFile=${knownHostsFile(server)}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes'].join(' ');
      const dest = join(tempDir(), 'clone');
      const out = await runClient(server, DEBIAN_PYTHON, [join(CLIENTS, 'dulwich_clone.py'), sshUrl(server), dest], clientEnv({ GIT_SSH_COMMAND: sshCommand }));
      await assertCloned(dest, (JSON.parse(out) as { head: string }).head);
    });
  }
});

describe('SSH algorithms', () => {
  /** OpenSSH, isolated from the machine's config, running git-upload-pack once with the given -o options. */
  function ssh(server: TestServer, options: string[]) {
    const args = [
      '-F', '/dev/null', '-i', f.ed25519.privateKey, '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none', '-o', 'BatchMode=yes',
      '-o', `UserKnownHostsFile=${knownHostsFile(server)}`, '-o', 'StrictHostKeyChecking=yes',
      ...options.flatMap((o) => ['-o', o]),
      '-p', String(server.sshPort), `${server.sshUser}@127.0.0.1`, "git-upload-pack '/cli/tools.git'",
    ];
    return run('ssh', args, { env: clientEnv(), input: '0000', timeoutMs: 30_000 });
  }

  const weak: Array<[string, string[], RegExp]> = [
    ['CBC ciphers', ['Ciphers=aes128-cbc,aes256-cbc,3des-cbc'], /no matching cipher found/],
    ['SHA-1 key exchanges', ['KexAlgorithms=diffie-hellman-group1-sha1,diffie-hellman-group14-sha1,diffie-hellman-group-exchange-sha1'], /no matching key exchange method found/],
    ['SHA-1 and MD5 MACs with CTR', ['Ciphers=aes128-ctr', 'MACs=hmac-sha1,hmac-sha1-etm@openssh.com,hmac-md5'], /no matching MAC found/],
    ['RSA/SHA-1 and DSA host keys', ['HostKeyAlgorithms=ssh-rsa,ssh-dss'], /no matching host key type found/],
  ];
  for (const [which] of [['primary'], ['mirror']] as const) {
    for (const [what, options, message] of weak) {
      it(`the ${which} refuses ${what}, naming what it offers instead`, async () => {
        const server = which === 'primary' ? f.primary : f.mirror;
        const r = await ssh(server, options);
        assert.equal(r.code, 255, r.stderr);
        assert.match(r.stderr, message);
        const offer = /Their offer: (\S+)/.exec(r.stderr)?.[1] ?? '';
        assert.ok(offer, r.stderr);
        assert.doesNotMatch(offer, /cbc|sha1|md5|ssh-rsa|ssh-dss/, `nothing weak in the offer: ${offer}`);
      });
    }

    it(`OpenSSH gets curve25519, ssh-ed25519 and an AEAD cipher from the ${which}`, async () => {
      const server = which === 'primary' ? f.primary : f.mirror;
      const r = await ssh(server, ['LogLevel=DEBUG1']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /kex: algorithm: curve25519-sha256/);
      assert.match(r.stderr, /kex: host key algorithm: ssh-ed25519/);
      assert.match(r.stderr, /kex: server->client cipher: chacha20-poly1305@openssh\.com MAC: <implicit> compression: none/);
      assert.match(r.stderr, /kex: client->server cipher: chacha20-poly1305@openssh\.com MAC: <implicit> compression: none/);
    });
  }

  it('the mirror fetches from the primary over AES-GCM', async () => {
    // What the primary agrees to with the cipher order mirrors ask for, seen by the client, as either front end answers.
    const r = await ssh(f.primary, ['LogLevel=DEBUG1', `Ciphers=${MIRROR_FETCH_CIPHERS.join(',')}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /kex: server->client cipher: aes128-gcm@openssh\.com MAC: <implicit>/);
    assert.match(r.stderr, /kex: client->server cipher: aes128-gcm@openssh\.com MAC: <implicit>/);
    // The built-in server also counts the mirror's own fetch connection by cipher (sshd reports no such figure).
    if (SSH_FRONTEND === 'builtin') {
      const gcm = await metricValue(f.primary, 'mirrorfarm_ssh_handshakes_total', { cipher: 'aes128-gcm@openssh.com' });
      assert.ok(gcm >= 1, `the primary counted ${gcm} AES-GCM handshakes (the mirror's fetch connection)`);
    }
  });
});
