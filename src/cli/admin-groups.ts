// `mirrorfarm admin group ...`: groups and their members on a primary (sysadmins). Permissions of groups on
// projects and repositories are granted with `admin permission grant --group`.
import type { Command } from 'commander';
import { table } from './admin.js';
import type { AdminCommandKit } from './admin-mirrors.js';

type Json = Record<string, unknown>;

const BASE = '/rest/api/1.0/admin';

export function registerGroupCommands(admin: Command, kit: AdminCommandKit): void {
  const { api, leaf, print } = kit;
  const group = admin.command('group').alias('groups').description('Groups of users (sysadmins); grant them permissions with `permission grant --group`.');

  leaf(group, 'list', 'List groups.')
    .option('--filter <text>', 'only groups whose name contains this')
    .action(async (o: { filter?: string }, command: Command) => {
      const client = await api();
      const values = await client.all<Json>(`${BASE}/groups`, { filter: o.filter });
      const sysadmins = new Set((await client.all<{ group: Json }>(`${BASE}/permissions/groups`)).map((g) => g.group.name));
      print(command, values, () =>
        table(
          ['NAME', 'SYSADMIN'],
          values.map((g) => [g.name as string, sysadmins.has(g.name) ? 'yes' : '']),
        ),
      );
    });

  leaf(group, 'create <name>', 'Create a group.')
    .option('--sysadmin', "make the group's members system administrators")
    .action(async (name: string, o: { sysadmin?: boolean }, command: Command) => {
      const client = await api();
      const created = await client.call<Json>('POST', `${BASE}/groups`, { query: { name } });
      if (o.sysadmin) await client.call('PUT', `${BASE}/permissions/groups`, { query: { name, permission: 'SYS_ADMIN' } });
      print(command, { ...created, sysadmin: !!o.sysadmin }, () => `Created group ${String(created.name)}${o.sysadmin ? ' (sysadmin)' : ''}.`);
    });

  leaf(group, 'delete <name>', 'Delete a group with its memberships and permissions.').action(async (name: string, _o, command: Command) => {
    const deleted = await (await api()).call<Json>('DELETE', `${BASE}/groups`, { query: { name } });
    print(command, deleted, () => `Deleted group ${String(deleted.name)}.`);
  });

  leaf(group, 'add-user <group> <users...>', 'Add users to a group.').action(async (name: string, users: string[], _o, command: Command) => {
    await (await api()).call('POST', `${BASE}/groups/add-users`, { body: { group: name, users } });
    print(command, { group: name, added: users }, () => `Added ${users.join(', ')} to ${name}.`);
  });

  leaf(group, 'remove-user <group> <user>', 'Remove a user from a group.').action(async (name: string, user: string, _o, command: Command) => {
    await (await api()).call('POST', `${BASE}/groups/remove-user`, { body: { context: name, itemName: user } });
    print(command, { group: name, removed: user }, () => `Removed ${user} from ${name}.`);
  });

  leaf(group, 'members <group>', "List a group's members.")
    .option('--filter <text>', 'only names, display names or e-mail addresses containing this')
    .action(async (name: string, o: { filter?: string }, command: Command) => {
      const values = await (await api()).all<Json>(`${BASE}/groups/more-members`, { context: name, filter: o.filter });
      print(command, values, () =>
        table(
          ['NAME', 'DISPLAY NAME', 'EMAIL'],
          values.map((u) => [u.name as string, u.displayName as string, u.emailAddress as string]),
        ),
      );
    });
}
