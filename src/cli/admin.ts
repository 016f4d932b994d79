// `mirrorfarm admin ...`: a scripting client for the REST API over HTTPS. It covers projects, repositories,
// users, groups, permissions, SSH keys, access tokens and the event log. Credentials never come from argv (where `ps`
// and shell history would show them): the password comes from MIRRORFARM_PASSWORD or --password-stdin, a token
// from MIRRORFARM_TOKEN. A private CA is added to Node's default trust with --ca-file; there is no switch to
// skip certificate verification. Output is a table by default and the server's JSON with --json.
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import { Command, Option } from 'commander';
import { VERSION } from '../version.js';
import { registerGroupCommands } from './admin-groups.js';
import { registerMirrorCommands } from './admin-mirrors.js';

export class CliError extends Error {
  override name = 'CliError';
}

interface LoginOptions {
  url?: string;
  caFile?: string;
  user: string;
  passwordStdin?: boolean;
  json?: boolean;
}

interface Paged<T> {
  values: T[];
  isLastPage: boolean;
  nextPageStart?: number;
}

type Json = Record<string, unknown>;

// --- HTTP client ----------------------------------------------------------------------------------------

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

export class RestClient {
  private readonly ca: Array<string | Buffer> | undefined;

  constructor(
    private readonly base: URL,
    private readonly authorization: string | undefined,
    caFile: string | undefined,
  ) {
    if (base.protocol !== 'https:' && !(base.protocol === 'http:' && LOOPBACK.has(base.hostname))) {
      throw new CliError(`--url must be an https:// URL (plain http is accepted for localhost only, so that no password crosses a network in clear): ${base.href}`);
    }
    if (caFile) {
      let pem: Buffer;
      try {
        pem = readFileSync(caFile);
      } catch (err) {
        throw new CliError(`cannot read the CA file ${caFile}: ${(err as Error).message}`);
      }
      // Added to, not instead of, the default trust: a public certificate keeps working.
      this.ca = [...rootCertificates, pem];
    }
  }

  async call<T = unknown>(method: string, path: string, options: { query?: Record<string, string | string[] | number | undefined>; body?: unknown } = {}): Promise<T> {
    const url = new URL(this.base.pathname.replace(/\/$/, '') + path, this.base);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value === undefined) continue;
      for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, String(v));
    }
    const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
    const headers: Record<string, string | number> = { accept: 'application/json', 'user-agent': `mirrorfarm-admin/${VERSION}` };
    if (payload) Object.assign(headers, { 'content-type': 'application/json', 'content-length': payload.length });
    if (this.authorization) headers.authorization = this.authorization;
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(url, { method, headers, timeout: 60_000, ...(this.ca ? { ca: this.ca } : {}) }, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('no answer within 60 s')));
      req.on('error', (err: NodeJS.ErrnoException) => reject(new CliError(connectionMessage(url, err))));
      req.end(payload);
    });
    let parsed: unknown = undefined;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (status >= 400) {
      const errors = (parsed as { errors?: Array<{ message?: string }> } | undefined)?.errors;
      const message = errors?.map((e) => e.message).filter(Boolean).join('; ') || `HTTP ${status} from ${method} ${url.pathname}`;
      const hint = status === 401 && !this.authorization ? ' (set MIRRORFARM_PASSWORD, MIRRORFARM_TOKEN or use --password-stdin)' : '';
      throw new CliError(`${message}${hint}`);
    }
    return parsed as T;
  }

  /** Every page of a paged list. */
  async all<T>(path: string, query: Record<string, string | number | undefined> = {}): Promise<T[]> {
    const values: T[] = [];
    let start = 0;
    for (;;) {
      const page = await this.call<Paged<T>>('GET', path, { query: { ...query, start, limit: 1000 } });
      values.push(...page.values);
      if (page.isLastPage || page.nextPageStart === undefined || page.values.length === 0) return values;
      start = page.nextPageStart;
    }
  }
}

function connectionMessage(url: URL, err: NodeJS.ErrnoException): string {
  const code = err.code ?? '';
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code)) {
    return `the certificate of ${url.host} is not trusted (${code}): pass the CA that signed it with --ca-file (or MIRRORFARM_CA_FILE)`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `the certificate of ${url.host} is not valid for that name: ${err.message}`;
  if (code === 'ECONNREFUSED') return `cannot connect to ${url.host}: connection refused (is the server running, and is --url right?)`;
  return `cannot reach ${url.origin}: ${err.message}`;
}

// --- credentials ----------------------------------------------------------------------------------------

let stdinUsed = false;

/** The first line of standard input; stdin can carry one secret per run. */
async function readStdinLine(what: string): Promise<string> {
  if (stdinUsed) throw new CliError(`standard input can carry only one password; give the ${what} another way`);
  stdinUsed = true;
  if (process.stdin.isTTY) process.stderr.write(`${what}: `);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const line = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  if (!line) throw new CliError(`no ${what} on standard input`);
  return line;
}

async function authorizationHeader(options: LoginOptions): Promise<string | undefined> {
  const basic = (password: string) => `Basic ${Buffer.from(`${options.user}:${password}`).toString('base64')}`;
  if (options.passwordStdin) return basic(await readStdinLine('password'));
  if (process.env.MIRRORFARM_PASSWORD) return basic(process.env.MIRRORFARM_PASSWORD);
  if (process.env.MIRRORFARM_TOKEN) return `Bearer ${process.env.MIRRORFARM_TOKEN}`;
  return undefined;
}

// --- output ---------------------------------------------------------------------------------------------

function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function table(headers: string[], rows: Array<Array<string | number | boolean | null | undefined>>): string {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? '' : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), ...cells.map(line)].join('\n');
}

function date(ms: unknown): string {
  return typeof ms === 'number' ? new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z') : '';
}

function cloneHref(repo: Json, name: string): string {
  const clone = ((repo.links as Json | undefined)?.clone ?? []) as Array<{ href: string; name: string }>;
  return clone.find((c) => c.name === name)?.href ?? '';
}

/** "PROJ/slug" -> ["PROJ", "slug"]. */
function splitRepo(path: string): [string, string] {
  const parts = path.split('/');
  if (parts.length !== 2 || !parts[0] || !parts[1]) throw new CliError(`--repo takes PROJECT/slug, e.g. PROJ/my-repo (got "${path}")`);
  return [parts[0], parts[1]];
}

const enc = encodeURIComponent;

// --- commands -------------------------------------------------------------------------------------------

export function registerAdminCommands(program: Command): void {
  const admin = program
    .command('admin')
    .description('Administer a mirrorfarm server over its REST API (HTTPS).')
    // Options before the area name belong to `admin` (login), options after it to the command, so that
    // `--user` can name the login user up front and a target user in `ssh-key add --user bob`.
    .enablePositionalOptions()
    .addOption(new Option('--url <url>', 'server base URL, e.g. https://git.example.com:7990').env('MIRRORFARM_URL'))
    .addOption(new Option('--ca-file <file>', 'PEM CA certificate to trust in addition to the system CAs').env('MIRRORFARM_CA_FILE'))
    .addOption(new Option('--user <name>', 'login user for the password').env('MIRRORFARM_USER').default('admin'))
    .option('--password-stdin', 'read the login password from standard input (else MIRRORFARM_PASSWORD, else the token in MIRRORFARM_TOKEN)')
    .option('--json', 'print the server\'s JSON instead of tables')
    .addHelpText(
      'after',
      '\nCredentials are never taken from the command line: set MIRRORFARM_PASSWORD (with --user) or MIRRORFARM_TOKEN, or use --password-stdin.\n' +
        'Example: MIRRORFARM_PASSWORD=... mirrorfarm admin --url https://localhost:7990 --ca-file ca.crt project create PROJ --name "My project"',
    );

  let client: RestClient | undefined;
  const api = async (): Promise<RestClient> => {
    if (client) return client;
    const options = admin.opts<LoginOptions>();
    if (!options.url) throw new CliError('no server given: use --url https://HOST:PORT or set MIRRORFARM_URL');
    let base: URL;
    try {
      base = new URL(options.url);
    } catch {
      throw new CliError(`--url is not a URL: ${options.url}`);
    }
    client = new RestClient(base, await authorizationHeader(options), options.caFile);
    return client;
  };

  /** --json from either side of the area name. */
  const wantsJson = (command: Command): boolean => !!(admin.opts<LoginOptions>().json || command.opts<{ json?: boolean }>().json);
  const leaf = (parent: Command, spec: string, description: string) => parent.command(spec).description(description).option('--json', 'print JSON');
  const print = (command: Command, json: unknown, human: () => string) => out(wantsJson(command) ? JSON.stringify(json, null, 2) : human());

  // projects
  const project = admin.command('project').description('Projects.');
  leaf(project, 'list', 'List projects.').action(async (_o, command: Command) => {
    const values = await (await api()).all<Json>('/rest/api/1.0/projects');
    print(command, values, () => table(['KEY', 'NAME', 'PUBLIC', 'DESCRIPTION'], values.map((p) => [p.key as string, p.name as string, p.public ? 'yes' : 'no', p.description as string])));
  });
  leaf(project, 'create <key>', 'Create a project (sysadmins).')
    .option('--name <name>', 'display name (defaults to the key)')
    .option('--description <text>', 'description')
    .option('--public', 'readable by anyone, anonymous users included')
    .action(async (key: string, o: { name?: string; description?: string; public?: boolean }, command: Command) => {
      const body = { key, ...(o.name ? { name: o.name } : {}), ...(o.description ? { description: o.description } : {}), ...(o.public ? { public: true } : {}) };
      const created = await (await api()).call<Json>('POST', '/rest/api/1.0/projects', { body });
      print(command, created, () => `Created project ${String(created.key)} (${String(created.name)}).`);
    });
  leaf(project, 'delete <key>', 'Delete an empty project.').action(async (key: string, _o, command: Command) => {
    await (await api()).call('DELETE', `/rest/api/1.0/projects/${enc(key)}`);
    print(command, { deleted: key }, () => `Deleted project ${key.toUpperCase()}.`);
  });

  // repositories
  const repo = admin.command('repo').description('Repositories.');
  const repoLines = (r: Json) => `${String((r.project as Json).key)}/${String(r.slug)}\n  clone: ${cloneHref(r, 'http')}${cloneHref(r, 'ssh') ? `\n         ${cloneHref(r, 'ssh')}` : ''}`;
  leaf(repo, 'list [project]', 'List repositories (all you can read, or those of one project).').action(async (key: string | undefined, _o, command: Command) => {
    const path = key ? `/rest/api/1.0/projects/${enc(key)}/repos` : '/rest/api/1.0/repos';
    const values = await (await api()).all<Json>(path);
    print(command, values, () =>
      table(
        ['PROJECT', 'SLUG', 'NAME', 'PUBLIC', 'CLONE'],
        values.map((r) => [(r.project as Json).key as string, r.slug as string, r.name as string, r.public ? 'yes' : 'no', cloneHref(r, 'http')]),
      ),
    );
  });
  leaf(repo, 'create <project> <name>', 'Create a repository (the slug is derived from the name).')
    .option('--public', 'readable by anyone')
    .option('--default-branch <branch>', 'default branch (server default otherwise)')
    .option('--description <text>', 'description')
    .action(async (key: string, name: string, o: { public?: boolean; defaultBranch?: string; description?: string }, command: Command) => {
      const body = { name, ...(o.public ? { public: true } : {}), ...(o.defaultBranch ? { defaultBranch: o.defaultBranch } : {}), ...(o.description ? { description: o.description } : {}) };
      const created = await (await api()).call<Json>('POST', `/rest/api/1.0/projects/${enc(key)}/repos`, { body });
      print(command, created, () => `Created repository ${repoLines(created)}`);
    });
  leaf(repo, 'rename <project> <slug> <new-name>', 'Rename a repository; its slug (and clone URL) follow the name.').action(
    async (key: string, slug: string, name: string, _o, command: Command) => {
      const updated = await (await api()).call<Json>('PUT', `/rest/api/1.0/projects/${enc(key)}/repos/${enc(slug)}`, { body: { name } });
      print(command, updated, () => `Renamed to ${repoLines(updated)}`);
    },
  );
  leaf(repo, 'move <project> <slug> <new-project>', 'Move a repository to another project.').action(
    async (key: string, slug: string, target: string, _o, command: Command) => {
      const updated = await (await api()).call<Json>('PUT', `/rest/api/1.0/projects/${enc(key)}/repos/${enc(slug)}`, { body: { project: { key: target } } });
      print(command, updated, () => `Moved to ${repoLines(updated)}`);
    },
  );
  leaf(repo, 'delete <project> <slug>', 'Delete a repository and its data.').action(async (key: string, slug: string, _o, command: Command) => {
    await (await api()).call('DELETE', `/rest/api/1.0/projects/${enc(key)}/repos/${enc(slug)}`);
    print(command, { deleted: `${key}/${slug}` }, () => `Deleted repository ${key.toUpperCase()}/${slug}.`);
  });

  // users
  const user = admin.command('user').description('Users (sysadmins).');
  leaf(user, 'list', 'List users.')
    .option('--filter <text>', 'only names, display names or e-mail addresses containing this')
    .action(async (o: { filter?: string }, command: Command) => {
      const client = await api();
      const values = await client.all<Json>('/rest/api/1.0/admin/users', { filter: o.filter });
      const admins = new Set((await client.all<{ user: Json }>('/rest/api/1.0/admin/permissions/users')).map((g) => g.user.name));
      print(command, values, () =>
        table(
          ['NAME', 'DISPLAY NAME', 'EMAIL', 'ACTIVE', 'SYSADMIN'],
          values.map((u) => [u.name as string, u.displayName as string, u.emailAddress as string, u.active ? 'yes' : 'no', admins.has(u.name) ? 'yes' : '']),
        ),
      );
    });
  leaf(user, 'create <name>', 'Create a user. The password comes from --password-stdin or MIRRORFARM_NEW_USER_PASSWORD.')
    .option('--display-name <name>', 'display name (defaults to the name)')
    .option('--email <address>', 'e-mail address')
    .option('--sysadmin', 'make the user a system administrator')
    .option('--password-stdin', "read the new user's password from standard input")
    .action(async (name: string, o: { displayName?: string; email?: string; sysadmin?: boolean; passwordStdin?: boolean }, command: Command) => {
      const client = await api();
      const password = o.passwordStdin ? await readStdinLine(`password for ${name}`) : process.env.MIRRORFARM_NEW_USER_PASSWORD;
      if (!password) throw new CliError(`no password for ${name}: use --password-stdin or set MIRRORFARM_NEW_USER_PASSWORD`);
      // A JSON body rather than Bitbucket's query parameters keeps the password out of URLs and proxy logs.
      const body = { name, password, ...(o.displayName ? { displayName: o.displayName } : {}), ...(o.email ? { emailAddress: o.email } : {}) };
      await client.call('POST', '/rest/api/1.0/admin/users', { body });
      if (o.sysadmin) await client.call('PUT', '/rest/api/1.0/admin/permissions/users', { query: { name, permission: 'SYS_ADMIN' } });
      const created = await client.call<Json>('GET', `/rest/api/1.0/users/${enc(name)}`);
      print(command, { ...created, sysadmin: !!o.sysadmin }, () => `Created user ${String(created.name)}${o.sysadmin ? ' (sysadmin)' : ''}.`);
    });
  leaf(user, 'set-password <name>', "Set a user's password (from --password-stdin or MIRRORFARM_NEW_USER_PASSWORD).")
    .option('--password-stdin', 'read the new password from standard input')
    .action(async (name: string, o: { passwordStdin?: boolean }, command: Command) => {
      const client = await api();
      const password = o.passwordStdin ? await readStdinLine(`new password for ${name}`) : process.env.MIRRORFARM_NEW_USER_PASSWORD;
      if (!password) throw new CliError(`no password for ${name}: use --password-stdin or set MIRRORFARM_NEW_USER_PASSWORD`);
      await client.call('PUT', '/rest/api/1.0/admin/users/credentials', { body: { name, password, passwordConfirm: password } });
      print(command, { updated: name }, () => `Set the password of ${name}.`);
    });
  leaf(user, 'delete <name>', 'Delete a user with their keys, tokens and permissions.').action(async (name: string, _o, command: Command) => {
    const deleted = await (await api()).call<Json>('DELETE', '/rest/api/1.0/admin/users', { query: { name } });
    print(command, deleted, () => `Deleted user ${String(deleted.name)}.`);
  });

  // permissions
  const permission = admin.command('permission').description('User and group permissions on projects and repositories.');
  const targetPath = (o: { project?: string; repo?: string }, kind: 'users' | 'groups') => {
    if (!!o.project === !!o.repo) throw new CliError('name exactly one of --project KEY or --repo PROJECT/slug');
    if (o.project) return `/rest/api/1.0/projects/${enc(o.project)}/permissions/${kind}`;
    const [key, slug] = splitRepo(o.repo!);
    return `/rest/api/1.0/projects/${enc(key)}/repos/${enc(slug)}/permissions/${kind}`;
  };
  /** The user or the group a grant is for: exactly one of --user and --group. */
  const grantee = (o: { user?: string; group?: string }): { kind: 'users' | 'groups'; name: string; label: string } => {
    if (!!o.user === !!o.group) throw new CliError('name exactly one of --user NAME or --group NAME');
    return o.user ? { kind: 'users', name: o.user, label: o.user } : { kind: 'groups', name: o.group!, label: `group ${o.group!}` };
  };
  const scoped = (c: Command) => c.option('--project <key>', 'a project').option('--repo <project/slug>', 'a repository');
  scoped(leaf(permission, 'grant', 'Grant a permission (PROJECT_READ|WRITE|ADMIN on a project, REPO_READ|WRITE|ADMIN on a repository).'))
    .option('--user <name>', 'user to grant to')
    .option('--group <name>', 'group to grant to (its members get it)')
    .requiredOption('--permission <permission>', 'e.g. REPO_WRITE')
    .action(async (o: { project?: string; repo?: string; user?: string; group?: string; permission: string }, command: Command) => {
      const who = grantee(o);
      await (await api()).call('PUT', targetPath(o, who.kind), { query: { name: who.name, permission: o.permission } });
      print(command, { [who.kind === 'users' ? 'user' : 'group']: who.name, permission: o.permission }, () => `Granted ${o.permission} on ${o.project ?? o.repo} to ${who.label}.`);
    });
  scoped(leaf(permission, 'revoke', "Revoke a user's or a group's permission."))
    .option('--user <name>', 'user to revoke from')
    .option('--group <name>', 'group to revoke from')
    .action(async (o: { project?: string; repo?: string; user?: string; group?: string }, command: Command) => {
      const who = grantee(o);
      await (await api()).call('DELETE', targetPath(o, who.kind), { query: { name: who.name } });
      print(command, { [who.kind === 'users' ? 'user' : 'group']: who.name, revoked: true }, () => `Revoked the permission of ${who.label} on ${o.project ?? o.repo}.`);
    });
  scoped(leaf(permission, 'list', 'List the users (or with --groups, the groups) with a permission.'))
    .option('--groups', 'list group grants instead of user grants')
    .action(async (o: { project?: string; repo?: string; groups?: boolean }, command: Command) => {
      if (o.groups) {
        const values = await (await api()).all<{ group: Json; permission: string }>(targetPath(o, 'groups'));
        return print(command, values, () => table(['GROUP', 'PERMISSION'], values.map((g) => [g.group.name as string, g.permission])));
      }
      const values = await (await api()).all<{ user: Json; permission: string }>(targetPath(o, 'users'));
      print(command, values, () => table(['USER', 'PERMISSION'], values.map((g) => [g.user.name as string, g.permission])));
    });

  // SSH keys
  const sshKey = admin.command('ssh-key').description('Personal SSH keys.');
  leaf(sshKey, 'add <file>', 'Add a public key (e.g. ~/.ssh/id_ed25519.pub).')
    .option('--user <name>', 'owner (yourself by default; sysadmins may name anyone)')
    .option('--label <label>', "label (defaults to the key's comment)")
    .action(async (file: string, o: { user?: string; label?: string }, command: Command) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8').trim();
      } catch (err) {
        throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
      }
      if (/PRIVATE KEY/.test(text)) throw new CliError(`${file} is a private key; give the .pub file`);
      const key = await (await api()).call<Json>('POST', '/rest/ssh/1.0/keys', { query: { user: o.user }, body: { text, ...(o.label ? { label: o.label } : {}) } });
      print(command, key, () => `Added SSH key ${String(key.id)} (${String(key.fingerprint)}).`);
    });
  leaf(sshKey, 'list', 'List SSH keys.')
    .option('--user <name>', 'owner (yourself by default)')
    .action(async (o: { user?: string }, command: Command) => {
      const values = await (await api()).all<Json>('/rest/ssh/1.0/keys', { user: o.user });
      print(command, values, () =>
        table(['ID', 'LABEL', 'TYPE', 'BITS', 'FINGERPRINT', 'ADDED'], values.map((k) => [k.id as number, k.label as string, k.algorithmType as string, k.bitLength as number, k.fingerprint as string, date(k.createdDate)])),
      );
    });
  leaf(sshKey, 'delete <id>', 'Delete an SSH key by id.').action(async (id: string, _o, command: Command) => {
    await (await api()).call('DELETE', `/rest/ssh/1.0/keys/${enc(id)}`);
    print(command, { deleted: id }, () => `Deleted SSH key ${id}.`);
  });

  // access tokens
  const token = admin.command('token').description('Personal access tokens.');
  leaf(token, 'create', 'Create a token and print it (it is shown only once).')
    .requiredOption('--user <name>', 'owner')
    .requiredOption('--name <name>', 'what the token is for')
    .requiredOption('--permissions <list>', 'comma-separated, e.g. PROJECT_READ,REPO_WRITE')
    .option('--expiry-days <n>', 'days until it stops working', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new CliError('--expiry-days takes a whole number of days, at least 1');
      return n;
    })
    .action(async (o: { user: string; name: string; permissions: string; expiryDays?: number }, command: Command) => {
      const permissions = o.permissions.split(',').map((p) => p.trim().toUpperCase()).filter(Boolean);
      const created = await (await api()).call<Json>('PUT', `/rest/access-tokens/1.0/users/${enc(o.user)}`, {
        body: { name: o.name, permissions, ...(o.expiryDays ? { expiryDays: o.expiryDays } : {}) },
      });
      if (wantsJson(command)) return out(JSON.stringify(created, null, 2));
      // The token alone on stdout, so that TOKEN=$(mirrorfarm admin token create ...) works.
      process.stderr.write(`Created token "${String(created.name)}" (id ${String(created.id)}) for ${o.user}; it is shown only once:\n`);
      out(String(created.token));
    });
  leaf(token, 'list', "List a user's tokens (never the tokens themselves).")
    .requiredOption('--user <name>', 'owner')
    .action(async (o: { user: string }, command: Command) => {
      const values = await (await api()).all<Json>(`/rest/access-tokens/1.0/users/${enc(o.user)}`);
      print(command, values, () =>
        table(
          ['ID', 'NAME', 'PERMISSIONS', 'CREATED', 'EXPIRES', 'LAST USED'],
          values.map((t) => [t.id as string, t.name as string, (t.permissions as string[]).join(','), date(t.createdDate), date(t.expiryDate), date(t.lastAuthenticated)]),
        ),
      );
    });
  leaf(token, 'delete <id>', 'Revoke a token.')
    .requiredOption('--user <name>', 'owner')
    .action(async (id: string, o: { user: string }, command: Command) => {
      await (await api()).call('DELETE', `/rest/access-tokens/1.0/users/${enc(o.user)}/${enc(id)}`);
      print(command, { deleted: id }, () => `Revoked token ${id} of ${o.user}.`);
    });

  registerGroupCommands(admin, { api, leaf, print });
  registerMirrorCommands(admin, { api, leaf, print });

  // event log
  leaf(admin, 'events', 'Read the event log (sysadmins).')
    .option('--after <id>', 'only events after this id', (v) => Number(v), 0)
    .option('--limit <n>', 'at most this many events', (v) => Number(v), 100)
    .action(async (o: { after: number; limit: number }, command: Command) => {
      if (!Number.isInteger(o.after) || o.after < 0) throw new CliError('--after takes an event id (0 or more)');
      if (!Number.isInteger(o.limit) || o.limit < 1) throw new CliError('--limit takes a positive number');
      const client = await api();
      type Page = { values: Json[]; isLastPage: boolean; nextAfter: number; firstAvailable: number; last: number };
      const events: Json[] = [];
      let after = o.after;
      let page: Page;
      do {
        page = await client.call<Page>('GET', '/rest/mirroring/1.0/events', { query: { after, limit: Math.min(1000, o.limit - events.length) } });
        events.push(...page.values);
        after = page.nextAfter;
      } while (!page.isLastPage && page.values.length > 0 && events.length < o.limit);
      if (wantsJson(command)) return out(JSON.stringify({ values: events, nextAfter: after, isLastPage: page.isLastPage, firstAvailable: page.firstAvailable, last: page.last }, null, 2));
      if (o.after > 0 && o.after < page.firstAvailable - 1) process.stderr.write(`warning: events ${o.after + 1}..${page.firstAvailable - 1} are past retention and were not returned\n`);
      const common = new Set(['id', 'type', 'createdDate', 'projectId', 'repositoryId']);
      out(
        table(
          ['ID', 'TIME', 'TYPE', 'DETAILS'],
          events.map((e) => [
            e.id as number,
            date(e.createdDate),
            e.type as string,
            Object.entries(e)
              .filter(([k]) => !common.has(k))
              .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
              .join(' '),
          ]),
        ),
      );
      if (!page.isLastPage) process.stderr.write(`more events follow: --after ${after}\n`);
    });
}
