#!/usr/bin/env node
// The mirrorfarm command line: serve, admin, dev-ca, demo.
import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError, loadConfig } from '../config/load.js';
import { isMirrorfarmError } from '../errors.js';
import { createLogger, type Logger } from '../obs/logger.js';
import { VERSION } from '../version.js';
import { registerAdminCommands } from './admin.js';

// Server code is loaded only by the commands that run a server, so `mirrorfarm admin` starts fast.

const program = new Command('mirrorfarm').version(VERSION).description('A Git server with smart mirrors.');

program
  .command('serve')
  .description('Run a server (primary or mirror, as configured).')
  .addOption(new Option('-c, --config <file>', 'YAML configuration file').env('MIRRORFARM_CONFIG'))
  .action(async (options: { config?: string }) => {
    let config;
    try {
      config = loadConfig({ ...(options.config ? { file: options.config } : {}) });
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`mirrorfarm: ${err.message}\n`);
        process.exit(2);
      }
      throw err;
    }
    const log = createLogger(config.log.level);
    if (config.mode === 'mirror') {
      const { startMirror } = await import('../server/mirror.js');
      const mirror = await startMirror(config, log);
      onSignals(log, () => mirror.stop());
      return;
    }
    const { startPrimary } = await import('../server/primary.js');
    const server = await startPrimary(config, log);
    if (server.generatedAdminPasswordFile) {
      process.stderr.write(`mirrorfarm: the password of the sysadmin "admin" was written to ${server.generatedAdminPasswordFile}\n`);
    }
    onSignals(log, () => server.stop());
  });

/** SIGTERM and SIGINT stop the server gracefully: running transfers may finish. */
function onSignals(log: Logger, stop: () => Promise<void>): void {
  const shutdown = (signal: string) => {
    log.info({ signal }, 'signal received');
    stop().then(
      () => process.exit(0),
      (err: Error) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

program
  .command('dev-ca')
  .description('Write a local development CA (ca.crt) and a server certificate (tls.crt, tls.key) for the given hosts.')
  .requiredOption('--out <dir>', 'output directory')
  .option('--host <name...>', 'host names and IP addresses the certificate covers', ['localhost', '127.0.0.1', '::1'])
  .option('--days <n>', 'server certificate validity in days', (v) => parseInt(v, 10))
  .action(async (options: { out: string; host: string[]; days?: number }) => {
    const { writeDevCa } = await import('../tls/dev-ca.js');
    const files = await writeDevCa({ outDir: options.out, hosts: options.host, ...(options.days ? { days: options.days } : {}) });
    process.stdout.write(
      `CA certificate:     ${files.caCert}\nserver certificate: ${files.tlsCert}\nserver key:         ${files.tlsKey}\n` +
        `Trust it in git with: git config --global http.sslCAInfo ${files.caCert}\n`,
    );
  });

program
  .command('demo')
  .description('Run a primary and a mirror (or, with --nodes N, a farm of N mirror nodes behind nginx) on embedded defaults (what `npm start` does): home under ./.home, dev CA, sample project.')
  .option('--home <dir>', 'where the demo keeps its data', '.home')
  .option('--no-mirror', 'run the primary only')
  .option('--port-base <n>', 'lay all ports out from this one: HTTPS at N (primary) and N+1 (mirror), SSH at N+8 (mirror) and N+9 (primary)', port, 7990)
  .option('--primary-http-port <n>', 'the primary\'s HTTPS port (default: the base)', port)
  .option('--primary-ssh-port <n>', 'the primary\'s SSH port (default: base+9)', port)
  .option('--mirror-http-port <n>', 'the mirror\'s HTTPS port (default: base+1)', port)
  .option('--mirror-ssh-port <n>', 'the mirror\'s SSH port (default: base+8)', port)
  .option('--nodes <n>', 'run the mirror as a farm of N nodes behind nginx, which listens on the mirror\'s HTTPS and SSH ports', nodeCount)
  .option('--node-port-base <n>', 'ports of the farm\'s nodes: node i listens on N+2i (HTTPS) and N+2i+1 (SSH) (default: base+10)', port)
  .addOption(new Option('--nginx <path>', 'nginx binary for the farm\'s balancer (default: /usr/sbin/nginx, Debian\'s)').env('MIRRORFARM_NGINX'))
  .action(async (options: DemoCliOptions) => {
    const demo = await import('./demo.js');
    const base = demo.portsFromBase(options.portBase);
    const ports = {
      primaryHttp: options.primaryHttpPort ?? base.primaryHttp,
      primarySsh: options.primarySshPort ?? base.primarySsh,
      mirrorHttp: options.mirrorHttpPort ?? base.mirrorHttp,
      mirrorSsh: options.mirrorSshPort ?? base.mirrorSsh,
    };
    await demo.runDemo(options.home, {
      mirror: options.mirror,
      ports,
      ...(options.nodes !== undefined ? { nodes: options.nodes } : {}),
      ...(options.nodePortBase !== undefined ? { nodePortBase: options.nodePortBase } : {}),
      ...(options.nginx ? { nginx: options.nginx } : {}),
    });
  });

interface DemoCliOptions {
  home: string;
  mirror: boolean;
  portBase: number;
  primaryHttpPort?: number;
  primarySshPort?: number;
  mirrorHttpPort?: number;
  mirrorSshPort?: number;
  nodes?: number;
  nodePortBase?: number;
  nginx?: string;
}

function nodeCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 16) throw new InvalidArgumentError('the number of nodes is a whole number from 1 to 16');
  return n;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError('a port is a whole number from 1 to 65535');
  return n;
}

registerAdminCommands(program);

program.parseAsync(process.argv).catch((err: Error) => {
  // The stable code leads, so that the Troubleshooting table in the README can be searched for it.
  process.stderr.write(`mirrorfarm: ${isMirrorfarmError(err) ? `${err.code}: ` : ''}${err.message}\n`);
  process.exit(1);
});
