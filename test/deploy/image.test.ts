// The container image (Dockerfile), as built by test/deploy/build-image.sh and run with podman: its metadata,
// the CLI, and a primary in a container configured only by MIRRORFARM_* variables and the files the chart
// mounts (read-only root filesystem, an emptyDir on /tmp, Secret volumes of mode 0440 with the pod's fsGroup),
// driven from the host by the real git and ssh clients over HTTPS and SSH on loopback; then SIGTERM, which
// tini forwards, ends it gracefully with exit code 0.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse as parseYaml } from 'yaml';
import { addSshKey, createProject, createRepo } from '../helpers/fixtures.js';
import { farmSecrets } from '../helpers/farm.js';
import { mirrorGet } from '../helpers/mirror.js';
import { tempDir } from '../helpers/tmp.js';
import { ADMIN, freePort, gitOk, makeWorkTree, sshKeyPair, testCa, type TestServer } from '../helpers/server.js';
import { CONTAINERS_REQUIRED, IMAGE, VERSION, homeDir, leftoverContainers, podmanOk, removeAllContainers, runContainer, until, volumeDir, whyNoContainers, type Container } from './podman.js';

const ROOT = resolve(import.meta.dirname, '../..');
const why = whyNoContainers();
if (why && CONTAINERS_REQUIRED) throw new Error(`MIRRORFARM_REQUIRE_CONTAINERS=1 but containers cannot run: ${why}`);
const RUN = `${process.pid}`;

/** Processes in the container, from /proc (the image has no ps): pid, state, command. */
async function processes(c: Container): Promise<Array<{ pid: number; ppid: number; state: string; comm: string }>> {
  const r = await c.exec(['sh', '-c', 'for f in /proc/[0-9]*/stat; do cat "$f" 2>/dev/null; echo; done']);
  return r.stdout
    .split('\n')
    .map((l) => /^(\d+) \((.*)\) (\S) (\d+)/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ pid: Number(m[1]), comm: m[2]!, state: m[3]!, ppid: Number(m[4]) }));
}

describe('container image', { skip: why ? `containers cannot run here: ${why}` : false }, () => {
  let primary: Container;
  let server: TestServer;
  let logs = '';

  before(async () => {
    const ca = await testCa();
    const { hostKeyDir } = await farmSecrets();
    const [httpPort, sshPort] = [await freePort(), await freePort()];
    // What the chart mounts: the identity Secret's host keys, a TLS Secret (TLS ends at the node here, as
    // when no ingress terminates it), HOME on a volume owned by the pod's user, /tmp as an emptyDir.
    const sshKeys = volumeDir({
      ssh_host_ed25519_key: readFileSync(join(hostKeyDir, 'ssh_host_ed25519_key')),
      ssh_host_ecdsa_key: readFileSync(join(hostKeyDir, 'ssh_host_ecdsa_key')),
    });
    const tls = volumeDir({ 'tls.crt': readFileSync(ca.tlsCert), 'tls.key': readFileSync(ca.tlsKey) });
    primary = await runContainer({
      name: `${RUN}-primary`,
      readOnlyRoot: true,
      user: { uid: 10001, gid: 10001, fsGroup: 10001 },
      tmpfs: ['/tmp'],
      mounts: [
        { source: homeDir(), target: '/var/lib/mirrorfarm' },
        { source: sshKeys, target: '/etc/mirrorfarm/ssh', readOnly: true },
        { source: tls, target: '/etc/mirrorfarm/tls', readOnly: true },
      ],
      env: {
        MIRRORFARM_MODE: 'primary',
        MIRRORFARM_BASE_URL: `https://127.0.0.1:${httpPort}`,
        MIRRORFARM_HTTP_HOST: '127.0.0.1',
        MIRRORFARM_HTTP_PORT: String(httpPort),
        MIRRORFARM_HTTP_TLS_CERT: '/etc/mirrorfarm/tls/tls.crt',
        MIRRORFARM_HTTP_TLS_KEY: '/etc/mirrorfarm/tls/tls.key',
        MIRRORFARM_SSH_HOST: '127.0.0.1',
        MIRRORFARM_SSH_PORT: String(sshPort),
        MIRRORFARM_SSH_HOST_KEY_DIR: '/etc/mirrorfarm/ssh',
        MIRRORFARM_ADMIN_PASSWORD: ADMIN.secret,
        MIRRORFARM_SHUTDOWN_TIMEOUT_SECONDS: '20',
      },
    });
    server = {
      home: '/var/lib/mirrorfarm',
      baseUrl: `https://127.0.0.1:${httpPort}`,
      httpPort,
      sshPort,
      ca,
      output: () => logs,
      httpUrl: (project: string, slug: string) => `https://127.0.0.1:${httpPort}/scm/${project}/${slug}.git`,
      sshUrl: (project: string, slug: string) => `ssh://git@127.0.0.1:${sshPort}/${project.toLowerCase()}/${slug}.git`,
    } as unknown as TestServer;
    try {
      await until(async () => (await mirrorGet(server, '/status', 1000)).status === 200, 'the primary in the container to answer /status', 60_000);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- container log ---\n${await primary.logs()}`);
    }
  });

  after(async () => {
    await removeAllContainers();
    assert.deepEqual(await leftoverContainers(RUN), []);
  });

  it('is labelled per OCI conventions, runs as uid 10001 under tini, with HOME on a volume and ports 7990/7999', async () => {
    const [info] = JSON.parse(await podmanOk(['image', 'inspect', IMAGE])) as Array<{ Config: Record<string, any> }>;
    const config = info!.Config;
    assert.equal(config.User, '10001:10001');
    assert.deepEqual(config.Entrypoint, ['/usr/bin/tini', '--', 'mirrorfarm']);
    assert.deepEqual(config.Cmd, ['serve']);
    assert.deepEqual(Object.keys(config.Volumes), ['/var/lib/mirrorfarm']);
    assert.deepEqual(Object.keys(config.ExposedPorts).sort(), ['7990/tcp', '7999/tcp']);
    assert.ok((config.Env as string[]).includes('HOME=/var/lib/mirrorfarm'));
    const labels = config.Labels as Record<string, string>;
    // The image, the package and the chart's appVersion (its default image tag) name one version.
    const chart = parseYaml(readFileSync(join(ROOT, 'charts/mirrorfarm/Chart.yaml'), 'utf8')) as { appVersion: string };
    assert.equal(labels['org.opencontainers.image.version'], VERSION);
    assert.equal(chart.appVersion, VERSION);
    assert.match(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'), new RegExp(`^ARG VERSION=${VERSION.replace(/\./g, '\\.')}$`, 'm'));
    for (const key of ['title', 'description', 'licenses', 'source', 'revision', 'created']) assert.ok(labels[`org.opencontainers.image.${key}`], key);
    assert.equal(labels['org.opencontainers.image.licenses'], 'Apache-2.0');

    const procs = await processes(primary);
    assert.equal(procs.find((p) => p.pid === 1)?.comm, 'tini');
    const node = procs.find((p) => p.ppid === 1 && p.comm === 'node');
    assert.ok(node, JSON.stringify(procs));
    const status = (await primary.exec(['cat', `/proc/${node.pid}/status`])).stdout;
    assert.match(status, /^Uid:\s+10001\s+10001\s+10001\s+10001$/m);
    assert.match(status, /^Gid:\s+10001\s/m);
  });

  it('`mirrorfarm --version` prints the version; the runtime image has git and ssh but no compiler', async () => {
    assert.equal((await podmanOk(['run', '--rm', '--network', 'host', IMAGE, '--version'])).trim(), VERSION);
    const tools = await podmanOk(['run', '--rm', '--network', 'host', '--entrypoint', 'sh', IMAGE, '-c', 'for t in git ssh node cc gcc g++ make; do if command -v $t >/dev/null; then echo $t; fi; done']);
    assert.deepEqual(tools.trim().split('\n'), ['git', 'ssh', 'node']);
  });

  it('a primary in the container serves /status over HTTPS and real clones over HTTPS and SSH to the host', async () => {
    const { body } = await mirrorGet<{ version?: string; mode?: string }>(server, '/status');
    assert.equal(body.mode ?? 'primary', 'primary');
    await createProject(server, 'IMG');
    await createRepo(server, 'IMG', 'app');
    const work = await makeWorkTree([{ 'README.md': 'from the host\n' }]);
    await gitOk(server, ['push', '-q', server.httpUrl('IMG', 'app'), 'main'], { cwd: work, creds: ADMIN });
    const head = (await gitOk(null, ['rev-parse', 'HEAD'], { cwd: work })).trim();

    const clones = tempDir('mf-clones-');
    const viaHttps = join(clones, 'https');
    await gitOk(server, ['clone', '-q', server.httpUrl('IMG', 'app'), viaHttps], { creds: ADMIN });
    assert.equal((await gitOk(null, ['rev-parse', 'HEAD'], { cwd: viaHttps })).trim(), head);

    const key = await sshKeyPair('admin');
    await addSshKey(server, 'admin', key.publicKey);
    const viaSsh = join(clones, 'ssh');
    await gitOk(server, ['clone', '-q', server.sshUrl('IMG', 'app'), viaSsh], { sshKey: key });
    assert.equal((await gitOk(null, ['rev-parse', 'HEAD'], { cwd: viaSsh })).trim(), head);
  });

  it('git processes are reaped: none is left after the clones, and tini reaps orphans', async () => {
    await until(async () => !(await processes(primary)).some((p) => p.comm.startsWith('git') || p.state === 'Z'), 'no git process or zombie', 10_000);
    // A process whose parent exits is handed to PID 1; node would leave it a zombie, tini reaps it.
    await primary.exec(['sh', '-c', '(sleep 0.5; git --version >/dev/null) & exit 0']);
    await sleep(1500);
    const procs = await processes(primary);
    assert.deepEqual(procs.filter((p) => p.state === 'Z'), []);
    assert.deepEqual(procs.filter((p) => p.comm !== 'sh' && p.comm !== 'cat').map((p) => p.comm).sort(), ['node', 'tini']);
  });

  it('the root filesystem is read-only; HOME and /tmp are writable', async () => {
    const r = await primary.exec(['sh', '-c', 'touch /opt/mirrorfarm/x 2>&1; touch /etc/x 2>&1; touch /tmp/x && touch /var/lib/mirrorfarm/x && echo writable']);
    assert.equal((r.stdout.match(/Read-only file system/g) ?? []).length, 2, r.stdout);
    assert.match(r.stdout, /writable/);
    const ls = await primary.exec(['ls', '/var/lib/mirrorfarm']);
    assert.match(ls.stdout, /\S/, 'the server keeps its data in HOME');
  });

  it('SIGTERM (forwarded by tini) stops the server gracefully within a few seconds, exit code 0', async () => {
    const t0 = Date.now();
    await primary.kill('TERM');
    const code = await primary.wait(30_000);
    const ms = Date.now() - t0;
    logs = await primary.logs();
    assert.equal(code, 0, logs.slice(-3000));
    assert.ok(ms < 5000, `stopped after ${ms} ms`);
    assert.match(logs, /shutting down/);
    assert.match(logs, /mirrorfarm stopped/);
  });
});
