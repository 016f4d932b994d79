// The administration in a real browser against a real primary: a system administrator creates and deactivates a
// user, creates a group and manages its members, creates a project and a repository, grants and revokes
// permissions on them (the user's access following at once), renames and deletes the repository. A reader sees no
// administration control and is refused its pages; a stranger gets 404; the forms need the CSRF token; axe-core
// checks every page.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { axeViolations, describeViolations, launchBrowser, signedIn, sessionCookieHeader } from '../helpers/browser.js';
import { createProject, createRepo, createUser, grantRepo } from '../helpers/fixtures.js';
import { rawRequest } from '../helpers/http.js';
import { ADMIN, api, startServer, type Credentials, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

const XSS = '<img src=x onerror=alert(1)>';

let primary: TestServer;
let browser: Browser;
let carol: Credentials;
let bob: Credentials;
const dialogs: string[] = [];
const checked: string[] = [];

before(async () => {
  primary = await startServer();
  await createProject(primary, 'OLD', { name: 'Old project' });
  await createRepo(primary, 'OLD', 'legacy');
  carol = await createUser(primary, 'carol');
  bob = await createUser(primary, 'bob');
  await grantRepo(primary, 'OLD', 'legacy', 'carol', 'REPO_READ');
  browser = await launchBrowser(primary.ca);
});

after(async () => {
  await browser?.close();
  await primary?.stop();
  removeTempDirs();
});


async function accessible(context: BrowserContext, page: Page): Promise<void> {
  const violations = await axeViolations(browser, context, page.url());
  checked.push(new URL(page.url()).pathname);
  assert.deepEqual(violations, [], describeViolations(page.url(), violations));
}

const session = sessionCookieHeader;
const form = { 'content-type': 'application/x-www-form-urlencoded' };

describe('administration', () => {
  let context: BrowserContext;
  let page: Page;

  it('creates a user, finds them by search, and deactivates them', async () => {
    ({ context, page } = await signedInAs(ADMIN));
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users' }).click();
    await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();
    await page.getByLabel('Username', { exact: true }).fill('frank');
    await page.getByLabel('Display name').fill(XSS);
    await page.getByLabel('E-mail').fill('frank@example.com');
    await page.getByLabel('Password').fill('frank-password-1');
    await page.getByRole('button', { name: 'Create user' }).click();
    await page.getByText('Created.').waitFor();
    await page.getByRole('searchbox').fill('frank@');
    await page.getByRole('button', { name: 'Search' }).click();
    const rows = page.locator('tbody tr');
    assert.equal(await rows.count(), 1);
    assert.match(await rows.first().innerText(), /frank[\s\S]*<img src=x onerror=alert\(1\)>[\s\S]*Active/);
    assert.equal(await page.locator('main img').count(), 0);
    await accessible(context, page);
    assert.equal((await api(primary, 'GET', '/rest/api/1.0/projects', undefined, { user: 'frank', secret: 'frank-password-1' })).status, 200);
    await rows.first().getByRole('button', { name: 'Deactivate frank' }).click();
    await page.getByText('The user is deactivated').waitFor();
    assert.equal((await api(primary, 'GET', '/rest/api/1.0/projects', undefined, { user: 'frank', secret: 'frank-password-1' })).status, 401);
    // A name taken is shown by the form.
    await page.getByLabel('Username', { exact: true }).fill('carol');
    await page.getByLabel('Password').fill('another-password-1');
    await page.getByRole('button', { name: 'Create user' }).click();
    await page.getByRole('alert').getByText('already exists').waitFor();
    const noCsrf = await rawRequest(primary, 'POST', '/admin/users', { headers: { cookie: await session(context), ...form }, body: 'name=mallory&password=mallory-password-1' });
    assert.equal(noCsrf.status, 403);
  });

  it('creates a group and adds and removes a member', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Groups' }).click();
    await page.getByText('No groups yet.').waitFor();
    await accessible(context, page);
    await page.getByLabel('Group name').fill('developers');
    await page.getByRole('button', { name: 'Create group' }).click();
    await page.getByRole('heading', { name: 'Group developers' }).waitFor();
    await page.getByLabel('Username').fill('carol');
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    await page.getByText('Added to the group.').waitFor();
    await page.getByRole('cell', { name: 'carol', exact: true }).first().waitFor();
    await accessible(context, page);
    await page.getByLabel('Username').fill('nobody-here');
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    await page.getByRole('alert').getByText('no user named').waitFor();
    await page.getByRole('button', { name: 'Remove carol from developers' }).click();
    await page.getByText('This group has no members.').waitFor();
    await page.getByLabel('Username').fill('carol');
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    await page.getByText('Added to the group.').waitFor();
  });

  it('creates a project and a repository, grants and revokes permissions, renames and deletes the repository', async () => {
    await page.goto(`${primary.baseUrl}/`);
    await page.getByRole('link', { name: 'New project' }).click();
    await accessible(context, page);
    await page.getByLabel(/^Key/).fill('NEW');
    await page.getByLabel('Name').fill('New things');
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByRole('heading', { name: 'Settings of New things' }).waitFor();
    await accessible(context, page);
    // Grant the group read access to the project: carol is a member.
    await page.getByLabel('To a').selectOption('group');
    await page.getByLabel('Name', { exact: true }).last().fill('developers');
    await page.getByLabel('Permission', { exact: true }).selectOption('PROJECT_READ');
    await page.getByRole('button', { name: 'Grant' }).click();
    await page.getByText('The permission is granted.').waitFor();
    await page.getByRole('cell', { name: 'developers', exact: true }).waitFor();
    await page.getByLabel('Repository name').fill('Service API');
    await page.getByRole('button', { name: 'Create repository' }).click();
    await page.waitForURL(`${primary.baseUrl}/projects/NEW/repos/service-api`);
    await page.getByText('This repository is empty.').waitFor();
    await page.getByRole('navigation', { name: 'Repository' }).getByRole('link', { name: 'Settings' }).click();
    await page.getByRole('heading', { name: 'Permissions' }).waitFor();
    await accessible(context, page);
    await page.getByLabel('Name', { exact: true }).last().fill('bob');
    await page.getByLabel('Permission', { exact: true }).selectOption('REPO_WRITE');
    await page.getByRole('button', { name: 'Grant' }).click();
    await page.getByText('The permission is granted.').waitFor();
    assert.match(await page.locator('tr', { hasText: 'bob' }).innerText(), /REPO_WRITE/);
    assert.equal((await api(primary, 'GET', '/rest/api/1.0/projects/NEW/repos/service-api', undefined, bob)).status, 200, 'bob reads it at once');
    await page.getByRole('button', { name: 'Revoke the permission of user bob' }).click();
    await page.getByText('The permission is revoked.').waitFor();
    assert.equal((await api(primary, 'GET', '/rest/api/1.0/projects/NEW/repos/service-api', undefined, bob)).status, 404, 'and no longer');
    // Rename: a new slug, the same repository.
    await page.getByLabel(/^Name/).first().fill('Service Gateway');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.waitForURL(`${primary.baseUrl}/projects/NEW/repos/service-gateway/settings?done=saved`);
    await page.getByRole('link', { name: 'Delete repository…' }).click();
    await page.getByRole('heading', { name: 'Delete repository NEW/service-gateway?' }).waitFor();
    await accessible(context, page);
    await page.getByRole('button', { name: 'Delete repository' }).click();
    await page.getByText('Deleted.').waitFor();
    assert.equal((await api(primary, 'GET', '/rest/api/1.0/projects/NEW/repos/service-gateway')).status, 404);
    const noCsrf = await rawRequest(primary, 'POST', '/projects/OLD/repos/legacy/permissions', { headers: { cookie: await session(context), ...form }, body: 'kind=user&name=bob&permission=REPO_ADMIN' });
    assert.equal(noCsrf.status, 403);
    assert.deepEqual(dialogs, []);
  });

  it('shows a reader no administration and refuses its pages; a stranger gets 404', async () => {
    const reader = await signedInAs(carol);
    const nav = reader.page.getByRole('navigation', { name: 'Main' });
    for (const name of ['Users', 'Groups', 'Mirrors']) assert.equal(await nav.getByRole('link', { name }).count(), 0, `no ${name} link`);
    await reader.page.goto(`${primary.baseUrl}/projects/OLD/repos/legacy`);
    await reader.page.getByRole('heading', { name: 'legacy', level: 1 }).waitFor();
    assert.equal(await reader.page.getByRole('navigation', { name: 'Repository' }).getByRole('link', { name: 'Settings' }).count(), 0);
    await reader.page.goto(`${primary.baseUrl}/`);
    assert.equal(await reader.page.getByRole('link', { name: /^Settings/ }).count(), 0);
    assert.equal(await reader.page.getByRole('link', { name: 'New project' }).count(), 0);
    const cookie = await session(reader.context);
    for (const [path, status] of [
      ['/admin/users', 403],
      ['/admin/groups', 403],
      ['/projects/new', 403],
      ['/projects/OLD/repos/legacy/settings', 403],
      ['/projects/OLD/repos/legacy/delete', 403],
    ] as const) {
      assert.equal((await rawRequest(primary, 'GET', path, { headers: { cookie } })).status, status, path);
    }
    const csrf = await reader.page.locator('form[action="/logout"] input[name=_csrf]').inputValue();
    const post = await rawRequest(primary, 'POST', '/projects/OLD/repos/legacy/permissions', { headers: { cookie, ...form }, body: `_csrf=${encodeURIComponent(csrf)}&kind=user&name=carol&permission=REPO_ADMIN` });
    assert.equal(post.status, 403, 'a reader cannot grant herself more');
    await reader.context.close();
    const stranger = await signedInAs(bob);
    const strangerCookie = await session(stranger.context);
    for (const path of ['/projects/OLD/settings', '/projects/OLD/repos/legacy/settings', '/projects/OLD/repos/legacy/delete']) {
      const r = await rawRequest(primary, 'GET', path, { headers: { cookie: strangerCookie } });
      assert.equal(r.status, 404, path);
      assert.ok(!r.text.includes('Old project'), `${path} does not name the project`);
    }
    await stranger.context.close();
  });

  it('checked every new page with axe-core', async () => {
    await context.close();
    assert.ok(checked.length >= 7, checked.join(', '));
  });
});

const signedInAs = (creds: Credentials) => signedIn(browser, primary.baseUrl, creds, dialogs);
