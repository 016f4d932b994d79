// Bare repositories on disk, named by immutable id (<home>/repos/<id>.git) so renames and moves never touch
// the disk. Owns the private git config and hook scripts every repository shares.
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GitCommand, type GitRunner } from './runner.js';

export const ZERO_OID = '0000000000000000000000000000000000000000';

/** A repository's refs: full ref name -> object id, plus "HEAD" -> "ref: refs/heads/<branch>". */
export type RefState = Map<string, string>;

export interface RepoStoreLayout {
  reposDir: string;
  gitHome: string;
  hooksDir: string;
  hookSocket: string;
}

export function layoutFor(home: string): RepoStoreLayout {
  return {
    reposDir: join(home, 'repos'),
    gitHome: join(home, 'git-home'),
    hooksDir: join(home, 'hooks'),
    hookSocket: join(home, 'run', 'hooks.sock'),
  };
}

export class RepoStore {
  constructor(
    readonly layout: RepoStoreLayout,
    private readonly git: GitRunner,
  ) {}

  pathOf(repositoryId: number): string {
    if (!Number.isSafeInteger(repositoryId) || repositoryId <= 0) throw new Error(`bad repository id ${repositoryId}`);
    return join(this.layout.reposDir, `${repositoryId}.git`);
  }

  /** Writes the git config and hooks every git process of this server uses. Idempotent. */
  async prepare(): Promise<void> {
    await mkdir(this.layout.reposDir, { recursive: true, mode: 0o700 });
    await mkdir(this.layout.gitHome, { recursive: true, mode: 0o700 });
    await mkdir(this.layout.hooksDir, { recursive: true, mode: 0o700 });
    const config = [
      '# Written by mirrorfarm at startup; edits are overwritten.',
      '[core]',
      `\thooksPath = ${this.layout.hooksDir}`,
      '\tfsync = committed',
      '[receive]',
      // Bad objects are refused before they reach the repository.
      '\tfsckObjects = true',
      '\tdenyNonFastForwards = false',
      '\tdenyDeletes = false',
      '\tdenyCurrentBranch = ignore',
      '[uploadpack]',
      // A mirror stages fetched refs under refs/mirrorfarm/ before publishing them; clients never see those.
      '\thideRefs = refs/mirrorfarm/',
      // Partial clones (--filter) and fetching reachable objects by id, as a hosting service allows.
      '\tallowFilter = true',
      '\tallowReachableSHA1InWant = true',
      '\tallowTipSHA1InWant = true',
      '[init]',
      '\tdefaultBranch = main',
      '',
    ].join('\n');
    await writeFile(join(this.layout.gitHome, '.gitconfig'), config, { mode: 0o600 });
    const client = fileURLToPath(new URL('./hook-client.js', import.meta.url));
    for (const hook of ['pre-receive', 'post-receive']) {
      const file = join(this.layout.hooksDir, hook);
      const script = `#!/bin/sh\n# Installed by mirrorfarm: reports ref changes to the server over its local socket.\nexec ${shellQuote(process.execPath)} ${shellQuote(client)} ${hook}\n`;
      await writeFile(file, script, { mode: 0o700 });
      await chmod(file, 0o700);
    }
  }

  exists(repositoryId: number): boolean {
    return existsSync(this.pathOf(repositoryId));
  }

  async create(repositoryId: number, defaultBranch: string): Promise<void> {
    const path = this.pathOf(repositoryId);
    if (existsSync(path)) await this.remove(repositoryId); // a leftover of a crash between disk and database
    await this.git.run(GitCommand.of('init', '--bare', '--quiet').value(path));
    await this.git.run(GitCommand.of('symbolic-ref').value('HEAD').value(`refs/heads/${defaultBranch}`), { gitDir: path });
  }

  /** Moves the repository out of the way first, so that it disappears at once even if removal is slow. */
  async remove(repositoryId: number): Promise<void> {
    const path = this.pathOf(repositoryId);
    const trash = `${path}.deleted-${Date.now()}`;
    try {
      await rename(path, trash);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    await rm(trash, { recursive: true, force: true });
  }

  /** Reads all refs and HEAD's target. */
  async readRefs(repositoryId: number): Promise<RefState> {
    const gitDir = this.pathOf(repositoryId);
    const state: RefState = new Map();
    const { stdout } = await this.git.run(GitCommand.of('for-each-ref', '--format=%(objectname) %(refname)'), { gitDir });
    for (const line of stdout.toString('utf8').split('\n')) {
      if (!line) continue;
      const space = line.indexOf(' ');
      state.set(line.slice(space + 1), line.slice(0, space));
    }
    // HEAD is a one-line file in a bare repository; reading it saves a process per call, which matters when
    // a mirror verifies hundreds of repositories per snapshot pass.
    const head = (await readFile(join(gitDir, 'HEAD'), 'utf8').catch(() => '')).trim();
    if (head.startsWith('ref: refs/')) state.set('HEAD', head);
    return state;
  }
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
