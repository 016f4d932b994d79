// Opens the metadata database (SQLite in the server's home by default) and migrates it to the latest schema.
// All queries go through Kysely so that a PostgreSQL dialect can replace SQLite without touching the domain.
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, type MigrationProvider } from 'kysely';
import { migrations } from './migrations.js';
import type { Database } from './tables.js';

export type Db = Kysely<Database>;

export async function openDatabase(file: string): Promise<Db> {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  makePrivate(file);
  const sqlite = new SqliteDatabase(file);
  // WAL lets readers (status pages, event stream) proceed while a writer commits; synchronous=FULL makes
  // every committed event durable before git's client hears that its push succeeded.
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  const provider: MigrationProvider = { getMigrations: async () => migrations };
  const { error, results } = await new Migrator({ db, provider }).migrateToLatest();
  if (error) {
    await db.destroy();
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`database migration ${failed} failed on ${file}: ${(error as Error).message}`);
  }
  return db;
}

/**
 * The database holds password hashes and token hashes: owner-only. SQLite creates a new database file 0644 (less
 * the umask) and gives its -wal and -shm files the mode of the database file, so the file is created 0600 before
 * SQLite opens it, and a database (or WAL) left readable by an older version is tightened.
 */
function makePrivate(file: string): void {
  if (!existsSync(file)) closeSync(openSync(file, 'a', 0o600));
  for (const path of [file, `${file}-wal`, `${file}-shm`]) {
    if (existsSync(path)) chmodSync(path, 0o600);
  }
}
