// Helpers for tests that run a primary and mirror nodes as separate processes.
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { readFileSync } from 'node:fs';
import { api, eventually, gitOk, parseLsRemote, type Credentials, type TestServer } from './server.js';

export interface MirrorStatus {
  state: string;
  mirrorId: string;
  progress: { synced: number; total: number };
  error?: { code: string; message: string };
  links: { primary: string; primaryApi: string };
  [k: string]: unknown;
}

/** GET a mirror's unauthenticated JSON endpoint (/status, /ready). */
export function mirrorGet<T = MirrorStatus>(mirror: TestServer, path: string, timeoutMs?: number): Promise<{ status: number; body: T }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: mirror.httpPort, path, ca: readFileSync(mirror.ca.caCert), ...(timeoutMs ? { timeout: timeoutMs } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as T }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out after ${timeoutMs} ms`)));
    req.end();
  });
}

export async function waitForState(mirror: TestServer, state: string, timeoutMs = 20_000): Promise<MirrorStatus> {
  return eventually(async () => {
    const { body } = await mirrorGet(mirror, '/status');
    return body.state === state ? body : undefined;
  }, `mirror state ${state}`, timeoutMs);
}

export async function authorizeMirror(primary: TestServer, mirror: TestServer, projectKeys: string[] | 'ALL'): Promise<string> {
  const status = await waitForState(mirror, 'PENDING');
  const body = projectKeys === 'ALL' ? { mirroringMode: 'ALL_PROJECTS' } : { mirroringMode: 'SELECTED_PROJECTS', projectKeys };
  const r = await api(primary, 'POST', `/rest/mirroring/1.0/requests/${status.mirrorId}/accept`, body);
  assert.ok(r.status >= 200 && r.status < 300, `accept: ${r.status} ${r.text}`);
  return status.mirrorId;
}

/** Waits until the mirror advertises exactly the primary's refs for a repository. */
export async function waitForSameRefs(primary: TestServer, mirror: TestServer, project: string, slug: string, creds: Credentials, timeoutMs = 15_000): Promise<Map<string, string>> {
  // Compared line by line: the map would lose HEAD's symref line ("ref: refs/heads/x\tHEAD") to its oid line.
  const lines = (text: string) => text.split('\n').filter(Boolean).sort().join('\n');
  const want = lines(await gitOk(primary, ['ls-remote', '--symref', primary.httpUrl(project, slug)], { creds }));
  return eventually(async () => {
    const got = await gitOk(mirror, ['ls-remote', '--symref', mirror.httpUrl(project, slug)], { creds });
    return lines(got) === want ? parseLsRemote(got) : undefined;
  }, `mirror refs of ${project}/${slug} (and HEAD) to equal the primary's`, timeoutMs);
}

export function sameMap(a: Map<string, string>, b: Map<string, string>): boolean {
  return a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);
}

/**
 * Runs `attempt` again and again until it fails (a revocation took effect) and returns how long after the call
 * that attempt started, in ms. Fails when an attempt started later than `withinMs` still succeeded.
 */
export async function refusedWithin(withinMs: number, attempt: () => Promise<{ code: number | null; stderr: string }>, what: string): Promise<{ ms: number; stderr: string }> {
  const t0 = Date.now();
  for (;;) {
    const started = Date.now() - t0;
    const r = await attempt();
    if (r.code !== 0) return { ms: started, stderr: r.stderr };
    assert.ok(started <= withinMs, `${what}: still allowed ${started} ms after the change`);
  }
}
