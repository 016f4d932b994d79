// Git clients that nobody in this project wrote (pygit2/libgit2, JGit/JSch, Dulwich, isomorphic-git), run as
// child processes against a primary and a mirror: one fixture with both, each client's program under
// test/clients/, and the checks that a client is installed. A missing client fails its test with the Debian
// package to install; it is never skipped.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addSshKey, createProject, createRepo, createUser, grantRepo } from './fixtures.js';
import { authorizeMirror, waitForSameRefs, waitForState } from './mirror.js';
import { run, type RunResult } from './run.js';
import { ADMIN, api, gitOk, makeWorkTree, ROOT, SSH_FRONTEND, sshKeyPair, startMirror, startServer, type Credentials, type SshKeyPair, type TestServer } from './server.js';
import { tempDir } from './tmp.js';

export const CLIENTS = join(ROOT, 'test', 'clients');
/** Debian's Python, where python3-pygit2 and python3-dulwich install (a pyenv or venv python lacks them). */
export const DEBIAN_PYTHON = '/usr/bin/python3';
const JAVA_DIR = '/usr/share/java';
/** JGit 4.x and what it needs at run time, with the Debian package of each jar. */
const JGIT_JARS: Array<[string, string]> = [
  ['org.eclipse.jgit.jar', 'libjgit-java'],
  ['jsch.jar', 'libjsch-java'],
  ['jzlib.jar', 'libjzlib-java'],
  ['javaewah.jar', 'libjavaewah-java'],
  ['slf4j-api.jar', 'libslf4j-java'],
  ['slf4j-nop.jar', 'libslf4j-java'],
];

export const FILE_CONTENT = 'hello from mirrorfarm\n';

export interface ClientFixture {
  primary: TestServer;
  mirror: TestServer;
  /** May read CLI/tools; has an ed25519 key (OpenSSH format) and an ECDSA P-256 key (PEM, for JSch 0.1.54). */
  alice: Credentials;
  ed25519: SshKeyPair;
  ecdsaPem: SshKeyPair;
  /** The commit the primary's main (and HEAD) points at, with README.md = FILE_CONTENT. */
  head: string;
  /** Both servers, for tests that run the same client against each. */
  servers(): Array<[string, TestServer]>;
}

/** A primary with CLI/tools (one commit), a mirror of all projects, in sync; alice may read and has SSH keys. */
export async function startClientFixture(): Promise<ClientFixture> {
  const primary = await startServer();
  await createProject(primary, 'CLI');
  await createRepo(primary, 'CLI', 'tools');
  const alice = await createUser(primary, 'alice');
  await grantRepo(primary, 'CLI', 'tools', 'alice', 'REPO_READ');
  const ed25519 = await sshKeyPair('alice');
  const ecdsaPem = await pemEcdsaKeyPair('alice-jsch');
  await addSshKey(primary, 'alice', ed25519.publicKey);
  await addSshKey(primary, 'alice', ecdsaPem.publicKey);
  const work = await makeWorkTree([{ 'README.md': FILE_CONTENT }]);
  await gitOk(primary, ['push', primary.httpUrl('CLI', 'tools'), 'main'], { creds: ADMIN, cwd: work });
  const head = (await gitOk(null, ['rev-parse', 'HEAD'], { cwd: work })).trim();
  const mirror = await startMirror(primary);
  await authorizeMirror(primary, mirror, 'ALL');
  await waitForState(mirror, 'SYNCHRONIZED');
  await waitForSameRefs(primary, mirror, 'CLI', 'tools', alice);
  return {
    primary,
    mirror,
    alice,
    ed25519,
    ecdsaPem,
    head,
    servers: () => [
      ['primary', primary],
      ['mirror', mirror],
    ],
  };
}

/** An ECDSA P-256 key pair with the private key in PEM ("BEGIN EC PRIVATE KEY"), the format JSch 0.1.54 reads. */
async function pemEcdsaKeyPair(comment: string): Promise<SshKeyPair> {
  const privateKey = join(tempDir('mf-key-'), 'id_ecdsa');
  const r = await run('ssh-keygen', ['-q', '-t', 'ecdsa', '-b', '256', '-m', 'PEM', '-N', '', '-C', comment, '-f', privateKey]);
  if (r.code !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
  return { privateKey, publicKey: readFileSync(`${privateKey}.pub`, 'utf8').trim() };
}

/** The server's own public host keys, read from its home: what a user would pin after checking fingerprints. */
export function hostPublicKeys(server: TestServer): string[] {
  const dir = join(server.home, 'ssh');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.pub'))
    .map((f) => readFileSync(join(dir, f), 'utf8').trim().split(/\s+/).slice(0, 2).join(' '));
}

/** A known_hosts file pinning the server's host keys for 127.0.0.1 on its SSH port. */
export function knownHostsFile(server: TestServer, dir = tempDir('mf-kh-')): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'known_hosts');
  writeFileSync(file, hostPublicKeys(server).map((k) => `[127.0.0.1]:${server.sshPort} ${k}\n`).join(''));
  return file;
}

/** A complete environment for a client process: nothing inherited from the machine but PATH. */
export function clientEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: tempDir('mf-client-home-'), LC_ALL: 'C.UTF-8', ...extra };
}

/** HTTPS credentials for the client programs, which read them from the environment (never argv). */
export function credentialEnv(creds: Credentials): Record<string, string> {
  return { MF_GIT_USER: creds.user, MF_GIT_PASSWORD: creds.secret };
}

async function requireWorks(what: string, command: string, args: string[], debianPackage: string): Promise<void> {
  let r: RunResult;
  try {
    r = await run(command, args, { env: clientEnv(), timeoutMs: 30_000 });
  } catch (err) {
    throw new Error(`${what} is not installed (${(err as Error).message}): install the Debian package ${debianPackage} (apt-get install ${debianPackage}).`);
  }
  if (r.code !== 0) throw new Error(`${what} is not installed (${command} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}): install the Debian package ${debianPackage} (apt-get install ${debianPackage}).`);
}

export function requirePygit2(): Promise<void> {
  return requireWorks('pygit2', DEBIAN_PYTHON, ['-c', 'import pygit2'], 'python3-pygit2');
}

export function requireDulwich(): Promise<void> {
  return requireWorks('Dulwich', DEBIAN_PYTHON, ['-c', 'import dulwich.porcelain'], 'python3-dulwich');
}

/** Java and JGit's jars; returns the class path for test/clients/JGitClone.java. */
export async function requireJgit(): Promise<string> {
  await requireWorks('Java', 'java', ['-version'], 'default-jre-headless');
  const missing = JGIT_JARS.filter(([jar]) => !existsSync(join(JAVA_DIR, jar)));
  if (missing.length) {
    const packages = [...new Set(missing.map(([, pkg]) => pkg))].join(' ');
    throw new Error(`JGit's jars are missing (${missing.map(([jar]) => join(JAVA_DIR, jar)).join(', ')}): install the Debian packages ${packages} (apt-get install ${packages}).`);
  }
  return JGIT_JARS.map(([jar]) => join(JAVA_DIR, jar)).join(':');
}

/** Runs a client program; fails the test with its output (and the server's) unless it exits 0. */
export async function runClient(server: TestServer, command: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const r = await run(command, args, { env, timeoutMs: 120_000 });
  assert.equal(r.code, 0, `${command} ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}\n--- server output ---\n${server.output().slice(-3000)}`);
  return r.stdout;
}

/** The sum of a Prometheus counter's samples whose labels include `labels`, from the server's /metrics. */
export async function metricValue(server: TestServer, name: string, labels: Record<string, string> = {}): Promise<number> {
  const r = await api(server, 'GET', '/metrics', undefined, null);
  assert.equal(r.status, 200, r.text);
  let total = 0;
  for (const line of r.text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/**
 * Runs `action` and returns how many SSH key exchanges with exactly these algorithms the server counted
 * meanwhile; undefined with the OpenSSH front end, where sshd does not report what it negotiated.
 */
export async function handshakesDuring(server: TestServer, algorithms: Record<string, string>, action: () => Promise<unknown>): Promise<number | undefined> {
  if (SSH_FRONTEND === 'openssh') {
    await action();
    return undefined;
  }
  const before = await metricValue(server, 'mirrorfarm_ssh_handshakes_total', algorithms);
  await action();
  return (await metricValue(server, 'mirrorfarm_ssh_handshakes_total', algorithms)) - before;
}
