// The server side of the git hooks: a small HTTP server on a local Unix socket (mode 0600). A push is known
// here only while the server's own receive-pack process for it runs, under a random one-time token; a hook
// call naming any other token is refused, so nothing but our own git processes can report ref changes.
import { chmod, mkdir, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { dirname } from 'node:path';
import type { RefChangeCause, RefRecorder } from '../events/ref-recorder.js';
import type { Logger } from '../obs/logger.js';

export interface PushInProgress {
  repositoryId: number;
  cause: RefChangeCause;
  /** Set once pre-receive ran: from then on, refs may have changed and must be recorded. */
  mayHaveChangedRefs: boolean;
}

const MAX_HOOK_BODY = 64 * 1024 * 1024;
/** Refs the server keeps for itself; pushes may not touch them. */
const RESERVED_REF_PREFIX = 'refs/mirrorfarm/';

export class HookEndpoint {
  private readonly pushes = new Map<string, PushInProgress>();
  private server: Server | undefined;

  constructor(
    private readonly socketPath: string,
    private readonly recorder: RefRecorder,
    private readonly log: Logger,
  ) {}

  register(token: string, push: Omit<PushInProgress, 'mayHaveChangedRefs'>): void {
    this.pushes.set(token, { ...push, mayHaveChangedRefs: false });
  }

  /** Called when the receive-pack process has exited: records anything post-receive did not. */
  async finish(token: string): Promise<void> {
    const push = this.pushes.get(token);
    this.pushes.delete(token);
    if (push?.mayHaveChangedRefs) await this.recorder.record(push.repositoryId, push.cause, token);
  }

  async listen(): Promise<void> {
    await mkdir(dirname(this.socketPath), { recursive: true, mode: 0o700 });
    await rm(this.socketPath, { force: true });
    this.server = createServer((req, res) => {
      this.handle(req).then(
        ({ status, message }) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(message ? { message } : {}));
        },
        (err: Error) => {
          this.log.error({ err }, 'hook callback failed');
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ message: 'mirrorfarm: internal error while recording the push; see the server log' }));
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.socketPath, () => resolve());
    });
    await chmod(this.socketPath, 0o600);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await rm(this.socketPath, { force: true });
  }

  private async handle(req: IncomingMessage): Promise<{ status: number; message?: string }> {
    const body = await readJson(req);
    const token = typeof body.token === 'string' ? body.token : '';
    const push = this.pushes.get(token);
    if (req.method !== 'POST' || !push) return { status: 403, message: 'mirrorfarm: unknown push; pushes must go through the mirrorfarm server' };
    if (req.url === '/hooks/pre-receive') {
      const updates = Array.isArray(body.updates) ? (body.updates as Array<{ ref?: unknown }>) : [];
      const reserved = updates.map((u) => String(u.ref)).filter((ref) => ref.startsWith(RESERVED_REF_PREFIX));
      if (reserved.length) return { status: 403, message: `mirrorfarm: ${reserved[0]} is reserved for the server; push to refs/heads/ or refs/tags/ instead` };
      // Durable before git moves any ref: if the server dies now, startup reconciles this repository.
      await this.recorder.markPending(token, push.repositoryId);
      push.mayHaveChangedRefs = true;
      return { status: 200 };
    }
    if (req.url === '/hooks/post-receive') {
      await this.recorder.record(push.repositoryId, push.cause, token);
      push.mayHaveChangedRefs = false;
      return { status: 200 };
    }
    return { status: 404, message: 'mirrorfarm: unknown hook' };
  }
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_HOOK_BODY) throw new Error('hook payload too large');
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}
