// `npm start`: a primary and one mirror on embedded defaults, for a laptop. Everything lives under one home
// directory in the checkout; the first run makes a development CA and a sample repository, the mirror
// registers and is authorized for the sample project, and every run prints how to use both.
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { loadConfig } from '../config/load.js';
import { createLogger, type Logger } from '../obs/logger.js';
import { startMirror, type RunningMirror } from '../server/mirror.js';
import { ADMIN_PASSWORD_FILE, startPrimary, type RunningServer } from '../server/primary.js';
import { writeDevCa, type DevCaFiles } from '../tls/dev-ca.js';

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

export interface DemoOptions {
  mirror: boolean;
  ports: DemoPorts;
}

export async function runDemo(homeDir: string, options: DemoOptions): Promise<void> {
  const home = resolve(homeDir);
  const { ports } = options;
  const needed: [string, number][] = [
    ['primary HTTPS', ports.primaryHttp],
    ['primary SSH', ports.primarySsh],
    ...(options.mirror ? ([['mirror HTTPS', ports.mirrorHttp], ['mirror SSH', ports.mirrorSsh]] as [string, number][]) : []),
  ];
  for (const [what, port] of needed) {
    if (!(await portIsFree('127.0.0.1', port))) {
      const base = ports.primaryHttp === 7990 ? 8990 : ports.primaryHttp + 1000;
      process.stderr.write(
        `mirrorfarm demo: port ${port} (${what}) is already in use on 127.0.0.1. Stop what listens there, or run the demo on ` +
          `other ports: npm start -- --port-base ${base} (uses ${Object.values(portsFromBase(base)).sort().join(', ')}), ` +
          'or set each with --primary-http-port, --primary-ssh-port, --mirror-http-port and --mirror-ssh-port.\n',
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

  const mirror = options.mirror ? await startDemoMirror(home, ca, server, password, log, ports) : undefined;

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
  lines.push('', 'Press Ctrl-C to stop.', '');
  process.stdout.write(lines.join('\n'));

  const shutdown = () => Promise.all([mirror?.stop(), server.stop()]).then(() => process.exit(0));
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

/** A mirror of the demo primary, authorized for the sample project the way an administrator would. */
async function startDemoMirror(home: string, ca: DevCaFiles, primary: RunningServer, password: string | undefined, log: Logger, ports: DemoPorts): Promise<RunningMirror> {
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
  if (mirror.controller.state === 'PENDING' && password) {
    const answer = await post(primary.baseUrl, `/rest/mirroring/1.0/requests/${mirror.mirrorId}/accept`, { mirroringMode: 'SELECTED_PROJECTS', projectKeys: [SAMPLE.project] }, password, ca.caCert);
    if (answer >= 300) process.stderr.write(`mirrorfarm: authorizing the demo mirror failed (HTTP ${answer}); authorize it on the primary instead\n`);
  }
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
