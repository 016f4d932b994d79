// `npm start`: a primary on embedded defaults, for a laptop. Everything lives under one home directory in the
// checkout; the first run makes a development CA and a sample repository, and every run prints how to use it.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig } from '../config/load.js';
import { createLogger } from '../obs/logger.js';
import { ADMIN_PASSWORD_FILE, startPrimary } from '../server/primary.js';
import { writeDevCa } from '../tls/dev-ca.js';

const SAMPLE = { project: 'DEMO', projectName: 'Demo', repo: 'hello' };

export async function runDemo(homeDir: string): Promise<void> {
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
    },
  });
  const log = createLogger(config.log.level);
  const server = await startPrimary(config, log);
  const { projects, repositories } = server.context;

  if (!(await projects.byKey(SAMPLE.project))) {
    const project = await projects.create({ key: SAMPLE.project, name: SAMPLE.projectName });
    const repo = await repositories.create(project, { name: SAMPLE.repo });
    await repositories.commitFiles(
      repo,
      {
        branch: config.git.defaultBranch,
        files: { 'README.md': '# hello\n\nA sample repository served by mirrorfarm.\n' },
        message: 'Initial commit',
        author: { name: 'mirrorfarm', email: 'mirrorfarm@localhost' },
      },
      { actor: 'admin', via: 'rest' },
    );
  }

  const passwordFile = join(config.home, ADMIN_PASSWORD_FILE);
  const password = config.admin.password ?? (existsSync(passwordFile) ? readFileSync(passwordFile, 'utf8').trim() : '(set when this home was created)');
  const https = server.context.urls.httpClone(SAMPLE.project, SAMPLE.repo);
  const ssh = server.context.urls.sshClone(SAMPLE.project, SAMPLE.repo);
  process.stdout.write(
    [
      '',
      `mirrorfarm primary is running at ${server.baseUrl}  (data in ${config.home})`,
      '',
      `  admin login:   admin / ${password}`,
      `  trust the CA:  git config --global http.sslCAInfo ${ca.caCert}`,
      `                 (or per command: git -c http.sslCAInfo=${ca.caCert} ...)`,
      '',
      `  clone (HTTPS): git -c http.sslCAInfo=${ca.caCert} clone ${https}`,
      ...(ssh
        ? [
            `  clone (SSH):   ${ssh}`,
            `                 first add your key: mirrorfarm admin --url ${server.baseUrl} --ca-file ${ca.caCert} ssh-key add --user admin ~/.ssh/id_ed25519.pub`,
          ]
        : []),
      `  REST API:      ${server.baseUrl}/rest/api/1.0/projects   (OpenAPI: ${server.baseUrl}/rest/api/openapi.json)`,
      '',
      'Press Ctrl-C to stop.',
      '',
    ].join('\n'),
  );

  const shutdown = () => server.stop().then(() => process.exit(0));
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}
