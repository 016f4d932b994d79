// Clients from outside the emulated cluster (test/deploy/cluster.ts), as a user reaches it: REST and git over
// HTTPS to an Ingress host, SSH to a release's public address, names resolved to the cluster's addresses the
// way public DNS would (curl's resolve list for git, HostName for ssh; TLS and host keys are checked against
// the names).
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { loadMirrorKey } from '../../src/auth/mirror-token.js';
import { gitOk, git, type Credentials, type SshKeyPair } from '../helpers/server.js';
import type { RunResult } from '../helpers/run.js';
import { tempDir } from '../helpers/tmp.js';
import { INGRESS_PORT, type Cluster } from './cluster.js';

export interface Answer<T = any> {
  status: number;
  body: T;
  text: string;
}

/** A REST call to https://<host>:INGRESS_PORT through the ingress controller, checking TLS for <host>. */
export function ingressApi<T = any>(cluster: Cluster, caFile: string, host: string, method: string, path: string, body?: unknown, creds?: Credentials): Promise<Answer<T>> {
  const address = cluster.hosts()[host];
  if (!address) throw new Error(`${host} does not resolve (no Ingress for it)`);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: address,
        servername: host,
        port: INGRESS_PORT,
        method,
        path,
        ca: readFileSync(caFile),
        agent: false,
        headers: {
          host: `${host}:${INGRESS_PORT}`,
          ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          ...(creds ? { authorization: `Basic ${Buffer.from(`${creds.user}:${creds.secret}`).toString('base64')}` } : {}),
        },
      },
      (res) => collect(res, resolve),
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** GET on a pod's own address (kubectl port-forward pod/NAME 7990). */
export function podGet<T = any>(ip: string, port: number, path: string): Promise<Answer<T>> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: ip, port, path, agent: false, timeout: 5000 }, (res) => collect(res, resolve));
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`GET ${path} on ${ip} timed out`)));
    req.end();
  });
}

function collect<T>(res: import('node:http').IncomingMessage, resolve: (a: Answer<T>) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => {
    const text = Buffer.concat(chunks).toString('utf8');
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    resolve({ status: res.statusCode ?? 0, body: parsed as T, text });
  });
}

export interface ClusterGitOptions {
  cwd?: string;
  creds?: Credentials;
  /** SSH: the user's key, and the host key every node of the release must present (from its identity Secret). */
  sshKey?: SshKeyPair;
  hostKey?: { host: string; publicKey: string };
}

/** The git client resolving every Ingress host to the cluster, trusting the test CA. */
export async function clusterGit(cluster: Cluster, caFile: string, args: string[], options: ClusterGitOptions = {}): Promise<RunResult> {
  const hosts = cluster.hosts();
  const resolveArgs = Object.entries(hosts).flatMap(([h, ip]) => ['-c', `http.curloptResolve=${h}:${INGRESS_PORT}:${ip}`]);
  const env: Record<string, string> = { GIT_SSL_CAINFO: caFile };
  if (options.sshKey && options.hostKey) {
    const { host, publicKey } = options.hostKey;
    const knownHosts = join(tempDir('mf-known-hosts-'), 'known_hosts');
    writeFileSync(knownHosts, `${host} ${publicKey}\n[${host}]:7999 ${publicKey}\n`);
    env.GIT_SSH_COMMAND = [
      'ssh',
      `-i ${options.sshKey.privateKey}`,
      '-o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes -o LogLevel=ERROR',
      `-o StrictHostKeyChecking=yes -o UserKnownHostsFile=${knownHosts} -o HostKeyAlias=${host}`,
      `-o HostName=${hosts[host] ?? host}`,
    ].join(' ');
  }
  return git(null, [...resolveArgs, ...args], { ...(options.cwd ? { cwd: options.cwd } : {}), ...(options.creds ? { creds: options.creds } : {}), env });
}

export async function clusterGitOk(cluster: Cluster, caFile: string, args: string[], options: ClusterGitOptions = {}): Promise<string> {
  const r = await clusterGit(cluster, caFile, args, options);
  if (r.code !== 0) throw new Error(`git ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return r.stdout;
}

/** "ssh-ed25519 AAAA..." of an ed25519 private key (OpenSSH or PKCS#8 PEM, as the chart's Secret holds it). */
export function ed25519PublicKey(privateKey: Buffer): string {
  return loadMirrorKey(privateKey.toString('utf8')).publicKey;
}

export { gitOk };
