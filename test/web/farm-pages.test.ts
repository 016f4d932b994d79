// A mirror farm of three nodes in the primary's Mirrors pages, in a real browser: three nodes listed, and a
// repository that one node cannot fetch (its SSH path to the primary is cut) shown with its error, on the list
// and on the mirror's page, as the pages poll.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { axeViolations, describeViolations, launchBrowser, newContext, screenshot } from '../helpers/browser.js';
import { startFarm, type Farm } from '../helpers/farm.js';
import { createProject, createRepo } from '../helpers/fixtures.js';
import { authorizeMirror } from '../helpers/mirror.js';
import { ADMIN, gitOk, makeWorkTree, startServer, type TestServer } from '../helpers/server.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { removeTempDirs } from '../helpers/tmp.js';

let primary: TestServer;
let farm: Farm;
let browser: Browser;
let page: Page;
let mirrorId: string;
const proxies: TcpProxy[] = [];

before(async () => {
  primary = await startServer();
  await createProject(primary, 'FARM', { name: 'Farm project' });
  await createRepo(primary, 'FARM', 'app');
  const work = await makeWorkTree([{ 'README.md': 'farm\n' }]);
  await gitOk(primary, ['push', primary.httpUrl('FARM', 'app'), 'main'], { creds: ADMIN, cwd: work });
  farm = await startFarm(primary, { nodes: 2 });
  mirrorId = await authorizeMirror(primary, farm.nodes.get('node-0')!, 'ALL');
  // The third node reaches the primary through proxies; its SSH path is cut, so its fetch fails.
  const https = await startTcpProxy(primary.httpPort);
  const ssh = await startTcpProxy(primary.sshPort);
  proxies.push(https, ssh);
  ssh.cut();
  await farm.addNode({
    MIRRORFARM_MIRROR_UPSTREAM_URL: `https://127.0.0.1:${https.port}`,
    MIRRORFARM_MIRROR_UPSTREAM_SSH_HOST: '127.0.0.1',
    MIRRORFARM_MIRROR_UPSTREAM_SSH_PORT: String(ssh.port),
  });
  browser = await launchBrowser(primary.ca);
  const context = await newContext(browser);
  page = await context.newPage();
});

after(async () => {
  await browser?.close();
  await farm?.stop();
  for (const p of proxies) await p.stop();
  await primary?.stop();
  removeTempDirs();
});

describe('a farm in the Mirrors administration', () => {
  it('lists three nodes and the repository that fails on one of them, with its error', async () => {
    await page.goto(`${primary.baseUrl}/admin/mirrors/${mirrorId}`);
    await page.getByLabel('Username').fill(ADMIN.user);
    await page.getByLabel('Password').fill(ADMIN.secret);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Nodes' }).waitFor();
    // Nodes appear as they report: the page reloads itself when one is added.
    await page.locator('tr[data-node="node-2"]').waitFor({ timeout: 30_000 });
    assert.deepEqual(await page.locator('tr[data-node]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-node'))), ['node-0', 'node-1', 'node-2']);
    const failing = page.locator('ul.failing li', { hasText: 'FARM/app' });
    await failing.waitFor({ timeout: 30_000 });
    assert.match((await failing.textContent()) ?? '', /node-2/);
    await screenshot(page, 'admin-mirror-farm');
    const violations = await axeViolations(browser, page.context(), page.url());
    assert.deepEqual(violations, [], describeViolations(page.url(), violations));

    await page.getByRole('link', { name: 'Mirrors', exact: true }).first().click();
    const row = page.locator('tr', { hasText: 'test farm' });
    await row.locator('[data-field=failing]', { hasText: '1' }).waitFor({ timeout: 20_000 });
    assert.match((await row.locator('[data-field=summary]').textContent()) ?? '', /1 failing/);
    assert.match((await row.locator('[data-field=nodes]').textContent()) ?? '', /^3 /);
  });

  it("lists the farm's three nodes on a node's own page, as the primary reported them", async () => {
    const node = farm.nodes.get('node-1')!;
    const mirrorPage = await (await newContext(browser)).newPage();
    const nodesListed = async () => {
      // The node itself, not the farm's URL (the balancer would pick any node).
      await mirrorPage.goto(`https://127.0.0.1:${node.httpPort}/`);
      return mirrorPage.locator('table', { has: mirrorPage.locator('caption', { hasText: 'Nodes of this mirror farm' }) }).locator('tbody tr').allTextContents();
    };
    let rows = await nodesListed();
    for (let i = 0; i < 50 && rows.length < 3; i++) {
      await new Promise((r) => setTimeout(r, 200));
      rows = await nodesListed();
    }
    assert.equal(rows.length, 3, rows.join('\n'));
    assert.match(rows[0]!, /node-1 \(this node\)/);
    assert.deepEqual(rows.slice(1).map((r) => /node-\d/.exec(r)?.[0]), ['node-0', 'node-2']);
    const violations = await axeViolations(browser, mirrorPage.context(), mirrorPage.url());
    assert.deepEqual(violations, [], describeViolations(mirrorPage.url(), violations));
    await mirrorPage.context().close();
  });
});
