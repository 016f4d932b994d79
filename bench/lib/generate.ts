// Deterministic generator for the benchmark repository.
//
// A seeded PRNG drives a `git fast-import` stream:
//   - one `main` line of history; each commit edits a few text files (small hunks
//     of inserted/replaced/deleted lines, so consecutive versions delta well) and
//     now and then adds an incompressible binary file (AES-CTR keystream) or patches
//     a few KiB of an existing one;
//   - ~60% of the extra refs are branches (half plain pointers into history, half
//     with a commit of their own), ~40% tags (half annotated);
// then `git repack -adf` + `git pack-refs --all` so the repository is served from
// a single pack with deltas (and a bitmap, as git writes for bare repositories).
//
// The result is cached under bench/.work/repos/<key>.git with a meta.json; a
// directory without meta.json (interrupted run) is regenerated.
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { randomBytes, Rng } from './rng.js';
import { run, spawnTracked } from './proc.js';

/** Bump when the generated content changes so caches are not reused. */
export const GEN_VERSION = 1;

const MiB = 1024 * 1024;

export interface GenParams {
  seed: string;
  /** Incompressible binary payload in MiB; the pack ends up a little larger. */
  targetMiB: number;
  /** Refs besides refs/heads/main. */
  refs: number;
  /** Commits on main. */
  commits: number;
}

export interface RepoMeta {
  key: string;
  path: string;
  params: GenParams;
  genVersion: number;
  gitVersion: string;
  packBytes: number;
  packCount: number;
  looseObjects: number;
  objectCount: number;
  refCount: number;
  branchCount: number;
  tagCount: number;
  bitmap: boolean;
  fastImportInputBytes: number;
  fastImportSeconds: number;
  repackSeconds: number;
  generatedAt: string;
}

export function defaultCommits(targetMiB: number): number {
  return Math.min(2500, Math.max(300, Math.round(targetMiB * 8.5)));
}

export function repoKey(p: GenParams): string {
  const seed = p.seed.replace(/[^A-Za-z0-9_-]/g, '_');
  return `repo-${p.targetMiB}m-r${p.refs}-c${p.commits}-s${seed}-g${GEN_VERSION}`;
}

export async function ensureRepo(workDir: string, params: GenParams, log: (msg: string) => void): Promise<RepoMeta> {
  const reposDir = join(workDir, 'repos');
  mkdirSync(reposDir, { recursive: true });
  const key = repoKey(params);
  const path = join(reposDir, `${key}.git`);
  const metaPath = join(reposDir, `${key}.json`);
  if (existsSync(metaPath) && existsSync(path)) {
    const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as RepoMeta;
    if (meta.genVersion === GEN_VERSION) {
      log(`using cached repository ${path}`);
      return meta;
    }
  }
  rmSync(path, { recursive: true, force: true });
  rmSync(metaPath, { force: true });
  const tmp = join(reposDir, `${key}.tmp-${process.pid}.git`);
  rmSync(tmp, { recursive: true, force: true });
  try {
    await run('git', ['init', '-q', '--bare', '--initial-branch=main', tmp]);
    log(`generating ${params.targetMiB} MiB repository (${params.commits} commits, ${params.refs} extra refs, seed ${params.seed}) ...`);
    const t0 = performance.now();
    const stats = await fastImport(tmp, params);
    const fastImportSeconds = (performance.now() - t0) / 1000;
    log(
      `fast-import done in ${fastImportSeconds.toFixed(1)} s (${(stats.inputBytes / MiB).toFixed(0)} MiB stream); repacking (git repack -adf) ...`,
    );
    const t1 = performance.now();
    await run('git', ['-C', tmp, 'repack', '-adf', '-q'], { timeoutMs: 2 * 3600_000 });
    await run('git', ['-C', tmp, 'pack-refs', '--all']);
    await run('git', ['-C', tmp, 'prune-packed']);
    const repackSeconds = (performance.now() - t1) / 1000;
    log(`repack done in ${repackSeconds.toFixed(1)} s`);
    renameSync(tmp, path);
    const meta: RepoMeta = {
      key,
      path,
      params,
      genVersion: GEN_VERSION,
      ...(await inspectRepo(path)),
      fastImportInputBytes: stats.inputBytes,
      fastImportSeconds,
      repackSeconds,
      generatedAt: new Date().toISOString(),
    };
    writeFileSync(metaPath, JSON.stringify(meta, null, 2) + '\n');
    return meta;
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

export interface RepoShape {
  gitVersion: string;
  packBytes: number;
  packCount: number;
  looseObjects: number;
  objectCount: number;
  refCount: number;
  branchCount: number;
  tagCount: number;
  bitmap: boolean;
}

/** Pack/ref statistics of a bare repository (also used on the server's copy). */
export async function inspectRepo(gitDir: string): Promise<RepoShape> {
  const packDir = join(gitDir, 'objects', 'pack');
  const files = existsSync(packDir) ? readdirSync(packDir) : [];
  const packs = files.filter((f) => f.endsWith('.pack'));
  const packBytes = packs.reduce((sum, f) => sum + statSync(join(packDir, f)).size, 0);
  const counts = await run('git', ['-C', gitDir, 'count-objects', '-v']);
  const field = (k: string): number => Number(new RegExp(`^${k}: (\\d+)`, 'm').exec(counts.stdout)?.[1] ?? 0);
  const refs = await run('git', ['-C', gitDir, 'for-each-ref', '--format=%(refname)']);
  const names = refs.stdout.split('\n').filter((l) => l.length > 0);
  const ver = await run('git', ['--version']);
  return {
    gitVersion: ver.stdout.trim().replace(/^git version /, ''),
    packBytes,
    packCount: packs.length,
    looseObjects: field('count'),
    objectCount: field('in-pack') + field('count'),
    refCount: names.length,
    branchCount: names.filter((n) => n.startsWith('refs/heads/')).length,
    tagCount: names.filter((n) => n.startsWith('refs/tags/')).length,
    bitmap: files.some((f) => f.endsWith('.bitmap')),
  };
}

// ---------------------------------------------------------------------------
// fast-import stream

class Stream {
  bytes = 0;
  private failed: Error | undefined;

  constructor(private readonly out: Writable) {
    out.on('error', (e: Error) => {
      this.failed = e;
    });
  }

  async write(chunk: string | Buffer): Promise<void> {
    if (this.failed) throw this.failed;
    this.bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    if (!this.out.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.out.off('drain', done);
          this.out.off('close', done);
          resolve();
        };
        this.out.on('drain', done);
        this.out.on('close', done);
      });
      if (this.failed) throw this.failed;
    }
  }

  async data(payload: string | Buffer): Promise<void> {
    const buf = typeof payload === 'string' ? Buffer.from(payload) : payload;
    await this.write(`data ${buf.length}\n`);
    await this.write(buf);
    await this.write('\n');
  }
}

interface BinFile {
  id: string;
  size: number;
  patches: Array<{ offset: number; length: number; id: string }>;
}

interface TextFile {
  lines: string[];
}

const MODULES = [
  'core', 'auth', 'storage', 'net', 'ui', 'cli', 'sync', 'index', 'query', 'metrics',
  'events', 'config', 'render', 'codec', 'cache', 'plugins', 'schema', 'jobs', 'admin', 'util',
];
const EXTS = ['.ts', '.c', '.go', '.py', '.md', '.rs', '.java'];
const BIN_DIRS = ['images', 'fonts', 'models', 'fixtures', 'vendor', 'media', 'blobs', 'archives', 'icons', 'data'];
const BIN_EXTS = ['.bin', '.png', '.jpg', '.zip', '.dat', '.woff2', '.gz'];

function makeVocab(rng: Rng, n: number): string[] {
  const syll = ['ka', 'ro', 'mi', 'tan', 'sel', 'vo', 'qui', 'der', 'lo', 'pra', 'nu', 'es', 'ti', 'gor', 'ba', 'lin', 'fe', 'sha', 'op', 'ux'];
  const words = new Set<string>();
  while (words.size < n) {
    let w = '';
    const k = rng.int(1, 4);
    for (let i = 0; i < k; i++) w += rng.pick(syll);
    words.add(w);
  }
  return [...words];
}

function makeLine(rng: Rng, vocab: readonly string[]): string {
  const w = (): string => rng.pickSkewed(vocab);
  const indent = '    '.repeat(rng.int(0, 3));
  switch (rng.int(0, 9)) {
    case 0:
      return `${indent}const ${w()}${w()} = ${w()}(${w()}, ${rng.int(0, 4096)});`;
    case 1:
      return `${indent}if (${w()}.${w()} && !${w()}) {`;
    case 2:
      return `${indent}}`;
    case 3: {
      const n = rng.int(4, 14);
      const words: string[] = [];
      for (let i = 0; i < n; i++) words.push(w());
      return `${indent}// ${words.join(' ')}`;
    }
    case 4:
      return `${indent}return ${w()}.${w()}(${w()});`;
    case 5:
      return '';
    case 6:
      return `${indent}${w()}.${w()} = "${w()}-${w()}";`;
    case 7:
      return `${indent}for (let ${w()} = 0; ${w()} < ${rng.int(1, 100)}; ${w()}++) {`;
    default:
      return `${indent}${w()}(${w()}, ${w()}.${w()}, ${rng.int(0, 99)});`;
  }
}

function editText(rng: Rng, vocab: readonly string[], file: TextFile): void {
  const hunks = rng.int(1, 3);
  for (let h = 0; h < hunks; h++) {
    const lines = file.lines;
    const pos = rng.int(0, lines.length);
    const k = rng.int(1, 8);
    const r = rng.float();
    const shrink = lines.length > 1400;
    if (r < 0.5) {
      const fresh: string[] = [];
      for (let i = 0; i < k; i++) fresh.push(makeLine(rng, vocab));
      lines.splice(pos, k, ...fresh);
    } else if (r < 0.8 && !shrink) {
      const fresh: string[] = [];
      for (let i = 0; i < k; i++) fresh.push(makeLine(rng, vocab));
      lines.splice(pos, 0, ...fresh);
    } else if (lines.length > 20) {
      lines.splice(pos, k);
    }
  }
}

function binContent(seed: string, f: BinFile): Buffer {
  const buf = randomBytes(seed, f.id, f.size);
  for (const p of f.patches) randomBytes(seed, p.id, p.length).copy(buf, p.offset);
  return buf;
}

async function fastImport(gitDir: string, params: GenParams): Promise<{ inputBytes: number }> {
  const { cp, exited } = spawnTracked('git fast-import', 'git', ['-C', gitDir, 'fast-import', '--quiet', '--done'], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let stderr = '';
  cp.stderr?.setEncoding('utf8');
  cp.stderr?.on('data', (d: string) => {
    stderr += d;
  });
  const stdin = cp.stdin;
  if (!stdin) throw new Error('fast-import: no stdin');
  const s = new Stream(stdin);
  const producing = produce(s, params).then(
    () => {
      stdin.end();
    },
    (e: unknown) => {
      stdin.destroy();
      throw e;
    },
  );
  const [, code] = await Promise.all([
    producing.catch((e: unknown) => {
      throw new Error(`fast-import stream failed: ${String(e)}\n${stderr}`);
    }),
    exited,
  ]);
  if (code !== 0) throw new Error(`git fast-import exited with ${code}\n${stderr}`);
  return { inputBytes: s.bytes };
}

async function produce(s: Stream, p: GenParams): Promise<void> {
  const seed = p.seed;
  const rng = new Rng(`${seed}:plan`);
  const vocab = makeVocab(rng, 3000);
  const people: string[] = [];
  for (let i = 0; i < 40; i++) {
    const first = rng.pick(vocab);
    const last = rng.pick(vocab);
    people.push(`${cap(first)} ${cap(last)} <${first}.${last}@example.com>`);
  }

  // Binary payload: log-uniform sizes (8 KiB .. 3 MiB) until the target is met,
  // spread evenly over the history.
  const binSizes: number[] = [];
  let total = 0;
  const target = p.targetMiB * MiB;
  while (total < target) {
    const size = Math.min(rng.logUniform(8 * 1024, 3 * MiB), target - total + 4096);
    binSizes.push(size);
    total += size;
  }
  const binsPerCommit: number[][] = Array.from({ length: p.commits }, () => []);
  binSizes.forEach((size, j) => {
    const at = Math.min(p.commits - 1, Math.floor((j * p.commits) / binSizes.length));
    binsPerCommit[at]?.push(size);
  });

  const text = new Map<string, TextFile>();
  const textPaths: string[] = [];
  const bins = new Map<string, BinFile>();
  const binPaths: string[] = [];
  let mark = 0;
  let binCounter = 0;
  let textCounter = 0;
  const commitMarks: number[] = [];
  const baseTime = 1577836800; // 2020-01-01T00:00:00Z
  const timeOf = (i: number): number => baseTime + i * 10800 + (i * 7919) % 3600;

  const newTextPath = (): string => {
    const mod = rng.pick(MODULES);
    const ext = rng.pick(EXTS);
    return `src/${mod}/${rng.pick(vocab)}_${textCounter++}${ext}`;
  };
  const newText = (): TextFile => {
    const n = rng.int(60, 1100);
    const lines: string[] = [];
    for (let i = 0; i < n; i++) lines.push(makeLine(rng, vocab));
    return { lines };
  };
  const emitBlob = async (payload: string | Buffer): Promise<number> => {
    const m = ++mark;
    await s.write(`blob\nmark :${m}\n`);
    await s.data(payload);
    return m;
  };
  const message = (): string => {
    const n = rng.int(3, 9);
    const words: string[] = [];
    for (let i = 0; i < n; i++) words.push(rng.pickSkewed(vocab));
    const body = rng.chance(0.5) ? `\n\n${words.slice().reverse().join(' ')}.\n` : '\n';
    return `${rng.pick(MODULES)}: ${words.join(' ')}${body}`;
  };
  const commitHeader = async (ref: string, i: number, msg: string, from?: number): Promise<number> => {
    const m = ++mark;
    const who = rng.pick(people);
    const when = `${timeOf(i)} +0000`;
    await s.write(`commit ${ref}\nmark :${m}\nauthor ${who} ${when}\ncommitter ${who} ${when}\n`);
    await s.data(msg);
    if (from !== undefined) await s.write(`from :${from}\n`);
    return m;
  };

  // --- main history
  for (let i = 0; i < p.commits; i++) {
    const changes: string[] = [];
    if (i === 0) {
      changes.push(`M 100644 :${await emitBlob(`# bench repository\n\nGenerated for mirrorfarm's clone benchmark (seed ${seed}).\n`)} README.md`);
      for (let k = 0; k < 120; k++) {
        const path = newTextPath();
        const f = newText();
        text.set(path, f);
        textPaths.push(path);
        changes.push(`M 100644 :${await emitBlob(f.lines.join('\n') + '\n')} ${path}`);
      }
    } else {
      const edits = rng.int(1, 4);
      const touched = new Set<string>();
      for (let k = 0; k < edits; k++) touched.add(rng.pick(textPaths));
      for (const path of touched) {
        const f = text.get(path) as TextFile;
        editText(rng, vocab, f);
        changes.push(`M 100644 :${await emitBlob(f.lines.join('\n') + '\n')} ${path}`);
      }
      if (rng.chance(0.06) && textPaths.length < 600) {
        const path = newTextPath();
        const f = newText();
        text.set(path, f);
        textPaths.push(path);
        changes.push(`M 100644 :${await emitBlob(f.lines.join('\n') + '\n')} ${path}`);
      }
      if (rng.chance(0.01) && textPaths.length > 100) {
        const idx = rng.int(0, textPaths.length - 1);
        const path = textPaths[idx] as string;
        if (!touched.has(path)) {
          textPaths.splice(idx, 1);
          text.delete(path);
          changes.push(`D ${path}`);
        }
      }
      if (binPaths.length > 0 && rng.chance(0.04)) {
        // Patch a few KiB of an existing binary: a small delta in the pack.
        const path = rng.pick(binPaths);
        const f = bins.get(path) as BinFile;
        const length = Math.min(f.size, rng.int(256, 8192));
        f.patches.push({ offset: rng.int(0, f.size - length), length, id: `patch-${mark}` });
        changes.push(`M 100644 :${await emitBlob(binContent(seed, f))} ${path}`);
      }
    }
    for (const size of binsPerCommit[i] ?? []) {
      const id = `bin-${binCounter++}`;
      const path = `assets/${rng.pick(BIN_DIRS)}/${rng.pick(vocab)}-${binCounter}${rng.pick(BIN_EXTS)}`;
      const f: BinFile = { id, size, patches: [] };
      bins.set(path, f);
      binPaths.push(path);
      changes.push(`M 100644 :${await emitBlob(binContent(seed, f))} ${path}`);
    }
    const m = await commitHeader('refs/heads/main', i, message());
    await s.write(changes.join('\n') + '\n\n');
    commitMarks.push(m);
  }

  // --- refs
  const branches = Math.round(p.refs * 0.6);
  const tags = p.refs - branches;
  const prefixes = ['feature', 'bugfix', 'topic', 'release', 'user', 'hotfix'];
  const lo = Math.floor(p.commits * 0.3);
  for (let b = 0; b < branches; b++) {
    const baseIdx = rng.int(lo, p.commits - 1);
    const base = commitMarks[baseIdx] as number;
    const name = `refs/heads/${rng.pick(prefixes)}/${rng.pick(vocab)}-${b}`;
    if (b % 2 === 0 || textPaths.length === 0) {
      await s.write(`reset ${name}\nfrom :${base}\n\n`);
    } else {
      const path = rng.pick(textPaths);
      const f = text.get(path) as TextFile;
      const copy: TextFile = { lines: f.lines.slice() };
      editText(rng, vocab, copy);
      const blob = await emitBlob(copy.lines.join('\n') + '\n');
      await commitHeader(name, baseIdx + 1, message(), base);
      await s.write(`M 100644 :${blob} ${path}\n\n`);
    }
  }
  for (let t = 0; t < tags; t++) {
    const idx = Math.min(p.commits - 1, Math.floor(((t + 1) * p.commits) / (tags + 1)));
    const target = commitMarks[idx] as number;
    const version = `v${Math.floor(t / 100)}.${Math.floor(t / 10) % 10}.${t % 10}`;
    if (t % 2 === 0) {
      const who = rng.pick(people);
      await s.write(`tag ${version}\nfrom :${target}\ntagger ${who} ${timeOf(idx) + 60} +0000\n`);
      await s.data(`Release ${version}\n`);
    } else {
      await s.write(`reset refs/tags/${version}\nfrom :${target}\n\n`);
    }
  }
  await s.write('done\n');
}

function cap(w: string): string {
  return w.charAt(0).toUpperCase() + w.slice(1);
}
