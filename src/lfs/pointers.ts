// The Git LFS objects a commit's tree refers to: every small blob in the tree that is a Git LFS pointer file
// ("version https://git-lfs.github.com/spec/v1", "oid sha256:<64 hex>", "size <n>"). This is what a checkout of
// the commit downloads. Blob sizes come from `git ls-tree -l`, so only blobs small enough to be pointers are read.
import { GitCommand, type GitRunner } from '../git/runner.js';

/** Pointer files are about 130 bytes; git-lfs never writes one near this size. */
const MAX_POINTER_BYTES = 1024;

export interface LfsPointer {
  oid: string;
  size: number;
}

export function parsePointer(text: string): LfsPointer | undefined {
  const m = /^version https:\/\/git-lfs\.github\.com\/spec\/v1\noid sha256:([0-9a-f]{64})\nsize (\d+)\n/.exec(text);
  if (!m) return undefined;
  const size = Number(m[2]);
  return Number.isSafeInteger(size) ? { oid: m[1]!, size } : undefined;
}

/** The LFS objects referred to by the tree of `commit` (an object id) in the repository at `gitDir`. */
export async function pointersAt(git: GitRunner, gitDir: string, commit: string): Promise<LfsPointer[]> {
  if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(commit)) return [];
  const listing = await git.run(GitCommand.of('ls-tree', '-r', '-l', '-z').value(commit), { gitDir });
  const candidates: string[] = [];
  for (const entry of listing.stdout.toString('utf8').split('\0')) {
    // "<mode> blob <oid> <size>\t<path>"
    const m = /^\d+ blob ([0-9a-f]+) +(\d+)\t/.exec(entry);
    if (m && Number(m[2]) <= MAX_POINTER_BYTES) candidates.push(m[1]!);
  }
  if (candidates.length === 0) return [];
  const batch = await git.run(GitCommand.of('cat-file', '--batch'), { gitDir, input: `${[...new Set(candidates)].join('\n')}\n` });
  const out = batch.stdout;
  const found = new Map<string, LfsPointer>();
  let offset = 0;
  while (offset < out.length) {
    const eol = out.indexOf(0x0a, offset);
    if (eol < 0) break;
    const header = out.subarray(offset, eol).toString('utf8').split(' ');
    const size = Number(header[2]);
    if (header[1] !== 'blob' || !Number.isSafeInteger(size)) break;
    const pointer = parsePointer(out.subarray(eol + 1, eol + 1 + size).toString('utf8'));
    if (pointer) found.set(pointer.oid, pointer);
    offset = eol + 1 + size + 1;
  }
  return [...found.values()];
}
