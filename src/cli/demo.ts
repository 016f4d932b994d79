// `npm start`: a primary and one mirror on embedded defaults, for a laptop. Everything lives under one home
// directory in the checkout; the first run makes a development CA and a sample repository, the mirror
// registers and is authorized for the sample project, and every run prints how to use both. With `--nodes N`
// the mirror is a farm of N nodes behind nginx on the mirror's ports (demo-farm.ts).
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { loadConfig } from '../config/load.js';
import { createLogger, type Logger } from '../obs/logger.js';
import { startMirror, type RunningMirror } from '../server/mirror.js';
import { ADMIN_PASSWORD_FILE, startPrimary, type RunningServer } from '../server/primary.js';
import { writeDevCa, type DevCaFiles } from '../tls/dev-ca.js';
import { isMirrorfarmError } from '../errors.js';
import { findNginx } from '../farm/balancer.js';
import { nodePorts, startDemoFarm, type DemoFarm } from './demo-farm.js';

const SAMPLE = { project: 'DEMO', projectName: 'Demo', repo: 'hello' };

/** The four listeners of the demo. By default they sit at the ports the README shows (7990, 7991, 7998, 7999). */
export interface DemoPorts {
  primaryHttp: number;
  primarySsh: number;
  mirrorHttp: number;
  mirrorSsh: number;
}

/** Ports laid out from one base the way the defaults are: HTTPS at base and base+1, SSH at base+8 and base+9. */
export function portsFromBase(base: number): DemoPorts {
  return { primaryHttp: base, mirrorHttp: base + 1, mirrorSsh: base + 8, primarySsh: base + 9 };
}

/** Where a farm's nodes listen by default: from base+10 on, two ports each (HTTPS, then SSH). */
export function nodePortBaseFrom(base: number): number {
  return base + 10;
}

export interface DemoOptions {
  mirror: boolean;
  ports: DemoPorts;
  /** Run the mirror as a farm of this many nodes behind nginx (on the mirror ports); undefined: one plain mirror. */
  nodes?: number;
  /** First port of the farm's nodes (node i: +2i HTTPS, +2i+1 SSH). */
  nodePortBase?: number;
  /** nginx binary for the farm's balancer. */
  nginx?: string;
}

export async function runDemo(homeDir: string, options: DemoOptions): Promise<void> {
  const home = resolve(homeDir);
  const { ports } = options;
  const farmNodes = options.mirror ? options.nodes : undefined;
  const nodeBase = options.nodePortBase ?? nodePortBaseFrom(ports.primaryHttp);
  if (farmNodes !== undefined) {
    // Before anything starts: a farm needs nginx, and the message names the packages.
    try {
      await findNginx(options.nginx);
    } catch (err) {
      process.stderr.write(`mirrorfarm demo: ${isMirrorfarmError(err) ? `${err.code}: ` : ''}${(err as Error).message}\n`);
      process.exit(2);
    }
  }
  const farmLabel = farmNodes === undefined ? 'mirror' : 'farm balancer';
  const needed: [string, number][] = [
    ['primary HTTPS', ports.primaryHttp],
    ['primary SSH', ports.primarySsh],
    ...(options.mirror ? ([[`${farmLabel} HTTPS`, ports.mirrorHttp], [`${farmLabel} SSH`, ports.mirrorSsh]] as [string, number][]) : []),
    ...Array.from({ length: farmNodes ?? 0 }, (_, i) => {
      const own = nodePorts(nodeBase, i);
      return [[`farm node-${i} HTTPS`, own.https], [`farm node-${i} SSH`, own.ssh]] as [string, number][];
    }).flat(),
  ];
  const seen = new Map<number, string>();
  for (const [what, port] of needed) {
    const other = seen.get(port);
    if (other) {
      process.stderr.write(`mirrorfarm demo: port ${port} is given to both ${other} and ${what}; choose ports that differ (--node-port-base moves the farm's nodes).\n`);
      process.exit(2);
    }
    seen.set(port, what);
  }
  for (const [what, port] of needed) {
    if (!(await portIsFree('127.0.0.1', port))) {
      const base = ports.primaryHttp === 7990 ? 8990 : ports.primaryHttp + 1000;
      process.stderr.write(
        `mirrorfarm demo: port ${port} (${what}) is already in use on 127.0.0.1. Stop what listens there, or run the demo on ` +
          `other ports: npm start -- --port-base ${base} (uses ${Object.values(portsFromBase(base)).sort().join(', ')}), ` +
          `or set each with --primary-http-port, --primary-ssh-port, --mirror-http-port and --mirror-ssh-port${farmNodes === undefined ? '' : ' (and --node-port-base for the nodes)'}.\n`,
      );
      process.exit(2);
    }
  }
  const ca = await writeDevCa({ outDir: join(home, 'ca'), hosts: ['localhost', '127.0.0.1', '::1'] });
  const config = loadConfig({
    overrides: {
      home: process.env.MIRRORFARM_HOME ?? join(home, 'primary'),
      'http.tls.cert': process.env.MIRRORFARM_HTTP_TLS_CERT ?? ca.tlsCert,
      'http.tls.key': process.env.MIRRORFARM_HTTP_TLS_KEY ?? ca.tlsKey,
      'http.host': process.env.MIRRORFARM_HTTP_HOST ?? '127.0.0.1',
      'http.port': ports.primaryHttp,
      'ssh.host': process.env.MIRRORFARM_SSH_HOST ?? '127.0.0.1',
      'ssh.port': ports.primarySsh,
      'log.level': process.env.MIRRORFARM_LOG_LEVEL ?? 'warn',
      ...(process.env.MIRRORFARM_BASE_URL ? {} : { baseUrl: `https://localhost:${ports.primaryHttp}` }),
    },
  });
  const log = createLogger(config.log.level);
  const server = await startPrimary(config, log);
  await seedSample(server, config.git.defaultBranch);
  const passwordFile = join(config.home, ADMIN_PASSWORD_FILE);
  const password = config.admin.password ?? (existsSync(passwordFile) ? readFileSync(passwordFile, 'utf8').trim() : undefined);

  const authorize = async (mirrorId: string) => {
    if (!password) return;
    const answer = await post(server.baseUrl, `/rest/mirroring/1.0/requests/${mirrorId}/accept`, { mirroringMode: 'SELECTED_PROJECTS', projectKeys: [SAMPLE.project] }, password, ca.caCert);
    if (answer >= 300) process.stderr.write(`mirrorfarm: authorizing the demo mirror failed (HTTP ${answer}); authorize it on the primary instead\n`);
  };
  const mirror = options.mirror && farmNodes === undefined ? await startDemoMirror(home, ca, server, authorize, log, ports) : undefined;
  let farm: DemoFarm | undefined;
  if (farmNodes !== undefined) {
    process.stderr.write(
      `mirrorfarm demo: starting a farm of ${farmNodes} mirror node${farmNodes === 1 ? '' : 's'} behind nginx on :${ports.mirrorHttp} (HTTPS) and :${ports.mirrorSsh} (SSH); ` +
        'until a node is ready the balancer has no node to send to (HTTP 502), which the nodes may note in a warning.\n',
    );
    try {
      farm = await startDemoFarm(home, ca, server.baseUrl, log, { nodes: farmNodes, ports: { https: ports.mirrorHttp, ssh: ports.mirrorSsh, nodeBase }, authorize, ...(options.nginx ? { nginx: options.nginx } : {}) });
    } catch (err) {
      await server.stop();
      throw err;
    }
  }

  const { urls } = server.context;
  const lines = [
    '',
    `mirrorfarm primary is running at ${server.baseUrl}  (data in ${config.home})`,
    '',
    `  admin login:    admin / ${password ?? '(set when this home was created)'}`,
    // GIT_SSL_CAINFO rather than `-c http.sslCAInfo`: where the environment already sets GIT_SSL_CAINFO (a
    // corporate CA bundle, say), git lets the variable win over any config, so only the variable always works.
    `  trust the CA:   GIT_SSL_CAINFO=${ca.caCert} git ...   (per command; it wins over git config and an exported GIT_SSL_CAINFO)`,
    '',
    `  clone (HTTPS):  GIT_SSL_CAINFO=${ca.caCert} git clone ${urls.httpClone(SAMPLE.project, SAMPLE.repo)}`,
    ...(urls.sshClone(SAMPLE.project, SAMPLE.repo)
      ? [
          `  clone (SSH):    git clone ${urls.sshClone(SAMPLE.project, SAMPLE.repo)}`,
          `                  first add your key: MIRRORFARM_PASSWORD=... npx mirrorfarm admin --url ${server.baseUrl} --ca-file ${ca.caCert} ssh-key add --user admin ~/.ssh/id_ed25519.pub`,
        ]
      : []),
    `  REST API:       ${server.baseUrl}/rest/api/1.0/projects   (OpenAPI: ${server.baseUrl}/rest/api/openapi.json)`,
  ];
  if (mirror) {
    const status = mirror.controller.state;
    lines.push(
      '',
      `mirrorfarm mirror is running at ${mirror.baseUrl}  (${status}; data in ${join(home, 'mirror')})`,
      `  clone (HTTPS):  GIT_SSL_CAINFO=${ca.caCert} git clone ${mirror.baseUrl}/scm/${SAMPLE.project.toLowerCase()}/${SAMPLE.repo}.git`,
      ...(mirror.sshPort ? [`  clone (SSH):    git clone ssh://git@localhost:${mirror.sshPort}/${SAMPLE.project.toLowerCase()}/${SAMPLE.repo}.git`] : []),
      `  status:         ${mirror.baseUrl}/status   (on the primary: ${server.baseUrl}/rest/mirroring/1.0/mirrorServers)`,
      '  Log in to the mirror with the primary\'s users and keys; push to the primary, and the mirror follows within a second.',
    );
  }
  if (farm) lines.push('', ...farmLines(farm, ca, server.baseUrl, ports));
  lines.push('', 'Press Ctrl-C to stop.', '');
  process.stdout.write(lines.join('\n'));

  // Mirrors first: a node leaving tells the primary so (instead of being evicted later), which needs the primary up.
  const shutdown = () =>
    Promise.all([mirror?.stop(), farm?.stop()])
      .then(() => server.stop())
      .then(() => process.exit(0));
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

async function seedSample(server: RunningServer, branch: string): Promise<void> {
  const { projects, repositories } = server.context;
  if (await projects.byKey(SAMPLE.project)) return;
  const project = await projects.create({ key: SAMPLE.project, name: SAMPLE.projectName });
  const repo = await repositories.create(project, { name: SAMPLE.repo });
  await repositories.commitFiles(
    repo,
    {
      branch,
      files: { 'README.md': '# hello\n\nA sample repository served by mirrorfarm.\n' },
      message: 'Initial commit',
      author: { name: 'mirrorfarm', email: 'mirrorfarm@localhost' },
    },
    { actor: 'admin', via: 'rest' },
  );
}

function farmLines(farm: DemoFarm, ca: DevCaFiles, primaryUrl: string, ports: DemoPorts): string[] {
  const base = `https://localhost:${ports.mirrorHttp}`;
  const inRotation = new Set(farm.rotation.current());
  return [
    `mirrorfarm mirror farm of ${farm.nodes.length} node${farm.nodes.length === 1 ? '' : 's'} is running behind nginx at ${base}  (SSH on :${ports.mirrorSsh}; data in ${farm.dir})`,
    `  clone (HTTPS):  GIT_SSL_CAINFO=${ca.caCert} git clone ${base}/scm/${SAMPLE.project.toLowerCase()}/${SAMPLE.repo}.git`,
    `  clone (SSH):    git clone ssh://git@localhost:${ports.mirrorSsh}/${SAMPLE.project.toLowerCase()}/${SAMPLE.repo}.git`,
    ...farm.nodes.map(
      ({ name, mirror }) =>
        `  ${name}:${' '.repeat(Math.max(1, 14 - name.length))}HTTPS :${mirror.httpPort}, SSH :${mirror.sshPort ?? '-'}  ${mirror.controller.state}${inRotation.has(name) ? ', in rotation' : ', not ready (out of rotation)'}  (https://localhost:${mirror.httpPort}/status)`,
    ),
    `  balancer:       ${farm.balancer.configFile} (round-robin, no stickiness; only nodes whose /ready answers 200 are in it)`,
    `  on the primary: ${primaryUrl}/rest/mirroring/1.0/mirrorServers/${farm.mirrorId}  (one mirror, ${farm.nodes.length} nodes)`,
    '  The nodes share one identity key and one SSH host key set; each has its own disk and database.',
  ];
}

/** A mirror of the demo primary, authorized for the sample project the way an administrator would. */
async function startDemoMirror(home: string, ca: DevCaFiles, primary: RunningServer, authorize: (mirrorId: string) => Promise<void>, log: Logger, ports: DemoPorts): Promise<RunningMirror> {
  // Built from defaults, not the environment, whose MIRRORFARM_* variables describe the primary.
  const config = loadConfig({
    env: {},
    overrides: {
      mode: 'mirror',
      home: join(home, 'mirror'),
      displayName: 'demo mirror',
      baseUrl: `https://localhost:${ports.mirrorHttp}`,
      'mirror.upstreamUrl': primary.baseUrl,
      'mirror.nodeId': 'demo-node',
      'trust.caFile': ca.caCert,
      'http.host': '127.0.0.1',
      'http.port': ports.mirrorHttp,
      'http.tls.cert': ca.tlsCert,
      'http.tls.key': ca.tlsKey,
      'ssh.host': '127.0.0.1',
      'ssh.port': ports.mirrorSsh,
      'ssh.publicHost': 'localhost',
      'log.level': process.env.MIRRORFARM_LOG_LEVEL ?? 'warn',
    },
  });
  const mirror = await startMirror(config, log.child({ node: 'mirror' }));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && !['PENDING', 'SYNCHRONIZED', 'SYNCHRONIZING'].includes(mirror.controller.state)) await sleep(100);
  if (mirror.controller.state === 'PENDING') await authorize(mirror.mirrorId);
  while (Date.now() < deadline && mirror.controller.state !== 'SYNCHRONIZED') await sleep(100);
  return mirror;
}

function post(baseUrl: string, path: string, body: unknown, password: string, caFile: string): Promise<number> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, baseUrl), {
      method: 'POST',
      ca: readFileSync(caFile),
      headers: { 'content-type': 'application/json', 'content-length': payload.length, authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}` },
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** A quick look before starting, so that a taken port gets a message that names it and the way out. */
function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
