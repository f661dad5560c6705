/**
 * The functions and views the migrations define, as PostgreSQL prints them, and the files of
 * sql/ that hold their current text: read from a database, rendered, parsed and compared.
 * The migrations stay what deploys; sql/ is where a reader finds a function's current text.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from 'pg';
import { ROOT } from '../processes';

export const SQL_DIR = path.join(ROOT, 'sql');

export type DefinitionKind = 'function' | 'procedure' | 'view';

/** One function (one overload), procedure or view of the public schema. */
export interface Definition {
  kind: DefinitionKind;
  name: string;
  /** The argument types that tell overloads apart (empty for a view). */
  identity: string;
  /** Arguments with names and defaults, and the result: what CREATE OR REPLACE may not change. */
  signature: string;
  /** `CREATE OR REPLACE …;` as PostgreSQL prints it (pg_get_functiondef, pg_get_viewdef). */
  text: string;
  /** The statement that removes it. */
  drop: string;
  /** Indexes whose expressions call it: a new body of an IMMUTABLE function needs them rebuilt. */
  indexes: string[];
}

/** A file of sql/: its leading comment, free text kept by every dump, and its definitions. */
export interface SqlFile {
  name: string;
  header: string;
  body: string;
}

const FUNCTIONS = `
  SELECT p.proname AS name, p.prokind AS kind,
         pg_get_function_identity_arguments(p.oid) AS identity,
         pg_get_function_arguments(p.oid) || ' -> ' || COALESCE(pg_get_function_result(p.oid), '') AS signature,
         pg_get_functiondef(p.oid) AS text,
         format('DROP %s public.%I(%s);', CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
                p.proname, pg_get_function_identity_arguments(p.oid)) AS drop,
         ARRAY(SELECT format('public.%I', i.relname) FROM pg_depend d JOIN pg_class i ON i.oid = d.objid
                WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_proc'::regclass
                  AND d.refobjid = p.oid AND i.relkind = 'i' ORDER BY 1) AS indexes
    FROM pg_proc p
   WHERE p.pronamespace = 'public'::regnamespace AND p.prokind IN ('f', 'p')
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')`;

const VIEWS = `
  SELECT c.relname AS name, 'v' AS kind, '' AS identity, '' AS signature,
         format(E'CREATE OR REPLACE VIEW public.%I AS\\n%s', c.relname, rtrim(pg_get_viewdef(c.oid, true), ';')) AS text,
         format('DROP VIEW public.%I;', c.relname) AS drop, ARRAY[]::text[] AS indexes
    FROM pg_class c
   WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'v'
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`;

/** Aggregates and materialized views: a dump could not print them back, so it refuses them. */
const UNSUPPORTED = `
  SELECT format('%s %s', CASE p.prokind WHEN 'a' THEN 'aggregate' ELSE 'window function' END, p.proname) AS what
    FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.prokind IN ('a', 'w')
  UNION ALL
  SELECT format('materialized view %s', c.relname) FROM pg_class c
   WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'm'`;

interface DefinitionRow {
  name: string;
  kind: string;
  identity: string;
  signature: string;
  text: string;
  drop: string;
  indexes: string[];
}

const KIND_OF: Record<string, DefinitionKind> = { f: 'function', p: 'procedure', v: 'view' };

/** Every function, procedure and view of the public schema that no extension owns, by name then overload. */
export async function readDefinitions(client: Client): Promise<Definition[]> {
  const { rows: unsupported } = await client.query<{ what: string }>(UNSUPPORTED);
  if (unsupported.length > 0) {
    throw new Error(`sql/ holds functions and views only; write these in migrations by hand: ${unsupported.map((r) => r.what).join(', ')}`);
  }
  const { rows } = await client.query<DefinitionRow>(`${FUNCTIONS} UNION ALL ${VIEWS}`);
  return rows
    .map((row) => ({
      kind: KIND_OF[row.kind] ?? 'function',
      name: row.name,
      identity: row.identity,
      signature: row.signature,
      // pg_get_functiondef ends with a newline but no semicolon; the view's text has neither.
      text: `${row.text.trimEnd()};\n`,
      drop: row.drop,
      indexes: row.indexes,
    }))
    .sort(byNameThenIdentity);
}

/** C-locale order, so every machine writes the same file. */
function byNameThenIdentity(a: Definition, b: Definition): number {
  return compare(a.name, b.name) || compare(a.identity, b.identity);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The definitions grouped as sql/ holds them: one file per name (its overloads together). */
export function groupByName(definitions: Definition[]): Map<string, Definition[]> {
  const files = new Map<string, Definition[]>();
  for (const definition of definitions) files.set(definition.name, [...(files.get(definition.name) ?? []), definition]);
  return files;
}

/** What a file of sql/ holds below its header for these definitions of one name. */
export function renderBody(definitions: Definition[]): string {
  return definitions.map((d) => d.text).join('\n');
}

/** The file's text: its header (kept as it was), a blank line, then the definitions. */
export function renderFile(header: string, definitions: Definition[]): string {
  return `${header.trimEnd()}\n\n${renderBody(definitions)}`;
}

/** The files a dump would write for these definitions, headers aside. */
export function asFiles(definitions: Definition[]): SqlFile[] {
  return [...groupByName(definitions)].map(([name, defined]) => ({ name, header: '', body: renderBody(defined) }));
}

/** Splits a file into its leading comment lines (and blank lines) and the rest. */
export function parseSqlFile(name: string, text: string): SqlFile {
  const lines = text.split('\n');
  let first = 0;
  while (first < lines.length && /^\s*(--.*)?$/.test(lines[first] ?? '')) first++;
  return { name, header: lines.slice(0, first).join('\n').trimEnd(), body: lines.slice(first).join('\n') };
}

export async function readSqlFiles(dir = SQL_DIR): Promise<SqlFile[]> {
  const names = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort(compare);
  return Promise.all(names.map(async (file) => parseSqlFile(file.slice(0, -'.sql'.length), await readFile(path.join(dir, file), 'utf8'))));
}

export interface Disagreement {
  name: string;
  problem: 'not in sql/' | 'differs from sql/' | 'not in the database';
}

/**
 * Where the database and sql/ disagree, name by name: a definition sql/ lacks, a file whose
 * text is not what the database defines (to the character, headers aside), or a file the
 * database has nothing for.
 */
export function disagreements(definitions: Definition[], files: SqlFile[]): Disagreement[] {
  const inDatabase = groupByName(definitions);
  const inFiles = new Map(files.map((f) => [f.name, f]));
  const found: Disagreement[] = [];
  for (const [name, defined] of inDatabase) {
    const file = inFiles.get(name);
    if (!file) found.push({ name, problem: 'not in sql/' });
    else if (file.body !== renderBody(defined)) found.push({ name, problem: 'differs from sql/' });
  }
  for (const name of inFiles.keys()) if (!inDatabase.has(name)) found.push({ name, problem: 'not in the database' });
  return found.sort((a, b) => compare(a.name, b.name));
}
