/**
 * Writes sql/ from definitions read from a database: one file per name, its header kept
 * (or, for a new file, taken from the comment above the newest CREATE of it in the
 * migrations), files of names the database no longer defines removed.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { MigrationFile } from '../../src/db/migrate';
import { groupByName, readSqlFiles, renderFile, type Definition } from './definitions';

export interface DumpResult {
  written: string[];
  removed: string[];
}

export async function writeSqlFiles(dir: string, definitions: Definition[], migrations: MigrationFile[]): Promise<DumpResult> {
  const existing = new Map((await readSqlFiles(dir)).map((f) => [f.name, f]));
  const result: DumpResult = { written: [], removed: [] };
  for (const [name, defined] of groupByName(definitions)) {
    const file = path.join(dir, `${name}.sql`);
    const header = existing.get(name)?.header || headerFromMigrations(name, migrations);
    const text = renderFile(header, defined);
    const before = existing.has(name) ? await readFile(file, 'utf8') : undefined;
    if (before !== text) {
      await writeFile(file, text);
      result.written.push(name);
    }
  }
  const defined = new Set(definitions.map((d) => d.name));
  for (const name of existing.keys()) {
    if (defined.has(name)) continue;
    await rm(path.join(dir, `${name}.sql`));
    result.removed.push(name);
  }
  return result;
}

/** The comment lines right above the newest CREATE of `name` in the migrations, else just its name. */
export function headerFromMigrations(name: string, migrations: MigrationFile[]): string {
  const create = new RegExp(`^CREATE\\s+(OR\\s+REPLACE\\s+)?(FUNCTION|PROCEDURE|VIEW)\\s+("?public"?\\.)?"?${name}"?[\\s(]`, 'i');
  for (const migration of [...migrations].reverse()) {
    const lines = migration.sql.split('\n');
    let at = lines.length - 1;
    while (at >= 0 && !create.test(lines[at] ?? '')) at--;
    if (at < 0) continue;
    let first = at;
    while (first > 0 && /^--/.test(lines[first - 1] ?? '')) first--;
    if (first < at) return lines.slice(first, at).join('\n');
  }
  return `-- ${name}`;
}
