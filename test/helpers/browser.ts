// A real browser for the web UI tests: Debian's Chromium driven by playwright-core, headless, one per test file.
// It trusts the test servers' certificate without a switch that turns certificate checks off: Chromium is told
// the SPKI hash of the test CA's server certificate (--ignore-certificate-errors-spki-list), so only that key is
// accepted beyond the system's roots; any other certificate error still fails the page.
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';
import type { DevCaFiles } from '../../src/tls/dev-ca.js';
import { ROOT } from './server.js';

export const CHROMIUM = process.env.MF_CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOTS = join(ROOT, 'docs', 'screenshots');

/** base64 SHA-256 of the certificate's SubjectPublicKeyInfo, the form Chromium's SPKI list takes. */
export function spkiHash(certPemFile: string): string {
  const cert = new X509Certificate(readFileSync(certPemFile));
  return createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
}

export async function launchBrowser(ca: DevCaFiles): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is not installed at ${CHROMIUM}: apt-get install chromium (or set MF_CHROMIUM)`);
  // playwright-core gives each launch a fresh, temporary user-data dir, removed when the browser closes.
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
      `--ignore-certificate-errors-spki-list=${spkiHash(ca.tlsCert)}`,
    ],
    env: { HOME: process.env.HOME ?? '/tmp', PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8' },
  });
}

export function newContext(browser: Browser, options: BrowserContextOptions = {}): Promise<BrowserContext> {
  return browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'en-US', ...options });
}

/** Fails the test on any script dialog (an alert() from injected markup would open one). */
export function failOnDialogs(page: Page, seen: string[]): void {
  page.on('dialog', (dialog) => {
    seen.push(dialog.message());
    void dialog.dismiss();
  });
}

/**
 * A new browser context signed in on `baseUrl` through the sign-in form, as a user would; script dialogs are
 * recorded in `dialogs` (and fail the test that checks them).
 */
export async function signedIn(
  browser: Browser,
  baseUrl: string,
  creds: { user: string; secret: string },
  dialogs: string[],
  options: BrowserContextOptions = {},
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await newContext(browser, options);
  const page = await context.newPage();
  failOnDialogs(page, dialogs);
  await page.goto(`${baseUrl}/login`);
  await page.getByLabel('Username').fill(creds.user);
  await page.getByLabel('Password').fill(creds.secret);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText(`Signed in as ${creds.user}`).waitFor();
  return { context, page };
}

/** The primary's session cookie of a context, as a Cookie header for requests made outside the browser. */
export async function sessionCookieHeader(context: BrowserContext): Promise<string> {
  const c = (await context.cookies()).find((x) => x.name === '__Host-mf_session');
  return `${c!.name}=${c!.value}`;
}

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: Array<{ target: string[]; html: string }>;
}

/**
 * Runs axe-core on `url` as the user of `context` sees it. Injecting axe needs a script the page's CSP refuses,
 * so the check opens the page in a second context with bypassCSP (and the first one's cookies); the pages under
 * test themselves always run with the CSP.
 */
export async function axeViolations(browser: Browser, context: BrowserContext, url: string, viewport = { width: 1280, height: 860 }): Promise<AxeViolation[]> {
  const axeContext = await browser.newContext({ bypassCSP: true, storageState: await context.storageState(), viewport });
  try {
    const page = await axeContext.newPage();
    await page.goto(url);
    await page.addScriptTag({ content: AXE_SOURCE });
    return await page.evaluate(async () => {
      const axe = (globalThis as unknown as { axe: { run(o: unknown): Promise<{ violations: AxeViolation[] }> } }).axe;
      const result = await axe.run({ runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } });
      return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target, html: n.html })) }));
    });
  } finally {
    await axeContext.close();
  }
}

export function describeViolations(url: string, violations: AxeViolation[]): string {
  return `${url}:\n${violations.map((v) => `  ${v.id} (${v.impact}): ${v.help}\n${v.nodes.map((n) => `    ${n.target.join(' ')}: ${n.html}`).join('\n')}`).join('\n')}`;
}

/**
 * Takes a screenshot of the page every run (so that rendering failures show), and writes it to docs/screenshots
 * only with MF_SCREENSHOTS=1: the pictures in the README are refreshed on purpose, and a test run leaves the
 * work tree as it was.
 */
export async function screenshot(page: Page, name: string): Promise<void> {
  const image = await page.screenshot({ fullPage: true });
  if (process.env.MF_SCREENSHOTS !== '1') return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  writeFileSync(join(SCREENSHOTS, `${name}.png`), image);
}
