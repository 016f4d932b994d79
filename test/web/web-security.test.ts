// The web interface's security, in a real browser against a real primary: session cookie flags and rotation,
// sign-out ending the session on the server, CSRF tokens on every state-changing form, output escaping (a
// project and a repository named like markup show as text), the Content-Security-Policy, the login throttle
// shared with git and the REST API, and a user who sees no private project's name anywhere.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { axeViolations, describeViolations, launchBrowser, newContext, screenshot, signedIn } from '../helpers/browser.js';
import { createProject, createRepo, createUser, grantProject } from '../helpers/fixtures.js';
import { rawRequest } from '../helpers/http.js';
import { ADMIN, api, startServer, type Credentials, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

const XSS = '<img src=x onerror=alert(1)>';

let primary: TestServer;
let browser: Browser;
let bob: Credentials;
const dialogs: string[] = [];

before(async () => {
  primary = await startServer({ env: { MIRRORFARM_LOGIN_THROTTLE_ADDRESS_MAX_FAILURES: '3' } });
  await createProject(primary, 'SECRET', { name: 'Secret plans' });
  await createRepo(primary, 'SECRET', 'launch-codes');
  await createProject(primary, 'OPEN', { name: 'Open project' });
  await createRepo(primary, 'OPEN', 'shared');
  await createProject(primary, 'XSS', { name: XSS, description: XSS });
  await createRepo(primary, 'XSS', XSS);
  bob = await createUser(primary, 'bob');
  await grantProject(primary, 'OPEN', 'bob', 'PROJECT_READ');
  browser = await launchBrowser(primary.ca);
});

after(async () => {
  await browser?.close();
  await primary?.stop();
  removeTempDirs();
});


const sessionCookie = async (context: BrowserContext) => (await context.cookies()).find((c) => c.name === '__Host-mf_session');

describe('web interface security', () => {
  it('sets the session cookie HttpOnly, Secure, SameSite=Lax, rotates it at sign-in and ends it at sign-out', async () => {
    const { context, page } = await signedInAs(ADMIN);
    const first = await sessionCookie(context);
    assert.ok(first, 'a session cookie');
    assert.equal(first.httpOnly, true);
    assert.equal(first.secure, true);
    assert.equal(first.sameSite, 'Lax');
    assert.equal(first.path, '/');
    assert.equal(await page.evaluate<string>('document.cookie'), '', 'no script can read the cookies');

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('banner').getByRole('link', { name: 'Sign in' }).waitFor();
    // The old id is dead on the server, not only forgotten by the browser.
    const replay = await rawRequest(primary, 'GET', '/admin/mirrors', { headers: { cookie: `${first.name}=${first.value}` } });
    assert.equal(replay.status, 303);
    assert.match(String(replay.headers.location), /^\/login\?next=/);

    await page.goto(`${primary.baseUrl}/login`);
    await page.getByLabel('Username').fill(ADMIN.user);
    await page.getByLabel('Password').fill(ADMIN.secret);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Signed in as admin').waitFor();
    const second = await sessionCookie(context);
    assert.ok(second && second.value !== first.value, 'a new session id at every sign-in');
    await context.close();
  });

  it('refuses state-changing forms without the session CSRF token', async () => {
    const { context, page } = await signedInAs(ADMIN);
    const cookie = await sessionCookie(context);
    const headers = { cookie: `${cookie!.name}=${cookie!.value}`, 'content-type': 'application/x-www-form-urlencoded' };
    for (const body of ['', '_csrf=wrong-token']) {
      const r = await rawRequest(primary, 'POST', '/admin/mirrors/0000-0000-0000-0000/delete', { headers, body });
      assert.equal(r.status, 403, r.text);
      assert.match(r.text, /This form has expired or did not come from this site/);
    }
    // Signing out is a form too: without the token the session stays.
    const out = await rawRequest(primary, 'POST', '/logout', { headers, body: '' });
    assert.equal(out.status, 403);
    assert.equal((await rawRequest(primary, 'GET', '/admin/mirrors', { headers: { cookie: headers.cookie } })).status, 200);
    // The sign-in form has its own token (a double-submit cookie): a cross-site sign-in cannot plant a session.
    const login = await rawRequest(primary, 'POST', '/login', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=admin&password=admin-password-1' });
    assert.equal(login.status, 403);
    assert.equal(login.headers['set-cookie'], undefined);
    // With the page's own token the same form works.
    const token = await page.locator('form[action="/logout"] input[name=_csrf]').inputValue();
    const ok = await rawRequest(primary, 'POST', '/logout', { headers, body: `_csrf=${encodeURIComponent(token)}` });
    assert.equal(ok.status, 303);
    await context.close();
  });

  it('shows names that look like markup as text, and sends a strict Content-Security-Policy', async () => {
    const { context, page } = await signedInAs(ADMIN);
    const response = await page.goto(`${primary.baseUrl}/?q=${encodeURIComponent('<img')}`);
    const csp = response!.headers()['content-security-policy'] ?? '';
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self';/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    const section = page.locator('section.project', { hasText: 'XSS' });
    await section.waitFor();
    assert.equal(await section.locator('h2').innerText().then((t) => t.includes(XSS)), true, 'the project name is shown as text');
    assert.equal(await page.getByText(XSS, { exact: true }).count() >= 2, true, 'name, description and repository name are text');
    assert.equal(await page.locator('main img').count(), 0, 'no element was made from a name');
    assert.equal(await page.getByRole('searchbox').inputValue(), '<img', 'the search term is echoed as a value');
    await page.waitForTimeout(300);
    assert.deepEqual(dialogs, [], 'no script ran');
    await context.close();
  });

  it('shows a user without access no private project, not even its name', async () => {
    const { context, page } = await signedInAs(bob);
    await page.goto(`${primary.baseUrl}/`);
    await page.getByRole('heading', { name: /Open project/ }).waitFor();
    const html = await page.content();
    for (const secret of ['SECRET', 'Secret plans', 'launch-codes']) assert.ok(!html.includes(secret), `${secret} does not appear`);
    await page.goto(`${primary.baseUrl}/?q=secret`);
    await page.getByText('Nothing matches your search.').waitFor();
    assert.ok(!(await page.content()).includes('Secret plans'));
    // The administration is not for bob, and the navigation does not offer it.
    assert.equal(await page.getByRole('link', { name: 'Mirrors' }).count(), 0);
    const admin = await page.goto(`${primary.baseUrl}/admin/mirrors`);
    assert.equal(admin!.status(), 403);
    await page.getByRole('heading', { name: 'Not allowed' }).waitFor();
    // The JSON the page polls, fetched by the page itself (with its cookie).
    assert.equal(await page.evaluate(async () => (await fetch('/admin/mirrors/live.json')).status), 403);
    const violations = await axeViolations(browser, context, `${primary.baseUrl}/admin/mirrors`);
    assert.deepEqual(violations, [], describeViolations('403 page', violations));
    // A mirror that does not exist: the same 404 page as anything else missing.
    await signOutAndIn(page, ADMIN);
    const missing = await page.goto(`${primary.baseUrl}/admin/mirrors/0000-0000-0000-0000`);
    assert.equal(missing!.status(), 404);
    await page.getByRole('heading', { name: 'Not found' }).waitFor();
    await context.close();
  });

  it('lays the pages out at phone width with every control reachable', async () => {
    const { context, page } = await signedInAs(ADMIN);
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${primary.baseUrl}/admin/mirrors`);
    const width = await page.evaluate<number>('document.documentElement.scrollWidth');
    assert.ok(width <= 390, `no horizontal scrolling of the page (${width}px)`);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate<string>('document.activeElement && document.activeElement.textContent'), 'Skip to content', 'the first Tab reaches the skip link');
    const violations = await axeViolations(browser, context, `${primary.baseUrl}/admin/mirrors`, { width: 390, height: 844 });
    assert.deepEqual(violations, [], describeViolations('phone width', violations));
    await screenshot(page, 'admin-mirrors-phone');
    await context.close();
  });
  it('ends every sign-in of a user whose password changes (regression: primary sessions outlived a new password)', async () => {
    const carol = await createUser(primary, 'carol');
    const { context, page } = await signedInAs(carol);
    const cookie = await sessionCookie(context);
    const password = 'carol-password-2';
    const changed = await api(primary, 'PUT', '/rest/api/1.0/admin/users/credentials', { name: 'carol', password, passwordConfirm: password });
    assert.equal(changed.status, 204, changed.text);
    // The session goes with the event that the change publishes; the page then shows a visitor.
    let replay = await rawRequest(primary, 'GET', '/account', { headers: { cookie: `${cookie!.name}=${cookie!.value}` } });
    for (let i = 0; i < 50 && replay.status !== 303; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      replay = await rawRequest(primary, 'GET', '/account', { headers: { cookie: `${cookie!.name}=${cookie!.value}` } });
    }
    assert.equal(replay.status, 303, 'the old session is refused');
    assert.match(String(replay.headers.location), /^\/login\?next=/);
    await page.reload();
    await page.getByRole('banner').getByRole('link', { name: 'Sign in' }).waitFor();
    await context.close();
  });

  // Last: it leaves the test's address throttled for sign-ins.
  it('throttles sign-in attempts with the same limiter as git and the REST API', async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    await page.goto(`${primary.baseUrl}/login`);
    for (let i = 0; i < 3; i++) {
      await page.getByLabel('Username').fill('bob');
      await page.getByLabel('Password').fill('wrong-password');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByText('Wrong username or password.').waitFor();
    }
    await screenshot(page, 'sign-in-refused');
    // The address is now throttled for git and REST too (the REST client comes from the same 127.0.0.1).
    const rest = await api(primary, 'GET', '/rest/api/1.0/projects', undefined, bob);
    assert.equal(rest.status, 429, rest.text);
    await page.getByLabel('Username').fill('bob');
    await page.getByLabel('Password').fill(bob.secret);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText(/Too many failed login attempts|Too many/i).waitFor();
    assert.equal(await sessionCookie(context), undefined, 'no session while throttled');
    await context.close();
  });
});

async function signOutAndIn(page: Page, creds: Credentials): Promise<void> {
  await page.goto(`${primary.baseUrl}/`);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.goto(`${primary.baseUrl}/login`);
  await page.getByLabel('Username').fill(creds.user);
  await page.getByLabel('Password').fill(creds.secret);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText(`Signed in as ${creds.user}`).waitFor();
}

const signedInAs = (creds: Credentials) => signedIn(browser, primary.baseUrl, creds, dialogs);
