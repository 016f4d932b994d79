// What the mirror's REST routes use, built once by the mirror's composition root and passed in explicitly.
import type { Config } from '../../config/schema.js';
import type { Projects } from '../../domain/projects.js';
import type { Repositories, RepositoryView } from '../../domain/repositories.js';
import type { Urls } from '../../server/context.js';
import type { Catalog } from '../catalog.js';
import type { MirrorController } from '../controller.js';
import type { DelegatedAuth } from '../delegated-auth.js';
import type { MirrorIdentity } from '../identity.js';
import type { UpstreamHealth } from '../upstream-health.js';

export interface MirrorRestContext {
  config: Config;
  identity: MirrorIdentity;
  /** Users are the primary's: every request is authenticated and authorized through it. */
  auth: DelegatedAuth;
  projects: Projects;
  repositories: Repositories;
  catalog: Catalog;
  controller: MirrorController;
  health: UpstreamHealth;
  /** The mirror's own URLs: clone links on a mirror point at the mirror. */
  urls: Urls;
  /** The primary's clone URLs for a repository (where pushes go). */
  primaryCloneUrls(projectKey: string, slug: string): Array<{ href: string; name: string }>;
  /** Throws a clear 503 while a repository is not synchronized on this node yet (or the mirror was removed). */
  checkAvailable(view: RepositoryView): Promise<void>;
  /** Where this node's HTTP listener is, for farmNodes. */
  httpPort(): number;
}
