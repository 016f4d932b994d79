// Git over HTTPS with clients that nobody in this project wrote, against a primary and a mirror (where the
// mirror checks the user's primary password through the primary): pygit2 (libgit2 with OpenSSL), JGit 4.11
// (the JDK's HTTP client and trust store), Dulwich (urllib3) and isomorphic-git (Node). Each trusts only the
// test CA, given the way that client takes it, and each clone is checked for content and HEAD commit.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CLIENTS,
  clientEnv,
  credentialEnv,
  DEBIAN_PYTHON,
  FILE_CONTENT,
  requireDulwich,
  requireJgit,
  requirePygit2,
  runClient,
  startClientFixture,
  type ClientFixture,
} from '../helpers/clients.js';
import { run } from '../helpers/run.js';
import { gitOk, type TestServer } from '../helpers/server.js';
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

const servers = ['primary', 'mirror'] as const;
const serverOf = (which: (typeof servers)[number]): TestServer => (which === 'primary' ? f.primary : f.mirror);
/** The clone URL without credentials: every client here takes them separately. */
const httpsUrl = (server: TestServer) => server.httpUrl('CLI', 'tools');

async function assertCloned(dir: string, reportedHead: string): Promise<void> {
  assert.equal(readFileSync(join(dir, 'README.md'), 'utf8'), FILE_CONTENT);
  assert.equal(reportedHead, f.head);
  assert.equal((await gitOk(null, ['rev-parse', 'HEAD'], { cwd: dir })).trim(), f.head, 'the clone checked out the primary\'s HEAD');
}

describe('pygit2 (libgit2 1.5) over HTTPS', () => {
  for (const which of servers) {
    it(`clones from the ${which} with a password, trusting the test CA`, async () => {
      await requirePygit2();
      const server = serverOf(which);
      // libgit2 1.5 matches the certificate's DNS names only, not its IP address entry: use "localhost".
      const url = httpsUrl(server).replace('//127.0.0.1:', '//localhost:');
      const dest = join(tempDir(), 'clone');
      const out = await runClient(server, DEBIAN_PYTHON, [join(CLIENTS, 'pygit2_clone.py'), url, dest], clientEnv({ MF_CA_FILE: server.ca.caCert, ...credentialEnv(f.alice) }));
      const result = JSON.parse(out) as { head: string; verified: boolean };
      assert.equal(result.verified, true, 'libgit2 verified the certificate');
      await assertCloned(dest, result.head);
    });
  }

  it('refuses a server whose certificate it cannot verify', async () => {
    await requirePygit2();
    const url = httpsUrl(f.primary).replace('//127.0.0.1:', '//localhost:');
    const r = await run(DEBIAN_PYTHON, [join(CLIENTS, 'pygit2_clone.py'), url, join(tempDir(), 'clone')], { env: clientEnv(credentialEnv(f.alice)) });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /certificate/);
  });
});

describe('JGit 4.11 over HTTPS', () => {
  let trustStore: string | undefined;
  /** A PKCS12 trust store with only the test CA, made with keytool as a Java user would. */
  async function makeTrustStore(): Promise<string> {
    trustStore ??= await (async () => {
      const file = join(tempDir('mf-truststore-'), 'truststore.p12');
      const r = await run('keytool', ['-importcert', '-noprompt', '-alias', 'mirrorfarm-test-ca', '-file', f.primary.ca.caCert, '-keystore', file, '-storetype', 'PKCS12', '-storepass', 'changeit'], { env: clientEnv() });
      assert.equal(r.code, 0, r.stderr);
      return file;
    })();
    return trustStore;
  }

  for (const which of servers) {
    it(`clones from the ${which} with a password, trusting a PKCS12 trust store with the test CA`, async () => {
      const classPath = await requireJgit(); // checks java, and with it keytool (both in default-jre-headless)
      const server = serverOf(which);
      const trustStore = await makeTrustStore();
      const env = clientEnv(credentialEnv(f.alice));
      const dest = join(tempDir(), 'clone');
      const java = [`-Duser.home=${env.HOME}`, `-Djavax.net.ssl.trustStore=${trustStore}`, '-Djavax.net.ssl.trustStoreType=PKCS12', '-Djavax.net.ssl.trustStorePassword=changeit'];
      const out = await runClient(server, 'java', [...java, '-cp', classPath, join(CLIENTS, 'JGitClone.java'), httpsUrl(server), dest], env);
      await assertCloned(dest, out.trim());
    });
  }
});

describe('Dulwich 0.21 over HTTPS', () => {
  for (const which of servers) {
    it(`clones from the ${which} with a password, trusting the test CA`, async () => {
      await requireDulwich();
      const server = serverOf(which);
      const dest = join(tempDir(), 'clone');
      const out = await runClient(server, DEBIAN_PYTHON, [join(CLIENTS, 'dulwich_clone.py'), httpsUrl(server), dest], clientEnv({ MF_CA_FILE: server.ca.caCert, ...credentialEnv(f.alice) }));
      await assertCloned(dest, (JSON.parse(out) as { head: string }).head);
    });
  }
});

describe('isomorphic-git over HTTPS', () => {
  for (const which of servers) {
    it(`clones from the ${which} with a password, trusting the test CA through NODE_EXTRA_CA_CERTS`, async () => {
      const server = serverOf(which);
      const dest = join(tempDir(), 'clone');
      const out = await runClient(server, process.execPath, [join(CLIENTS, 'isomorphic-git-clone.mjs'), httpsUrl(server), dest], clientEnv({ NODE_EXTRA_CA_CERTS: server.ca.caCert, ...credentialEnv(f.alice) }));
      await assertCloned(dest, (JSON.parse(out) as { head: string }).head);
    });
  }
});
