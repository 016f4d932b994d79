// Table row types for Kysely. Timestamps are epoch milliseconds; booleans are 0/1 (SQLite has no boolean type).
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

export interface UsersTable {
  id: Generated<number>;
  name: string; // login name and slug, lower case
  display_name: string;
  email: string | null;
  password_hash: string | null;
  is_sysadmin: number;
  active: number;
  created_at: number;
}

export interface SshKeysTable {
  id: Generated<number>;
  user_id: number;
  label: string;
  algorithm: string;
  public_key: string; // "type base64", without the comment
  fingerprint: string; // SHA256:...
  created_at: number;
}

export interface AccessTokensTable {
  id: Generated<number>;
  user_id: number;
  name: string;
  secret_hash: string; // sha256 hex of the secret part; the token itself is shown once and never stored
  permissions: string; // JSON array of PROJECT_READ / REPO_WRITE / ...
  expires_at: number | null;
  created_at: number;
  last_used_at: number | null;
}

export interface ProjectsTable {
  id: Generated<number>;
  key: string; // upper case
  name: string;
  description: string | null;
  is_public: number;
  created_at: number;
}

export interface RepositoriesTable {
  id: Generated<number>;
  project_id: number;
  slug: string;
  name: string;
  description: string | null;
  is_public: number;
  created_at: number;
  /** Set by the RefRecorder whenever refs are recorded; optional on insert. */
  ref_state_hash: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface PermissionsTable {
  id: Generated<number>;
  user_id: number;
  project_id: number | null;
  repository_id: number | null;
  permission: string; // PROJECT_READ ... REPO_ADMIN
}

export interface GroupsTable {
  id: Generated<number>;
  name: string; // as created
  lower_name: string; // unique; lookups ignore case
  created_at: number;
}

export interface GroupMembersTable {
  group_id: number;
  user_id: number;
}

export interface GroupPermissionsTable {
  id: Generated<number>;
  group_id: number;
  /** Both null for a global permission (SYS_ADMIN). */
  project_id: number | null;
  repository_id: number | null;
  permission: string; // PROJECT_READ ... REPO_ADMIN, SYS_ADMIN
}

export interface RefsTable {
  repository_id: number;
  ref: string; // HEAD holds "ref: refs/heads/main"
  target: string;
}

export interface PendingRefChangesTable {
  token: string;
  repository_id: number;
  created_at: number;
}

export interface EventsTable {
  seq: number;
  created_at: number;
  type: string;
  project_id: number | null;
  repository_id: number | null;
  data: string; // JSON
}

export interface MirrorsTable {
  id: string;
  name: string;
  base_url: string;
  public_key: string; // "ssh-ed25519 AAAA..."
  fingerprint: string;
  product_version: string;
  state: 'PENDING' | 'ACTIVE' | 'REJECTED' | 'DELETED';
  mirroring_mode: 'ALL_PROJECTS' | 'SELECTED_PROJECTS';
  created_at: number;
  updated_at: number;
  last_seen_at: number | null;
  /** JSON array of the farm's OpenSSH public host keys ("ssh-ed25519 AAAA..."); null while not known. */
  ssh_host_keys: ColumnType<string | null, string | null | undefined, string | null>;
  /** JSON {host, port}: where the farm's SSH clone URLs point; null while not known. */
  ssh_url_base: ColumnType<string | null, string | null | undefined, string | null>;
  /** When the farm's identity (baseUrl, host keys, SSH URL) was fixed by a registering node; null = the next one fixes it. */
  identity_fixed_at: ColumnType<number | null, number | null | undefined, number | null>;
  /** The node that fixed the identity: while no other node of the farm is in contact, it may change it. */
  identity_node_id: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface MirrorProjectsTable {
  mirror_id: string;
  project_id: number;
}

export interface MirrorNodesTable {
  mirror_id: string;
  node_id: string;
  base_url: string | null;
  cursor: number;
  lag_seconds: number | null;
  state: string;
  last_seen_at: number;
  version: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface MirrorRepoStatesTable {
  mirror_id: string;
  node_id: string;
  repository_id: number;
  status: 'SYNCED' | 'FAILED' | 'SYNCING';
  ref_state_hash: string | null;
  error: string | null;
  updated_at: number;
}

export interface MirrorLocalStateTable {
  key: string;
  value: string;
}

export interface MirrorLocalReposTable {
  repository_id: number;
  /** NEW (never synchronized), SYNCED, FAILED */
  status: 'NEW' | 'SYNCED' | 'FAILED';
  /** HEAD's target on the primary, e.g. refs/heads/main. */
  default_branch: string | null;
  /** Hash of the refs this node serves. */
  ref_state_hash: string | null;
  error: string | null;
  updated_at: number;
}

export interface LfsLocksTable {
  id: Generated<number>;
  repository_id: number;
  path: string;
  ref_name: string | null;
  owner_id: number;
  locked_at: number;
}

export interface WebSessionsTable {
  id_hash: string; // sha256 hex of the cookie's random id
  user_id: number;
  user_name: string;
  csrf_token: string;
  created_at: number;
  last_seen_at: number;
}

export interface MirrorWebSessionsTable {
  id: Generated<number>;
  secret_hash: string; // sha256 hex of the secret in the browser's cookie
  mirror_id: string;
  user_id: number;
  password_mark: string;
  created_at: number;
  last_seen_at: number;
}

export interface UserPreferencesTable {
  user_id: number;
  preferred_mirror_id: string | null;
  updated_at: number;
}

export interface Database {
  users: UsersTable;
  ssh_keys: SshKeysTable;
  access_tokens: AccessTokensTable;
  projects: ProjectsTable;
  repositories: RepositoriesTable;
  permissions: PermissionsTable;
  groups: GroupsTable;
  group_members: GroupMembersTable;
  group_permissions: GroupPermissionsTable;
  refs: RefsTable;
  pending_ref_changes: PendingRefChangesTable;
  events: EventsTable;
  mirrors: MirrorsTable;
  mirror_projects: MirrorProjectsTable;
  mirror_nodes: MirrorNodesTable;
  mirror_repo_states: MirrorRepoStatesTable;
  mirror_local_state: MirrorLocalStateTable;
  mirror_local_repos: MirrorLocalReposTable;
  lfs_locks: LfsLocksTable;
  web_sessions: WebSessionsTable;
  user_preferences: UserPreferencesTable;
  mirror_web_sessions: MirrorWebSessionsTable;
}

export type User = Selectable<UsersTable>;
export type NewUser = Insertable<UsersTable>;
export type UserUpdate = Updateable<UsersTable>;
export type SshKey = Selectable<SshKeysTable>;
export type AccessToken = Selectable<AccessTokensTable>;
export type Project = Selectable<ProjectsTable>;
export type Repository = Selectable<RepositoriesTable>;
export type PermissionRow = Selectable<PermissionsTable>;
export type Group = Selectable<GroupsTable>;
export type EventRow = Selectable<EventsTable>;
export type Mirror = Selectable<MirrorsTable>;
