// `mirrorfarm admin mirror ...`: registration requests and mirrors on a primary (sysadmins).
import type { Command } from 'commander';
import { CliError, table, type RestClient } from './admin.js';

type Json = Record<string, unknown>;

export interface AdminCommandKit {
  api(): Promise<RestClient>;
  leaf(parent: Command, spec: string, description: string): Command;
  print(command: Command, json: unknown, human: () => string): void;
}

const enc = encodeURIComponent;
const BASE = '/rest/mirroring/1.0';

export function registerMirrorCommands(admin: Command, kit: AdminCommandKit): void {
  const { api, leaf, print } = kit;
  const mirror = admin.command('mirror').description('Mirrors of this primary: registration requests, authorization, project selection.');

  leaf(mirror, 'requests', 'List registration requests waiting for authorization.').action(async (_o, command: Command) => {
    const values = await (await api()).all<Json>(`${BASE}/requests`);
    print(command, values, () =>
      table(
        ['MIRROR ID', 'NAME', 'BASE URL', 'KEY FINGERPRINT', 'STATE'],
        values.map((r) => [r.mirrorId as string, r.mirrorName as string, r.mirrorBaseUrl as string, r.publicKeyFingerprint as string, r.state as string]),
      ),
    );
  });

  leaf(mirror, 'list', 'List mirrors with their state, lag and sync progress.').action(async (_o, command: Command) => {
    const values = await (await api()).all<Json>(`${BASE}/mirrorServers`);
    print(command, values, () =>
      table(
        ['MIRROR ID', 'NAME', 'STATE', 'MODE', 'NODES', 'LAG S', 'SYNCED', 'FAILING', 'LAST SEEN'],
        values.map((m) => {
          const repos = (m.repositories ?? {}) as { total?: number; synced?: number; failing?: unknown[] };
          return [
            m.id as string,
            m.name as string,
            m.state as string,
            m.mirroringMode as string,
            Array.isArray(m.nodes) ? m.nodes.length : '',
            m.lagSeconds === null || m.lagSeconds === undefined ? '' : Number(m.lagSeconds).toFixed(1),
            `${repos.synced ?? 0}/${repos.total ?? 0}`,
            repos.failing?.length ?? 0,
            (m.lastSeenDate as string | undefined) ?? '',
          ];
        }),
      ),
    );
  });

  leaf(mirror, 'show <mirrorId>', 'Show one mirror: nodes, projects and failing repositories.').action(async (id: string, _o, command: Command) => {
    const m = await (await api()).call<Json>('GET', `${BASE}/mirrorServers/${enc(id)}`);
    print(command, m, () => {
      const repos = (m.repositories ?? {}) as { total?: number; synced?: number; failing?: Json[] };
      const nodes = (m.nodes ?? []) as Json[];
      const projects = (m.projects ?? []) as Json[];
      return [
        `${String(m.name)} (${String(m.id)}) at ${String(m.baseUrl)}`,
        `state ${String(m.state)}, ${String(m.mirroringMode)}, key ${String(m.publicKeyFingerprint)}`,
        `repositories in sync: ${repos.synced ?? 0}/${repos.total ?? 0}`,
        ...(m.farm ? [`farm: ${String((m.farm as Json).memberCount)} members in contact, ${String((m.farm as Json).activeCount)} active`] : []),
        ...(Array.isArray(m.sshHostKeys) ? [`SSH host keys: ${(m.sshHostKeys as Json[]).map((k) => k.fingerprint as string).join(', ') || 'none'}`] : []),
        ...(projects.length ? [`projects: ${projects.map((p) => p.key as string).join(', ')}`] : []),
        '',
        table(
          ['NODE', 'STATE', 'ROLE', 'VERSION', 'SYNCED', 'CURSOR', 'LAG S', 'LAST SEEN'],
          nodes.map((n) => {
            const r = (n.repositories ?? {}) as { synced?: number; total?: number };
            return [n.id as string, n.state as string, (n.role as string) ?? '', (n.version as string) ?? '', `${r.synced ?? 0}/${r.total ?? 0}`, n.cursor as number, n.lagSeconds as number, n.lastSeenDate as string];
          }),
        ),
        ...(repos.failing?.length ? ['', table(['FAILING', 'NODE', 'ERROR'], repos.failing.map((f) => [`${String(f.projectKey)}/${String(f.slug)}`, f.nodeId as string, f.error as string]))] : []),
      ].join('\n');
    });
  });

  leaf(mirror, 'accept <mirrorId>', 'Authorize a mirror, choosing what it carries.')
    .option('--all-projects', 'every project, including projects created later')
    .option('--projects <keys>', 'comma-separated project keys')
    .action(async (id: string, o: { allProjects?: boolean; projects?: string }, command: Command) => {
      if (!o.allProjects && !o.projects) throw new CliError('choose what the mirror carries: --all-projects, or --projects KEY1,KEY2');
      const body = o.allProjects ? { mirroringMode: 'ALL_PROJECTS' } : { mirroringMode: 'SELECTED_PROJECTS', projectKeys: splitKeys(o.projects!) };
      const result = await (await api()).call<Json>('POST', `${BASE}/requests/${enc(id)}/accept`, { body });
      print(command, result, () => `Authorized mirror ${id} (${body.mirroringMode}${o.projects ? `: ${splitKeys(o.projects).join(', ')}` : ''}).`);
    });

  leaf(mirror, 'reject <mirrorId>', 'Reject a registration request.').action(async (id: string, _o, command: Command) => {
    await (await api()).call('POST', `${BASE}/requests/${enc(id)}/reject`);
    print(command, { rejected: id }, () => `Rejected mirror ${id}.`);
  });

  leaf(mirror, 'delete <mirrorId>', 'Delete a mirror: its SSH and REST access end at once.').action(async (id: string, _o, command: Command) => {
    await (await api()).call('DELETE', `${BASE}/mirrorServers/${enc(id)}`);
    print(command, { deleted: id }, () => `Deleted mirror ${id}; it can fetch nothing any more. Uninstall it.`);
  });

  leaf(mirror, 'reset-identity <mirrorId>', "Forget a farm's SSH host keys and URLs: the next node to register fixes them (before rotating host keys).").action(
    async (id: string, _o, command: Command) => {
      const result = await (await api()).call<Json>('DELETE', `${BASE}/mirrorServers/${enc(id)}/farmIdentity`);
      print(command, result, () => `Reset the identity of mirror ${id}; the next node to register fixes its host keys, base URL and SSH URL.`);
    },
  );

  leaf(mirror, 'add-project <mirrorId> <projectKey>', 'Add a project to what a mirror carries.').action(async (id: string, key: string, _o, command: Command) => {
    await (await api()).call('POST', `${BASE}/mirrorServers/${enc(id)}/projects/${enc(key)}`);
    print(command, { mirrorId: id, added: key }, () => `Mirror ${id} now carries ${key.toUpperCase()}.`);
  });

  leaf(mirror, 'remove-project <mirrorId> <projectKey>', 'Remove a project from what a mirror carries.').action(async (id: string, key: string, _o, command: Command) => {
    await (await api()).call('DELETE', `${BASE}/mirrorServers/${enc(id)}/projects/${enc(key)}`);
    print(command, { mirrorId: id, removed: key }, () => `Mirror ${id} no longer carries ${key.toUpperCase()}.`);
  });

  leaf(mirror, 'mode <mirrorId> <mode>', 'Switch between ALL_PROJECTS and SELECTED_PROJECTS.').action(async (id: string, mode: string, _o, command: Command) => {
    const mirroringMode = mode.toUpperCase();
    if (mirroringMode !== 'ALL_PROJECTS' && mirroringMode !== 'SELECTED_PROJECTS') throw new CliError('mode is ALL_PROJECTS or SELECTED_PROJECTS');
    const result = await (await api()).call<Json>('PUT', `${BASE}/mirrorServers/${enc(id)}`, { body: { mirroringMode } });
    print(command, result, () => `Mirror ${id} is now ${mirroringMode}.`);
  });
}

function splitKeys(list: string): string[] {
  return list
    .split(',')
    .map((k) => k.trim().toUpperCase())
    .filter(Boolean);
}
