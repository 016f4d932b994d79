// The mirror's HTTPS client for its primary. Certificates are always validated against the system trust store
// plus `trust.caFile`; TLS and network failures become coded errors that name the fix. Every call carries a
// fresh token signed with the mirror key.
import { readFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import { rootCertificates } from 'node:tls';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { signMirrorToken, type MirrorKey } from '../auth/mirror-token.js';
import { errorOfBody, MirrorfarmError } from '../errors.js';
import type { UpstreamHealth } from './upstream-health.js';

export class UpstreamError extends MirrorfarmError {
  override name = 'UpstreamError';
}

/** The trust store for every outgoing HTTPS call: system roots plus the configured CA bundle. */
export function trustedCas(caFile: string | undefined): string[] {
  return caFile ? [...rootCertificates, readFileSync(caFile, 'utf8')] : [...rootCertificates];
}

/** Maps a failed HTTPS connection to a coded, actionable error about `what` (e.g. "the primary"). */
export function connectionError(err: NodeJS.ErrnoException, url: string, what: 'UPSTREAM' | 'BASE_URL'): UpstreamError {
  const subject = what === 'UPSTREAM' ? `the primary at ${url}` : `this mirror's base URL ${url}`;
  const setting = what === 'UPSTREAM' ? 'mirror.upstreamUrl' : 'baseUrl';
  const code = err.code ?? '';
  if (['SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT'].includes(code)) {
    return new UpstreamError(`MIRROR_${what}_CERT_UNTRUSTED`, 502, `The certificate of ${subject} is not trusted (${code}): use a certificate from a trusted CA, or add your private CA to trust.caFile (MIRRORFARM_TRUST_CA_FILE).`);
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return new UpstreamError(`MIRROR_${what}_CERT_EXPIRED`, 502, `The certificate of ${subject} is ${code === 'CERT_HAS_EXPIRED' ? 'expired' : 'not yet valid'}: renew it (and check both clocks).`);
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new UpstreamError(`MIRROR_${what}_CERT_HOSTNAME`, 502, `The certificate of ${subject} does not cover its host name: issue it for ${new URL(url).hostname}, or correct ${setting}.`);
  }
  if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'TIMEOUT'].includes(code)) {
    return new UpstreamError(`MIRROR_${what}_UNREACHABLE`, 502, `Cannot reach ${subject} (${code}): check ${setting}, DNS and firewalls.`);
  }
  if (code.startsWith('ERR_SSL') || code.startsWith('EPROTO') || /wrong version number|SSL/i.test(err.message)) {
    return new UpstreamError(`MIRROR_${what}_NOT_HTTPS`, 502, `${subject} does not speak HTTPS (${err.message}): check that ${setting} points at the HTTPS port.`);
  }
  return new UpstreamError(`MIRROR_${what}_UNREACHABLE`, 502, `Cannot reach ${subject}: ${err.message}`);
}

export interface UpstreamResponse<T> {
  status: number;
  body: T;
}

export class Upstream {
  private readonly ca: string[];
  /** What tokens name as their audience: the primary's own base URL once discovery told it (see setAudience). */
  private audience: string;

  constructor(
    readonly baseUrl: string,
    private readonly key: MirrorKey,
    private readonly nodeId: string,
    caFile: string | undefined,
    private readonly timeoutMs = 15_000,
    /** Told of every answer and every failed connection, so that /status and the metrics show reachability. */
    readonly health?: UpstreamHealth,
  ) {
    this.ca = trustedCas(caFile);
    this.audience = baseUrl;
  }

  /**
   * Tokens are for the primary as it names itself (discovery's baseUrl, read over validated HTTPS), which
   * differs from mirror.upstreamUrl when the node reaches the primary through a proxy or another name.
   */
  setAudience(primaryBaseUrl: string): void {
    this.audience = primaryBaseUrl;
  }

  /** The primary's base URL as it names itself (what signed statements to it are addressed to). */
  primaryBaseUrl(): string {
    return this.audience;
  }

  private options(method: string, path: string, headers: Record<string, string | number>): RequestOptions & { url: URL } {
    const url = new URL(path, this.baseUrl + '/');
    return { url, method, ca: this.ca, headers, timeout: this.timeoutMs };
  }

  /** Opens a request and resolves with the response once headers arrive. */
  async open(method: string, path: string, body?: unknown, extraHeaders: Record<string, string> = {}, signal?: AbortSignal, idleTimeoutMs?: number): Promise<IncomingMessage> {
    const token = await signMirrorToken(this.key, this.audience, this.nodeId);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const { url, ...options } = this.options(method, path, {
      authorization: `Bearer ${token}`,
      accept: 'application/json',
      ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
      ...extraHeaders,
    });
    return new Promise((resolve, reject) => {
      const req = request(url, { ...options, ...(idleTimeoutMs ? { timeout: idleTimeoutMs } : {}), ...(signal ? { signal } : {}) }, (res) => {
        // A long response (the event stream) may end by abort or a dead peer; that must not become an
        // unhandled 'error' on the socket.
        res.on('error', () => {});
        this.health?.contact(res.statusCode);
        resolve(res);
      });
      req.on('socket', guardSocket);
      req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'TIMEOUT' })));
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.name === 'AbortError') return reject(err);
        const failed = connectionError(err, this.baseUrl, 'UPSTREAM');
        this.health?.failure(failed.code, failed.message);
        reject(failed);
      });
      req.end(payload);
    });
  }

  /** A JSON call; non-2xx answers become errors carrying the primary's code and message. */
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.open(method, path, body);
    const text = await readBody(res);
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) return parsed as T;
    const first = errorOfBody(parsed);
    const err = new UpstreamError(first?.code ?? `UPSTREAM_HTTP_${status}`, status, first?.message ?? `The primary answered ${method} ${path} with HTTP ${status}.`);
    const retryAfter = res.headers['retry-after'];
    if (retryAfter && /^\d{1,9}$/.test(retryAfter)) err.retryAfterSeconds = Number(retryAfter);
    throw err;
  }
}

export async function readBody(res: IncomingMessage, limit = 256 * 1024 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new Error('response too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** An unauthenticated GET (discovery, own base URL), with the same trust rules. */
export async function getJson<T>(url: string, ca: string[], what: 'UPSTREAM' | 'BASE_URL', timeoutMs = 10_000): Promise<{ status: number; body: T | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', ca, timeout: timeoutMs, headers: { accept: 'application/json' } }, (res) => {
      readBody(res, 1024 * 1024).then((text) => {
        let body: T | undefined;
        try {
          body = JSON.parse(text) as T;
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, body });
      }, reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'TIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => reject(connectionError(err, url, what)));
    req.end();
  });
}

// Keep-alive sockets serve many requests: one no-op 'error' listener per socket, not one per request (which
// piles up listeners on a long-lived socket and trips Node's leak warning).
const guarded = new WeakSet<object>();
function guardSocket(socket: Socket): void {
  if (guarded.has(socket)) return;
  guarded.add(socket);
  socket.on('error', () => {});
}
