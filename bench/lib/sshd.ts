// OpenSSH baseline: a private sshd on a random loopback port with its own host
// key, authorized_keys and sshd_config under bench/.work, serving git-upload-pack
// of the benchmark repository to root via key authentication.
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, killGroup, run, sleep, spawnTracked, tail, waitForPort } from './proc.js';

export interface ClientKey {
  /** Private key file (ed25519, no passphrase). */
  keyPath: string;
  /** One-line public key, e.g. "ssh-ed25519 AAAA... bench". */
  publicKey: string;
}

/** Generate (once, cached) the client key used for every SSH clone. */
export async function ensureClientKey(dir: string): Promise<ClientKey> {
  mkdirSync(dir, { recursive: true });
  const keyPath = join(dir, 'client_ed25519');
  if (!existsSync(keyPath) || !existsSync(`${keyPath}.pub`)) {
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bench', '-f', keyPath], { input: 'y\n' });
  }
  const publicKey = readFileSync(`${keyPath}.pub`, 'utf8').trim();
  return { keyPath, publicKey };
}

/** ssh client options: the key only, no agent, no known_hosts, batch mode. */
export function sshOptions(keyPath: string, cipher?: string): string[] {
  return [
    '-i',
    keyPath,
    ...(cipher ? ['-c', cipher] : []),
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'IdentityAgent=none',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'LogLevel=ERROR',
    '-o',
    'ControlMaster=no',
    '-o',
    'ControlPath=none',
  ];
}

/** The GIT_SSH_COMMAND value (paths must not contain whitespace). */
export function gitSshCommand(keyPath: string, cipher?: string): string {
  return ['ssh', ...sshOptions(keyPath, cipher)].join(' ');
}

export interface Sshd {
  port: number;
  pid: number;
  logPath: string;
  stop(): Promise<void>;
}

/** `forcedCommand`: every session runs it instead of what the client asks (restrict, command="..."). */
export async function startSshd(dir: string, key: ClientKey, logPath: string, forcedCommand?: string): Promise<Sshd> {
  const sshd = '/usr/sbin/sshd';
  if (!existsSync(sshd)) {
    throw new Error(`${sshd} not found: install it with 'apt-get update && apt-get install -y openssh-server'`);
  }
  mkdirSync(dir, { recursive: true });
  // sshd refuses to start without its privilege-separation directory.
  if (!existsSync('/run/sshd')) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  if (!existsSync(hostKey)) {
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bench-host', '-f', hostKey], { input: 'y\n' });
  }
  const authorizedKeys = join(dir, 'authorized_keys');
  writeFileSync(authorizedKeys, `${forcedCommand ? `restrict,command="${forcedCommand}" ` : ''}${key.publicKey}\n`, { mode: 0o600 });
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      'PidFile none',
      'StrictModes no',
      'UsePAM no',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'AllowUsers root',
      // Let clients ask for Git protocol v2, as file:// and HTTP do.
      'AcceptEnv GIT_PROTOCOL',
      // As the OpenSSH front end does (src/transport/sshd/sshd-config.ts): the account's ~/.bashrc stays out of
      // git sessions, so that both pay the same per-session cost.
      'SetEnv SHLVL=1',
      'UseDNS no',
      'PrintMotd no',
      'PrintLastLog no',
      'X11Forwarding no',
      'AllowTcpForwarding no',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  await run(sshd, ['-t', '-f', config]);
  const logFd = openSync(logPath, 'w');
  const { cp, exited } = spawnTracked('sshd', sshd, ['-D', '-e', '-f', config], {
    stdio: ['ignore', logFd, logFd],
    group: true,
  });
  let alive = true;
  void exited.then(() => {
    alive = false;
  });
  try {
    await waitForPort(port, 10_000, () => alive);
  } catch (e) {
    killGroup(cp);
    throw new Error(`sshd did not start: ${String(e)}\n${tail(readFileSync(logPath, 'utf8'))}`);
  }
  const pid = cp.pid as number;
  return {
    port,
    pid,
    logPath,
    async stop() {
      if (alive) {
        cp.kill('SIGTERM');
        await Promise.race([exited, sleep(5000)]);
      }
      killGroup(cp);
    },
  };
}

/** The cipher an SSH server negotiates with our client (from `ssh -v`), or undefined. */
export async function negotiatedCipher(port: number, user: string, key: ClientKey, cipher?: string): Promise<string | undefined> {
  const opts = sshOptions(key.keyPath, cipher).map((o) => (o === 'LogLevel=ERROR' ? 'LogLevel=DEBUG' : o));
  const r = await run('ssh', [...opts, '-p', String(port), `${user}@127.0.0.1`, 'git-upload-pack', '/nonexistent'], {
    check: false,
    timeoutMs: 15_000,
  }).catch(() => undefined);
  return r ? /kex: server->client cipher: (\S+)/.exec(r.stderr)?.[1] : undefined;
}
