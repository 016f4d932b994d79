// Drives the published Bitbucket Server client `bitbucket-server-nodejs` (npm; it uses the `request` library)
// against a server, in its own process, the way a script of a Bitbucket user would: base URL
// `https://HOST/rest/api/latest`, a personal access token as `Authorization: Bearer`. Prints what the client got
// as one JSON line on stdout. The token comes in the environment (MF_TOKEN), never on argv.
//
// The library's constructor accepts only basic or OAuth auth and hands its auth object to `request` unchanged;
// `request` sends `auth.bearer` as a Bearer header in preference to user and password. So the user name and
// password given here are placeholders that would fail as Basic credentials: only the Bearer token can succeed.
import { createRequire } from 'node:module';

interface Paged<T> {
  values: T[];
  size: number;
  isLastPage: boolean;
}
interface Failure {
  statusCode?: number;
  error?: { errors?: Array<{ exceptionName?: string; code?: string; message?: string }> };
}
interface BitbucketClient {
  projects: { get(options?: { args?: Record<string, unknown> }): Promise<Paged<{ key: string }>> };
  repos: {
    get(projectKey: string): Promise<Paged<{ slug: string; project: { key: string } }>>;
    getAll(): Promise<Array<{ slug: string; project: { key: string } }>>;
    getRepo(projectKey: string, slug: string): Promise<{ slug: string; links: { clone: Array<{ href: string; name: string }> } }>;
  };
  branches: { get(projectKey: string, slug: string): Promise<Paged<{ displayId: string; isDefault: boolean; latestCommit: string }>> };
  tags: { get(projectKey: string, slug: string): Promise<Paged<{ displayId: string }>> };
}
type ClientConstructor = new (baseUrl: string, auth?: Record<string, unknown>) => BitbucketClient;

const require = createRequire(import.meta.url);
const { Client } = require('bitbucket-server-nodejs') as { Client: ClientConstructor };

const baseUrl = process.env.MF_BASE_URL!;
const project = process.env.MF_PROJECT!;
const repo = process.env.MF_REPO!;
const hiddenProject = process.env.MF_HIDDEN_PROJECT!;
const hiddenRepo = process.env.MF_HIDDEN_REPO!;

async function failureOf(call: Promise<unknown>): Promise<{ status?: number; exceptionName?: string; code?: string }> {
  try {
    await call;
    return {};
  } catch (err) {
    const e = err as Failure;
    const first = e.error?.errors?.[0];
    return { ...(e.statusCode !== undefined ? { status: e.statusCode } : {}), ...(first?.exceptionName ? { exceptionName: first.exceptionName } : {}), ...(first?.code ? { code: first.code } : {}) };
  }
}

/** What the client got back for a refused call, without the request object (it carries the token). */
function describe(err: unknown): string {
  const e = err as Failure & { message?: string };
  return e.statusCode !== undefined ? `HTTP ${e.statusCode}: ${JSON.stringify(e.error)}` : String(e.message ?? err);
}
process.on('unhandledRejection', (err) => {
  process.stderr.write(`bitbucket-server-nodejs call failed: ${describe(err)}\n`);
  process.exit(1);
});

const client = new Client(`${baseUrl}/rest/api/latest`, { type: 'basic', username: 'not-a-user', password: 'not-a-password', bearer: process.env.MF_TOKEN });
const anonymous = new Client(`${baseUrl}/rest/api/latest`);

const projects = await client.projects.get();
const repos = await client.repos.get(project);
const allRepos = await client.repos.getAll();
const one = await client.repos.getRepo(project, repo);
const branches = await client.branches.get(project, repo);
const tags = await client.tags.get(project, repo);
const anonymousProjects = await anonymous.projects.get();

process.stdout.write(
  `${JSON.stringify({
    projects: projects.values.map((p) => p.key),
    repos: repos.values.map((r) => r.slug),
    allRepos: allRepos.map((r) => `${r.project.key}/${r.slug}`),
    cloneLinks: one.links.clone.map((l) => l.name).sort(),
    branches: branches.values.map((b) => ({ name: b.displayId, isDefault: b.isDefault, commit: b.latestCommit })),
    tags: tags.values.map((t) => t.displayId),
    anonymousProjects: anonymousProjects.values.map((p) => p.key),
    hiddenRepo: await failureOf(client.repos.getRepo(hiddenProject, hiddenRepo)),
    missingProject: await failureOf(client.repos.get('NOSUCHPROJECT')),
  })}\n`,
);
