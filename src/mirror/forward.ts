// Requests a mirror passes on to its primary on a user's behalf (pushes, Git LFS uploads and locks): the user's
// own credentials go along, so the primary authenticates and authorizes them as if they had come directly. Only
// the named headers cross, and a primary that cannot be reached is one clear error.
import type { IncomingMessage, IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { MirrorfarmError } from '../errors.js';
import { connectionError } from './upstream.js';

export interface ForwardOptions {
  method: string;
  /** Path and query on the primary, e.g. /scm/proj/repo.git/info/refs?service=git-receive-pack. */
  path: string;
  headers: IncomingHttpHeaders;
  /** Which of `headers` to pass on (lower case). */
  pass: readonly string[];
  extraHeaders?: Record<string, string | number>;
  body?: Buffer | Readable;
  /** What is being passed on, for the error when the primary cannot be reached. */
  what: string;
}

export function forwardToPrimary(upstreamUrl: string, ca: string[], options: ForwardOptions): Promise<IncomingMessage> {
  const url = new URL(options.path, `${upstreamUrl}/`);
  const headers: Record<string, string | number> = {};
  for (const name of options.pass) {
    const value = options.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  Object.assign(headers, options.extraHeaders);
  if (Buffer.isBuffer(options.body)) headers['content-length'] = options.body.length;
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: options.method, headers, ca, timeout: 60_000 }, (res) => {
      res.on('error', () => {});
      resolve(res);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'TIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const failed = connectionError(err, upstreamUrl, 'UPSTREAM');
      reject(new MirrorfarmError('MIRROR_UPSTREAM_UNAVAILABLE', 503, `${options.what} go to the primary, which cannot be reached from this mirror right now (${failed.message}). Nothing was changed; try again later, or use ${upstreamUrl} directly.`));
    });
    if (Buffer.isBuffer(options.body) || options.body === undefined) req.end(options.body);
    else {
      options.body.on('error', (err) => req.destroy(err));
      options.body.pipe(req);
    }
  });
}

/** Copies the named headers of the primary's answer. */
export function answerHeaders(res: IncomingMessage, names: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name of names) {
    const value = res.headers[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}
