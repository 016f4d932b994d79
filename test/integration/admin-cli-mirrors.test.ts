// `mirrorfarm admin mirror ...` against a real primary and mirror: the administrator's side of the seed's
// setup flow from a terminal (find the request, check the key fingerprint, authorize with projects, change the
// selection, delete).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createProject, createRepo } from '../helpers/fixtures.js';
import { waitForState } from '../helpers/mirror.js';
import { run } from '../helpers/run.js';
import { ADMIN_PASSWORD, ROOT, startMirror, startServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

let primary: TestServer;
let mirror: TestServer;
const CLI = join(ROOT, 'dist/cli/main.js');

before(async () => {
  primary = await startServer();
  await createProject(primary, 'ALPHA');
  await createProject(primary, 'BETA');
  await createRepo(primary, 'ALPHA', 'one');
  mirror = await startMirror(primary);
});

after(async () => {
  await mirror?.stop();
  await primary?.stop();
  removeTempDirs();
});

async function cli(...args: string[]): Promise<string> {
  const r = await run(process.execPath, [CLI, 'admin', '--url', primary.baseUrl, '--ca-file', primary.ca.caCert, 'mirror', ...args], {
    env: { PATH: process.env.PATH!, MIRRORFARM_PASSWORD: ADMIN_PASSWORD },
  });
  assert.equal(r.code, 0, `mirror ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

describe('mirrorfarm admin mirror', () => {
  it('lists the request with its key fingerprint, authorizes it and changes its projects', async () => {
    const { mirrorId } = await waitForState(mirror, 'PENDING');
    const requests = await cli('requests');
    assert.match(requests, /MIRROR ID\s+NAME\s+BASE URL\s+KEY FINGERPRINT\s+STATE/);
    assert.match(requests, new RegExp(`${mirrorId}\\s+test mirror\\s+https://127\\.0\\.0\\.1:\\d+\\s+SHA256:\\S+\\s+PENDING`));

    assert.equal(await cli('accept', mirrorId, '--projects', 'alpha'), `Authorized mirror ${mirrorId} (SELECTED_PROJECTS: ALPHA).\n`);
    await waitForState(mirror, 'SYNCHRONIZED');
    assert.match(await cli('list'), new RegExp(`${mirrorId}\\s+test mirror\\s+ACTIVE\\s+SELECTED_PROJECTS`));

    assert.equal(await cli('add-project', mirrorId, 'BETA'), `Mirror ${mirrorId} now carries BETA.\n`);
    assert.match(await cli('show', mirrorId), /projects: ALPHA, BETA/);
    assert.equal(await cli('remove-project', mirrorId, 'ALPHA'), `Mirror ${mirrorId} no longer carries ALPHA.\n`);
    assert.match(await cli('show', mirrorId), /projects: BETA/);

    assert.match(await cli('delete', mirrorId), /Deleted mirror/);
    await waitForState(mirror, 'REMOVED', 5000);
  });
});
