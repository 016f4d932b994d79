// Versioned schema migrations, applied in order at startup by Kysely's Migrator. Never edit a released
// migration; add a new one. Types stick to what both SQLite and PostgreSQL accept.
import { sql, type Kysely, type Migration } from 'kysely';

export const migrations: Record<string, Migration> = {
  '0001_initial': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('users')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('display_name', 'text', (c) => c.notNull())
        .addColumn('email', 'text')
        .addColumn('password_hash', 'text')
        .addColumn('is_sysadmin', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('active', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('ssh_keys')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('label', 'text', (c) => c.notNull())
        .addColumn('algorithm', 'text', (c) => c.notNull())
        .addColumn('public_key', 'text', (c) => c.notNull())
        .addColumn('fingerprint', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('ssh_keys_user').on('ssh_keys').column('user_id').execute();
      await db.schema
        .createTable('access_tokens')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('secret_hash', 'text', (c) => c.notNull())
        .addColumn('permissions', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_used_at', 'bigint')
        .execute();
      await db.schema.createIndex('access_tokens_user').on('access_tokens').column('user_id').execute();
      await db.schema
        .createTable('projects')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('key', 'text', (c) => c.notNull().unique())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('description', 'text')
        .addColumn('is_public', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('repositories')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id'))
        .addColumn('slug', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('is_public', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('repositories_project_slug', ['project_id', 'slug'])
        .execute();
      await db.schema
        .createTable('permissions')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('project_id', 'integer', (c) => c.references('projects.id').onDelete('cascade'))
        .addColumn('repository_id', 'integer', (c) => c.references('repositories.id').onDelete('cascade'))
        .addColumn('permission', 'text', (c) => c.notNull())
        .addUniqueConstraint('permissions_scope', ['user_id', 'project_id', 'repository_id'])
        .execute();
      await db.schema.createIndex('permissions_project').on('permissions').column('project_id').execute();
      await db.schema.createIndex('permissions_repository').on('permissions').column('repository_id').execute();
      // The last ref state recorded in the event log, per repository: diffing git's refs against it yields
      // exact old/new values for every change, whichever way the change was made.
      await db.schema
        .createTable('refs')
        .addColumn('repository_id', 'integer', (c) => c.notNull().references('repositories.id').onDelete('cascade'))
        .addColumn('ref', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('refs_pk', ['repository_id', 'ref'])
        .execute();
      // A row per ref-changing git process that started but has not been reconciled: after a crash these
      // repositories are diffed again at startup, so no ref change escapes the event log.
      await db.schema
        .createTable('pending_ref_changes')
        .addColumn('token', 'text', (c) => c.primaryKey())
        .addColumn('repository_id', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('events')
        .addColumn('seq', 'bigint', (c) => c.primaryKey())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('project_id', 'integer')
        .addColumn('repository_id', 'integer')
        .addColumn('data', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('events_created').on('events').column('created_at').execute();
      await sql`select 1`.execute(db);
    },
  },
  '0002_mirroring': {
    async up(db: Kysely<unknown>) {
      // The ref-state hash of each repository as last recorded, so snapshots need no git call per repository.
      await db.schema.alterTable('repositories').addColumn('ref_state_hash', 'text').execute();
      await db.schema
        .createTable('mirrors')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('base_url', 'text', (c) => c.notNull())
        .addColumn('public_key', 'text', (c) => c.notNull())
        .addColumn('fingerprint', 'text', (c) => c.notNull().unique())
        .addColumn('product_version', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('mirroring_mode', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('last_seen_at', 'bigint')
        .execute();
      await db.schema
        .createTable('mirror_projects')
        .addColumn('mirror_id', 'text', (c) => c.notNull().references('mirrors.id').onDelete('cascade'))
        .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id').onDelete('cascade'))
        .addPrimaryKeyConstraint('mirror_projects_pk', ['mirror_id', 'project_id'])
        .execute();
      await db.schema
        .createTable('mirror_nodes')
        .addColumn('mirror_id', 'text', (c) => c.notNull().references('mirrors.id').onDelete('cascade'))
        .addColumn('node_id', 'text', (c) => c.notNull())
        .addColumn('base_url', 'text')
        .addColumn('cursor', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('lag_seconds', 'real')
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('mirror_nodes_pk', ['mirror_id', 'node_id'])
        .execute();
      await db.schema
        .createTable('mirror_repo_states')
        .addColumn('mirror_id', 'text', (c) => c.notNull().references('mirrors.id').onDelete('cascade'))
        .addColumn('node_id', 'text', (c) => c.notNull())
        .addColumn('repository_id', 'integer', (c) => c.notNull().references('repositories.id').onDelete('cascade'))
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('ref_state_hash', 'text')
        .addColumn('error', 'text')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('mirror_repo_states_pk', ['mirror_id', 'node_id', 'repository_id'])
        .execute();
      await db.schema.createIndex('mirror_repo_states_repo').on('mirror_repo_states').column('repository_id').execute();
    },
  },
  '0003_mirror_node': {
    async up(db: Kysely<unknown>) {
      // Used in mirror mode only. The mirror keeps the primary's projects and repositories in the ordinary
      // tables under the primary's ids; these hold its sync state.
      await db.schema
        .createTable('mirror_local_state')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('mirror_local_repos')
        .addColumn('repository_id', 'integer', (c) => c.primaryKey())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('default_branch', 'text')
        .addColumn('ref_state_hash', 'text')
        .addColumn('error', 'text')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
  '0004_groups': {
    async up(db: Kysely<unknown>) {
      // Groups of users, as Bitbucket has them. Names keep the case they were created with and are unique
      // regardless of case (lower_name), so that "Developers" and "developers" cannot both exist.
      await db.schema
        .createTable('groups')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('lower_name', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('group_members')
        .addColumn('group_id', 'integer', (c) => c.notNull().references('groups.id').onDelete('cascade'))
        .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addPrimaryKeyConstraint('group_members_pk', ['group_id', 'user_id'])
        .execute();
      // The access check starts from the user: which groups is this user in.
      await db.schema.createIndex('group_members_user').on('group_members').column('user_id').execute();
      // Grants to groups: on a project (project_id set), on a repository (repository_id set), or global
      // (both null; SYS_ADMIN, the one global permission). They go with their group, project or repository.
      await db.schema
        .createTable('group_permissions')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('group_id', 'integer', (c) => c.notNull().references('groups.id').onDelete('cascade'))
        .addColumn('project_id', 'integer', (c) => c.references('projects.id').onDelete('cascade'))
        .addColumn('repository_id', 'integer', (c) => c.references('repositories.id').onDelete('cascade'))
        .addColumn('permission', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('group_permissions_group').on('group_permissions').column('group_id').execute();
      await db.schema.createIndex('group_permissions_project').on('group_permissions').column('project_id').execute();
      await db.schema.createIndex('group_permissions_repository').on('group_permissions').column('repository_id').execute();
    },
  },
  '0005_farm_identity': {
    async up(db: Kysely<unknown>) {
      // A farm is one identity: the SSH host keys and SSH URL its first node presented, persisted so that every
      // node registering later is checked against them (and so clone links survive a restart of the primary).
      // identity_fixed_at is null until a node fixed them, and again after an administrator reset them;
      // identity_node_id is the node that fixed them (alone in its farm, it may change them: a single mirror moving).
      await db.schema.alterTable('mirrors').addColumn('ssh_host_keys', 'text').execute();
      await db.schema.alterTable('mirrors').addColumn('ssh_url_base', 'text').execute();
      await db.schema.alterTable('mirrors').addColumn('identity_fixed_at', 'bigint').execute();
      await db.schema.alterTable('mirrors').addColumn('identity_node_id', 'text').execute();
      // The version each node runs, as it last reported it.
      await db.schema.alterTable('mirror_nodes').addColumn('version', 'text').execute();
    },
  },
  '0006_lfs_locks': {
    async up(db: Kysely<unknown>) {
      // Git LFS file locks, per repository and path (one lock per path). They go with the repository.
      await db.schema
        .createTable('lfs_locks')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('repository_id', 'integer', (c) => c.notNull().references('repositories.id').onDelete('cascade'))
        .addColumn('path', 'text', (c) => c.notNull())
        .addColumn('ref_name', 'text')
        .addColumn('owner_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('locked_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('lfs_locks_path').on('lfs_locks').columns(['repository_id', 'path']).unique().execute();
    },
  },
  '0007_web_sessions': {
    async up(db: Kysely<unknown>) {
      // Web UI sign-ins, kept on the server: the browser holds only a random id, stored here as its SHA-256 (a
      // copy of the database signs nobody in). On a mirror node, user_id is the primary's id and the table is
      // the node's own: a session is valid on the node that made it.
      await db.schema
        .createTable('web_sessions')
        .addColumn('id_hash', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'integer', (c) => c.notNull())
        .addColumn('user_name', 'text', (c) => c.notNull())
        .addColumn('csrf_token', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('web_sessions_user').on('web_sessions').column('user_id').execute();
      await db.schema.createIndex('web_sessions_last_seen').on('web_sessions').column('last_seen_at').execute();
    },
  },
  '0008_user_preferences': {
    async up(db: Kysely<unknown>) {
      // Per-user choices of the web pages that outlive a sign-in (a session ends at sign-out and after its
      // timeouts; a user has several). For now: the mirror the user clones from. A mirror that is deleted later
      // simply stops matching; the page then offers the mirrors in sync again.
      await db.schema
        .createTable('user_preferences')
        .addColumn('user_id', 'integer', (c) => c.primaryKey().references('users.id').onDelete('cascade'))
        .addColumn('preferred_mirror_id', 'text')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
  '0009_mirror_web_sessions': {
    async up(db: Kysely<unknown>) {
      // Web sign-ins on a mirror, kept by the primary so that every node of the farm accepts them (a balancer
      // without affinity sends each request anywhere). The secret lives in the browser's cookie only; this
      // table holds its SHA-256. A session belongs to one mirror: another mirror's call cannot use it.
      // password_mark is a digest of the user's password hash when the session began: a changed password ends it.
      await db.schema
        .createTable('mirror_web_sessions')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('secret_hash', 'text', (c) => c.notNull().unique())
        .addColumn('mirror_id', 'text', (c) => c.notNull())
        .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('password_mark', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('mirror_web_sessions_mirror').on('mirror_web_sessions').column('mirror_id').execute();
      await db.schema.createIndex('mirror_web_sessions_user').on('mirror_web_sessions').column('user_id').execute();
    },
  },
};
