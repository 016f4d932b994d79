// The signed-in user's account page: their SSH keys (list, add, delete) and personal access tokens (list, create
// with permissions and an expiry, the token shown once, revoke). The same Users service and the same
// authorizeAccountOf() check as the REST API's /rest/ssh/1.0/keys and /rest/access-tokens/1.0 decide; a key or
// token of another user answers 404 like a missing one.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authorizeAccountOf } from '../api/access.js';
import { Errors, MirrorfarmError } from '../errors.js';
import type { AppContext } from '../server/context.js';
import type { User } from '../store/tables.js';
import type { Web } from './plugin.js';
import { sendPage } from './render.js';
import { formatDate } from './repo-pages.js';

const NOTICES: Record<string, string> = {
  'key-added': 'The SSH key is added. It works for git over SSH at once.',
  'key-deleted': 'The SSH key is deleted. It no longer opens anything.',
  'token-revoked': 'The access token is revoked. It no longer works.',
};
export const PROJECT_PERMISSIONS = ['PROJECT_READ', 'PROJECT_WRITE', 'PROJECT_ADMIN'];
export const REPO_PERMISSIONS = ['REPO_READ', 'REPO_WRITE', 'REPO_ADMIN'];

const field = (body: Record<string, unknown>, name: string) => (typeof body[name] === 'string' ? (body[name] as string) : '');

/** Bad input a form can show next to itself (400, 409); anything else goes to the error page. */
export function formError(err: unknown): string {
  if (err instanceof MirrorfarmError && (err.status === 400 || err.status === 409)) return err.message;
  throw err;
}

export function registerAccountPages(app: FastifyInstance, web: Web, context: AppContext): void {
  const { users } = context;

  /** The signed-in user, checked as the REST API checks the owner of keys and tokens. */
  async function owner(request: FastifyRequest, what: string): Promise<User> {
    const state = web.state(request);
    if (!state.session) throw Errors.authenticationRequired();
    const principal = authorizeAccountOf(state.principal, state.session.userName, what);
    return users.require(principal.name);
  }

  async function page(request: FastifyRequest, reply: FastifyReply, user: User, extra: Record<string, unknown> = {}, status = 200) {
    const keys = (await users.keys(user.id)).map((k) => ({ id: k.id, label: k.label, algorithm: k.algorithm, fingerprint: k.fingerprint, created: formatDate(Number(k.created_at)) }));
    const now = Date.now();
    const tokens = (await users.tokens(user.id)).map((t) => ({
      id: t.id,
      name: t.name,
      permissions: (JSON.parse(t.permissions) as string[]).join(', '),
      created: formatDate(Number(t.created_at)),
      lastUsed: t.last_used_at === null ? 'never' : formatDate(Number(t.last_used_at)),
      expires: t.expires_at === null ? 'never' : formatDate(Number(t.expires_at)),
      expired: t.expires_at !== null && Number(t.expires_at) <= now,
    }));
    const query = request.query as { done?: string } | undefined;
    return sendPage(
      reply,
      'account',
      {
        ...web.layout(request, 'Your account', 'account'),
        account: { name: user.name, displayName: user.display_name, email: user.email },
        keys,
        tokens,
        projectPermissions: PROJECT_PERMISSIONS,
        repoPermissions: REPO_PERMISSIONS,
        form: {},
        notice: NOTICES[query?.done ?? ''],
        ...extra,
      },
      status,
    );
  }

  app.get('/account', async (request, reply) => {
    if (web.requireSignIn(request, reply)) return reply;
    return page(request, reply, await owner(request, 'account'));
  });

  // The forms post to these; someone reloading or bookmarking the answer lands on the account page.
  for (const path of ['/account/keys', '/account/tokens']) app.get(path, async (_request, reply) => reply.redirect('/account', 303));

  app.post<{ Body: Record<string, unknown> }>('/account/keys', async (request, reply) => {
    const user = await owner(request, 'SSH keys');
    const body = request.body ?? {};
    const text = field(body, 'text').trim();
    const label = field(body, 'label').trim();
    try {
      if (!text) throw Errors.invalid('Paste a public key, e.g. the contents of ~/.ssh/id_ed25519.pub.');
      await users.addKey(user, text, label || undefined);
    } catch (err) {
      return page(request, reply, user, { keyError: formError(err), form: { keyText: text, keyLabel: label } }, 400);
    }
    return reply.redirect('/account?done=key-added', 303);
  });

  app.post<{ Params: { id: string } }>('/account/keys/:id/delete', async (request, reply) => {
    const user = await owner(request, 'SSH keys');
    const key = /^\d{1,15}$/.test(request.params.id) ? await users.keyById(Number(request.params.id)) : undefined;
    if (!key || key.user_id !== user.id) throw Errors.notFound(`SSH key ${request.params.id.slice(0, 20)}`);
    await users.removeKey(key);
    return reply.redirect('/account?done=key-deleted', 303);
  });

  app.post<{ Body: Record<string, unknown> }>('/account/tokens', async (request, reply) => {
    const user = await owner(request, 'access tokens');
    const body = request.body ?? {};
    const name = field(body, 'name').trim();
    const project = field(body, 'project');
    const repo = field(body, 'repository');
    const expiry = field(body, 'expiryDays').trim();
    const form = { tokenName: name, tokenProject: project, tokenRepository: repo, tokenExpiry: expiry };
    try {
      const permissions = [project, repo].filter((p) => p !== '' && p !== 'NONE');
      if (permissions.some((p) => !PROJECT_PERMISSIONS.includes(p) && !REPO_PERMISSIONS.includes(p))) throw Errors.invalid('Choose the permissions from the lists.');
      if (expiry !== '' && !/^\d{1,5}$/.test(expiry)) throw Errors.invalid('Expiry is a whole number of days (at least 1), or empty for a token that does not expire.');
      const { token, secret } = await users.createToken(user, { name, permissions, ...(expiry ? { expiryDays: Number(expiry) } : {}) });
      request.log.info({ tokenId: token.id }, 'access token created in the web interface');
      // Shown on this answer only (which no cache keeps): only a hash of it is stored.
      return page(request, reply, user, { created: { name: token.name, secret } });
    } catch (err) {
      return page(request, reply, user, { tokenError: formError(err), form }, 400);
    }
  });

  app.post<{ Params: { id: string } }>('/account/tokens/:id/revoke', async (request, reply) => {
    const user = await owner(request, 'access tokens');
    const token = /^\d{1,15}$/.test(request.params.id) ? await users.tokenById(user.id, Number(request.params.id)) : undefined;
    if (!token) throw Errors.notFound(`Access token ${request.params.id.slice(0, 20)}`);
    await users.revokeToken(token);
    return reply.redirect('/account?done=token-revoked', 303);
  });
}
