// A farm of several when its primary goes away, under each mirror.farmAvailability: 'consistent' (the default)
// takes its nodes out of the balancer's rotation once their leases run out, since no node can tell whether only
// it is cut off; 'available' keeps serving what the farm had, and clones through the balancer keep working.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { startFarm, type Farm } from '../helpers/farm.js';
import { createProject, createRepo, createUser, grantProject } from '../helpers/fixtures.js';
import { mirrorGet, waitForState } from '../helpers/mirror.js';
import { api, eventually, git, gitOk, makeWorkTree, startServer, type Credentials, type TestServer } from '../helpers/server.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

/** A third of it is the nodes' lease. */
const PREPARE_TIMEOUT_S = 3;

let primary: TestServer;
let alice: Credentials;
const farms: Record<'consistent' | 'available', Farm | undefined> = { consistent: undefined, available: undefined };

async function authorizeFarm(farm: Farm): Promise<void> {
  const first = await waitForState(farm.nodes.get('node-0')!, 'PENDING');
  const accepted = await api(primary, 'POST', `/rest/mirroring/1.0/requests/${first.mirrorId}/accept`, { mirroringMode: 'ALL_PROJECTS' });
  assert.ok(accepted.status < 300, accepted.text);
  for (const node of farm.nodes.values()) await waitForState(node, 'SYNCHRONIZED', 30_000);
  await eventually(async () => farm.inRotation().length === farm.nodes.size, 'every node in rotation', 30_000);
}

before(async () => {
  primary = await startServer({ env: { MIRRORFARM_MIRRORING_PREPARE_TIMEOUT_SECONDS: String(PREPARE_TIMEOUT_S) } });
  await createProject(primary, 'OUT');
  await createRepo(primary, 'OUT', 'app');
  alice = await createUser(primary, 'alice');
  await grantProject(primary, 'OUT', 'alice', 'PROJECT_READ');
  await gitOk(primary, ['push', '-q', primary.httpUrl('OUT', 'app'), 'main'], { creds: { user: 'admin', secret: 'admin-password-1' }, cwd: await makeWorkTree() });
  for (const mode of ['consistent', 'available'] as const) {
    farms[mode] = await startFarm(primary, { nodes: 2, probeIntervalMs: 200, env: { MIRRORFARM_MIRROR_FARM_AVAILABILITY: mode, MIRRORFARM_DISPLAY_NAME: `farm ${mode}` } });
    await authorizeFarm(farms[mode]);
  }
});

after(async () => {
  for (const farm of Object.values(farms)) await farm?.stop();
  await primary?.stop();
  removeTempDirs();
});

describe('a farm of two when the primary goes away', () => {
  it("leaves the rotation under 'consistent' and keeps serving under 'available'", async () => {
    // Clones verify alice with the primary now, so that the nodes can still let her in while it is away.
    for (const farm of Object.values(farms)) await gitOk(primary, ['ls-remote', farm!.httpUrl('OUT', 'app')], { creds: alice });
    await primary.stop();
    await sleep(PREPARE_TIMEOUT_S * 1000 + 1000);
    for (const [name, node] of farms.consistent!.nodes) assert.equal((await mirrorGet(node, '/ready')).status, 503, `consistent ${name}`);
    for (const [name, node] of farms.available!.nodes) assert.equal((await mirrorGet(node, '/ready')).status, 200, `available ${name}`);
    await eventually(async () => farms.available!.inRotation().length === 2 && farms.consistent!.inRotation().length === 0, 'rotations follow readiness');
    for (let i = 0; i < 4; i++) {
      const r = await git(primary, ['clone', '-q', farms.available!.httpUrl('OUT', 'app'), join(tempDir(), 'c')], { creds: alice });
      assert.equal(r.code, 0, `clone ${i} from the 'available' farm while the primary is away: ${r.stderr}`);
    }
  });
});
