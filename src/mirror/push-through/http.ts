// A push over HTTPS to a mirror, passed on to the primary as the same user: both requests of git's push (the
// receive-pack advertisement and the push itself) go to the primary's same URL with the user's own credentials,
// so the primary's authorize() decides and everything it says (hook output, rejections) reaches the client
// byte for byte. Before passing anything on, the mirror checks the user may read the repository here (what a
// user may not see stays "not found", as for reads; wrong credentials are refused here, by the login throttle
// with the client's own address). The answer to the push is held back at its last chunk until the farm serves
// what the primary accepted (read-your-writes), or the bounded wait ran out, which the client is told about.
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RepositoryView } from '../../domain/repositories.js';
import type { Logger } from '../../obs/logger.js';
import type { GitService } from '../../transport/git-service.js';
import type { HttpAuthenticator } from '../../transport/http/smart-http.js';
import { answerHeaders, forwardToPrimary } from '../forward.js';
import { PushRequestReader } from './protocol.js';
import { holdUntilServed, type PublishedSource } from './read-your-writes.js';

const REQUEST_HEADERS = ['authorization', 'content-type', 'content-encoding', 'git-protocol', 'user-agent', 'accept'] as const;
const RESPONSE_HEADERS = ['content-type', 'cache-control', 'www-authenticate', 'retry-after'] as const;

export interface HttpPushThroughDeps {
  upstreamUrl: string;
  ca: string[];
  git: GitService;
  auth: HttpAuthenticator;
  published: PublishedSource;
  waitMs: number;
  log: Logger;
}

/** The repository's path on the primary, built from what was found and checked here, never from the raw URL. */
function primaryPath(view: RepositoryView): string {
  return `/scm/${view.project.key.toLowerCase()}/${view.repo.slug}.git`;
}

export class HttpPushThrough {
  constructor(private readonly deps: HttpPushThroughDeps) {}

  /** Authenticates here and checks read access (404 / 401 as for a clone), before anything reaches the primary. */
  private async check(request: FastifyRequest, project: string, repo: string) {
    const principal = await this.deps.auth.fromAuthorizationHeader(request.headers.authorization, { address: request.ip });
    return this.deps.git.open(principal, project, repo.endsWith('.git') ? repo.slice(0, -4) : repo, 'upload-pack');
  }

  async advertise(request: FastifyRequest, reply: FastifyReply, project: string, repo: string): Promise<FastifyReply> {
    const view = await this.check(request, project, repo);
    const res = await forwardToPrimary(this.deps.upstreamUrl, this.deps.ca, { method: 'GET', path: `${primaryPath(view)}/info/refs?service=git-receive-pack`, headers: request.headers, pass: REQUEST_HEADERS, what: 'Pushes' });
    return reply.status(res.statusCode ?? 502).headers(answerHeaders(res, RESPONSE_HEADERS)).send(res);
  }

  async push(request: FastifyRequest, reply: FastifyReply, project: string, repo: string): Promise<FastifyReply> {
    const view = await this.check(request, project, repo);
    const body = request.body as Readable;
    const reader = new PushRequestReader();
    body.on('data', (chunk: Buffer) => reader.feed(chunk));
    const res: IncomingMessage = await forwardToPrimary(this.deps.upstreamUrl, this.deps.ca, {
      method: 'POST',
      path: `${primaryPath(view)}/git-receive-pack`,
      headers: request.headers,
      pass: REQUEST_HEADERS,
      ...(request.headers['content-length'] ? { extraHeaders: { 'content-length': request.headers['content-length'] } } : {}),
      body,
      what: 'Pushes',
    });
    reply.status(res.statusCode ?? 502).headers(answerHeaders(res, RESPONSE_HEADERS));
    if (res.statusCode !== 200) return reply.send(res);

    const hold = holdUntilServed(this.deps, view, reader);
    res.on('data', (chunk: Buffer) => hold.record(chunk));
    return reply.send(res.pipe(hold.stream));
  }
}
