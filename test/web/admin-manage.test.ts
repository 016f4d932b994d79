// The rest of the administration in a real browser against a real primary: a user's page with their SSH keys and
// access tokens (deleted and revoked there), deleting a user and a group after a page that names what goes,
// moving a repository to another project and changing a project's key (the clone URLs follow, the old ones stop
// working), and long lists a page at a time (users, groups, projects, a project's repositories, commits). Every
// page passes axe-core; the forms need the CSRF token; names are shown as text.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { axeViolations, describeViolations, launchBrowser, sessionCookieHeader, signedIn } from '../helpers/browser.js';
import { addSshKey, createProject, createRepo, createToken, createUser, grantProject } from '../helpers/fixtures.js';
import { rawRequest } from '../helpers/http.js';
import { ADMIN, api, git, gitOk, makeWorkTree, sshKeyPair, startServer, type Credentials, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

const XSS = '<img src=x onerror=alert(1)>';

let primary: TestServer;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let dave: Credentials;
let daveToken: string;
const dialogs: string[] = [];
const checked: string[] = [];

before(async () => {
  primary = await startServer();
  dave = await createUser(primary, 'dave');
  await addSshKey(primary, 'dave', (await sshKeyPair('dave laptop')).publicKey);
  daveToken = await createToken(primary, dave, ['REPO_READ'], 'ci token');
  await createProject(primary, 'OLD', { name: 'Old project' });
  await createProject(primary, 'NEW', { name: 'New project' });
  await createRepo(primary, 'OLD', 'service');
  await grantProject(primary, 'OLD', 'dave', 'PROJECT_READ');
  const work = await makeWorkTree(Array.from({ length: 55 }, (_, i) => ({ 'log.txt': `line ${i + 1}\n` })));
  await gitOk(primary, ['push', primary.httpUrl('OLD', 'service'), 'main'], { creds: ADMIN, cwd: work });
  browser = await launchBrowser(primary.ca);
  ({ context, page } = await signedIn(browser, primary.baseUrl, ADMIN, dialogs));
});

after(async () => {
  await browser?.close();
  await primary?.stop();
  removeTempDirs();
});

async function accessible(): Promise<void> {
  const violations = await axeViolations(browser, context, page.url());
  checked.push(new URL(page.url()).pathname);
  assert.deepEqual(violations, [], describeViolations(page.url(), violations));
}

const lsRemote = (url: string) => git(primary, ['ls-remote', url], { creds: ADMIN });

describe('administration of users and groups', () => {
  it("shows a user's SSH keys and tokens, and deletes a key and revokes a token there", async () => {
    await page.goto(`${primary.baseUrl}/admin/users`);
    await page.getByRole('link', { name: 'dave', exact: true }).click();
    await page.getByRole('heading', { name: 'User dave' }).waitFor();
    const keys = page.locator('table', { has: page.locator('caption', { hasText: 'SSH keys of dave' }) });
    assert.match(await keys.innerText(), /dave laptop[\s\S]*SHA256:/);
    const tokens = page.locator('table', { has: page.locator('caption', { hasText: 'Access tokens of dave' }) });
    assert.match(await tokens.innerText(), /ci token[\s\S]*REPO_READ[\s\S]*never/);
    assert.ok(!(await page.locator('main').innerText()).includes(daveToken.slice(-20)), 'no secret on the page');
    await accessible();

    // A form without the session's CSRF token changes nothing.
    const forged = await rawRequest(primary, 'POST', `/admin/users/dave/tokens/1/revoke`, { headers: { cookie: await sessionCookieHeader(context), 'content-type': 'application/x-www-form-urlencoded' }, body: '_csrf=nope' });
    assert.equal(forged.status, 403);

    await page.getByRole('button', { name: 'Delete SSH key dave laptop' }).click();
    await page.getByText('The SSH key is deleted').waitFor();
    assert.equal((await api(primary, 'GET', '/rest/ssh/1.0/keys?user=dave')).body.values.length, 0);
    assert.equal((await api(primary, 'GET', '/rest/api/1.0/projects', undefined, { user: 'dave', secret: daveToken })).status, 200, 'the token works until revoked');
    await page.getByRole('button', { name: 'Revoke token ci token' }).click();
    await page.getByText('The token is revoked').waitFor();
    assert.equal((await api(primary, 'GET', '/rest/api/1.0/projects', undefined, { user: 'dave', secret: daveToken })).status, 401);
    assert.match(await page.locator('main').innerText(), /dave has no SSH keys[\s\S]*dave has no access tokens/);
  });

  it('deletes a user after a page that names their keys, tokens and permissions', async () => {
    await createToken(primary, dave, ['REPO_READ'], 'second token');
    await page.goto(`${primary.baseUrl}/admin/users/dave`);
    await page.getByRole('link', { name: 'Delete user' }).click();
    await page.getByRole('heading', { name: 'Delete user dave?' }).waitFor();
    const text = await page.locator('main').innerText();
    assert.match(text, /0 SSH keys and 1 access token are deleted/);
    assert.match(text, /1 permission on projects and repositories and their 0 group memberships/);
    await accessible();
    await page.getByRole('button', { name: 'Delete user' }).click();
    await page.getByText('Deleted.').waitFor();
    assert.equal(await page.locator('tr[data-user="dave"]').count(), 0);
    assert.equal((await api(primary, 'GET', '/rest/api/1.0/users/dave')).status, 404);
    assert.equal((await api(primary, 'GET', '/rest/api/1.0/projects', undefined, dave)).status, 401, 'their password no longer works');

    // Nobody deletes themselves: the page says so instead of offering the button.
    const self = await page.goto(`${primary.baseUrl}/admin/users/admin/delete`);
    assert.equal(self?.status(), 409);
    await page.getByText('You cannot delete yourself').waitFor();
  });

  it('deletes a group after a page that names its members and permissions', async () => {
    await api(primary, 'POST', '/rest/api/1.0/admin/groups?name=release-team');
    const erin = await createUser(primary, 'erin');
    await api(primary, 'POST', '/rest/api/1.0/admin/groups/add-user', { context: 'release-team', itemName: 'erin' });
    await api(primary, 'PUT', '/rest/api/1.0/projects/OLD/permissions/groups?name=release-team&permission=PROJECT_READ');
    assert.equal((await api(primary, 'GET', '/rest/api/1.0/projects/OLD/repos/service', undefined, erin)).status, 200);
    await page.goto(`${primary.baseUrl}/admin/groups/release-team`);
    await page.getByRole('link', { name: 'Delete group' }).click();
    await page.getByRole('heading', { name: 'Delete group release-team?' }).waitFor();
    assert.match(await page.locator('main').innerText(), /Its 1 member loses what the group grants[\s\S]*Its 1 permission goes with it/);
    await accessible();
    await page.getByRole('button', { name: 'Delete group' }).click();
    await page.getByText('Deleted.').waitFor();
    assert.equal(await page.getByRole('link', { name: 'release-team' }).count(), 0);
    assert.equal((await api(primary, 'GET', '/rest/api/1.0/projects/OLD/repos/service', undefined, erin)).status, 404, 'what the group granted is gone');
  });

  it('lists users and groups a page at a time, with next and previous links', async () => {
    for (let i = 0; i < 51; i++) await api(primary, 'POST', `/rest/api/1.0/admin/groups?name=${`team-${String(i).padStart(2, '0')}`}`);
    await page.goto(`${primary.baseUrl}/admin/groups`);
    const pages = page.getByRole('navigation', { name: 'Pages of groups' });
    assert.equal(await page.locator('ul[aria-label=Groups] li').count(), 50);
    await pages.getByRole('link', { name: 'Next' }).click();
    await page.waitForURL(/start=50/);
    assert.deepEqual(await page.locator('ul[aria-label=Groups] li').allInnerTexts(), ['team-50']);
    await accessible();
    await pages.getByRole('link', { name: 'Previous' }).click();
    await page.waitForURL(`${primary.baseUrl}/admin/groups`);
    // Search and paging together: the search stays on the links.
    await page.goto(`${primary.baseUrl}/admin/groups?q=team-4`);
    assert.equal(await pages.count(), 0, 'one page: no links');

    const q = new URLSearchParams({ name: 'x', password: 'x-password-1', displayName: 'x', emailAddress: 'x@example.com' });
    for (let i = 0; i < 51; i++) {
      q.set('name', `user-${String(i).padStart(2, '0')}`);
      await api(primary, 'POST', `/rest/api/1.0/admin/users?${q}`);
    }
    await page.goto(`${primary.baseUrl}/admin/users?q=user-`);
    assert.equal(await page.locator('tbody tr').count(), 50);
    await page.getByRole('navigation', { name: 'Pages of users' }).getByRole('link', { name: 'Next' }).click();
    await page.waitForURL(/q=user-&start=50/);
    assert.deepEqual(await page.locator('tbody tr td.mono').allInnerTexts(), ['user-50']);
    await page.getByRole('navigation', { name: 'Pages of users' }).getByRole('link', { name: 'Previous' }).click();
    await page.waitForURL(`${primary.baseUrl}/admin/users?q=user-`);
  });
});

describe('projects and repositories', () => {
  it('moves a repository to another project: its clone URL follows, the old one stops working', async () => {
    await page.goto(`${primary.baseUrl}/projects/OLD/repos/service/settings`);
    await page.getByRole('heading', { name: 'Move to another project' }).waitFor();
    assert.match(await page.locator('main').innerText(), /the old clone URLs stop working/);
    await accessible();
    await page.getByLabel('Project', { exact: true }).selectOption('NEW');
    await page.getByRole('button', { name: 'Move repository' }).click();
    await page.getByText('The repository is moved').waitFor();
    assert.equal(new URL(page.url()).pathname, '/projects/NEW/repos/service/settings');
    assert.equal((await lsRemote(`${primary.baseUrl}/scm/new/service.git`)).code, 0);
    const old = await lsRemote(`${primary.baseUrl}/scm/old/service.git`);
    assert.notEqual(old.code, 0);
    assert.match(old.stderr, /not found|does not exist/i);
  });

  it("changes a project's key, saying that clone URLs change", async () => {
    await page.goto(`${primary.baseUrl}/projects/NEW/settings`);
    await page.getByRole('heading', { name: 'Project key' }).waitFor();
    assert.match(await page.locator('main').innerText(), /Changing it changes those URLs: the old clone URLs stop working/);
    await accessible();
    await page.getByLabel('New key').fill('not a key!');
    await page.getByRole('button', { name: 'Change key' }).click();
    await page.getByText('is not a valid project key').waitFor();
    await page.getByLabel('New key').fill('renamed');
    await page.getByRole('button', { name: 'Change key' }).click();
    await page.getByText('The project key is changed').waitFor();
    assert.equal(new URL(page.url()).pathname, '/projects/RENAMED/settings');
    assert.equal((await lsRemote(`${primary.baseUrl}/scm/renamed/service.git`)).code, 0);
    assert.notEqual((await lsRemote(`${primary.baseUrl}/scm/new/service.git`)).code, 0);
  });

  it('pages the commits of a branch, 50 at a time', async () => {
    await page.goto(`${primary.baseUrl}/projects/RENAMED/repos/service/commits`);
    const commits = page.locator('ol.commits li');
    assert.equal(await commits.count(), 50);
    assert.match(await commits.first().innerText(), /commit 55/);
    const pages = page.getByRole('navigation', { name: 'Pages of commits' });
    await pages.getByRole('link', { name: 'Next' }).click();
    await page.waitForURL(/start=50/);
    assert.deepEqual((await commits.allInnerTexts()).map((t) => /commit \d+/.exec(t)?.[0]), ['commit 5', 'commit 4', 'commit 3', 'commit 2', 'commit 1']);
    assert.equal(await pages.getByRole('link', { name: 'Next' }).count(), 0);
    await accessible();
  });

  it("pages the projects list and a project's repositories", async () => {
    await createProject(primary, 'ZZMANY', { name: XSS });
    for (let i = 0; i < 51; i++) await createRepo(primary, 'ZZMANY', `repo-${String(i).padStart(2, '0')}`);
    for (let i = 0; i < 20; i++) await createProject(primary, `P${String(i).padStart(2, '0')}`);
    await page.goto(`${primary.baseUrl}/`);
    const projects = page.getByRole('navigation', { name: 'Pages of projects' });
    assert.equal(await page.locator('section.project').count(), 20);
    await projects.getByRole('link', { name: 'Next' }).click();
    await page.waitForURL(/start=20/);
    const many = page.locator('section.project', { hasText: 'ZZMANY' });
    assert.equal(await many.locator('ul.repos li').count(), 25);
    assert.match(await many.innerText(), /<img src=x onerror=alert\(1\)>[\s\S]*\(26 more\)/);
    assert.equal(await page.locator('main img').count(), 0);
    await accessible();
    await many.getByRole('link', { name: /All repositories of/ }).click();
    await page.waitForURL(/\/projects\/ZZMANY$/);
    assert.equal(await page.locator('ul.repos li').count(), 50);
    await page.getByRole('navigation', { name: 'Pages of repositories' }).getByRole('link', { name: 'Next' }).click();
    assert.deepEqual(await page.locator('ul.repos li a.repo-name').allInnerTexts(), ['repo-50']);
    await accessible();
    // A project that one may not read is the same 404 as one that does not exist.
    const carol = await createUser(primary, 'carol');
    const stranger = await signedIn(browser, primary.baseUrl, carol, dialogs);
    assert.equal((await stranger.page.goto(`${primary.baseUrl}/projects/ZZMANY`))?.status(), 404);
    assert.equal((await stranger.page.goto(`${primary.baseUrl}/projects/NOSUCH`))?.status(), 404);
    await stranger.context.close();
  });

  it('opened no script dialog and checked every new page with axe-core', () => {
    assert.deepEqual(dialogs, []);
    assert.ok(checked.length >= 9, checked.join(', '));
  });
});
