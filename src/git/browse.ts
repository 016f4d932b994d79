// Read-only views of one repository's history and files for the web pages: recent commits, a tree, a file's
// bytes. Every process starts through the one git runner with values passed as values; a revision reaching here
// is always a full commit id the caller resolved from the repository's own refs, and a path has been checked by
// `checkPath`, so neither can be read by git as an option, a revision expression or a path outside the tree.
import type { Readable } from 'node:stream';
import { Errors } from '../errors.js';
import { GitCommand, type GitRunner } from './runner.js';

export const COMMIT_ID = /^[0-9a-f]{40}$/;

export interface CommitSummary {
  id: string;
  author: string;
  authorEmail: string;
  /** Epoch milliseconds. */
  date: number;
  subject: string;
}

export interface TreeEntry {
  name: string;
  type: 'tree' | 'blob' | 'commit';
  /** For blobs; undefined for trees and submodules. */
  size?: number;
  mode: string;
}

export type FileContent =
  | { kind: 'text'; size: number; text: string }
  | { kind: 'binary'; size: number }
  | { kind: 'too-large'; size: number };

/**
 * A path inside a tree as the pages take it: segments separated by "/", none empty, "." or "..", no NUL, not
 * absolute. "" is the root. Anything else is refused rather than normalized, so a link never means two things.
 */
export function checkPath(raw: string): string {
  if (raw === '') return '';
  const segments = raw.split('/');
  if (raw.startsWith('/') || raw.includes('\0') || segments.some((s) => s === '' || s === '.' || s === '..') || raw.length > 4096) {
    throw Errors.invalid('That is not a path inside the repository: use names separated by "/", without ".", ".." or a leading "/".');
  }
  return raw;
}

/** git's own test for binary content: a NUL byte in the first 8000 bytes. */
export function looksBinary(bytes: Buffer): boolean {
  return bytes.subarray(0, 8000).includes(0);
}

export class RepoBrowser {
  constructor(
    private readonly git: GitRunner,
    private readonly maxTextBytes = 512 * 1024,
  ) {}

  private static spec(commit: string, path: string): string {
    if (!COMMIT_ID.test(commit)) throw new Error('RepoBrowser takes full commit ids only');
    return `${commit}:${checkPath(path)}`;
  }

  /** Whether `id` names a commit in this repository. */
  async isCommit(gitDir: string, id: string): Promise<boolean> {
    if (!COMMIT_ID.test(id)) return false;
    const r = await this.git.run(GitCommand.of('cat-file', '-t').value(id), { gitDir, allowExitCodes: [1, 128] });
    return r.code === 0 && r.stdout.toString('utf8').trim() === 'commit';
  }

  /** The newest commits reachable from `commit` (after skipping `skip` of them), merges included, newest first. */
  async log(gitDir: string, commit: string, limit: number, path = '', skip = 0): Promise<CommitSummary[]> {
    if (!COMMIT_ID.test(commit)) throw new Error('RepoBrowser takes full commit ids only');
    const skipped = Math.max(0, Math.min(Math.floor(skip), 1_000_000_000));
    let command = GitCommand.of('log', `-n${Math.max(1, Math.min(limit, 500))}` as `-${string}`, `--skip=${skipped}` as `-${string}`, '--no-color', '--format=%H%x00%an%x00%ae%x00%at%x00%s%x00').value(commit);
    if (path) command = command.flag('--').value(checkPath(path));
    const { stdout } = await this.git.run(command, { gitDir });
    const fields = stdout.toString('utf8').split('\0');
    const commits: CommitSummary[] = [];
    for (let i = 0; i + 4 < fields.length; i += 5) {
      commits.push({ id: fields[i]!.trim(), author: fields[i + 1]!, authorEmail: fields[i + 2]!, date: Number(fields[i + 3]) * 1000, subject: fields[i + 4]! });
    }
    return commits;
  }

  /** What `path` is at `commit`: a tree, a blob, or nothing. */
  async typeOf(gitDir: string, commit: string, path: string): Promise<'tree' | 'blob' | undefined> {
    if (path === '') return 'tree';
    const r = await this.git.run(GitCommand.of('cat-file', '-t').value(RepoBrowser.spec(commit, path)), { gitDir, allowExitCodes: [1, 128] });
    const type = r.code === 0 ? r.stdout.toString('utf8').trim() : '';
    return type === 'tree' || type === 'blob' ? type : undefined;
  }

  /** The entries of the tree at `path`, directories first, then by name. */
  async tree(gitDir: string, commit: string, path: string): Promise<TreeEntry[]> {
    const { stdout } = await this.git.run(GitCommand.of('ls-tree', '-z', '--long').value(RepoBrowser.spec(commit, path)), { gitDir });
    const entries: TreeEntry[] = [];
    for (const record of stdout.toString('utf8').split('\0')) {
      if (!record) continue;
      // "<mode> SP <type> SP <object> SP+ <size> TAB <name>"; the name may hold anything but NUL.
      const tab = record.indexOf('\t');
      const [mode, type, , size] = record.slice(0, tab).split(/ +/);
      if (type !== 'tree' && type !== 'blob' && type !== 'commit') continue;
      entries.push({ name: record.slice(tab + 1), type, mode: mode!, ...(type === 'blob' && size !== '-' ? { size: Number(size) } : {}) });
    }
    const rank = (e: TreeEntry) => (e.type === 'tree' ? 0 : 1);
    return entries.sort((a, b) => rank(a) - rank(b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async size(gitDir: string, commit: string, path: string): Promise<number> {
    const { stdout } = await this.git.run(GitCommand.of('cat-file', '-s').value(RepoBrowser.spec(commit, path)), { gitDir });
    return Number(stdout.toString('utf8').trim());
  }

  /** A file for display: its text, or only its size when it is binary or larger than a page should hold. */
  async file(gitDir: string, commit: string, path: string): Promise<FileContent> {
    const size = await this.size(gitDir, commit, path);
    if (size > this.maxTextBytes) return { kind: 'too-large', size };
    const { stdout } = await this.git.run(GitCommand.of('cat-file').value('blob', RepoBrowser.spec(commit, path)), { gitDir });
    if (looksBinary(stdout)) return { kind: 'binary', size };
    return { kind: 'text', size, text: stdout.toString('utf8') };
  }

  /** A file's bytes as a stream (for downloads), with its size; git is stopped when `signal` fires. */
  async raw(gitDir: string, commit: string, path: string, signal?: AbortSignal): Promise<{ size: number; stream: Readable }> {
    const size = await this.size(gitDir, commit, path);
    const child = this.git.spawn(GitCommand.of('cat-file').value('blob', RepoBrowser.spec(commit, path)), { gitDir, ...(signal ? { signal } : {}) });
    child.stdin.end();
    child.stderr.resume();
    return { size, stream: child.stdout };
  }
}
