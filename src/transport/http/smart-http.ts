// Git's smart HTTP protocol (v0 and v2) at Bitbucket's URL shape /scm/PROJ/repo.git. Request and response
// bodies stream straight between the socket and git, so a clone or push of any size never sits in memory.
// The response status is chosen only once git has produced its first byte (or failed), so that an
// authorization, size or git failure still becomes a proper HTTP error.
import type { OutgoingHttpHeaders } from 'node:http';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Principal } from '../../access/authorize.js';
import { Errors, MirrorfarmError } from '../../errors.js';
import { errPacket, pktLine, FLUSH_PKT, PktLineFramingError, PktLineValidator } from '../../protocol/pkt-line.js';
import type { RepositoryView } from '../../domain/repositories.js';
import { validGitProtocol, type GitRun, type GitRunOptions, type GitService, type GitServiceName } from '../git-service.js';
import { GitOutput, prepareOutputDir } from './git-response.js';

/** A mirror's: pushes pass on to the primary instead of running here. */
export interface PushForwarder {
  advertise(request: FastifyRequest, reply: FastifyReply, project: string, repo: string): Promise<FastifyReply>;
  push(request: FastifyRequest, reply: FastifyReply, project: string, repo: string): Promise<FastifyReply>;
}

export interface SmartHttpOptions {
  maxFetchRequestBytes: number;
  maxPushBytes: number;
  /** Owner-only directory for the sockets git writes its output into (HOME/run). */
  outputDir: string;
  pushThrough?: PushForwarder;
}

const SERVICES: Record<string, GitServiceName> = { 'git-upload-pack': 'upload-pack', 'git-receive-pack': 'receive-pack' };

interface RepoParams {
  project: string;
  repo: string;
}

/** Fails the stream once more than `limit` bytes have passed. */
class ByteLimit extends Transform {
  private seen = 0;
  constructor(
    private readonly limit: number,
    private readonly setting: string,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) callback(Errors.tooLarge(this.limit, this.setting));
    else callback(null, chunk);
  }
}

function noCache(reply: FastifyReply): FastifyReply {
  return reply.header('cache-control', 'no-cache, max-age=0, must-revalidate').header('pragma', 'no-cache').header('expires', 'Fri, 01 Jan 1980 00:00:00 GMT');
}

function repoSlug(raw: string): string {
  return raw.endsWith('.git') ? raw.slice(0, -4) : raw;
}

/** Turns an Authorization header into a principal: locally on a primary, through the primary on a mirror. */
export interface HttpAuthenticator {
  fromAuthorizationHeader(header: string | undefined, client?: { address?: string }): Promise<Principal>;
}

export function registerSmartHttp(app: FastifyInstance, git: GitService, auth: HttpAuthenticator, options: SmartHttpOptions): void {
  // Git request bodies are passed through as streams; Fastify must not buffer or parse them.
  app.addContentTypeParser(['application/x-git-upload-pack-request', 'application/x-git-receive-pack-request'], (_req, payload, done) => done(null, payload));
  const outputDir = prepareOutputDir(options.outputDir);

  /**
   * Starts git: a fetch's pack response with its stdout on a GitOutput's socket, everything else (small) with a
   * pipe (see git-response.ts for why).
   */
  async function startGit(view: RepositoryView, service: GitServiceName, runOptions: GitRunOptions): Promise<{ run: GitRun; output: GitOutput }> {
    if (service !== 'upload-pack' || runOptions.mode !== 'stateless') {
      const run = git.run(view, service, runOptions);
      return { run, output: GitOutput.fromPipe(run.child.stdout!) };
    }
    const output = await GitOutput.open(outputDir);
    try {
      const run = git.run(view, service, { ...runOptions, stdout: { socket: output.gitEnd!, bytes: output.bytes } });
      output.gitStarted();
      return { run, output };
    } catch (err) {
      output.close();
      throw err;
    }
  }

  /** Waits for git's first output byte (or its exit) before the response status is committed. */
  async function respond(request: FastifyRequest, reply: FastifyReply, started: { run: GitRun; output: GitOutput }, inputFailed: () => Error | undefined, prefix?: Buffer) {
    const { run, output } = started;
    try {
      const wrote = await output.first();
      const failure = inputFailed();
      if (failure) throw failure;
      if (!wrote && !(await run.done)) {
        // Malformed protocol data is the client's fault and git's message about it is safe to show; any other
        // failure may mention server paths, so it goes to the log only.
        const protocolError = /^fatal: (protocol error|unknown capability|expected|unexpected|invalid|bad|git upload-pack: )[^\n]*/m.exec(run.stderr());
        if (protocolError) throw Errors.invalid(`Malformed git request: ${protocolError[0].slice('fatal: '.length)}`);
        throw Errors.gitFailed(`the request could not be processed; see the server log (request id ${request.id})`);
      }
    } catch (err) {
      output.close();
      throw err;
    }
    noCache(reply);
    // From here on the response is written by GitOutput, straight into Node's response (see git-response.ts
    // for why). Fastify's onResponse hooks (metrics, the request log) still run when it finishes.
    reply.hijack();
    await output.sendTo(reply.raw, reply.getHeaders() as OutgoingHttpHeaders, prefix);
  }

  app.get<{ Params: RepoParams; Querystring: { service?: string } }>('/scm/:project/:repo/info/refs', async (request, reply) => {
    const service = SERVICES[request.query.service ?? ''];
    if (!service) {
      throw new MirrorfarmError('DUMB_HTTP_UNSUPPORTED', 403, 'mirrorfarm serves the smart HTTP protocol only: use git 1.7 or later, and clone from the URL without extra path parts.');
    }
    const gitProtocol = validGitProtocol(request.headers['git-protocol'] as string | undefined);
    if (service === 'receive-pack' && options.pushThrough) return options.pushThrough.advertise(request, reply, request.params.project, request.params.repo);
    const principal = await auth.fromAuthorizationHeader(request.headers.authorization, { address: request.ip });
    let view;
    try {
      view = await git.open(principal, request.params.project, repoSlug(request.params.repo), service);
    } catch (err) {
      // A read-only mirror refusing a push says so inside the protocol: every git client shows an ERR packet
      // ("remote error: ..."), while libgit2 and Dulwich show an HTTP 403 only as its status code.
      if (!(err instanceof MirrorfarmError) || err.code !== 'MIRROR_READ_ONLY') throw err;
      noCache(reply).type(`application/x-git-${service}-advertisement`);
      return reply.send(Buffer.concat([pktLine(`# service=git-${service}\n`), FLUSH_PKT, errPacket(err.message)]));
    }
    const abort = abortOnClose(reply);
    const started = await startGit(view, service, { transport: 'http', principal, mode: 'advertise', ...(gitProtocol ? { gitProtocol } : {}), signal: abort.signal });
    started.run.connectInput(null);
    reply.type(`application/x-git-${service}-advertisement`);
    // Protocol v2 starts with the capability advertisement; v0 expects the "# service" preamble first.
    const v2 = gitProtocol?.split(':').includes('version=2');
    return respond(request, reply, started, () => undefined, v2 ? undefined : Buffer.concat([pktLine(`# service=git-${service}\n`), FLUSH_PKT]));
  });

  for (const [path, service] of Object.entries(SERVICES)) {
    const expectedType = `application/x-git-${service}-request`;
    // Checked in onRequest, before Fastify picks a body parser: otherwise a JSON or text body would be parsed (or
    // refused with Fastify's own error) before the route could say which type git sends.
    const onRequest = async (request: FastifyRequest) => {
      const type = request.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
      if (type !== expectedType) throw Errors.unsupportedMediaType(expectedType);
    };
    app.post<{ Params: RepoParams }>(`/scm/:project/:repo/${path}`, { onRequest }, async (request, reply) => {
      const gitProtocol = validGitProtocol(request.headers['git-protocol'] as string | undefined);
      if (service === 'receive-pack' && options.pushThrough) return options.pushThrough.push(request, reply, request.params.project, request.params.repo);
      const principal = await auth.fromAuthorizationHeader(request.headers.authorization, { address: request.ip });
      const view = await git.open(principal, request.params.project, repoSlug(request.params.repo), service);
      const abort = abortOnClose(reply);
      const limit = service === 'receive-pack' ? new ByteLimit(options.maxPushBytes, 'http.maxPushBytes') : new ByteLimit(options.maxFetchRequestBytes, 'http.maxFetchRequestBytes');
      let inputError: Error | undefined;
      const fail = (err: Error) => {
        inputError ??=
          err instanceof MirrorfarmError
            ? err
            : err instanceof PktLineFramingError
              ? Errors.invalid(`Malformed git request: ${err.message}.`)
              : Errors.invalid(`The request body could not be read: ${err.message}`);
        abort.abort();
      };
      let input: Readable = request.body as Readable;
      const encoding = request.headers['content-encoding'];
      if (encoding === 'gzip' || encoding === 'x-gzip') {
        const gunzip = createGunzip();
        gunzip.on('error', fail);
        input = input.pipe(gunzip);
      } else if (encoding && encoding !== 'identity') {
        throw Errors.invalid(`Unsupported Content-Encoding "${encoding}": send the body uncompressed or gzip-compressed.`);
      }
      limit.on('error', fail);
      input = input.pipe(limit);
      // A push's command list is framed; the pack after it is checked by git itself.
      const framing = new PktLineValidator({ untilFlush: service === 'receive-pack' });
      framing.on('error', fail);
      input = input.pipe(framing);
      const started = await startGit(view, service, { transport: 'http', principal, mode: 'stateless', ...(gitProtocol ? { gitProtocol } : {}), signal: abort.signal });
      started.run.connectInput(input);
      reply.type(`application/x-git-${service}-result`);
      return respond(request, reply, started, () => inputError);
    });
  }
}

/** Aborts (and so kills git) when the client goes away before the response is complete. */
function abortOnClose(reply: FastifyReply): AbortController {
  const abort = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) abort.abort();
  });
  return abort;
}
