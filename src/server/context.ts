// Everything a primary's routes and transports use, built once by the composition root and passed in
// explicitly; nothing is looked up from globals.
import type { Authenticator } from '../auth/authenticator.js';
import type { Config } from '../config/schema.js';
import type { Groups } from '../domain/groups.js';
import type { Permissions } from '../domain/permissions.js';
import type { Projects } from '../domain/projects.js';
import type { Repositories } from '../domain/repositories.js';
import type { Users } from '../domain/users.js';
import type { EventLog } from '../events/log.js';
import type { RepoBrowser } from '../git/browse.js';
import type { RepoStore } from '../git/repo-store.js';
import type { Logger } from '../obs/logger.js';
import type { Metrics } from '../obs/metrics.js';
import type { Db } from '../store/database.js';
import type { GitService } from '../transport/git-service.js';

export interface Urls {
  /** The server's public base URL, without a trailing slash. */
  base(): string;
  httpClone(projectKey: string, slug: string): string;
  /** undefined when SSH is disabled. */
  sshClone(projectKey: string, slug: string): string | undefined;
}

export interface AppContext {
  config: Config;
  log: Logger;
  metrics: Metrics;
  db: Db;
  events: EventLog;
  users: Users;
  groups: Groups;
  projects: Projects;
  repositories: Repositories;
  permissions: Permissions;
  authenticator: Authenticator;
  store: RepoStore;
  /** Commits, trees and files of a repository, read for the web pages. */
  browser: RepoBrowser;
  git: GitService;
  urls: Urls;
  version: string;
  /** The SSH server's public host keys ("ssh-ed25519 AAAA..."), empty when SSH is disabled. */
  sshHostKeys(): string[];
  /** Where clients reach the SSH server, undefined when SSH is disabled. */
  sshUrlBase(): { host: string; port: number } | undefined;
}
