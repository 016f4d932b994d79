// A mirror whose primary goes away keeps serving what it has, and says so: /status shows the upstream
// UNREACHABLE with the error code and since when, the lag grows, mirrorfarm_mirror_upstream_up drops to 0, readiness
// stays up and clones keep working; when the primary is back the node is CONNECTED and SYNCHRONIZED again and the
// primary shows the outage the node went through. Also: the mirror logs its identity key fingerprint at startup,
// exactly as ssh-keygen prints it, so an administrator can compare it with the primary's.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { createProject, createRepo, createUser, grantProject } from '../helpers/fixtures.js';
import { authorizeMirror, mirrorGet, waitForSameRefs, waitForState, type MirrorStatus } from '../helpers/mirror.js';
import { ADMIN, api, eventually, freePort, gitOk, makeWorkTree, startMirror, startServer, type Credentials, type TestServer } from '../helpers/server.js';
import { run } from '../helpers/run.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

interface UpstreamStatus extends MirrorStatus {
  upstream: { url: string; state: string; errorCode: string | null; since: string | null; lastContact: string | null; lastOutage: { errorCode: string; since: string; until?: string } | null };
  lagSeconds: number;
  publicKeyFingerprint: string;
}

let primary: TestServer;
let mirror: TestServer;
let alice: Credentials;
let work: string;
let mirrorId: string;
let primaryEnv: Record<string, string>;

before(async () => {
  // Fixed ports, so that the primary comes back where the mirror looks for it.
  primaryEnv = { MIRRORFARM_HTTP_PORT: String(await freePort()), MIRRORFARM_SSH_PORT: String(await freePort()) };
  primary = await startServer({ env: primaryEnv });
  await createProject(primary, 'ONE');
  await createRepo(primary, 'ONE', 'app');
  alice = await createUser(primary, 'alice');
  await grantProject(primary, 'ONE', 'alice', 'PROJECT_READ');
  work = await makeWorkTree([{ 'README.md': 'v1\n' }]);
  await gitOk(primary, ['push', primary.httpUrl('ONE', 'app'), 'main'], { creds: ADMIN, cwd: work });
  mirror = await startMirror(primary);
  mirrorId = await authorizeMirror(primary, mirror, 'ALL');
  await waitForState(mirror, 'SYNCHRONIZED');
  await waitForSameRefs(primary, mirror, 'ONE', 'app', alice);
});

after(async () => {
  if (process.env.MF_TEST_DEBUG) process.stderr.write(`--- mirror output ---\n${mirror?.output().slice(-20000)}\n`);
  await mirror?.stop();
  await primary?.stop();
  removeTempDirs();
});

const status = async () => (await mirrorGet<UpstreamStatus>(mirror, '/status')).body;

async function metric(name: string): Promise<number> {
  const r = await api(mirror, 'GET', '/metrics', undefined, null);
  const line = r.text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${name} in /metrics`);
  return Number(line.split(' ')[1]);
}

describe('mirror identity', () => {
  it("logs its key fingerprint at startup, equal to ssh-keygen's and to the one the primary shows", async () => {
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' };
    const derived = await run('ssh-keygen', ['-y', '-f', join(mirror.home, 'mirror', 'id_ed25519')], { env });
    assert.equal(derived.code, 0, derived.stderr);
    const pub = join(tempDir('mf-pub-'), 'mirror.pub');
    writeFileSync(pub, derived.stdout);
    const listed = await run('ssh-keygen', ['-lf', pub], { env });
    assert.equal(listed.code, 0, listed.stderr);
    const expected = listed.stdout.split(' ')[1]!;
    assert.match(expected, /^SHA256:[A-Za-z0-9+/]{43}$/);
    const logged = mirror.output().split('\n').find((l) => l.includes('mirror identity key fingerprint'));
    assert.ok(logged, 'the fingerprint is logged at startup');
    assert.equal((JSON.parse(logged) as { fingerprint: string }).fingerprint, expected);
    assert.ok((JSON.parse(logged) as { msg: string }).msg.includes(expected), 'and is in the message itself');
    assert.equal((await status()).publicKeyFingerprint, expected);
    const onPrimary = await api(primary, 'GET', `/rest/mirroring/1.0/mirrorServers/${mirrorId}`);
    assert.equal(onPrimary.body.publicKeyFingerprint, expected);
    assert.ok(readFileSync(join(mirror.home, 'mirror', 'id_ed25519'), 'utf8').includes('OPENSSH PRIVATE KEY'));
  });
});

describe('when the primary cannot be reached', () => {
  it('shows the upstream CONNECTED and up while the primary answers', async () => {
    const s = await status();
    assert.equal(s.upstream.state, 'CONNECTED');
    assert.equal(s.upstream.url, primary.baseUrl);
    assert.equal(s.upstream.errorCode, null);
    assert.equal(s.error, undefined);
    assert.equal(await metric('mirrorfarm_mirror_upstream_up'), 1);
    // Cache alice's credentials, as a user who worked with the mirror before the outage.
    await gitOk(mirror, ['ls-remote', mirror.httpUrl('ONE', 'app')], { creds: alice });
  });

  it('keeps serving, and shows UNREACHABLE with the error code and since when, a growing lag and the metric at 0', async () => {
    const stoppedAt = Date.now();
    await primary.stop();
    const down = await eventually(async () => {
      const s = await status();
      return s.upstream.state === 'UNREACHABLE' ? s : undefined;
    }, 'upstream UNREACHABLE', 20_000);
    assert.equal(down.upstream.errorCode, 'MIRROR_UPSTREAM_UNREACHABLE');
    assert.ok(Date.parse(down.upstream.since!) >= stoppedAt - 1000, `since ${down.upstream.since}`);
    assert.equal(down.error?.code, 'MIRROR_UPSTREAM_UNREACHABLE', '/status does not say error: null');
    assert.match(down.error!.message, /Cannot reach the primary/);
    assert.equal(down.state, 'SYNCHRONIZED', 'the node still serves everything it carries');
    assert.equal((await mirrorGet(mirror, '/ready')).status, 200, 'readiness stays up');
    assert.equal(await metric('mirrorfarm_mirror_upstream_up'), 0);

    const lag1 = (await status()).lagSeconds;
    const silence1 = await metric('mirrorfarm_mirror_upstream_last_contact_seconds');
    await sleep(1500);
    const lag2 = (await status()).lagSeconds;
    assert.ok(lag2 > lag1 && lag2 >= 1, `lag grows: ${lag1} -> ${lag2}`);
    assert.ok((await metric('mirrorfarm_mirror_upstream_last_contact_seconds')) > silence1);
    assert.ok((await metric('mirrorfarm_mirror_sync_lag_seconds')) >= 1, 'the sync lag gauge grows too');

    // Clones keep working for users verified before the outage, and REST reads too.
    const dest = join(tempDir('mf-clone-'), 'app');
    await gitOk(mirror, ['clone', mirror.httpUrl('ONE', 'app'), dest], { creds: alice });
    assert.equal(readFileSync(join(dest, 'README.md'), 'utf8'), 'v1\n');
    const branches = await api(mirror, 'GET', '/rest/api/1.0/projects/ONE/repos/app/branches', undefined, alice);
    assert.equal(branches.status, 200, branches.text);
    const server = await api(mirror, 'GET', '/rest/mirroring/1.0/upstreamServer', undefined, null);
    assert.equal(server.body.connection.state, 'UNREACHABLE');
    assert.equal(server.body.connection.errorCode, 'MIRROR_UPSTREAM_UNREACHABLE');
  });

  it('returns to CONNECTED and SYNCHRONIZED when the primary is back, and the primary shows the outage', async () => {
    primary = await primary.restart(primaryEnv);
    const up = await eventually(async () => {
      const s = await status();
      return s.upstream.state === 'CONNECTED' && s.state === 'SYNCHRONIZED' ? s : undefined;
    }, 'upstream CONNECTED again', 30_000);
    assert.equal(up.error, undefined);
    assert.equal(up.upstream.errorCode, null);
    assert.equal(up.upstream.lastOutage?.errorCode, 'MIRROR_UPSTREAM_UNREACHABLE');
    assert.ok(Date.parse(up.upstream.lastOutage!.until!) > Date.parse(up.upstream.lastOutage!.since));
    assert.equal(await metric('mirrorfarm_mirror_upstream_up'), 1);
    assert.ok(up.lagSeconds < 5, `lag back to normal: ${up.lagSeconds}`);

    const node = await eventually(async () => {
      const r = await api(primary, 'GET', `/rest/mirroring/1.0/mirrorServers/${mirrorId}`);
      return r.body?.nodes?.[0]?.lastUpstreamOutage ? r.body.nodes[0] : undefined;
    }, 'the outage on the primary', 20_000);
    assert.equal(node.lastUpstreamOutage.errorCode, 'MIRROR_UPSTREAM_UNREACHABLE');
    assert.equal(node.lastUpstreamOutage.since, up.upstream.lastOutage!.since);
    assert.equal(node.lastUpstreamOutage.until, up.upstream.lastOutage!.until);

    // And it follows the primary again.
    await gitOk(null, ['commit', '-q', '--allow-empty', '-m', 'after the outage'], { cwd: work });
    await gitOk(primary, ['push', primary.httpUrl('ONE', 'app'), 'main'], { creds: ADMIN, cwd: work });
    await waitForSameRefs(primary, mirror, 'ONE', 'app', alice, 20_000);
  });
});
