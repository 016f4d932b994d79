// Bitbucket's paging: `start` and `limit` query parameters in, `{ size, limit, isLastPage, start,
// nextPageStart?, values }` out. Pages are cut after authorization, so a caller never learns how many rows it
// could not see, and `nextPageStart` is simply where the next page begins in the caller's own view.
import { Type, type Static, type TSchema } from '@sinclair/typebox';

export const DEFAULT_LIMIT = 25;
export const MAX_LIMIT = 1000;

export const PageQuery = Type.Object({
  start: Type.Optional(Type.Integer({ minimum: 0, default: 0, description: 'Index of the first item of the page (0-based).' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, default: DEFAULT_LIMIT, description: `Page size; at most ${MAX_LIMIT} items are returned whatever is asked.` })),
});
export type PageQuery = Static<typeof PageQuery>;

export function Paged<T extends TSchema>(item: T, description: string) {
  return Type.Object(
    {
      size: Type.Integer({ description: 'Number of items on this page.' }),
      limit: Type.Integer(),
      isLastPage: Type.Boolean(),
      start: Type.Integer(),
      nextPageStart: Type.Optional(Type.Integer({ description: 'The `start` of the next page; absent on the last page.' })),
      values: Type.Array(item),
    },
    { description },
  );
}

export interface Page<T> {
  size: number;
  limit: number;
  isLastPage: boolean;
  start: number;
  nextPageStart?: number;
  values: T[];
}

/** Start and limit as asked, with the limit capped as Bitbucket does rather than refused. */
export function pageBounds(query: PageQuery): { start: number; limit: number } {
  return { start: query.start ?? 0, limit: Math.min(query.limit ?? DEFAULT_LIMIT, MAX_LIMIT) };
}

/** A page from a list that holds at least start + limit + 1 items when there are more. */
export function pageOf<T>(items: T[], start: number, limit: number, alreadySliced = false): Page<T> {
  const window = alreadySliced ? items : items.slice(start, start + limit + 1);
  const isLastPage = window.length <= limit;
  const values = window.slice(0, limit);
  return { size: values.length, limit, isLastPage, start, ...(isLastPage ? {} : { nextPageStart: start + values.length }), values };
}

/**
 * Pages through a source in database order, keeping only items `keep` accepts, until the page (plus one item
 * to know whether another page follows) is complete. Cost grows with `start`, not with the size of the table.
 */
export async function scanPage<T, R>(
  fetch: (offset: number, count: number) => Promise<T[]>,
  keep: (item: T) => R | undefined,
  start: number,
  limit: number,
): Promise<Page<R>> {
  const wanted = start + limit + 1;
  const batch = Math.max(100, Math.min(wanted, 1000));
  const kept: R[] = [];
  for (let offset = 0; kept.length < wanted; offset += batch) {
    const rows = await fetch(offset, batch);
    for (const row of rows) {
      const mapped = keep(row);
      if (mapped !== undefined) kept.push(mapped);
    }
    if (rows.length < batch) break;
  }
  return pageOf(kept.slice(start, wanted), start, limit, true);
}
