// A repository's pages in a real browser against a real primary (and one mirror): from the projects list to the
// repository, its clone box and copy button, the mirrors that serve it with the preferred one remembered per
// user, branches and tags, commits, the file tree and file view of a branch and a tag, binary and large files
// with their authorized download; names, contents and commit messages that look like markup shown as text;
// path and ref tricks refused; a stranger getting the same 404 for the page, its files and downloads.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { axeViolations, describeViolations, launchBrowser, newContext, screenshot, signedIn, sessionCookieHeader } from '../helpers/browser.js';
import { createProject, createRepo, createUser, grantRepo } from '../helpers/fixtures.js';
import { rawRequest } from '../helpers/http.js';
import { authorizeMirror } from '../helpers/mirror.js';
import { ADMIN, api, eventually, gitOk, startMirror, startServer, type Credentials, type TestServer } from '../helpers/server.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

const XSS = '<img src=x onerror=alert(1)>';
const BINARY = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x01, 0x02, 0x00, 0xff]);
const BIG = 'x'.repeat(600 * 1024) + '\n';

let primary: TestServer;
let mirror: TestServer;
let browser: Browser;
let bob: Credentials;
let carol: Credentials;
let repoId: number;
const dialogs: string[] = [];
const checked: string[] = [];

async function seedRepository(): Promise<void> {
  const dir = tempDir('mf-web-repo-');
  await gitOk(null, ['init', '-q', dir]);
  const write = (name: string, content: string | Buffer) => {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), content);
  };
  const commit = async (message: string) => {
    await gitOk(null, ['add', '-A'], { cwd: dir });
    await gitOk(null, ['commit', '-q', '-m', message], { cwd: dir });
  };
  write('README.md', '# Web\n\nThe web application.\n');
  write('docs/guide.md', 'Step 1: clone.\nStep 2: build.\n');
  await commit('First commit');
  write(`docs/${XSS}.txt`, `<script>alert("content")</script>\n${XSS}\n`);
  write('assets/logo.bin', BINARY);
  write('assets/big.txt', BIG);
  await commit(XSS);
  await gitOk(null, ['tag', 'v1.0'], { cwd: dir });
  await gitOk(null, ['checkout', '-q', '-b', 'feature'], { cwd: dir });
  write('feature.txt', 'only on the feature branch\n');
  await commit('Add the feature');
  await gitOk(primary, ['push', '-q', primary.httpUrl('APP', 'web'), 'main', 'feature', 'v1.0'], { creds: ADMIN, cwd: dir });
}

before(async () => {
  primary = await startServer();
  await createProject(primary, 'APP', { name: 'Application' });
  repoId = (await createRepo(primary, 'APP', 'web')).id;
  await seedRepository();
  bob = await createUser(primary, 'bob');
  carol = await createUser(primary, 'carol');
  await grantRepo(primary, 'APP', 'web', 'carol', 'REPO_READ');
  mirror = await startMirror(primary, { env: { MIRRORFARM_DISPLAY_NAME: 'Sydney mirror' } });
  await authorizeMirror(primary, mirror, 'ALL');
  browser = await launchBrowser(primary.ca);
});

after(async () => {
  await browser?.close();
  await mirror?.stop();
  await primary?.stop();
  removeTempDirs();
});


async function accessible(context: BrowserContext, page: Page): Promise<void> {
  const violations = await axeViolations(browser, context, page.url());
  checked.push(new URL(page.url()).pathname);
  assert.deepEqual(violations, [], describeViolations(page.url(), violations));
}

const cookieHeader = sessionCookieHeader;

const REPO = '/projects/APP/repos/web';

/** A download as the page's own fetch sees it (the browser's cookies and certificate trust); the first 4 KiB and the size. */
async function fetchInPage(page: Page, url: string): Promise<{ status: number; type: string; disposition: string; size: number; body: Buffer }> {
  const r = await page.evaluate(async (u) => {
    const res = await fetch(u);
    const bytes = new Uint8Array(await res.arrayBuffer());
    return { status: res.status, type: res.headers.get('content-type') ?? '', disposition: res.headers.get('content-disposition') ?? '', size: bytes.length, bytes: Array.from(bytes.subarray(0, 4096)) };
  }, url);
  return { status: r.status, type: r.type, disposition: r.disposition, size: r.size, body: Buffer.from(r.bytes) };
}

describe('repository pages', () => {
  let context: BrowserContext;
  let page: Page;

  it('goes from the projects list to the repository and copies its clone URL', async () => {
    ({ context, page } = await signedInAs(ADMIN, { permissions: ['clipboard-read', 'clipboard-write'] }));
    await page.goto(`${primary.baseUrl}/`);
    await page.getByRole('link', { name: 'web', exact: true }).click();
    await page.waitForURL(`${primary.baseUrl}${REPO}`);
    await page.getByRole('heading', { name: 'web', level: 1 }).waitFor();
    assert.equal(await page.getByLabel('HTTPS', { exact: true }).inputValue(), `${primary.baseUrl}/scm/app/web.git`);
    assert.match(await page.getByLabel('SSH', { exact: true }).inputValue(), /^ssh:\/\/git@127\.0\.0\.1:\d+\/app\/web\.git$/);
    await page.getByRole('button', { name: 'Copy the HTTPS clone URL', exact: true }).click();
    await page.getByRole('button', { name: 'Copy the HTTPS clone URL', exact: true }).filter({ hasText: 'Copied' }).waitFor();
    assert.equal(await page.evaluate<string>('navigator.clipboard.readText()'), `${primary.baseUrl}/scm/app/web.git`);

    const branches = page.getByRole('list', { name: 'Branches' });
    assert.deepEqual(await branches.getByRole('link').filter({ hasNotText: 'commits' }).allInnerTexts(), ['feature', 'main']);
    assert.match(await branches.locator('li', { hasText: 'main' }).innerText(), /default/);
    assert.deepEqual(await page.getByRole('list', { name: 'Tags' }).getByRole('link').allInnerTexts(), ['v1.0']);
    // The default branch's files and its commits, the message that looks like markup shown as text.
    const files = page.locator('table.files');
    assert.deepEqual(await files.locator('tbody td:first-child a').allInnerTexts(), ['assets/', 'docs/', 'README.md']);
    const commits = page.locator('ol.commits a.subject');
    assert.deepEqual(await commits.allInnerTexts(), [XSS, 'First commit']);
    assert.equal(await page.locator('main img').count(), 0);
    await accessible(context, page);
  });

  it('lists the mirror that serves the repository, and remembers the preferred mirror for the user', async () => {
    await eventually(async () => {
      const r = await api<{ values: unknown[] }>(primary, 'GET', `/rest/mirroring/1.0/repos/${repoId}/mirrors`);
      return r.body.values.length === 1;
    }, 'the mirror in sync', 30_000, 200);
    await page.reload();
    const item = page.locator('ul.mirror-list li', { hasText: 'Sydney mirror' });
    assert.equal(await item.getByRole('textbox', { name: 'HTTPS clone URL on Sydney mirror' }).inputValue(), `${mirror.baseUrl}/scm/app/web.git`);
    assert.match(await item.getByRole('textbox', { name: 'SSH clone URL on Sydney mirror' }).inputValue(), /^ssh:\/\/git@.+\/app\/web\.git$/);
    await item.getByRole('button', { name: 'Prefer Sydney mirror' }).click();
    await page.getByText('Saved: this mirror is listed first').waitFor();
    await page.locator('ul.mirror-list li', { hasText: 'preferred' }).waitFor();
    await screenshot(page, 'repository');
    await accessible(context, page);
    // Remembered for the user, not the session: after signing out and in again it is still there.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await context.close();
    ({ context, page } = await signedInAs(ADMIN));
    await page.goto(`${primary.baseUrl}${REPO}`);
    await page.locator('ul.mirror-list li', { hasText: 'preferred' }).waitFor();
    // Another user has no preference of their own.
    const other = await signedInAs(carol);
    await other.page.goto(`${primary.baseUrl}${REPO}`);
    await other.page.locator('ul.mirror-list li', { hasText: 'Sydney mirror' }).waitFor();
    assert.equal(await other.page.locator('ul.mirror-list .badge').count(), 0);
    await other.context.close();
    // The form without the session's CSRF token is refused.
    const r = await rawRequest(primary, 'POST', `${REPO}/preferred-mirror`, { headers: { cookie: await cookieHeader(context), 'content-type': 'application/x-www-form-urlencoded' }, body: 'mirror=' });
    assert.equal(r.status, 403);
    await page.getByRole('button', { name: 'Clear my preferred mirror' }).click();
    await page.getByText('Your preferred mirror is cleared.').waitFor();
    assert.equal(await page.locator('ul.mirror-list .badge').count(), 0);
  });

  it('browses the tree into a folder and shows a file', async () => {
    await page.goto(`${primary.baseUrl}${REPO}`);
    await page.getByRole('link', { name: 'docs/' }).click();
    await page.getByRole('navigation', { name: 'Path' }).getByText('docs').waitFor();
    await accessible(context, page);
    await page.getByRole('link', { name: 'guide.md' }).click();
    const code = page.getByLabel('Contents of guide.md');
    assert.equal(await code.innerText(), 'Step 1: clone.\nStep 2: build.\n');
    assert.match(await page.locator('.file-head').innerText(), /2 lines/);
    await accessible(context, page);
    // The path's crumbs lead back up.
    await page.getByRole('navigation', { name: 'Path' }).getByRole('link', { name: 'Files' }).click();
    await page.getByRole('link', { name: 'README.md' }).waitFor();
  });

  it('switches to another branch and to a tag, and lists the commits of a branch', async () => {
    await page.goto(`${primary.baseUrl}${REPO}/browse`);
    assert.equal(await page.getByRole('link', { name: 'feature.txt' }).count(), 0);
    await page.getByLabel('Branch or tag').selectOption({ label: 'feature' });
    await page.getByRole('button', { name: 'Show' }).click();
    await page.getByRole('link', { name: 'feature.txt' }).click();
    assert.equal(await page.getByLabel('Contents of feature.txt').innerText(), 'only on the feature branch\n');
    await page.getByRole('navigation', { name: 'Repository' }).getByRole('link', { name: 'Commits' }).click();
    assert.deepEqual(await page.locator('ol.commits a.subject').allInnerTexts(), ['Add the feature', XSS, 'First commit']);
    await accessible(context, page);
    // A commit's link shows the tree at that commit.
    await page.locator('ol.commits a.subject', { hasText: 'First commit' }).click();
    assert.deepEqual(await page.locator('table.files tbody td:first-child a').allInnerTexts(), ['docs/', 'README.md']);
    await page.getByLabel('Branch or tag').selectOption({ label: 'v1.0' });
    await page.getByRole('button', { name: 'Show' }).click();
    await page.getByRole('link', { name: 'assets/' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'feature.txt' }).count(), 0, 'the tag is before the feature');
  });

  it('shows binary and large files as such, with a download that gives the bytes', async () => {
    await page.goto(`${primary.baseUrl}${REPO}/browse/assets/logo.bin`);
    await page.getByText('This is a binary file').waitFor();
    await accessible(context, page);
    const download = await fetchInPage(page, (await page.getByRole('link', { name: 'Download' }).getAttribute('href'))!);
    assert.equal(download.status, 200);
    assert.deepEqual(download.body, BINARY);
    assert.equal(download.type, 'application/octet-stream');
    assert.match(download.disposition, /^attachment; filename="logo.bin"/);
    await page.goto(`${primary.baseUrl}${REPO}/browse/assets/big.txt`);
    await page.getByText('This file is too large to show here').waitFor();
    assert.equal(await page.locator('pre.code').count(), 0);
    const big = await fetchInPage(page, `${REPO}/raw/assets/big.txt?at=refs/heads/main`);
    assert.equal(big.size, BIG.length);
  });

  it('shows file names and contents that look like markup as text', async () => {
    await page.goto(`${primary.baseUrl}${REPO}/browse/docs`);
    await page.getByRole('link', { name: `${XSS}.txt` }).click();
    assert.equal(await page.getByLabel(`Contents of ${XSS}.txt`).innerText(), `<script>alert("content")</script>\n${XSS}\n`);
    assert.equal(await page.locator('main img, main script').count(), 0, 'no element was made from a name or content');
    await page.waitForTimeout(200);
    assert.deepEqual(dialogs, [], 'no script ran');
  });

  it('refuses path and ref tricks without leaving the repository', async () => {
    const headers = { cookie: await cookieHeader(context) };
    const tricks = [
      `${REPO}/browse/..%2f..%2f..%2fetc%2fpasswd`,
      `${REPO}/browse/docs/../README.md`,
      `${REPO}/browse/%2fetc%2fpasswd`,
      `${REPO}/browse/docs//guide.md`,
      `${REPO}/browse/./README.md`,
      `${REPO}/browse/README.md%00.txt`,
      `${REPO}/raw/..%2f..%2fconfig`,
      `${REPO}/raw/%2fetc%2fpasswd`,
      `${REPO}/browse?at=--output%3D%2Ftmp%2Fx`,
      `${REPO}/browse?at=-p`,
      `${REPO}/commits?at=--all`,
      `${REPO}/browse?at=main~1`,
      `${REPO}/browse?at=main%3AREADME.md`,
      `${REPO}/browse?at=HEAD`,
      `${REPO}/raw/README.md?at=refs%2Fheads%2Fmain%00`,
      `${REPO}/browse/nothing-here`,
    ];
    for (const path of tricks) {
      const r = await rawRequest(primary, 'GET', path, { headers });
      assert.ok(r.status === 400 || r.status === 404, `${path}: ${r.status}`);
      assert.doesNotMatch(r.text, /root:|\[core\]/, `${path} shows nothing from outside the repository`);
    }
  });

  it('answers a stranger 404 for the page, its files and downloads, and asks an anonymous visitor to sign in', async () => {
    const stranger = await signedInAs(bob);
    const headers = { cookie: await cookieHeader(stranger.context) };
    for (const path of [REPO, `${REPO}/browse`, `${REPO}/browse/README.md`, `${REPO}/raw/README.md`, `${REPO}/commits`, '/projects/APP/repos/missing']) {
      const r = await rawRequest(primary, 'GET', path, { headers });
      assert.equal(r.status, 404, `${path}: ${r.status}`);
      assert.ok(!r.text.includes('README') && !r.text.includes('guide'), `${path} shows nothing of the repository`);
    }
    const res = await stranger.page.goto(`${primary.baseUrl}${REPO}`);
    assert.equal(res!.status(), 404);
    await stranger.page.getByRole('heading', { name: 'Not found' }).waitFor();
    await stranger.context.close();
    const anonymous = await rawRequest(primary, 'GET', `${REPO}/raw/README.md`);
    assert.equal(anonymous.status, 303);
    assert.match(String(anonymous.headers.location), /^\/login\?next=/);
  });

  it('checked every new page with axe-core', async () => {
    await context.close();
    assert.ok(checked.length >= 6, checked.join(', '));
  });
});

const signedInAs = (creds: Credentials, options: Parameters<typeof newContext>[1] = {}) => signedIn(browser, primary.baseUrl, creds, dialogs, options);
