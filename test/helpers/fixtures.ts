// Builds test fixtures through the public REST API, as an administrator or script would.
import assert from 'node:assert/strict';
import { api, ADMIN, type Credentials, type TestServer } from './server.js';

async function ok<T = any>(promise: ReturnType<typeof api<T>>, what: string): Promise<T> {
  const r = await promise;
  assert.ok(r.status >= 200 && r.status < 300, `${what}: HTTP ${r.status} ${r.text}`);
  return r.body;
}

export function createProject(server: TestServer, key: string, extra: Record<string, unknown> = {}) {
  return ok(api(server, 'POST', '/rest/api/1.0/projects', { key, name: `${key} project`, ...extra }), `create project ${key}`);
}

export function createRepo(server: TestServer, project: string, name: string, extra: Record<string, unknown> = {}) {
  return ok<{ id: number; slug: string }>(api(server, 'POST', `/rest/api/1.0/projects/${project}/repos`, { name, ...extra }), `create repo ${project}/${name}`);
}

export async function createUser(server: TestServer, name: string, password = `${name}-password-1`): Promise<Credentials> {
  const q = new URLSearchParams({ name, password, displayName: name, emailAddress: `${name}@example.com` });
  await ok(api(server, 'POST', `/rest/api/1.0/admin/users?${q}`), `create user ${name}`);
  return { user: name, secret: password };
}

export function grantRepo(server: TestServer, project: string, slug: string, user: string, permission: string) {
  return ok(api(server, 'PUT', `/rest/api/1.0/projects/${project}/repos/${slug}/permissions/users?name=${user}&permission=${permission}`), `grant ${permission}`);
}

export function grantProject(server: TestServer, project: string, user: string, permission: string) {
  return ok(api(server, 'PUT', `/rest/api/1.0/projects/${project}/permissions/users?name=${user}&permission=${permission}`), `grant ${permission}`);
}

export async function createToken(server: TestServer, owner: Credentials, permissions: string[], name = 'test token'): Promise<string> {
  const body = await ok<{ token: string }>(api(server, 'PUT', `/rest/access-tokens/1.0/users/${owner.user}`, { name, permissions }, owner), 'create token');
  return body.token;
}

export function addSshKey(server: TestServer, user: string, publicKey: string) {
  return ok(api(server, 'POST', `/rest/ssh/1.0/keys?user=${user}`, { text: publicKey }, ADMIN), `add key for ${user}`);
}

export interface LoggedEvent {
  id: number;
  type: string;
  repositoryId: number | null;
  projectId: number | null;
  [k: string]: unknown;
}

export async function events(server: TestServer, after = 0): Promise<LoggedEvent[]> {
  const all: LoggedEvent[] = [];
  let cursor = after;
  for (;;) {
    const page = await ok<{ values: LoggedEvent[]; isLastPage: boolean }>(api(server, 'GET', `/rest/mirroring/1.0/events?after=${cursor}&limit=1000`), 'read events');
    all.push(...page.values);
    if (page.isLastPage || page.values.length === 0) return all;
    cursor = page.values[page.values.length - 1]!.id;
  }
}

export async function lastEventId(server: TestServer): Promise<number> {
  const all = await events(server);
  return all.length ? all[all.length - 1]!.id : 0;
}

/** The secret part of a personal access token (`mft_<id>_<secret>`); the secret itself may contain `_`. */
export function tokenSecret(token: string): string {
  const match = /^mft_\d+_(.+)$/.exec(token);
  if (!match) throw new Error(`not a mirrorfarm token: ${token.slice(0, 8)}...`);
  return match[1]!;
}
