// Server-rendered pages with Eta. Eta was chosen because it escapes every `<%= %>` output by default (a name like
// `<img src=x onerror=...>` is shown as text unless a template asks for raw output with `<%~ %>`, which ours do
// only to place one template inside another), it has no dependencies, is written in TypeScript, and keeps the
// templates plain HTML. Templates and static files live in ./assets, beside this module in src/ and in dist/
// (the build copies them), so the package serves them wherever it is installed.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Eta } from 'eta';
import type { FastifyReply } from 'fastify';

export const ASSETS = fileURLToPath(new URL('./assets/', import.meta.url));

const eta = new Eta({ views: `${ASSETS}views`, cache: true, autoEscape: true, autoTrim: false });

/** What every page's layout shows. */
export interface LayoutData {
  title: string;
  product: string;
  mode: 'primary' | 'mirror';
  user?: { name: string; sysadmin: boolean } | undefined;
  csrf?: string | undefined;
  /** The nav entry to mark as current. */
  section?: string;
  /** A one-off message shown above the content (after a redirect). */
  notice?: string | undefined;
  /** Why this page shows less than the signed-in user may see (the session could not be confirmed right now). */
  sessionNotice?: string | undefined;
}

export function render(template: string, data: LayoutData & Record<string, unknown>): string {
  return eta.render(template, data);
}

export function sendPage(reply: FastifyReply, template: string, data: LayoutData & Record<string, unknown>, status = 200): FastifyReply {
  return reply.status(status).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(render(template, data));
}

/** The static files, read once: a fixed list, so no path from a request ever reaches the file system. */
export const STATIC_FILES: Record<string, { type: string; body: Buffer }> = Object.fromEntries(
  [
    ['app.css', 'text/css; charset=utf-8'],
    ['app.js', 'text/javascript; charset=utf-8'],
  ].map(([name, type]) => [name, { type: type!, body: readFileSync(`${ASSETS}static/${name}`) }]),
);
