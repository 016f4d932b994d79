// The account page in a real browser against a real primary: a user adds an SSH key and clones over SSH with it,
// deletes it and is refused; creates an access token with permissions and an expiry, sees it once, uses it with
// git over HTTPS, revokes it and is refused. Bad input is shown next to the form; another user's keys and tokens
// answer 404; forms without the CSRF token are refused; labels that look like markup are text; axe-core is clean.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { axeViolations, describeViolations, failOnDialogs, launchBrowser, newContext, signedIn } from '../helpers/browser.js';
import { createProject, createRepo, createUser, grantRepo } from '../helpers/fixtures.js';
import { rawRequest } from '../helpers/http.js';
import { ADMIN, api, git, gitOk, makeWorkTree, sshKeyPair, startServer, type Credentials, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

const XSS = '<img src=x onerror=alert(1)>';

let primary: TestServer;
let browser: Browser;
let dave: Credentials;
let erin: Credentials;
let context: BrowserContext;
let page: Page;
const dialogs: string[] = [];

before(async () => {
  primary = await startServer();
  await createProject(primary, 'APP');
  await createRepo(primary, 'APP', 'web');
  await gitOk(primary, ['push', primary.httpUrl('APP', 'web'), 'main'], { creds: ADMIN, cwd: await makeWorkTree() });
  dave = await createUser(primary, 'dave');
  erin = await createUser(primary, 'erin');
  await grantRepo(primary, 'APP', 'web', 'dave', 'REPO_READ');
  browser = await launchBrowser(primary.ca);
  context = await newContext(browser);
  page = await context.newPage();
  failOnDialogs(page, dialogs);
  await page.goto(`${primary.baseUrl}/login`);
  await page.getByLabel('Username').fill(dave.user);
  await page.getByLabel('Password').fill(dave.secret);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('Signed in as dave').waitFor();
});

after(async () => {
  await browser?.close();
  await primary?.stop();
  removeTempDirs();
});

async function accessible(): Promise<void> {
  const violations = await axeViolations(browser, context, page.url());
  assert.deepEqual(violations, [], describeViolations(page.url(), violations));
}

const cookie = async (c: BrowserContext) => {
  const s = (await c.cookies()).find((x) => x.name === '__Host-mf_session');
  return `${s!.name}=${s!.value}`;
};

describe('account page', () => {
  it('adds an SSH key that clones over SSH, and deletes it', async () => {
    const key = await sshKeyPair('dave@laptop');
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Account' }).click();
    await page.getByRole('heading', { name: 'Your account' }).waitFor();
    await page.getByText('You have no SSH keys.').waitFor();
    await accessible();
    // Not a key: the form says so and keeps what was typed.
    await page.getByLabel('Public key').fill('not a key');
    await page.getByRole('button', { name: 'Add key' }).click();
    await page.getByRole('alert').waitFor();
    assert.equal(await page.getByLabel('Public key').inputValue(), 'not a key');
    await page.getByLabel('Public key').fill(key.publicKey);
    await page.getByLabel(/^Label/).fill(XSS);
    await page.getByRole('button', { name: 'Add key' }).click();
    await page.getByText('The SSH key is added.').waitFor();
    const row = page.locator('tr', { hasText: XSS });
    assert.match(await row.innerText(), /SHA256:/);
    assert.equal(await page.locator('main img').count(), 0, 'the label is text');
    const ls = await gitOk(primary, ['ls-remote', primary.sshUrl('APP', 'web')], { sshKey: key });
    assert.match(ls, /refs\/heads\/main/);
    // The same key for another user is refused with the service's message.
    const erinPage = await signedInAs(erin);
    await erinPage.page.goto(`${primary.baseUrl}/account`);
    await erinPage.page.getByLabel('Public key').fill(key.publicKey);
    await erinPage.page.getByRole('button', { name: 'Add key' }).click();
    await erinPage.page.getByRole('alert').getByText('already registered').waitFor();
    // erin cannot delete dave's key: the same 404 as a key that does not exist.
    const keyId = (await api<{ values: Array<{ id: number }> }>(primary, 'GET', '/rest/ssh/1.0/keys?user=dave')).body.values[0]!.id;
    const erinCookie = await cookie(erinPage.context);
    const csrf = await erinPage.page.locator('form[action="/logout"] input[name=_csrf]').inputValue();
    const foreign = await rawRequest(primary, 'POST', `/account/keys/${keyId}/delete`, { headers: { cookie: erinCookie, 'content-type': 'application/x-www-form-urlencoded' }, body: `_csrf=${encodeURIComponent(csrf)}` });
    assert.equal(foreign.status, 404);
    await erinPage.context.close();
    // Without the CSRF token dave's own delete is refused too.
    const noToken = await rawRequest(primary, 'POST', `/account/keys/${keyId}/delete`, { headers: { cookie: await cookie(context), 'content-type': 'application/x-www-form-urlencoded' }, body: '' });
    assert.equal(noToken.status, 403);
    await row.getByRole('button', { name: `Delete SSH key ${XSS}` }).click();
    await page.getByText('The SSH key is deleted.').waitFor();
    const refused = await git(primary, ['ls-remote', primary.sshUrl('APP', 'web')], { sshKey: key });
    assert.notEqual(refused.code, 0, 'the deleted key opens nothing');
  });

  it('creates an access token shown once, uses it with git, and revokes it', async () => {
    await page.goto(`${primary.baseUrl}/account`);
    await page.getByLabel('Name').fill('CI build');
    await page.getByLabel('Repositories').selectOption('REPO_READ');
    await page.getByLabel('Repositories').selectOption('NONE');
    await page.getByRole('button', { name: 'Create token' }).click();
    await page.getByRole('alert').getByText(/at least one permission/).waitFor();
    assert.equal(await page.getByLabel('Name').inputValue(), 'CI build', 'the form keeps what was typed');
    await page.getByLabel('Repositories').selectOption('REPO_READ');
    await page.getByLabel(/^Expires after/).fill('30');
    await page.getByRole('button', { name: 'Create token' }).click();
    const shown = page.getByRole('textbox', { name: 'New access token' });
    const token = await shown.inputValue();
    assert.match(token, /^mft_\d+_/);
    await page.getByText('it is shown only this once').waitFor();
    const row = page.locator('tr', { hasText: 'CI build' });
    assert.match(await row.innerText(), /REPO_READ/);
    assert.doesNotMatch(await row.innerText(), /never\s*$/, 'it expires');
    const ls = await gitOk(primary, ['ls-remote', primary.httpUrl('APP', 'web')], { creds: { user: 'dave', secret: token } });
    assert.match(ls, /refs\/heads\/main/);
    // Once: the page after this one does not carry it.
    await page.goto(`${primary.baseUrl}/account`);
    assert.equal(await page.getByRole('textbox', { name: 'New access token' }).count(), 0);
    assert.ok(!(await page.content()).includes(token), 'the token is not shown again');
    await accessible();
    await page.locator('tr', { hasText: 'CI build' }).getByRole('button', { name: 'Revoke access token CI build' }).click();
    await page.getByText('The access token is revoked.').waitFor();
    const refused = await git(primary, ['ls-remote', primary.httpUrl('APP', 'web')], { creds: { user: 'dave', secret: token } });
    assert.notEqual(refused.code, 0, 'a revoked token opens nothing');
    // Creating a token needs the form's CSRF token.
    const noToken = await rawRequest(primary, 'POST', '/account/tokens', { headers: { cookie: await cookie(context), 'content-type': 'application/x-www-form-urlencoded' }, body: 'name=x&repository=REPO_READ' });
    assert.equal(noToken.status, 403);
    assert.deepEqual(dialogs, []);
  });

  it('sends an anonymous visitor to sign in', async () => {
    const r = await rawRequest(primary, 'GET', '/account');
    assert.equal(r.status, 303);
    assert.match(String(r.headers.location), /^\/login\?next=%2Faccount/);
  });
});

const signedInAs = (creds: Credentials) => signedIn(browser, primary.baseUrl, creds, dialogs);
