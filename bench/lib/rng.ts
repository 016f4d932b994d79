// Deterministic pseudo-random sources for the repository generator.
//
// - `Rng` (xoshiro128**) drives every decision: sizes, paths, edits, refs.
// - `randomBytes(seed, id, n)` yields incompressible content from an AES-256-CTR
//   keystream keyed by sha256(seed:id), so it is fast (hundreds of MB/s) and the
//   same bytes come out on every machine and Node version.
import { createCipheriv, createHash } from 'node:crypto';

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: string) {
    const h = createHash('sha256').update(`rng:${seed}`).digest();
    this.s0 = h.readUInt32LE(0);
    this.s1 = h.readUInt32LE(4);
    this.s2 = h.readUInt32LE(8);
    this.s3 = h.readUInt32LE(12);
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next unsigned 32-bit integer (xoshiro128**). */
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform float in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from empty list');
    return items[Math.floor(this.float() * items.length)] as T;
  }

  /** Zipf-like pick: low indices are much more likely (word frequencies). */
  pickSkewed<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from empty list');
    const f = this.float();
    return items[Math.floor(f * f * f * items.length)] as T;
  }

  /** Log-uniform integer in [lo, hi]. */
  logUniform(lo: number, hi: number): number {
    return Math.round(Math.exp(Math.log(lo) + this.float() * (Math.log(hi) - Math.log(lo))));
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** `n` incompressible, reproducible bytes identified by (seed, id). */
export function randomBytes(seed: string, id: string, n: number): Buffer {
  const key = createHash('sha256').update(`bytes:${seed}:${id}`).digest();
  const iv = Buffer.alloc(16);
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  const out = cipher.update(Buffer.alloc(n));
  cipher.final();
  return out;
}
