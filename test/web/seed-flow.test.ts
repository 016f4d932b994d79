// The seed's flow in a real browser, by clicks only: open the mirror's URL and see it waiting, go to the primary
// server from there, sign in, authorize the mirror with a project selection, watch the mirror's page reach "in
// sync", copy a mirror clone URL and clone it with real git, then delete the mirror from the primary's Mirrors
// administration and see its page say it was removed. axe-core checks every page on the way; the main pages are
// written to docs/screenshots/.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { axeViolations, describeViolations, failOnDialogs, launchBrowser, newContext, screenshot } from '../helpers/browser.js';
import { createProject, createRepo } from '../helpers/fixtures.js';
import { ADMIN, freePort, gitOk, makeWorkTree, startMirror, startServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

let primary: TestServer;
let mirror: TestServer;
let mirrorUrl: string;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const dialogs: string[] = [];
const checked: string[] = [];

before(async () => {
  primary = await startServer();
  await createProject(primary, 'APP', { name: 'Application' });
  await createProject(primary, 'OPS', { name: 'Operations' });
  await createRepo(primary, 'APP', 'web');
  await createRepo(primary, 'OPS', 'tools');
  const work = await makeWorkTree([{ 'README.md': 'hello from the primary\n' }]);
  await gitOk(primary, ['push', primary.httpUrl('APP', 'web'), 'main'], { creds: ADMIN, cwd: work });
  await gitOk(primary, ['push', primary.httpUrl('OPS', 'tools'), 'main'], { creds: ADMIN, cwd: work });
  // The mirror answers at "localhost", the primary at 127.0.0.1: cookies ignore ports, so two host names keep the
  // two servers' sign-ins apart as two machines would.
  const port = await freePort();
  mirrorUrl = `https://localhost:${port}`;
  mirror = await startMirror(primary, { env: { MIRRORFARM_HTTP_PORT: String(port), MIRRORFARM_BASE_URL: mirrorUrl, MIRRORFARM_DISPLAY_NAME: 'Sydney mirror' } });
  browser = await launchBrowser(primary.ca);
  context = await newContext(browser, { permissions: ['clipboard-read', 'clipboard-write'] });
  page = await context.newPage();
  failOnDialogs(page, dialogs);
});

after(async () => {
  if (process.env.MF_TEST_DEBUG) process.stderr.write(`--- mirror ---\n${mirror?.output().slice(-8000)}\n--- primary ---\n${primary?.output().slice(-8000)}\n`);
  await browser?.close();
  await mirror?.stop();
  await primary?.stop();
  removeTempDirs();
});

/** axe-core on the page the browser shows now, as its user sees it. */
async function accessible(): Promise<void> {
  const url = page.url();
  const violations = await axeViolations(browser, context, url);
  checked.push(new URL(url).pathname);
  assert.deepEqual(violations, [], describeViolations(url, violations));
}

async function signIn(user = ADMIN.user, password = ADMIN.secret): Promise<void> {
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

describe("the seed's flow by clicks", () => {
  it('opens the mirror URL and sees it waiting for authorization', async () => {
    await page.goto(mirrorUrl);
    // The page follows the mirror's state by polling: "Starting" becomes "Waiting for authorization" by itself.
    await page.getByText('Waiting for authorization').waitFor({ timeout: 20_000 });
    await page.getByRole('heading', { name: 'Sydney mirror' }).waitFor();
    const fingerprint = JSON.parse(readFileSync(join(mirror.home, 'run', 'endpoints.json'), 'utf8')) as { mirrorId: string };
    assert.ok(await page.getByText(fingerprint.mirrorId).isVisible(), 'the page shows the mirror id');
    assert.match((await page.locator('dd.mono').nth(1).textContent()) ?? '', /^SHA256:/);
    await screenshot(page, 'mirror-waiting');
    await accessible();
  });

  it('goes to the primary server, signs in and lands on the mirror in the administration', async () => {
    await page.getByRole('link', { name: 'Go to the primary server' }).click();
    await page.waitForURL(/\/login\?next=/);
    assert.ok(page.url().startsWith(primary.baseUrl), `on the primary: ${page.url()}`);
    await accessible();
    await screenshot(page, 'sign-in');
    await signIn();
    await page.waitForURL(/\/admin\/mirrors\/[0-9A-F-]+$/);
    await page.getByRole('heading', { name: 'Sydney mirror' }).waitFor();
    assert.ok(await page.getByText('Waiting for authorization').isVisible());
    await accessible();
  });

  it('clicks Authorize next to the mirror in the Mirrors list and selects the projects', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Mirrors' }).click();
    await page.getByRole('heading', { name: 'Requests waiting for authorization' }).waitFor();
    const row = page.locator('tr', { hasText: 'Sydney mirror' });
    assert.match((await row.textContent()) ?? '', /SHA256:/, 'the request shows the key fingerprint');
    assert.ok((await row.textContent())?.includes(mirrorUrl), 'the request shows the mirror URL');
    await screenshot(page, 'admin-mirrors-request');
    await accessible();
    await row.getByRole('link', { name: 'Authorize Sydney mirror' }).click();
    await page.getByText('Which projects should this mirror carry?').waitFor();
    await accessible();
    await page.getByLabel('Only the projects selected below').check();
    await page.getByLabel('Filter projects').fill('appl');
    assert.equal(await page.getByLabel(/Operations/).isVisible(), false, 'the filter hides what does not match');
    await page.getByLabel(/Application/).check();
    await screenshot(page, 'admin-mirror-authorize');
    await page.getByRole('button', { name: 'Authorize' }).click();
    await page.getByText('The mirror is authorized.').waitFor();
    // The mirror's page on the primary follows its synchronization live.
    await page.locator('p.state', { hasText: 'In sync' }).waitFor({ timeout: 30_000 });
    await page.getByRole('cell', { name: 'SYNCHRONIZED', exact: true }).waitFor({ timeout: 20_000 });
    assert.ok(await page.locator('ul.chips').getByText('Application').isVisible(), 'the selection is shown');
    await screenshot(page, 'admin-mirror');
    await accessible();
  });

  it("watches the mirror's page reach in sync, signs in there and clones from a copied clone URL", async () => {
    await page.goto(mirrorUrl);
    await page.locator('p.state', { hasText: 'In sync' }).waitFor({ timeout: 30_000 });
    assert.equal(await page.locator('progress').getAttribute('value'), '1');
    await page.getByRole('link', { name: 'Sign in' }).first().click();
    await page.waitForURL(/\/login/);
    assert.ok(page.url().startsWith(mirrorUrl), 'signing in on the mirror itself');
    await signIn();
    await page.waitForURL(`${mirrorUrl}/`);
    const clone = page.getByLabel('Mirror clone URL of APP/web');
    await clone.waitFor();
    assert.equal(await page.getByLabel('Mirror clone URL of OPS/tools').count(), 0, 'a project the mirror does not carry is not listed');
    await screenshot(page, 'mirror-in-sync');
    await accessible();
    await page.locator('li', { hasText: 'APP/web' }).getByRole('button', { name: 'Copy' }).click();
    await page.getByRole('button', { name: 'Copied' }).waitFor();
    const copied = await page.evaluate<string>('navigator.clipboard.readText()');
    assert.equal(copied, `${mirrorUrl}/scm/app/web.git`);
    assert.equal(await clone.inputValue(), copied);
    const dest = join(tempDir('mf-web-clone-'), 'web');
    await gitOk(mirror, ['clone', copied, dest], { creds: ADMIN });
    assert.equal(readFileSync(join(dest, 'README.md'), 'utf8'), 'hello from the primary\n');
    await page.setViewportSize({ width: 390, height: 844 });
    await screenshot(page, 'mirror-in-sync-phone');
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  it('deletes the mirror from the Mirrors administration, and the mirror page says it was removed', async () => {
    await page.goto(`${primary.baseUrl}/`);
    await page.getByRole('heading', { name: 'Projects' }).waitFor();
    await screenshot(page, 'primary-projects');
    await accessible();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Mirrors' }).click();
    const row = page.locator('tr', { hasText: 'Sydney mirror' });
    await row.getByText('In sync').waitFor();
    await screenshot(page, 'admin-mirrors');
    await row.getByRole('link', { name: 'Sydney mirror' }).click();
    await page.getByRole('link', { name: 'Delete' }).click();
    await page.getByRole('heading', { name: 'Delete Sydney mirror?' }).waitFor();
    const text = (await page.locator('main').textContent()) ?? '';
    assert.match(text, /cuts its access at once/);
    assert.match(text, /uninstall the release/);
    await screenshot(page, 'admin-mirror-delete');
    await accessible();
    await page.getByRole('button', { name: 'Delete mirror' }).click();
    await page.getByText('The mirror was deleted').waitFor();
    assert.equal(await page.locator('tr', { hasText: 'Sydney mirror' }).count(), 0, 'no longer listed');

    await page.goto(mirrorUrl);
    await page.locator('p.state', { hasText: 'Removed' }).waitFor({ timeout: 20_000 });
    assert.match((await page.locator('main').textContent()) ?? '', /removed from its primary server/);
    assert.equal(await page.getByLabel('Mirror clone URL of APP/web').count(), 0, 'a removed mirror lists nothing');
    await screenshot(page, 'mirror-removed');
    await accessible();
  });

  it('opened no script dialog and checked every page with axe-core', () => {
    assert.deepEqual(dialogs, []);
    assert.ok(checked.length >= 8, `axe ran on ${checked.join(', ')}`);
  });
});
