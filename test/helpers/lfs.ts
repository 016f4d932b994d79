// Debian's git-lfs client as a user runs it: a HOME with a ~/.gitconfig that installs the LFS filters (what
// `git lfs install` writes) and a credential helper that answers from the environment, so passwords reach
// git and git-lfs without appearing on argv or in URLs. Every command gets a complete environment.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, type RunResult } from './run.js';
import type { Credentials, SshKeyPair, TestServer } from './server.js';
import { sshCommand } from './server.js';
import { tempDir } from './tmp.js';

export interface LfsUser {
  home: string;
  env: NodeJS.ProcessEnv;
}

export function lfsUser(server: TestServer, creds?: Credentials, sshKey?: SshKeyPair): LfsUser {
  const home = tempDir('mf-lfs-home-');
  writeFileSync(
    join(home, '.gitconfig'),
    [
      '[user]',
      '  name = LFS User',
      '  email = lfs@example.com',
      '[init]',
      '  defaultBranch = main',
      '[filter "lfs"]',
      '  clean = git-lfs clean -- %f',
      '  smudge = git-lfs smudge -- %f',
      '  process = git-lfs filter-process',
      '  required = true',
      '[credential]',
      // The helper prints what the environment holds; nothing secret is in this file or on a command line.
      '  helper = "!f() { test \\"$1\\" = get && echo username=$MF_LFS_USER && echo password=$MF_LFS_PASSWORD; }; f"',
      '[advice]',
      '  detachedHead = false',
      '',
    ].join('\n'),
  );
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    LC_ALL: 'C',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    GIT_SSL_CAINFO: server.ca.caCert,
    GIT_SSH_COMMAND: sshKey ? sshCommand(sshKey) : 'ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR',
    ...(creds ? { MF_LFS_USER: creds.user, MF_LFS_PASSWORD: creds.secret } : {}),
  };
  return { home, env };
}

export function lfsGit(user: LfsUser, args: string[], cwd?: string, extraEnv: Record<string, string> = {}): Promise<RunResult> {
  return run('git', args, { ...(cwd ? { cwd } : {}), env: { ...user.env, ...extraEnv }, timeoutMs: 120_000 });
}

export async function lfsGitOk(user: LfsUser, args: string[], cwd?: string, extraEnv: Record<string, string> = {}): Promise<string> {
  const r = await lfsGit(user, args, cwd, extraEnv);
  if (r.code !== 0) throw new Error(`git ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Random content of `bytes` bytes written to `path`, and its SHA-256 (the LFS oid). */
export function writeRandomFile(path: string, bytes: number): string {
  const data = randomBytes(bytes);
  writeFileSync(path, data);
  return createHash('sha256').update(data).digest('hex');
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Fails with the package to install when Debian's git-lfs is missing. */
export async function requireGitLfs(): Promise<void> {
  const r = await run('git', ['lfs', 'version'], { env: { PATH: process.env.PATH, HOME: tempDir('mf-lfs-check-') } }).catch((err: Error) => ({ code: 1, stdout: '', stderr: err.message }));
  if (r.code !== 0 || !/git-lfs\//.test(r.stdout)) throw new Error(`git-lfs is not installed (${r.stderr.trim()}): install the Debian package git-lfs (apt-get install git-lfs).`);
}
