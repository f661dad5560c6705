/** Throwaway databases on the developer's PostgreSQL server, migrated and read by the sql/ tooling. */
import { randomBytes } from 'node:crypto';
import type { Client } from 'pg';
import { applyMigrations, MIGRATIONS_DIR } from '../../src/db/migrate';
import { withDatabase } from '../processes';
import { readDefinitions, type Definition, type SqlFile } from './definitions';

/** The server's maintenance database, where scratch databases are created and dropped. */
function adminUrl(serverUrl: string): string {
  const url = new URL(serverUrl);
  url.pathname = '/postgres';
  return url.toString();
}

/** A new database on the server of `serverUrl`, migrated from `migrationsDir`, dropped after `fn`. */
export async function withMigratedScratch<T>(serverUrl: string, migrationsDir: string, fn: (db: Client) => Promise<T>): Promise<T> {
  const name = `checkout_sql_${randomBytes(6).toString('hex')}`;
  const admin = adminUrl(serverUrl);
  await withDatabase(admin, (c) => c.query(`CREATE DATABASE "${name}"`));
  try {
    const url = new URL(serverUrl);
    url.pathname = `/${name}`;
    await applyMigrations(url.toString(), migrationsDir);
    return await withDatabase(url.toString(), fn);
  } finally {
    await withDatabase(admin, (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
  }
}

/** What the migrations define, read from a freshly migrated scratch database. */
export function definitionsOfMigrations(serverUrl: string, migrationsDir = MIGRATIONS_DIR): Promise<Definition[]> {
  return withMigratedScratch(serverUrl, migrationsDir, readDefinitions);
}

/** Where the functions and views of the migrations are moved, so that public holds only what sql/ defines. */
const PREVIOUS_SCHEMA = 'sql_previous';

/**
 * On a migrated scratch database: moves every function and view out of public (indexes,
 * triggers and defaults that use them follow, as they refer to them by oid), then applies
 * the files, so that public holds exactly what they define. Bodies are checked later, when
 * the migration made from them runs (planMigration): here the files may come in any order.
 */
export async function applyFilesAlone(db: Client, files: SqlFile[]): Promise<void> {
  await db.query(`CREATE SCHEMA ${PREVIOUS_SCHEMA}`);
  for (const definition of await readDefinitions(db)) {
    const what = definition.kind === 'view' ? 'VIEW' : definition.kind === 'procedure' ? 'PROCEDURE' : 'FUNCTION';
    const args = definition.kind === 'view' ? '' : `(${definition.identity})`;
    await db.query(`ALTER ${what} public."${definition.name}"${args} SET SCHEMA ${PREVIOUS_SCHEMA}`);
  }
  await db.query('SET check_function_bodies = off');
  for (const file of files) {
    try {
      await db.query(file.body);
    } catch (error) {
      throw new Error(`sql/${file.name}.sql does not apply: ${(error as Error).message}`, { cause: error });
    }
  }
  await db.query('RESET check_function_bodies');
}
