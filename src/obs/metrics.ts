// Prometheus metrics. One registry per server instance (so tests can run several in one process) with Node's
// default process metrics included.
import { Counter, Histogram, Registry, collectDefaultMetrics, Gauge } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();

  readonly gitOperations = new Counter({
    name: 'mirrorfarm_git_operations_total',
    help: 'Git operations served, by transport (http, ssh), service (upload-pack, receive-pack) and outcome.',
    labelNames: ['transport', 'service', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly gitDuration = new Histogram({
    name: 'mirrorfarm_git_operation_duration_seconds',
    help: 'Duration of git operations, by transport and service.',
    labelNames: ['transport', 'service'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800],
    registers: [this.registry],
  });

  readonly gitBytes = new Counter({
    name: 'mirrorfarm_git_bytes_total',
    help: 'Bytes moved by git operations, by transport, service and direction (in = from client, out = to client).',
    labelNames: ['transport', 'service', 'direction'] as const,
    registers: [this.registry],
  });

  readonly gitActive = new Gauge({
    name: 'mirrorfarm_git_operations_active',
    help: 'Git operations in progress.',
    labelNames: ['transport', 'service'] as const,
    registers: [this.registry],
  });

  readonly lfsBytes = new Counter({
    name: 'mirrorfarm_lfs_bytes_total',
    help: 'Git LFS object bytes, by direction (in = stored: uploaded, or fetched from the primary; out = sent to clients) and source (local = this server\'s store or a client, primary = the primary, through a mirror).',
    labelNames: ['direction', 'source'] as const,
    registers: [this.registry],
  });

  readonly httpRequests = new Counter({
    name: 'mirrorfarm_http_requests_total',
    help: 'HTTP requests, by method, route and status code.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });

  readonly httpDuration = new Histogram({
    name: 'mirrorfarm_http_request_duration_seconds',
    help: 'HTTP request duration (to the last byte for git transfers), by method and route.',
    labelNames: ['method', 'route'] as const,
    buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60],
    registers: [this.registry],
  });

  readonly authentications = new Counter({
    name: 'mirrorfarm_authentications_total',
    help: 'Credential checks, by outcome.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly loginThrottled = new Counter({
    name: 'mirrorfarm_login_throttled_total',
    help: 'Password attempts refused by the login throttle (HTTP 429) before any password was checked, by scope (address, account).',
    labelNames: ['scope'] as const,
    registers: [this.registry],
  });

  readonly passwordVerifications = new Counter({
    name: 'mirrorfarm_password_verifications_total',
    help: 'Password hashes computed (scrypt) to check a login; throttled attempts never get here.',
    registers: [this.registry],
  });

  readonly events = new Counter({
    name: 'mirrorfarm_events_appended_total',
    help: 'Events appended to the event log.',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'mirrorfarm_' });
  }
}
