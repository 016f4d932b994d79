// Substring search in SQL: LIKE patterns built from user text, with the text's own "%" and "_" taken literally
// and the comparison case-insensitive on every database (lower() on both sides rather than ILIKE).
import { sql, type RawBuilder, type SqlBool } from 'kysely';

/** A LIKE pattern matching `text` anywhere, lower-cased, with LIKE's wildcards escaped by "\". */
export function containsPattern(text: string): string {
  return `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** `lower(column) LIKE %text%`, for a column name written in our own source code. */
export function columnContains(column: string, text: string): RawBuilder<SqlBool> {
  return sql<SqlBool>`lower(${sql.ref(column)}) like ${containsPattern(text)} escape '\\'`;
}
