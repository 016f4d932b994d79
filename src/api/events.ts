// GET /rest/mirroring/1.0/events: the durable event log read by cursor, for mirrors catching up and for
// administrators. Not a Bitbucket endpoint (Bitbucket publishes no event log); it follows the mirroring API's
// conventions. `firstAvailable` tells a consumer whether its cursor fell out of retention.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../server/context.js';
import { principalOf, requireSysadmin } from './access.js';
import { errorResponses } from './json.js';

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

const EventsQuery = Type.Object({
  after: Type.Optional(Type.Integer({ minimum: 0, default: 0, description: 'Return events with an id greater than this (the last id the consumer has seen).' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULT_LIMIT, description: `At most this many events; capped at ${MAX_LIMIT}.` })),
});

const LoggedEventJson = Type.Object(
  {
    id: Type.Integer({ description: 'Sequence number: dense, increasing, never reused.' }),
    type: Type.String(),
    createdDate: Type.Integer({ description: 'Commit time, epoch milliseconds.' }),
    projectId: Type.Union([Type.Integer(), Type.Null()]),
    repositoryId: Type.Union([Type.Integer(), Type.Null()]),
  },
  { additionalProperties: true, description: 'Common fields plus the fields of its type (see the operation description).' },
);

const EventsPage = Type.Object({
  values: Type.Array(LoggedEventJson),
  size: Type.Integer(),
  limit: Type.Integer(),
  isLastPage: Type.Boolean({ description: 'No event after the last one returned existed when the page was read.' }),
  nextAfter: Type.Integer({ description: 'Pass as `after` to read on: the id of the last event returned, or `after` when none was.' }),
  firstAvailable: Type.Integer({ description: 'Oldest id still retained (0 when the log is empty). When `after` < firstAvailable - 1, events were missed and the consumer must resynchronise from a snapshot.' }),
  last: Type.Integer({ description: 'Newest id in the log (0 when empty).' }),
});

export const EVENT_TYPES_DESCRIPTION = `
System administrators only. Events are appended in the same transaction as the change they describe, so the log
has no gaps and no duplicates. Every event has \`id\`, \`type\`, \`createdDate\`, \`projectId\` and \`repositoryId\`
(null when not about a project or repository), plus, by type:

| type | fields |
|---|---|
| \`ref.updated\` | \`refId\`, \`fromHash\`, \`toHash\` (40 zeros for none), \`changeType\` (ADD, UPDATE, DELETE), \`actor\`?, \`via\`? (http, ssh, rest, reconcile) |
| \`repository.head_changed\` | \`from\`, \`to\` (refs/heads/..., or null), \`actor\`?, \`via\`? |
| \`repository.created\` | \`projectKey\`, \`slug\`, \`name\`, \`defaultBranch\`, \`public\`, \`actor\`? |
| \`repository.updated\` | \`projectKey\`, \`slug\`, \`name\`, \`public\`, \`previousProjectKey\`, \`previousSlug\` (renames, moves, publishing) |
| \`repository.deleted\` | \`projectKey\`, \`slug\`, \`actor\`? |
| \`project.created\` | \`key\`, \`name\`, \`public\` |
| \`project.updated\` | \`key\`, \`name\`, \`previousKey\`, \`public\` |
| \`project.deleted\` | \`key\` |
| \`permission.changed\` | \`scope\` (project, repository, global), \`projectKey\`, \`slug\` (repository scope), \`userId\` and \`user\` or \`groupId\` and \`group\`, \`permission\` (null when revoked) |
| \`user.created\` | \`userId\`, \`name\`, \`sysadmin\` |
| \`user.updated\` | \`userId\`, \`name\`, and \`sysadmin\`, \`active\` or \`credentials\` ("password") |
| \`user.deleted\` | \`userId\`, \`name\` |
| \`group.created\`, \`group.deleted\` | \`groupId\`, \`group\` (a deletion follows a \`permission.changed\` with null for each grant the group held) |
| \`group.user_added\`, \`group.user_removed\` | \`groupId\`, \`group\`, \`userId\`, \`user\` |
| \`ssh_key.added\`, \`ssh_key.removed\` | \`keyId\`, \`userId\`, \`fingerprint\` |
| \`access_token.created\` | \`tokenId\`, \`userId\`, \`permissions\` |
| \`access_token.revoked\` | \`tokenId\`, \`userId\`, \`reason\`? ("updated" when its name or permissions changed) |
| \`mirror.requested\` | \`mirrorId\`, \`name\`, \`baseUrl\`, \`fingerprint\` |
| \`mirror.accepted\`, \`mirror.updated\` | \`mirrorId\`, \`mirroringMode\` (ALL_PROJECTS, SELECTED_PROJECTS), \`projectIds\` |
| \`mirror.rejected\`, \`mirror.deleted\` | \`mirrorId\` |
| \`mirror.web_session_ended\` | \`mirrorId\`, \`sessionId\`, \`userId\` (a user signed out of that mirror's web pages) |

No event carries a password, token, hash or private key. Retention is bounded (events.retentionDays, events.maxEvents).
`.trim();

export function registerEventRoutes(app: FastifyInstance, context: AppContext): void {
  app.get<{ Querystring: Static<typeof EventsQuery> }>(
    '/rest/mirroring/1.0/events',
    {
      schema: {
        tags: ['Mirroring'],
        summary: 'Read the event log',
        description: EVENT_TYPES_DESCRIPTION,
        querystring: EventsQuery,
        response: { 200: EventsPage, ...errorResponses },
      },
    },
    async (request) => {
      requireSysadmin(principalOf(request));
      const after = request.query.after ?? 0;
      const limit = Math.min(request.query.limit ?? DEFAULT_LIMIT, MAX_LIMIT);
      // One more than asked tells whether the page is the last without a race against new appends.
      const read = await context.events.read(after, limit + 1);
      const { first, last } = await context.events.bounds();
      const values = read.slice(0, limit);
      return {
        values,
        size: values.length,
        limit,
        isLastPage: read.length <= limit,
        nextAfter: values.length ? values[values.length - 1]!.id : after,
        firstAvailable: first,
        last: Math.max(last, values.length ? values[values.length - 1]!.id : 0),
      };
    },
  );
}
