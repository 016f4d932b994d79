// `npm start`: a primary and one mirror on embedded defaults, for a laptop. Everything lives under one home
// directory in the checkout; the first run makes a development CA and a sample repository, the mirror
// registers and is authorized for the sample project, and every run prints how to use both.
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join, resolve } from 'node:path';
import { loadConfig } from '../config/load.js';
import { createLogger, type Logger } from '../obs/logger.js';
import { startMirror, type RunningMirror } from '../server/mirror.js';
import { ADMIN_PASSWORD_FILE, startPrimary, type RunningServer } from '../server/primary.js';
import { writeDevCa, type DevCaFiles } from '../tls/dev-ca.js';

const SAMPLE = { project: 'DEMO', projectName: 'Demo', repo: 'hello' };
const MIRROR_PORTS = { http: 7991, ssh: 7998 };

export async function runDemo(homeDir: string, options: { mirror: boolean }): Promise<void> {
  const home = resolve(homeDir);
  const ca = await writeDevCa({ outDir: join(home, 'ca'), hosts: ['localhost', '127.0.0.1', '::1'] });
  const config = loadConfig({
    overrides: {
      home: process.env.MIRRORFARM_HOME ?? join(home, 'primary'),
      'http.tls.cert': process.env.MIRRORFARM_HTTP_TLS_CERT ?? ca.tlsCert,
      'http.tls.key': process.env.MIRRORFARM_HTTP_TLS_KEY ?? ca.tlsKey,
      'http.host': process.env.MIRRORFARM_HTTP_HOST ?? '127.0.0.1',
      'ssh.host': process.env.MIRRORFARM_SSH_HOST ?? '127.0.0.1',
      'log.level': process.env.MIRRORFARM_LOG_LEVEL ?? 'warn',
      ...(process.env.MIRRORFARM_BASE_URL ? {} : { baseUrl: `https://localhost:${process.env.MIRRORFARM_HTTP_PORT ?? 7990}` }),
    },
  });
  const log = createLogger(config.log.level);
  const server = await startPrimary(config, log);
  await seedSample(server, config.git.defaultBranch);
  const passwordFile = join(config.home, ADMIN_PASSWORD_FILE);
  const password = config.admin.password ?? (existsSync(passwordFile) ? readFileSync(passwordFile, 'utf8').trim() : undefined);

  const mirror = options.mirror ? await startDemoMirror(home, ca, server, password, log) : undefined;

  const { urls } = server.context;
  const lines = [
    '',
    `mirrorfarm primary is running at ${server.baseUrl}  (data in ${config.home})`,
    '',
    `  admin login:    admin / ${password ?? '(set when this home was created)'}`,
    `  trust the CA:   git config --global http.sslCAInfo ${ca.caCert}`,
    `                  (or per command: git -c http.sslCAInfo=${ca.caCert} ...)`,
    '',
    `  clone (HTTPS):  git -c http.sslCAInfo=${ca.caCert} clone ${urls.httpClone(SAMPLE.project, SAMPLE.repo)}`,
    ...(urls.sshClone(SAMPLE.project, SAMPLE.repo)
      ? [
          `  clone (SSH):    git clone ${urls.sshClone(SAMPLE.project, SAMPLE.repo)}`,
          `                  first add your key: MIRRORFARM_PASSWORD=... mirrorfarm admin --url ${server.baseUrl} --ca-file ${ca.caCert} ssh-key add --user admin ~/.ssh/id_ed25519.pub`,
        ]
      : []),
    `  REST API:       ${server.baseUrl}/rest/api/1.0/projects   (OpenAPI: ${server.baseUrl}/rest/api/openapi.json)`,
  ];
  if (mirror) {
    const status = mirror.controller.state;
    lines.push(
      '',
      `mirrorfarm mirror is running at ${mirror.baseUrl}  (${status}; data in ${join(home, 'mirror')})`,
      `  clone (HTTPS):  git -c http.sslCAInfo=${ca.caCert} clone ${mirror.baseUrl}/scm/${SAMPLE.project.toLowerCase()}/${SAMPLE.repo}.git`,
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
async function startDemoMirror(home: string, ca: DevCaFiles, primary: RunningServer, password: string | undefined, log: Logger): Promise<RunningMirror> {
  // Built from defaults, not the environment, whose MIRRORFARM_* variables describe the primary.
  const config = loadConfig({
    env: {},
    overrides: {
      mode: 'mirror',
      home: join(home, 'mirror'),
      displayName: 'demo mirror',
      baseUrl: `https://localhost:${MIRROR_PORTS.http}`,
      'mirror.upstreamUrl': primary.baseUrl,
      'mirror.nodeId': 'demo-node',
      'trust.caFile': ca.caCert,
      'http.host': '127.0.0.1',
      'http.port': MIRROR_PORTS.http,
      'http.tls.cert': ca.tlsCert,
      'http.tls.key': ca.tlsKey,
      'ssh.host': '127.0.0.1',
      'ssh.port': MIRROR_PORTS.ssh,
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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
