// A mirror node's membership in its farm's active set (src/primary/membership.ts): join once in sync, renew the
// lease while serving, leave on shutdown. Authenticated like every mirror call, with the mirror's signed token.
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { MirrorfarmError } from '../../errors.js';
import type { AuthenticatedMirror } from '../../primary/mirrors.js';
import type { AppContext } from '../../server/context.js';
import { errorResponses } from '../json.js';
import { PREFIX, TAGS, type MirroringServices } from './common.js';

const MembershipBody = Type.Object({
  action: Type.Union([Type.Literal('join'), Type.Literal('renew'), Type.Literal('leave')], {
    description: 'join: the node is in sync and asks to be counted; renew: a member extends its lease; leave: the node stops (graceful shutdown) or restarts.',
  }),
});

const MembershipJson = Type.Object({
  member: Type.Boolean({ description: 'Whether the node is in the active set now. A member that is told false was evicted: it resyncs and joins again.' }),
  leaseMs: Type.Integer({ description: 'How long from sending this request the node may report ready; 0: no new lease (it keeps a round waiting).' }),
  renewMs: Type.Integer({ description: 'How often a member renews.' }),
  drainMs: Type.Integer({ description: 'How long a leaving member stays in the active set after it stopped reporting ready, for the balancer to take it out of rotation.' }),
  memberCount: Type.Integer({ description: 'Members of the active set.' }),
  resync: Type.Optional(Type.Boolean({ description: 'join refused: the node published while its farm was empty; stage every repository again, then join.' })),
  lastEventId: Type.Optional(Type.Integer({ description: 'join: the newest event id when the node joined; it is ready once it has handled events up to it.' })),
});

export function registerMembershipRoutes(app: FastifyInstance, context: AppContext, services: MirroringServices): void {
  const { registry, coordinator } = services;
  const callers = new WeakMap<FastifyRequest, AuthenticatedMirror>();

  app.post<{ Body: Static<typeof MembershipBody> }>(
    `${PREFIX}/mirror/membership`,
    {
      onRequest: async (request: FastifyRequest) => {
        callers.set(request, await registry.authenticate(request.headers.authorization));
      },
      schema: {
        tags: TAGS,
        summary: "Join, renew or leave the farm's active set (mirror)",
        description:
          "A node counts in the two-phase publish only as a member. It joins once in sync, renews its lease while it serves (it reports ready only while the lease runs) and leaves on shutdown; see docs/mirroring-protocol.md, 'Consistency across a farm'.",
        body: MembershipBody,
        response: { 200: MembershipJson, ...errorResponses },
      },
    },
    async (request) => {
      const caller = callers.get(request);
      if (!caller) throw new MirrorfarmError('INTERNAL_ERROR', 500, 'Mirror request was not authenticated.');
      const { mirror, nodeId } = caller;
      const { renewMs, marginMs } = coordinator.membership.timing;
      const common = { renewMs, drainMs: marginMs };
      await services.state.touchNode(mirror.id, nodeId);
      switch (request.body.action) {
        case 'leave':
          await coordinator.leave(mirror.id, nodeId);
          return { member: false, leaseMs: 0, memberCount: coordinator.membership.members(mirror.id).size, ...common };
        case 'join': {
          const joined = await coordinator.join(mirror.id, nodeId);
          if (!joined.member) return { member: false, leaseMs: 0, memberCount: coordinator.membership.members(mirror.id).size, ...common, ...(joined.resync ? { resync: true } : {}) };
          const { last } = await context.events.bounds();
          return { member: true, ...coordinator.membership.grant(mirror.id, nodeId), ...common, lastEventId: last };
        }
        default:
          return { ...(await coordinator.renew(mirror.id, nodeId)), ...common };
      }
    },
  );
}
