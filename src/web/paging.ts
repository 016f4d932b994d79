// Long lists of the pages come a page at a time, like the REST API's `start`: a page asks for one row more than
// it shows, to know whether a "Next" link is due, without counting the whole list.
import type { FastifyRequest } from 'fastify';

/** Where a list starts (`?start=N`), as the REST API pages. */
export function startOf(request: FastifyRequest): number {
  const raw = (request.query as { start?: unknown }).start;
  return typeof raw === 'string' && /^\d{1,9}$/.test(raw) ? Number(raw) : 0;
}

/** "Previous" and "Next" links of a paged list, keeping the other query parameters. */
export function pageLinks(path: string, query: Record<string, string>, start: number, size: number, more: boolean): { prev?: string; next?: string } {
  const href = (at: number) => {
    const params = new URLSearchParams(Object.entries(query).filter(([, v]) => v));
    if (at > 0) params.set('start', String(at));
    const qs = params.toString();
    return qs ? `${path}?${qs}` : path;
  };
  return { ...(start > 0 ? { prev: href(Math.max(0, start - size)) } : {}), ...(more ? { next: href(start + size) } : {}) };
}
