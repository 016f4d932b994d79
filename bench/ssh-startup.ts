// Per-connection start-up cost of SSH: `git ls-remote` of a small repository (3 refs), one fresh SSH connection
// each (no multiplexing), interleaved round by round, against
//   - plain OpenSSH sshd with a trivial forced command (git-upload-pack of the repository): the floor;
//   - mirrorfarm with the OpenSSH front end (keys command + session script + server round trip on top);
//   - mirrorfarm's built-in SSH server.
// Then the same over one multiplexed connection per server (OpenSSH ControlMaster), as mirrors fetch: their
// connection is set up once, and each fetch pays only a session's start-up.
//
//   npm run bench:ssh-startup        (BENCH_STARTUP_RUNS=N, default 40)
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { gitHttpsEnv, makeDevCa, setupRepo, startServer, type ServerHandle } from './lib/mirrorfarm.js';
import { spawn } from 'node:child_process';
import { installCleanup, onCleanup, removeAtExit, run, runCleanups, sleep } from './lib/proc.js';
import { fmt, median } from './lib/report.js';
import { ensureClientKey, gitSshCommand, sshOptions, startSshd } from './lib/sshd.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const work = join(here, '.work');
const runs = Number(process.env.BENCH_STARTUP_RUNS ?? 40);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function main(): Promise<void> {
  installCleanup();
  const tmp = join(work, 'tmp', `startup-${process.pid}`);
  mkdirSync(tmp, { recursive: true });
  mkdirSync(join(work, 'logs'), { recursive: true });
  removeAtExit(tmp);
  const key = await ensureClientKey(join(work, 'ssh'));

  // A small repository: three commits on main, two more branches.
  const repo = join(tmp, 'small.git');
  const src = join(tmp, 'src');
  await run('git', ['init', '-q', '-b', 'main', src]);
  for (let i = 0; i < 3; i++) {
    writeFileSync(join(src, `f${i}.txt`), `${i}\n`);
    await run('git', ['-C', src, 'add', '-A']);
    await run('git', ['-C', src, '-c', 'user.name=b', '-c', 'user.email=b@b', 'commit', '-q', '-m', `c${i}`]);
  }
  await run('git', ['-C', src, 'branch', 'one']);
  await run('git', ['-C', src, 'branch', 'two']);
  await run('git', ['clone', '-q', '--bare', src, repo]);

  const sshd = await startSshd(join(work, 'ssh-startup'), key, join(work, 'logs', 'startup-sshd.log'), `git-upload-pack '${repo}'`);
  onCleanup(() => sshd.stop());

  const servers: Record<string, ServerHandle> = {};
  for (const [name, env] of [
    ['builtin', {}],
    ['openssh', { MIRRORFARM_SSH_FRONTEND: 'openssh', MIRRORFARM_SSH_USER: userInfo().username }],
  ] as const) {
    const tls = await makeDevCa(root, join(tmp, `tls-${name}`));
    const password = randomBytes(18).toString('base64url');
    const server = await startServer({ root, home: join(tmp, `home-${name}`), tls, password, logPath: join(work, 'logs', `startup-${name}.log`), timeoutMs: 60_000, env });
    onCleanup(() => server.stop());
    await setupRepo(server, tls, password, key.publicKey);
    await run('git', ['-C', repo, 'push', '-q', '--mirror', `https://127.0.0.1:${server.httpPort}/scm/BENCH/big.git`], { env: { ...process.env, ...gitHttpsEnv(tls, password) } });
    servers[name] = server;
  }

  const variants = [
    { id: 'sshd', label: 'plain OpenSSH sshd, forced git-upload-pack', url: `ssh://root@127.0.0.1:${sshd.port}/x` },
    { id: 'openssh', label: 'mirrorfarm, OpenSSH front end', url: `ssh://${userInfo().username}@127.0.0.1:${servers.openssh!.sshPort}/bench/big.git` },
    { id: 'builtin', label: 'mirrorfarm, built-in SSH server', url: `ssh://git@127.0.0.1:${servers.builtin!.sshPort}/bench/big.git` },
  ];
  const measure = async (sshCommand: (v: (typeof variants)[number]) => string) => {
    const times = new Map<string, number[]>(variants.map((v) => [v.id, []]));
    for (let r = -1; r < runs; r++) {
      for (const v of r % 2 === 0 ? variants : [...variants].reverse()) {
        const t = await run('git', ['ls-remote', v.url], { env: { ...process.env, GIT_SSH_COMMAND: sshCommand(v), GIT_TERMINAL_PROMPT: '0' }, timeoutMs: 30_000 });
        if (!/refs\/heads\/main/.test(t.stdout)) throw new Error(`${v.label}: ls-remote failed: ${t.stderr}`);
        if (r >= 0) times.get(v.id)!.push(t.ms);
      }
    }
    return times;
  };
  const table = (title: string, times: Map<string, number[]>) => {
    const floor = median(times.get('sshd')!);
    return [
      title,
      '',
      '| variant | median ms | p90 ms | vs plain sshd (median) |',
      '| --- | --- | --- | --- |',
      ...variants.map((v) => {
        const t = times.get(v.id)!;
        const delta = median(t) - floor;
        return `| ${v.label} | ${fmt(median(t), 0)} | ${fmt(percentile(t, 90), 0)} | ${v.id === 'sshd' ? '1.00x' : `${fmt(median(t) / floor)}x (${delta >= 0 ? '+' : ''}${fmt(delta, 0)} ms)`} |`;
      }),
      '',
    ];
  };
  const load0 = loadavg();
  const fresh = await measure(() => gitSshCommand(key.keyPath));

  // One master connection per server; the clients' sessions go over it.
  const controlPath = (id: string) => join(tmp, `ctl-${id}`);
  for (const v of variants) {
    const { hostPort, user } = /^ssh:\/\/(?<user>[^@]+)@(?<hostPort>[^/]+)\//.exec(v.url)!.groups as { user: string; hostPort: string };
    const [host, port] = hostPort.split(':') as [string, string];
    const master = spawn('ssh', ['-M', '-N', '-S', controlPath(v.id), '-o', 'ControlPersist=no', ...sshOptions(key.keyPath).filter((o) => !/^Control/.test(o)).filter((o, i, all) => !(o === '-o' && /^Control/.test(all[i + 1] ?? ''))), '-p', port, `${user}@${host}`], { stdio: 'ignore' });
    onCleanup(async () => {
      master.kill();
    });
    for (let i = 0; i < 100; i++) {
      if ((await run('ssh', ['-S', controlPath(v.id), '-O', 'check', `${user}@${host}`], { check: false })).code === 0) break;
      await sleep(100);
    }
  }
  const multiplexed = await measure((v) => `ssh -o ControlMaster=no -o ControlPath=${controlPath(v.id)} ${sshOptions(key.keyPath).join(' ')}`);
  const lines = [
    `git ls-remote over SSH of a 3-ref repository, ${runs} interleaved rounds (load average ${load0.map((x) => x.toFixed(2)).join(' ')} at start, ${loadavg().map((x) => x.toFixed(2)).join(' ')} at end)`,
    '',
    ...table('One fresh SSH connection each:', fresh),
    ...table('One session each over a multiplexed connection (ControlMaster), as mirrors fetch:', multiplexed),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  await runCleanups();
}

main().catch(async (err: unknown) => {
  process.stderr.write(`bench: FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  await runCleanups();
  process.exit(2);
});
