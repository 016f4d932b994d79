// A raw HTTP(S) client for tests that need what the REST helper hides: any body and content type, the exact
// headers of the answer, and the local address the request comes from (127.0.0.x stand in for different
// client machines, for the login throttle).
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Credentials, TestServer } from './server.js';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
  ms: number;
}

export interface RawOptions {
  body?: Buffer | string;
  headers?: Record<string, string>;
  creds?: Credentials;
  localAddress?: string;
  /** Plain http:// (a server started without TLS). */
  plain?: boolean;
}

export function rawRequest(server: Pick<TestServer, 'httpPort' | 'ca'>, method: string, path: string, options: RawOptions = {}): Promise<RawResponse> {
  const started = Date.now();
  const body = typeof options.body === 'string' ? Buffer.from(options.body) : options.body;
  const headers: Record<string, string | number> = {
    ...(options.creds ? { authorization: `Basic ${Buffer.from(`${options.creds.user}:${options.creds.secret}`).toString('base64')}` } : {}),
    ...(body ? { 'content-length': body.length } : {}),
    ...options.headers,
  };
  return new Promise((resolve, reject) => {
    const common = { host: '127.0.0.1', port: server.httpPort, method, path, headers, ...(options.localAddress ? { localAddress: options.localAddress } : {}) };
    const onResponse = (res: import('node:http').IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const all = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: all, text: all.toString('utf8'), ms: Date.now() - started });
      });
    };
    const req = options.plain ? httpRequest(common, onResponse) : httpsRequest({ ...common, ca: readFileSync(server.ca.caCert), agent: false }, onResponse);
    req.on('error', reject);
    req.end(body);
  });
}

/** The value of one Prometheus sample (0 when absent), e.g. metric(text, 'mirrorfarm_login_throttled_total', {scope: 'address'}). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) total += Number(m[3]);
  }
  return total;
}
