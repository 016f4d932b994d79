// Web sign-ins on a mirror farm behind a round-robin balancer without affinity (nginx, as in production): the
// browser signs in through the balancer and stays signed in whichever node serves each page, a form served by
// one node is accepted by another, and signing out through the balancer ends the session on every node at once.
// The session is the mirror's: another mirror and the primary's own pages refuse its secret, and deleting the
// mirror ends it. A changed password ends it too.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { axeViolations, describeViolations, launchBrowser, signedIn } from '../helpers/browser.js';
import { startFarm, type Farm } from '../helpers/farm.js';
import { createProject, createRepo, createUser, grantProject } from '../helpers/fixtures.js';
import { rawRequest } from '../helpers/http.js';
import { authorizeMirror, waitForState } from '../helpers/mirror.js';
import { ADMIN, api, eventually, gitOk, makeWorkTree, startMirror, startServer, type Credentials, type TestServer } from '../helpers/server.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { removeTempDirs } from '../helpers/tmp.js';

const MIRROR_COOKIE = '__Host-mf_mirror_session';
const PRIMARY_COOKIE = '__Host-mf_session';

let primary: TestServer;
let farm: Farm;
let other: TestServer;
let otherMirrorId: string;
/** The network between the other mirror and the primary, which one test cuts. */
let otherLink: TcpProxy;
let browser: Browser;
let alice: Credentials;
let mirrorId: string;
const dialogs: string[] = [];
const contexts: BrowserContext[] = [];

// Cached answers would outlive a sign-out for this long without the event: long enough that only the event can
// explain a refusal within the test's few seconds.
const NODE_ENV = { MIRRORFARM_MIRROR_AUTH_CACHE_SECONDS: '600' };

before(async () => {
  primary = await startServer();
  await createProject(primary, 'FARM', { name: 'Farm project' });
  await createRepo(primary, 'FARM', 'app');
  await createProject(primary, 'HIDDEN', { name: 'Hidden project' });
  await createRepo(primary, 'HIDDEN', 'secret');
  const work = await makeWorkTree([{ 'README.md': 'farm\n' }]);
  await gitOk(primary, ['push', primary.httpUrl('FARM', 'app'), 'main'], { creds: ADMIN, cwd: work });
  alice = await createUser(primary, 'alice');
  await grantProject(primary, 'FARM', 'alice', 'PROJECT_READ');
  farm = await startFarm(primary, { nodes: 2, env: NODE_ENV });
  mirrorId = await authorizeMirror(primary, farm.nodes.get('node-0')!, 'ALL');
  otherLink = await startTcpProxy(primary.httpPort);
  // The other mirror asks the primary on every page (no cache, no grace), so that a cut shows at once.
  other = await startMirror(primary, {
    env: { MIRRORFARM_DISPLAY_NAME: 'other mirror', MIRRORFARM_MIRROR_UPSTREAM_URL: `https://127.0.0.1:${otherLink.port}`, MIRRORFARM_MIRROR_AUTH_CACHE_SECONDS: '0', MIRRORFARM_MIRROR_AUTH_GRACE_SECONDS: '0' },
  });
  otherMirrorId = await authorizeMirror(primary, other, 'ALL');
  await waitForState(other, 'SYNCHRONIZED', 30_000);
  await eventually(async () => farm.inRotation().length === 2, 'both nodes in the rotation', 60_000, 200);
  browser = await launchBrowser(primary.ca);
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  await farm?.stop();
  await other?.stop();
  await otherLink?.stop();
  await primary?.stop();
  removeTempDirs();
});

const balancer = () => ({ httpPort: farm.balancer.httpsPort, ca: primary.ca });
const nodes = () => [...farm.nodes.values()];

/** The mirror session cookie of a browser context. */
async function sessionSecret(context: BrowserContext): Promise<string> {
  const cookie = (await context.cookies()).find((c) => c.name === MIRROR_COOKIE);
  assert.ok(cookie, 'the browser holds the mirror session cookie');
  return cookie.value;
}

/** Who a server's home page says is signed in with this cookie (undefined: nobody). */
async function signedInAs(server: Pick<TestServer, 'httpPort' | 'ca'>, cookie: string): Promise<string | undefined> {
  const r = await rawRequest(server, 'GET', '/', { headers: { cookie } });
  assert.equal(r.status, 200, r.text.slice(0, 500));
  return /Signed in as <strong>([^<]+)<\/strong>/.exec(r.text)?.[1];
}

/** Signs alice in through the balancer and records which node answered each page. */
async function signInThroughBalancer(): Promise<{ page: Page; context: BrowserContext; served: string[] }> {
  const served: string[] = [];
  const { context, page } = await signedIn(browser, farm.balancer.baseUrl, alice, dialogs);
  contexts.push(context);
  page.on('response', (response) => {
    if (response.request().resourceType() === 'document') served.push(response.headers()['x-mirrorfarm-node'] ?? '?');
  });
  return { context, page, served };
}

describe('web sessions on a mirror farm behind a round-robin balancer', () => {
  it('signs in through the balancer (the sign-in form served by one node, posted to another)', async () => {
    // The form's double-submit cookie needs no server state: GET /login and POST /login may meet different nodes.
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const r = await rawRequest(balancer(), 'GET', '/login');
      seen.add(String(r.headers['x-mirrorfarm-node']));
    }
    assert.deepEqual([...seen].sort(), ['node-0', 'node-1'], 'the balancer spreads requests over both nodes');
    for (let i = 0; i < 2; i++) {
      const { page } = await signInThroughBalancer();
      assert.match((await page.locator('main').textContent()) ?? '', /FARM\/app/);
    }
  });

  it('stays signed in on every page, whichever node serves it, and shows only what the user may read', async () => {
    const { page, served } = await signInThroughBalancer();
    for (let i = 0; i < 8; i++) {
      await page.goto(`${farm.balancer.baseUrl}/`);
      await page.getByText('Signed in as alice').waitFor();
      assert.equal(await page.getByLabel('Mirror clone URL of FARM/app').inputValue(), farm.httpUrl('FARM', 'app').replace('/FARM/', '/farm/'));
      assert.equal(await page.getByLabel('Mirror clone URL of HIDDEN/secret').count(), 0, 'a repository alice cannot read is not listed');
    }
    assert.equal(served.length, 8);
    assert.deepEqual([...new Set(served)].sort(), ['node-0', 'node-1'], `pages were served by ${served.join(', ')}`);
    const violations = await axeViolations(browser, page.context(), page.url());
    assert.deepEqual(violations, [], describeViolations(page.url(), violations));
  });

  it('accepts a form served by one node when another node receives it (CSRF token any node can check)', async () => {
    const { context } = await signInThroughBalancer();
    const cookie = `${MIRROR_COOKIE}=${await sessionSecret(context)}`;
    const [a, b] = nodes();
    const pageOfA = await rawRequest(a!, 'GET', '/', { headers: { cookie } });
    const token = /name="_csrf" value="([^"]+)"/.exec(pageOfA.text)?.[1];
    assert.ok(token, 'node A served a form with a CSRF token');
    const form = { 'content-type': 'application/x-www-form-urlencoded', cookie };
    const forged = await rawRequest(b!, 'POST', '/logout', { headers: form, body: '_csrf=forged' });
    assert.equal(forged.status, 403, 'a wrong token is refused');
    assert.match(forged.text, /This form has expired or did not come from this site/);
    assert.equal(await signedInAs(b!, cookie), 'alice', 'a refused form changed nothing');
    const accepted = await rawRequest(b!, 'POST', '/logout', { headers: form, body: `_csrf=${encodeURIComponent(token)}` });
    assert.equal(accepted.status, 303, accepted.text);
    for (const node of nodes()) {
      assert.equal(await eventually(async () => (await signedInAs(node, cookie)) === undefined, 'signed out on every node', 5_000, 100), true);
    }
  });

  it('signs out through the balancer: every node refuses the old cookie at once', async () => {
    const { context, page } = await signInThroughBalancer();
    const cookie = `${MIRROR_COOKIE}=${await sessionSecret(context)}`;
    // Every node has verified (and cached) the session before the sign-out.
    for (const node of nodes()) assert.equal(await signedInAs(node, cookie), 'alice');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('link', { name: 'Sign in' }).first().waitFor();
    assert.equal(await page.getByText('Signed in as alice').count(), 0);
    // The nodes cache answers for 600 s: only the primary's event can explain a refusal within seconds.
    for (const node of nodes()) {
      await eventually(async () => (await signedInAs(node, cookie)) === undefined, `node ${node.httpPort} refuses the signed-out cookie`, 5_000, 100);
    }
    const r = await rawRequest(nodes()[0]!, 'GET', '/', { headers: { cookie } });
    assert.match(String(r.headers['set-cookie']), new RegExp(`${MIRROR_COOKIE}=; .*Max-Age=0`), 'the node clears the dead cookie');
  });

  it('web session secret of one mirror is refused by another mirror and by the primary', async () => {
    const { context } = await signInThroughBalancer();
    const secret = await sessionSecret(context);
    assert.equal(await signedInAs(other, `${MIRROR_COOKIE}=${secret}`), undefined, 'another mirror does not accept it');
    assert.equal(await signedInAs(primary, `${PRIMARY_COOKIE}=${secret}`), undefined, "the primary's pages do not accept it");
    const rest = await rawRequest(primary, 'GET', '/rest/api/1.0/projects', { headers: { authorization: `Bearer ${secret}` } });
    assert.equal(rest.status, 401, "the primary's REST API does not take it as a token");
    // Presenting it elsewhere did not end it on its own mirror.
    for (const node of nodes()) assert.equal(await signedInAs(node, `${MIRROR_COOKIE}=${secret}`), 'alice');
    assert.notEqual(otherMirrorId, mirrorId);
  });

  it('ends the session on every node when the user changes their password', async () => {
    const { context } = await signInThroughBalancer();
    const cookie = `${MIRROR_COOKIE}=${await sessionSecret(context)}`;
    for (const node of nodes()) assert.equal(await signedInAs(node, cookie), 'alice');
    const password = 'alice-password-2';
    const r = await api(primary, 'PUT', '/rest/api/1.0/admin/users/credentials', { name: 'alice', password, passwordConfirm: password });
    assert.ok(r.status < 300, r.text);
    alice = { user: 'alice', secret: password };
    for (const node of nodes()) await eventually(async () => (await signedInAs(node, cookie)) === undefined, 'signed out after the password change', 5_000, 100);
  });

  it('refuses a wrong password on the mirror with the sign-in page and its message', async () => {
    const context = await browser.newContext();
    contexts.push(context);
    const page = await context.newPage();
    await page.goto(`${farm.balancer.baseUrl}/login`);
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill('not-her-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Wrong username or password.').waitFor();
    assert.equal((await context.cookies()).some((c) => c.name === MIRROR_COOKIE), false, 'no session cookie');
  });

  it('shows the visitor\'s view with a notice while the primary cannot be reached, and the session again after', async () => {
    const otherUrl = `https://127.0.0.1:${other.httpPort}`;
    const { page } = await signedIn(browser, otherUrl, alice, dialogs);
    contexts.push(page.context());
    await page.getByLabel('Mirror clone URL of FARM/app').waitFor();
    otherLink.cut();
    try {
      await page.goto(`${otherUrl}/`);
      await page.getByText('The primary server cannot be reached to confirm your sign-in right now').waitFor();
      assert.equal(await page.getByText('Signed in as alice').count(), 0);
      assert.equal(await page.getByLabel('Mirror clone URL of FARM/app').count(), 0, 'nothing private is shown');
      const violations = await axeViolations(browser, page.context(), page.url());
      assert.deepEqual(violations, [], describeViolations(page.url(), violations));
    } finally {
      otherLink.heal();
    }
    // The session was kept for when the primary answers again.
    await eventually(async () => {
      await page.goto(`${otherUrl}/`);
      return (await page.getByText('Signed in as alice').count()) === 1;
    }, 'signed in again once the primary answers', 20_000, 250);
    await page.getByLabel('Mirror clone URL of FARM/app').waitFor();
  });

  it('ends every session of the mirror when the mirror is deleted', async () => {
    const { context } = await signInThroughBalancer();
    const cookie = `${MIRROR_COOKIE}=${await sessionSecret(context)}`;
    for (const node of nodes()) assert.equal(await signedInAs(node, cookie), 'alice');
    const r = await api(primary, 'DELETE', `/rest/mirroring/1.0/mirrorServers/${mirrorId}`);
    assert.ok(r.status < 300, r.text);
    for (const node of nodes()) await eventually(async () => (await signedInAs(node, cookie)) === undefined, 'signed out when the mirror is deleted', 10_000, 100);
    assert.deepEqual(dialogs, []);
  });
});
