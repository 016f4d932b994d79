// What a mirror may learn from the primary's event log. A mirror gets the full event only when it concerns
// what the mirror carries (or credentials it must stop honouring); otherwise it gets the event's id alone, so
// its cursor still advances, or for deletions and moves the bare ids, so that it can drop what it no longer
// carries. Nothing about a project the mirror does not carry (names, keys, users granted) leaks through.
import type { EventType, LoggedEvent } from '../events/log.js';
import type { MirroringMode } from './mirrors.js';

export interface MirrorSelection {
  mirrorId: string;
  mode: MirroringMode;
  projectIds: ReadonlySet<number>;
}

/** `full`: send the event as logged; `stripped`: ids only; `skip`: an `id:` line alone. */
export type Disclosure = { kind: 'full'; event: LoggedEvent } | { kind: 'stripped'; event: LoggedEvent } | { kind: 'skip' };

const PROJECT_SCOPED = new Set<EventType>([
  'ref.updated',
  'repository.head_changed',
  'repository.created',
  'repository.updated',
  'repository.deleted',
  'project.created',
  'project.updated',
  'project.deleted',
  'permission.changed',
]);

/** Sent stripped for other projects: a mirror must be able to drop a repository deleted or moved away. */
const STRIPPED_ELSEWHERE = new Set<EventType>(['repository.updated', 'repository.deleted', 'project.deleted']);

/**
 * Mirrors drop cached credentials and answers on these, whatever project they concern. Group events are among
 * them: one membership change alters what its user may read wherever the group holds a grant.
 */
const CREDENTIALS = new Set<EventType>([
  'user.created',
  'user.updated',
  'user.deleted',
  'ssh_key.added',
  'ssh_key.removed',
  'access_token.created',
  'access_token.revoked',
  'group.created',
  'group.deleted',
  'group.user_added',
  'group.user_removed',
]);

export function carriesProject(selection: MirrorSelection, projectId: number | null): boolean {
  if (projectId === null) return false;
  return selection.mode === 'ALL_PROJECTS' || selection.projectIds.has(projectId);
}

export function disclose(selection: MirrorSelection, event: LoggedEvent): Disclosure {
  if (CREDENTIALS.has(event.type)) return { kind: 'full', event };
  // A group's global permission (SYS_ADMIN, which reads everything) concerns no project and every mirror.
  if (event.type === 'permission.changed' && event.scope === 'global') return { kind: 'full', event };
  if (event.type.startsWith('mirror.')) return event.mirrorId === selection.mirrorId ? { kind: 'full', event } : { kind: 'skip' };
  if (PROJECT_SCOPED.has(event.type)) {
    if (carriesProject(selection, event.projectId)) return { kind: 'full', event };
    if (STRIPPED_ELSEWHERE.has(event.type)) {
      return { kind: 'stripped', event: { id: event.id, type: event.type, createdDate: event.createdDate, projectId: event.projectId, repositoryId: event.repositoryId } };
    }
  }
  return { kind: 'skip' };
}

/** The selection after a `mirror.accepted` / `mirror.updated` event of this mirror, or undefined. */
export function selectionAfter(selection: MirrorSelection, event: LoggedEvent): MirrorSelection | undefined {
  if ((event.type !== 'mirror.updated' && event.type !== 'mirror.accepted') || event.mirrorId !== selection.mirrorId) return undefined;
  const mode = event.mirroringMode === 'ALL_PROJECTS' ? 'ALL_PROJECTS' : 'SELECTED_PROJECTS';
  const ids = Array.isArray(event.projectIds) ? (event.projectIds as unknown[]).filter((v): v is number => typeof v === 'number') : [];
  return { mirrorId: selection.mirrorId, mode, projectIds: new Set(ids) };
}
