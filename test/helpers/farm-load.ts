// Load for a mirror farm: one writer pushing to the primary without pause (fast-forwards, force pushes, branch
// and tag creation, moves and deletion), recording the primary's tips after every push, and readers that clone,
// fetch and list refs through the farm's balancer over HTTPS (protocol v2 and v0) and SSH, recording every tip
// they got. Every failed client operation is kept with git's error; `check()` says whether each tip a reader
// got was a tip of the primary at some moment.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { git, parseLsRemote, type Credentials, type GitClientOptions, type TestServer } from './server.js';
import { tempDir } from './tmp.js';

export interface ReaderTarget {
  name: string;
  url: string;
  protocol: 0 | 2;
  options: GitClientOptions;
}

export interface LoadOptions {
  primary: TestServer;
  creds: Credentials;
  project: string;
  slug: string;
  /** A work tree with main checked out, pushing to the primary. */
  work: string;
  targets: ReaderTarget[];
  readers: number;
}

export interface Failure {
  what: string;
  at: number;
  stderr: string;
}

export class FarmLoad {
  /** "ref oid" pairs the primary showed after some push. */
  readonly primaryTips = new Set<string>();
  /** Primary's main after each push, with the time the push was acknowledged. */
  readonly pushes: Array<{ at: number; main: string | undefined }> = [];
  readonly failures: Failure[] = [];
  readonly counts = new Map<string, number>();
  ops = 0;
  private readonly seen: Array<{ what: string; ref: string; oid: string }> = [];
  private stopped = false;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;
  private inFlight = 0;
  private running: Promise<void>[] = [];

  constructor(private readonly o: LoadOptions) {}

  start(): void {
    this.running = [this.writer(), ...Array.from({ length: this.o.readers }, (_, i) => this.reader(i))];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.resume();
    await Promise.all(this.running);
  }

  /** Holds readers back and waits until no reader operation is in flight. */
  async pause(): Promise<void> {
    this.gate ??= new Promise((resolve) => (this.openGate = resolve));
    while (this.inFlight > 0) await sleep(10);
  }

  resume(): void {
    this.openGate?.();
    this.gate = undefined;
  }

  /** Reader tips that were never a primary tip. */
  check(): string[] {
    return this.seen.filter((s) => !this.primaryTips.has(`${s.ref} ${s.oid}`)).map((s) => `${s.what}: ${s.ref} ${s.oid}`);
  }

  private gitW(args: string[]) {
    return git(this.o.primary, args, { creds: this.o.creds, cwd: this.o.work });
  }

  private async record(): Promise<void> {
    const r = await git(this.o.primary, ['ls-remote', this.o.primary.httpUrl(this.o.project, this.o.slug)], { creds: this.o.creds });
    if (r.code !== 0) return;
    const tips = parseLsRemote(r.stdout);
    for (const [ref, oid] of tips) this.primaryTips.add(`${ref} ${oid}`);
    this.pushes.push({ at: Date.now(), main: tips.get('refs/heads/main') });
  }

  private async writer(): Promise<void> {
    const url = this.o.primary.httpUrl(this.o.project, this.o.slug);
    await this.record();
    const tags: string[] = [];
    for (let i = 1; !this.stopped; i++) {
      const commit = async (message: string) => {
        await this.gitW(['commit', '-q', '--allow-empty', '-m', message]);
      };
      let push: string[];
      if (i % 7 === 3) {
        // Force push: main loses its last commit and gets another one.
        await this.gitW(['reset', '-q', '--hard', 'HEAD~1']);
        await commit(`rewritten ${i}`);
        push = ['push', '-q', '--force', url, 'main'];
      } else if (i % 7 === 5) {
        await this.gitW(['branch', '-f', `topic-${i}`, 'HEAD~1']);
        push = ['push', '-q', url, `topic-${i}`, ...(i > 7 ? [`:topic-${i - 7}`] : [])];
      } else if (i % 5 === 2) {
        await this.gitW(['tag', '-f', 'moving']);
        await this.gitW(['tag', `v${i}`]);
        tags.push(`v${i}`);
        const old = tags.length > 2 ? tags.shift() : undefined;
        push = ['push', '-q', '--force', url, 'refs/tags/moving', `refs/tags/v${i}`, ...(old ? [`:refs/tags/${old}`] : [])];
      } else {
        await commit(`change ${i}`);
        push = ['push', '-q', url, 'main'];
      }
      const r = await this.gitW(push);
      if (r.code !== 0) this.failures.push({ what: `writer push ${i}`, at: Date.now(), stderr: r.stderr });
      await this.record();
    }
  }

  private async reader(n: number): Promise<void> {
    const clones = new Map<string, string>();
    for (let i = n; !this.stopped; i++) {
      if (this.gate) await this.gate;
      if (this.stopped) return;
      const target = this.o.targets[i % this.o.targets.length]!;
      const kind = (['clone', 'fetch', 'ls-remote'] as const)[Math.floor(i / this.o.targets.length) % 3]!;
      const what = `${kind} ${target.name}`;
      this.inFlight++;
      try {
        const options = { ...target.options, protocol: target.protocol };
        let dir = clones.get(target.name);
        let r;
        if (kind === 'ls-remote') r = await git(this.o.primary, ['ls-remote', target.url], options);
        else if (kind === 'fetch' && dir) {
          r = await git(this.o.primary, ['fetch', '-q', '--prune', '--force', target.url, '+refs/heads/*:refs/remotes/origin/*', '+refs/tags/*:refs/tags/*'], { ...options, cwd: dir });
        } else {
          dir = join(tempDir('mf-load-'), 'c');
          r = await git(this.o.primary, ['clone', '-q', '--no-checkout', target.url, dir], options);
          if (r.code === 0) clones.set(target.name, dir);
        }
        this.ops++;
        this.counts.set(what, (this.counts.get(what) ?? 0) + 1);
        if (r.code !== 0) {
          this.failures.push({ what, at: Date.now(), stderr: r.stderr.trim() });
          continue;
        }
        if (kind === 'ls-remote') {
          for (const [ref, oid] of parseLsRemote(r.stdout)) this.seen.push({ what, ref, oid });
        } else {
          const refs = await git(null, ['for-each-ref', '--format=%(objectname) %(refname)', 'refs/remotes/origin', 'refs/tags'], { cwd: dir });
          for (const line of refs.stdout.split('\n').filter(Boolean)) {
            const [oid, name] = line.split(' ') as [string, string];
            if (name === 'refs/remotes/origin/HEAD') continue;
            this.seen.push({ what, ref: name.replace(/^refs\/remotes\/origin\//, 'refs/heads/'), oid });
          }
        }
      } finally {
        this.inFlight--;
      }
    }
  }
}
