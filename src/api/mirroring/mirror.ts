// Calls made by mirrors, each authenticated with the mirror's short-lived signed token: registration, its own
// status, the snapshot of everything it carries, the event stream, sync reports, the two-phase publish and
// delegated authentication of its users. A deleted or rejected mirror is refused on every one of them (except
// registration, which starts a new request that an administrator must accept again).
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { mirrorIdFor } from '../../auth/mirror-token.js';
import { Errors, MirrorfarmError } from '../../errors.js';
import type { AuthenticatedMirror } from '../../primary/mirrors.js';
import type { AppContext } from '../../server/context.js';
import type { Mirror } from '../../store/tables.js';
import { errorResponses } from '../json.js';
import { PREFIX, TAGS, type MirroringServices } from './common.js';
import { AuthenticateJson, RegistrationJson, ReportAnswerJson, mirrorServerJson, SelfJson, SnapshotJson, UpstreamOutageJson } from './json.js';

/** Unanswered registration requests kept at most, so that throwaway keys cannot flood the administrators' list. */
export const MAX_PENDING_REQUESTS = 100;
const DEFAULT_MAX_REPORT_BYTES = 32 * 1024 * 1024;

const SshUrlBaseBody = Type.Object(
  { host: Type.String({ minLength: 1, maxLength: 255 }), port: Type.Integer({ minimum: 1, maximum: 65535 }), user: Type.Optional(Type.String({ pattern: '^[a-z_][a-z0-9_.-]{0,31}$', description: 'The login name of the SSH clone URLs (ssh.user); "git" when absent.' })) },
  { description: 'Where the node\'s SSH clone URLs point (ssh.publicHost and ssh.publicPort): the farm\'s balancer.' },
);

const RegistrationBody = Type.Object({
  mirrorName: Type.String({ minLength: 1, maxLength: 255 }),
  baseUrl: Type.String({ minLength: 9, maxLength: 2048, description: 'The https:// URL clients use for the mirror (the farm\'s load balancer).' }),
  publicKey: Type.String({ minLength: 1, maxLength: 4096, description: 'The mirror\'s OpenSSH ed25519 public key; the request must be signed with it.' }),
  productVersion: Type.String({ minLength: 1, maxLength: 64 }),
  sshHostKeys: Type.Optional(
    Type.Array(Type.String({ minLength: 1, maxLength: 16_384 }), {
      maxItems: 16,
      description: "The node's SSH host keys (OpenSSH public keys); every node of a farm must present the same ones (empty when its SSH server is disabled).",
    }),
  ),
  sshUrlBase: Type.Optional(SshUrlBaseBody),
});

const StreamQuery = Type.Object({ after: Type.Optional(Type.Integer({ minimum: 0, description: 'Resume after this event id (same as the Last-Event-ID header, which wins).' })) });

const ReportBody = Type.Object({
  cursor: Type.Optional(Type.Integer({ minimum: 0 })),
  lagSeconds: Type.Optional(Type.Number({ minimum: 0 })),
  state: Type.Optional(Type.String({ maxLength: 64, description: 'The node\'s own state (SYNCHRONIZED, SYNCHRONIZING, ...), shown on the primary; an evicted node rejoins through mirror/membership, not with a report.' })),
  repositories: Type.Optional(
    Type.Array(
      Type.Object({
        id: Type.Integer(),
        status: Type.Union([Type.Literal('SYNCED'), Type.Literal('FAILED'), Type.Literal('SYNCING')]),
        refStateHash: Type.Optional(Type.Union([Type.String({ maxLength: 200 }), Type.Null()])),
        error: Type.Optional(Type.Union([Type.String({ maxLength: 10_000 }), Type.Null()])),
      }),
      { maxItems: 1_000_000 },
    ),
  ),
  sshUrlBase: Type.Optional(SshUrlBaseBody),
  version: Type.Optional(Type.String({ maxLength: 64, description: 'The mirrorfarm version the node runs.' })),
  baseUrl: Type.Optional(Type.String({ maxLength: 2048, description: 'The node\'s own URL, if it has one besides the farm\'s.' })),
  upstream: Type.Optional(
    Type.Object({
      state: Type.Optional(Type.String({ maxLength: 64, description: 'CONNECTED, UNREACHABLE or UNKNOWN, as the node sees its primary.' })),
      lastOutage: Type.Optional(UpstreamOutageJson),
    }),
  ),
});

const PreparedBody = Type.Object({
  repositoryId: Type.Integer(),
  refStateHash: Type.String({ pattern: '^v[0-9]+:[0-9a-f]{64}$' }),
});

const AuthenticateBody = Type.Object({
  credentials: Type.Object({
    type: Type.Union([Type.Literal('basic'), Type.Literal('ssh-key'), Type.Literal('web-session'), Type.Literal('anonymous')]),
    username: Type.Optional(Type.String({ maxLength: 255 })),
    password: Type.Optional(Type.String({ maxLength: 4096 })),
    publicKey: Type.Optional(Type.String({ maxLength: 16_384 })),
    secret: Type.Optional(Type.String({ maxLength: 100, description: 'For type web-session: the secret mirror/web-sessions returned.' })),
  }),
  repositoryIds: Type.Array(Type.Integer(), { maxItems: 1000 }),
  clientAddress: Type.Optional(Type.String({ maxLength: 100, description: 'The IP address the user connected to the mirror from, for the login throttle.' })),
});

function bearer(request: FastifyRequest): string {
  const header = request.headers.authorization;
  const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : '';
  if (!token) throw new MirrorfarmError('MIRROR_TOKEN_MISSING', 401, 'Mirror calls need a signed mirror token in "Authorization: Bearer ...".');
  return token;
}

export function registerMirrorRoutes(app: FastifyInstance, context: AppContext, services: MirroringServices): void {
  const { registry, state, streams, coordinator, delegatedAuth } = services;

  // Mirrors are authenticated in onRequest, before the body is read: a caller without a valid token never gets
  // a large report body parsed.
  const callers = new WeakMap<FastifyRequest, AuthenticatedMirror>();
  const mirrorOnly = (allow?: Mirror['state'][]) => ({
    onRequest: async (request: FastifyRequest) => {
      callers.set(request, await registry.authenticate(request.headers.authorization, allow));
    },
  });
  const callerOf = (request: FastifyRequest): AuthenticatedMirror => {
    const caller = callers.get(request);
    if (!caller) throw new MirrorfarmError('INTERNAL_ERROR', 500, 'Mirror request was not authenticated.');
    return caller;
  };

  app.post<{ Body: Static<typeof RegistrationBody> }>(
    `${PREFIX}/requests`,
    {
      schema: {
        tags: TAGS,
        summary: 'Request mirroring (mirror)',
        description:
          'Called by a mirror node with a token signed by the key in the body (proof of possession). Creates a PENDING request, or answers the mirror\'s current state ' +
          'when it asked before. A deleted or rejected mirror starts a new request. A node of a farm must present its farm\'s identity (the first node\'s baseUrl, ' +
          'sshUrlBase and sshHostKeys): 409 MIRROR_BASE_URL_MISMATCH, MIRROR_SSH_URL_MISMATCH or MIRROR_HOST_KEY_MISMATCH otherwise, and MIRROR_IDENTITY_MISMATCH ' +
          'for a new key behind the baseUrl of another mirror.',
        body: RegistrationBody,
        response: { 200: RegistrationJson, ...errorResponses },
      },
    },
    async (request) => {
      const token = bearer(request);
      const body = request.body;
      const existing = await registry.get(mirrorIdFor(body.publicKey));
      if (!existing || existing.state === 'REJECTED' || existing.state === 'DELETED') {
        const pending = await registry.list(['PENDING']);
        if (pending.length >= MAX_PENDING_REQUESTS) {
          throw new MirrorfarmError('MIRROR_REQUESTS_FULL', 429, `The primary already has ${pending.length} unanswered mirroring requests; ask an administrator to accept or reject them.`);
        }
      }
      const mirror = await registry.register(
        {
          name: body.mirrorName,
          baseUrl: body.baseUrl,
          publicKey: body.publicKey,
          productVersion: body.productVersion,
          ...(body.sshHostKeys ? { sshHostKeys: body.sshHostKeys } : {}),
          ...(body.sshUrlBase ? { sshUrlBase: body.sshUrlBase } : {}),
        },
        token,
      );
      return { ...mirrorServerJson(mirror), state: mirror.state, mirroringMode: mirror.mirroring_mode, publicKeyFingerprint: mirror.fingerprint };
    },
  );

  app.get(
    `${PREFIX}/mirror/self`,
    {
      ...mirrorOnly(['PENDING', 'ACTIVE']),
      schema: {
        tags: TAGS,
        summary: 'This mirror (mirror)',
        description: 'The calling mirror\'s state and selection; answers while PENDING too, so a mirror can wait for authorization.',
        response: { 200: SelfJson, ...errorResponses },
      },
    },
    async (request) => {
      const { mirror, nodeId } = callerOf(request);
      if (mirror.state === 'ACTIVE') await state.touchNode(mirror.id, nodeId);
      return { id: mirror.id, state: mirror.state, mirroringMode: mirror.mirroring_mode, projectIds: mirror.state === 'ACTIVE' ? await registry.projectIds(mirror.id) : [] };
    },
  );

  app.get(
    `${PREFIX}/mirror/snapshot`,
    {
      ...mirrorOnly(),
      schema: {
        tags: TAGS,
        summary: 'Snapshot of what the mirror carries (mirror)',
        description:
          'Every project and repository the mirror carries with its ref-state hash, read in one transaction: continue the event stream after `lastEventId`.',
        response: { 200: SnapshotJson, ...errorResponses },
      },
    },
    async (request) => {
      const { mirror, nodeId } = callerOf(request);
      const snapshot = await state.snapshot(mirror.id);
      if (!snapshot) throw new MirrorfarmError('MIRROR_REMOVED', 403, 'This mirror was deleted on the primary; it no longer has access.');
      await state.touchNode(mirror.id, nodeId);
      return snapshot;
    },
  );

  app.get<{ Querystring: Static<typeof StreamQuery> }>(
    `${PREFIX}/mirror/stream`,
    {
      ...mirrorOnly(),
      schema: {
        tags: TAGS,
        summary: 'Event stream (mirror)',
        description:
          'Server-sent events from the primary\'s log after `Last-Event-ID` (or `after`), filtered to what the mirror carries; see docs/mirroring-protocol.md. ' +
          'Control events: snapshot-required, commit, removed; ": ping" comments every 15 s.',
        querystring: StreamQuery,
        produces: ['text/event-stream'],
      },
    },
    async (request, reply) => {
      const { mirror, nodeId } = callerOf(request);
      const header = request.headers['last-event-id'];
      let cursor = request.query.after ?? 0;
      if (typeof header === 'string' && header.trim() !== '') {
        if (!/^\d{1,15}$/.test(header.trim())) throw Errors.invalid('Last-Event-ID must be an event id (a whole number).');
        cursor = Number(header.trim());
      }
      await streams.serve(request, reply, mirror, nodeId, cursor);
    },
  );

  app.post<{ Body: Static<typeof ReportBody> }>(
    `${PREFIX}/mirror/report`,
    {
      ...mirrorOnly(),
      bodyLimit: services.maxReportBytes ?? DEFAULT_MAX_REPORT_BYTES,
      schema: {
        tags: TAGS,
        summary: 'Report synchronization state (mirror)',
        description:
          'A node reports its cursor, lag, state, version and per-repository results (`SYNCED` with the hash it serves, or `FAILED` with the error). Repositories ' +
          'the mirror does not carry are ignored. Answers the farm as the primary sees it (members in contact, active ones, and this node\'s role) for the node\'s /status.',
        body: ReportBody,
        response: { 200: ReportAnswerJson, ...errorResponses },
      },
    },
    async (request) => {
      const { mirror, nodeId } = callerOf(request);
      const body = request.body ?? {};
      const synced = await state.applyReport(mirror, nodeId, body, streams.isStreaming(mirror.id, nodeId));
      if (synced.length) services.onSynchronized?.(mirror, synced);
      if (body.sshUrlBase) await registry.adoptSshUrlBase(mirror, body.sshUrlBase);
      return { farm: { ...(await state.farmOf(mirror.id)), role: await state.roleOf(mirror.id, nodeId), nodes: await state.peersOf(mirror.id) } };
    },
  );

  app.post<{ Body: Static<typeof PreparedBody> }>(
    `${PREFIX}/mirror/prepared`,
    {
      ...mirrorOnly(),
      schema: {
        tags: TAGS,
        summary: 'Staged a repository state (mirror)',
        description:
          'Two-phase publish: the node has fetched the repository into its hidden staging refs with this ref-state hash. `commit: true` means publish now; ' +
          'otherwise an `event: commit` follows on the node\'s stream once every active node of the farm has staged the same hash.',
        body: PreparedBody,
        response: { 200: Type.Object({ commit: Type.Boolean() }), ...errorResponses },
      },
    },
    async (request) => {
      const { mirror, nodeId } = callerOf(request);
      const { repositoryId, refStateHash } = request.body;
      const repo = await context.repositories.byId(repositoryId);
      if (!repo || !(await registry.carries(mirror, repo.project_id))) throw Errors.repoNotFound(String(repositoryId));
      await state.touchNode(mirror.id, nodeId);
      services.rounds?.prepared(mirror.id, repositoryId, refStateHash);
      const outcome = await coordinator.prepared(mirror.id, nodeId, repositoryId, refStateHash);
      if (outcome.commit) services.rounds?.settled(mirror.id, repositoryId, refStateHash);
      return outcome;
    },
  );

  app.get<{ Params: { repositoryId: number }; Querystring: { refStateHash: string } }>(
    `${PREFIX}/mirror/repos/:repositoryId/served`,
    {
      ...mirrorOnly(),
      schema: {
        tags: TAGS,
        summary: 'Whether the whole farm serves a state (mirror)',
        description:
          'Read-your-writes for a push through a mirror: how many members of the calling node\'s farm there are, and how many report serving `refStateHash` for the ' +
          'repository. The node that passed a push on lets the client go once all of them do.',
        params: Type.Object({ repositoryId: Type.Integer() }),
        querystring: Type.Object({ refStateHash: Type.String({ pattern: '^v[0-9]+:[0-9a-f]{64}$' }) }),
        response: { 200: Type.Object({ members: Type.Integer(), serving: Type.Integer() }), ...errorResponses },
      },
    },
    async (request) => {
      const { mirror } = callerOf(request);
      const { repositoryId } = request.params;
      const repo = await context.repositories.byId(repositoryId);
      if (!repo || !(await registry.carries(mirror, repo.project_id))) throw Errors.repoNotFound(String(repositoryId));
      const members = coordinator.membership.members(mirror.id);
      const served = await state.servedHashes(mirror.id, repositoryId);
      let serving = 0;
      for (const node of members) if (served.get(node) === request.query.refStateHash) serving++;
      return { members: members.size, serving };
    },
  );

  app.post<{ Body: Static<typeof AuthenticateBody> }>(
    `${PREFIX}/authenticate`,
    {
      ...mirrorOnly(),
      schema: {
        tags: TAGS,
        summary: 'Authenticate a user on behalf of a mirror (mirror)',
        description:
          'Delegated authentication: `credentials` is `{type:"basic", username, password}` (password or access token), `{type:"ssh-key", publicKey}` (the mirror ' +
          'verified the signature), `{type:"web-session", secret}` (a web sign-in this mirror opened with mirror/web-sessions) or `{type:"anonymous"}`. Answers the user and READ or NONE per repository asked about; never more than READ, and NONE for ' +
          'repositories the mirror does not carry. 401 with the primary\'s message for wrong credentials; 429 with Retry-After while the login throttle holds ' +
          'the user\'s `clientAddress` or account.',
        body: AuthenticateBody,
        response: { 200: AuthenticateJson, ...errorResponses },
      },
    },
    async (request) => {
      const { mirror } = callerOf(request);
      const { credentials, repositoryIds, clientAddress } = request.body;
      const typed =
        credentials.type === 'basic'
          ? { type: 'basic' as const, username: credentials.username ?? '', password: credentials.password ?? '' }
          : credentials.type === 'ssh-key'
            ? { type: 'ssh-key' as const, publicKey: credentials.publicKey ?? '' }
            : credentials.type === 'web-session'
              ? { type: 'web-session' as const, secret: credentials.secret ?? '' }
              : { type: 'anonymous' as const };
      // The login throttle counts the user's own address, which only the mirror knows; without it, the mirror's
      // users share one budget rather than escape the per-address limit.
      return delegatedAuth.authenticate(mirror, typed, repositoryIds, clientAddress ?? `mirror:${mirror.id}`);
    },
  );
}
