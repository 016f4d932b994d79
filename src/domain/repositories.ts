// Repositories: metadata rows plus bare git repositories on disk named by id. Creating, renaming, moving,
// publishing and deleting are logged; ref changes made here go through the RefRecorder like pushes do.
import { Errors } from '../errors.js';
import type { EventLog } from '../events/log.js';
import type { RefChangeCause, RefRecorder } from '../events/ref-recorder.js';
import type { RepoStore } from '../git/repo-store.js';
import { ZERO_OID } from '../git/repo-store.js';
import { GitCommand, GitError, type GitFlag, type GitRunner } from '../git/runner.js';
import type { Db } from '../store/database.js';
import type { Project, Repository } from '../store/tables.js';
import { columnContains } from './like.js';

const SLUG = /^[a-z0-9][a-z0-9._-]{0,127}$/;

/** Bitbucket's rule: the slug is the name, lower case, with runs of other characters turned into "-". */
export function slugify(name: string): string {
  return name
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[-._]+|-+$/g, '');
}

/** A missing ref, named as Bitbucket names a missing branch or tag. */
function refNotFound(ref: string) {
  if (ref.startsWith('refs/heads/')) return Errors.branchNotFound(ref);
  if (ref.startsWith('refs/tags/')) return Errors.tagNotFound(ref);
  return Errors.notFound(ref);
}

function checkSlug(slug: string): string {
  if (!SLUG.test(slug) || slug.endsWith('.git') || slug.includes('..')) {
    throw Errors.invalid(`"${slug}" cannot be a repository slug: use letters, digits, ".", "_" and "-", not ending in ".git".`);
  }
  return slug;
}

export interface RepositoryView {
  repo: Repository;
  project: Project;
}

/** Narrows a repository listing; every text filter is a case-insensitive substring match. */
export interface RepositoryFilter {
  projectId?: number;
  projectKey?: string;
  name?: string;
  projectName?: string;
  public?: boolean;
  /**
   * Only rows that could be visible to someone with these grants: public projects and repositories, the given
   * projects and the given repositories. A cheap superset; the caller still asks the policy about each row.
   */
  candidatesFor?: { projectIds: number[]; repositoryIds: number[] };
}

export type RefOrder = 'ALPHABETICAL' | 'MODIFICATION';

export interface RefListing {
  ref: string;
  /** The commit the ref points to (peeled for annotated tags). */
  commit: string;
  /** The object the ref points to: the tag object for annotated tags. */
  object: string;
  objectType: string;
}

export class Repositories {
  constructor(
    private readonly db: Db,
    private readonly events: EventLog,
    private readonly store: RepoStore,
    private readonly refs: RefRecorder,
    private readonly git: GitRunner,
    private readonly defaultBranch: string,
  ) {}

  async find(projectKey: string, slug: string): Promise<RepositoryView | undefined> {
    const row = await this.db
      .selectFrom('repositories as r')
      .innerJoin('projects as p', 'p.id', 'r.project_id')
      .selectAll('r')
      .select(['p.key as p_key', 'p.name as p_name', 'p.description as p_description', 'p.is_public as p_is_public', 'p.created_at as p_created_at'])
      .where('p.key', '=', projectKey.toUpperCase())
      .where('r.slug', '=', slug.toLowerCase())
      .executeTakeFirst();
    if (!row) return undefined;
    const { p_key, p_name, p_description, p_is_public, p_created_at, ...repo } = row;
    return { repo, project: { id: repo.project_id, key: p_key, name: p_name, description: p_description, is_public: p_is_public, created_at: p_created_at } };
  }

  async byId(id: number): Promise<Repository | undefined> {
    return this.db.selectFrom('repositories').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async inProject(projectId: number): Promise<Repository[]> {
    return this.db.selectFrom('repositories').selectAll().where('project_id', '=', projectId).orderBy('slug').execute();
  }

  /** Repositories with their projects, ordered by project key then slug, for paged listings. */
  async listViews(filter: RepositoryFilter, offset: number, limit: number): Promise<RepositoryView[]> {
    let q = this.db
      .selectFrom('repositories as r')
      .innerJoin('projects as p', 'p.id', 'r.project_id')
      .selectAll('r')
      .select(['p.key as p_key', 'p.name as p_name', 'p.description as p_description', 'p.is_public as p_is_public', 'p.created_at as p_created_at'])
      .orderBy('p.key')
      .orderBy('r.slug')
      .offset(offset)
      .limit(limit);
    if (filter.projectId !== undefined) q = q.where('r.project_id', '=', filter.projectId);
    if (filter.projectKey !== undefined) q = q.where('p.key', '=', filter.projectKey.toUpperCase());
    if (filter.public !== undefined) q = q.where('r.is_public', '=', filter.public ? 1 : 0);
    if (filter.name) q = q.where(columnContains('r.name', filter.name));
    if (filter.projectName) q = q.where(columnContains('p.name', filter.projectName));
    const candidates = filter.candidatesFor;
    if (candidates) {
      q = q.where((eb) =>
        eb.or([
          eb('p.is_public', '=', 1),
          eb('r.is_public', '=', 1),
          ...(candidates.projectIds.length ? [eb('r.project_id', 'in', candidates.projectIds)] : []),
          ...(candidates.repositoryIds.length ? [eb('r.id', 'in', candidates.repositoryIds)] : []),
        ]),
      );
    }
    const rows = await q.execute();
    return rows.map(({ p_key, p_name, p_description, p_is_public, p_created_at, ...repo }) => ({
      repo,
      project: { id: repo.project_id, key: p_key, name: p_name, description: p_description, is_public: p_is_public, created_at: p_created_at },
    }));
  }

  async all(): Promise<Repository[]> {
    return this.db.selectFrom('repositories').selectAll().orderBy('id').execute();
  }

  async create(project: Project, input: { name: string; slug?: string; defaultBranch?: string; public?: boolean; description?: string | null }, actor?: string): Promise<Repository> {
    const name = input.name?.trim();
    if (!name || name.length > 128) throw Errors.invalid('A repository name must have 1 to 128 characters.');
    const slug = checkSlug(input.slug?.toLowerCase() ?? slugify(name));
    const branch = input.defaultBranch?.replace(/^refs\/heads\//, '') ?? this.defaultBranch;
    await this.checkBranchName(branch);
    return this.events.transact(async (trx) => {
      const clash = await trx.selectFrom('repositories').select('id').where('project_id', '=', project.id).where('slug', '=', slug).executeTakeFirst();
      if (clash) throw Errors.conflict(`Project ${project.key} already has a repository with slug "${slug}".`);
      const repo = await trx
        .insertInto('repositories')
        .values({ project_id: project.id, slug, name, description: input.description ?? null, is_public: input.public ? 1 : 0, created_at: Date.now() })
        .returningAll()
        .executeTakeFirstOrThrow();
      // The disk repository is made inside the transaction: if git fails the row is rolled back, and a
      // directory left by a crash after this point is replaced when the id is next used.
      await this.store.create(repo.id, branch);
      await this.refs.initialize(trx, repo.id, new Map([['HEAD', `ref: refs/heads/${branch}`]]));
      return {
        result: repo,
        events: [
          {
            type: 'repository.created',
            projectId: project.id,
            repositoryId: repo.id,
            data: { projectKey: project.key, slug, name, defaultBranch: `refs/heads/${branch}`, public: !!input.public, ...(actor ? { actor } : {}) },
          },
        ],
      };
    });
  }

  /** Rename (name and slug), move to another project, publish or unpublish. */
  async update(view: RepositoryView, changes: { name?: string; slug?: string; project?: Project; public?: boolean; description?: string | null }): Promise<Repository> {
    const { repo, project } = view;
    const target = changes.project ?? project;
    const name = changes.name?.trim() ?? repo.name;
    if (!name || name.length > 128) throw Errors.invalid('A repository name must have 1 to 128 characters.');
    const slug = checkSlug(changes.slug?.toLowerCase() ?? (changes.name !== undefined ? slugify(name) : repo.slug));
    return this.events.transact(async (trx) => {
      const clash = await trx
        .selectFrom('repositories')
        .select('id')
        .where('project_id', '=', target.id)
        .where('slug', '=', slug)
        .where('id', '!=', repo.id)
        .executeTakeFirst();
      if (clash) throw Errors.conflict(`Project ${target.key} already has a repository with slug "${slug}".`);
      const updated = await trx
        .updateTable('repositories')
        .set({
          name,
          slug,
          project_id: target.id,
          ...(changes.public !== undefined ? { is_public: changes.public ? 1 : 0 } : {}),
          ...(changes.description !== undefined ? { description: changes.description } : {}),
        })
        .where('id', '=', repo.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      return {
        result: updated,
        events: [
          {
            type: 'repository.updated',
            projectId: target.id,
            repositoryId: repo.id,
            data: {
              projectKey: target.key,
              slug,
              name,
              public: !!updated.is_public,
              previousProjectKey: project.key,
              previousSlug: repo.slug,
            },
          },
        ],
      };
    });
  }

  async remove(view: RepositoryView, actor?: string): Promise<void> {
    const { repo, project } = view;
    await this.events.transact(async (trx) => {
      await trx.deleteFrom('repositories').where('id', '=', repo.id).execute();
      return {
        result: undefined,
        events: [{ type: 'repository.deleted', projectId: project.id, repositoryId: repo.id, data: { projectKey: project.key, slug: repo.slug, ...(actor ? { actor } : {}) } }],
      };
    });
    await this.store.remove(repo.id);
  }

  // --- refs -----------------------------------------------------------------------------------------------

  private async checkBranchName(branch: string): Promise<void> {
    const ok = await this.git.run(GitCommand.of('check-ref-format', '--branch').value(branch), { allowExitCodes: [1, 128] });
    if (ok.code !== 0 || branch.startsWith('-')) throw Errors.invalid(`"${branch}" is not a valid branch name.`);
  }

  private async checkRefName(ref: string): Promise<void> {
    const ok = await this.git.run(GitCommand.of('check-ref-format').value(ref), { allowExitCodes: [1, 128] });
    if (ok.code !== 0) throw Errors.invalid(`"${ref}" is not a valid ref name.`);
  }

  /** Resolves a branch, tag or commit id to a commit id. */
  async resolveCommit(repo: Repository, revision: string): Promise<string> {
    if (revision.startsWith('-')) throw Errors.invalid(`Unknown revision "${revision}".`);
    const r = await this.git.run(GitCommand.of('rev-parse', '--verify', '--quiet', '--end-of-options').value(`${revision}^{commit}`), {
      gitDir: this.store.pathOf(repo.id),
      allowExitCodes: [1, 128],
    });
    if (r.code !== 0) throw Errors.invalid(`Unknown revision "${revision}": name an existing branch, tag or commit.`);
    return r.stdout.toString('utf8').trim();
  }

  async defaultBranchOf(repo: Repository): Promise<string | undefined> {
    const r = await this.git.run(GitCommand.of('symbolic-ref', '--quiet').value('HEAD'), { gitDir: this.store.pathOf(repo.id), allowExitCodes: [1] });
    return r.code === 0 ? r.stdout.toString('utf8').trim() : undefined;
  }

  async setDefaultBranch(repo: Repository, branch: string, cause: RefChangeCause): Promise<void> {
    const name = branch.replace(/^refs\/heads\//, '');
    await this.checkBranchName(name);
    await this.refs.change(repo.id, cause, () =>
      this.git.run(GitCommand.of('symbolic-ref').value('HEAD').value(`refs/heads/${name}`), { gitDir: this.store.pathOf(repo.id) }),
    );
  }

  /**
   * Branches or tags, newest first (MODIFICATION: by committer date, tags by creation date) or by name, with
   * an optional case-insensitive substring filter on the short name.
   */
  async listRefsOrdered(repo: Repository, prefix: 'refs/heads/' | 'refs/tags/', options: { filter?: string; orderBy?: RefOrder } = {}): Promise<RefListing[]> {
    const sort: GitFlag = options.orderBy === 'MODIFICATION' ? (prefix === 'refs/tags/' ? '--sort=-creatordate' : '--sort=-committerdate') : '--sort=refname';
    const { stdout } = await this.git.run(
      GitCommand.of('for-each-ref', sort, '--format=%(refname)%00%(objectname)%00%(objecttype)%00%(*objectname)').value(prefix),
      { gitDir: this.store.pathOf(repo.id) },
    );
    const needle = options.filter?.toLowerCase();
    return stdout
      .toString('utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [ref, object, objectType, peeled] = line.split('\0') as [string, string, string, string];
        return { ref, object, objectType, commit: peeled || object };
      })
      .filter((r) => !needle || r.ref.slice(prefix.length).toLowerCase().includes(needle));
  }

  async createRef(repo: Repository, input: { ref: string; startPoint: string; message?: string; tagger?: { name: string; email: string } }, cause: RefChangeCause): Promise<string> {
    await this.checkRefName(input.ref);
    const commit = await this.resolveCommit(repo, input.startPoint);
    const gitDir = this.store.pathOf(repo.id);
    await this.refs.change(repo.id, cause, async () => {
      let target = commit;
      if (input.message && input.ref.startsWith('refs/tags/') && input.tagger) {
        const tag = input.ref.slice('refs/tags/'.length);
        const body = `object ${commit}\ntype commit\ntag ${tag}\ntagger ${input.tagger.name} <${input.tagger.email}> ${Math.floor(Date.now() / 1000)} +0000\n\n${input.message}\n`;
        target = (await this.git.run(GitCommand.of('mktag'), { gitDir, input: body })).stdout.toString('utf8').trim();
      }
      try {
        await this.git.run(GitCommand.of('update-ref', '--create-reflog').value(input.ref, target, ZERO_OID), { gitDir });
      } catch (err) {
        if (err instanceof GitError) throw Errors.refExists(input.ref);
        throw err;
      }
    });
    return commit;
  }

  async deleteRef(repo: Repository, ref: string, expected: string | undefined, cause: RefChangeCause): Promise<void> {
    await this.checkRefName(ref);
    const gitDir = this.store.pathOf(repo.id);
    await this.refs.change(repo.id, cause, async () => {
      const current = await this.git.run(GitCommand.of('rev-parse', '--verify', '--quiet', '--end-of-options').value(ref), { gitDir, allowExitCodes: [1] });
      if (current.code !== 0) throw refNotFound(ref);
      const args = expected ? [ref, expected] : [ref];
      try {
        await this.git.run(GitCommand.of('update-ref', '-d').value(...args), { gitDir });
      } catch (err) {
        if (err instanceof GitError) throw Errors.conflict(`${ref} has moved; reload and try again.`);
        throw err;
      }
    });
  }

  /** Commits files onto an unborn or existing branch without a work tree (used to seed sample repositories). */
  async commitFiles(
    repo: Repository,
    input: { branch: string; files: Record<string, string>; message: string; author: { name: string; email: string } },
    cause: RefChangeCause,
  ): Promise<string> {
    const gitDir = this.store.pathOf(repo.id);
    const env = { GIT_AUTHOR_NAME: input.author.name, GIT_AUTHOR_EMAIL: input.author.email, GIT_COMMITTER_NAME: input.author.name, GIT_COMMITTER_EMAIL: input.author.email };
    return this.refs.change(repo.id, cause, async () => {
      const entries: string[] = [];
      for (const [name, content] of Object.entries(input.files)) {
        if (name.includes('/') || name.startsWith('-')) throw Errors.invalid(`Only top-level file names are supported, not "${name}".`);
        const blob = (await this.git.run(GitCommand.of('hash-object', '-w', '--stdin'), { gitDir, input: content })).stdout.toString('utf8').trim();
        entries.push(`100644 blob ${blob}\t${name}`);
      }
      const tree = (await this.git.run(GitCommand.of('mktree'), { gitDir, input: entries.join('\n') + '\n' })).stdout.toString('utf8').trim();
      const ref = `refs/heads/${input.branch}`;
      const parent = await this.git.run(GitCommand.of('rev-parse', '--verify', '--quiet', '--end-of-options').value(ref), { gitDir, allowExitCodes: [1] });
      const parentOid = parent.code === 0 ? parent.stdout.toString('utf8').trim() : undefined;
      const commitCmd = parentOid ? GitCommand.of('commit-tree').value(tree).flag('-p').value(parentOid) : GitCommand.of('commit-tree').value(tree);
      const commit = (await this.git.run(commitCmd, { gitDir, input: input.message + '\n', env })).stdout.toString('utf8').trim();
      await this.git.run(GitCommand.of('update-ref').value(ref, commit, parentOid ?? ZERO_OID), { gitDir });
      return commit;
    });
  }
}
