/**
 * sql/ holds the current text of every function and view the migrations define: a database
 * migrated from prisma/migrations defines exactly what sql/ says, to the character. And
 * `npm run sql:migration` turns an edit of sql/ into a migration that reaches it.
 */
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { applyMigrations, MIGRATIONS_DIR } from '../src/db/migrate';
import { withDatabase } from '../scripts/processes';
import { asFiles, disagreements, readDefinitions, readSqlFiles, type SqlFile } from '../scripts/sql/definitions';
import { nextPrefix, planMigration } from '../scripts/sql/migration';
import { ADMIN_URL, createTestDatabase, type TestDatabase } from './support/database';

let db: TestDatabase;
let scratch: string;

beforeAll(async () => {
  db = await createTestDatabase(1);
  scratch = await mkdtemp(path.join(os.tmpdir(), 'checkout-sql-files-'));
});

afterAll(async () => {
  await db.drop();
  await rm(scratch, { recursive: true, force: true });
});

const definitionsOf = (url: string) => withDatabase(url, readDefinitions);

/** prisma/migrations with one more migration after them, in a folder of its own. */
async function migrationsWith(name: string, sql: string): Promise<string> {
  const dir = path.join(scratch, name);
  await cp(MIGRATIONS_DIR, dir, { recursive: true });
  await mkdir(path.join(dir, `99991231000000_${name}`));
  await writeFile(path.join(dir, `99991231000000_${name}`, 'migration.sql'), sql);
  return dir;
}

/** sql/ with one file's body edited. */
function editing(files: SqlFile[], name: string, edit: (body: string) => string): SqlFile[] {
  const found = files.find((f) => f.name === name);
  if (!found) throw new Error(`no sql/${name}.sql`);
  return files.map((f) => (f === found ? { ...f, body: edit(f.body) } : f));
}

test('a freshly migrated database defines exactly what sql/ holds: every function, the same text, nothing else', async () => {
  const definitions = await definitionsOf(db.url);
  const files = await readSqlFiles();

  expect(disagreements(definitions, files)).toEqual([]);
  expect(new Set(definitions.map((d) => d.name))).toEqual(new Set(files.map((f) => f.name)));
  expect(definitions.map((d) => d.name)).toEqual(expect.arrayContaining(['hold_order', 'admit_order', 'decide_order', 'settle_order', 'order_document', 'reclaim_due_orders']));
});

test('the check fails when a migration and sql/ disagree: a changed body, a function sql/ lacks, one the migrations dropped', async () => {
  const dir = await migrationsWith(
    'disagree',
    [
      'CREATE OR REPLACE FUNCTION order_is_due(o orders) RETURNS BOOLEAN LANGUAGE sql STABLE AS $$ SELECT false $$;',
      'CREATE FUNCTION stray_helper() RETURNS INTEGER LANGUAGE sql AS $$ SELECT 1 $$;',
      'DROP FUNCTION admission_disagreements();',
    ].join('\n'),
  );
  expect(await applyMigrations(db.url, dir)).toEqual(['99991231000000_disagree']);

  expect(disagreements(await definitionsOf(db.url), await readSqlFiles())).toEqual([
    { name: 'admission_disagreements', problem: 'not in the database' },
    { name: 'order_is_due', problem: 'differs from sql/' },
    { name: 'stray_helper', problem: 'not in sql/' },
  ]);
  // A difference of one character counts, headers aside.
  const files = editing(await readSqlFiles(), 'order_document', (body) => body.replace('BEGIN', 'BEGIN '));
  expect(disagreements(await definitionsOf(db.url), files)).toEqual(expect.arrayContaining([{ name: 'order_document', problem: 'differs from sql/' }]));
});

test('an edit of sql/ becomes a migration that reaches it: a new body, a new signature, a new function, one removed', async () => {
  let files = await readSqlFiles();
  files = editing(files, 'order_payment_pending', (body) => body.replace('SELECT o.status', 'SELECT /* edited */ o.status'));
  files = editing(files, 'withdraw_order', (body) => body.replace('withdraw_order(p_order_id uuid)', 'withdraw_order(p_order_id uuid, p_reason text DEFAULT NULL)'));
  files = files.filter((f) => f.name !== 'receipt_disagreements');
  // Created before what it calls, in sql/'s order: the migration must put the callee first.
  files.push(
    { name: 'a_caller', header: '', body: 'CREATE FUNCTION a_caller() RETURNS INTEGER LANGUAGE sql AS $$ SELECT z_callee() $$;\n' },
    { name: 'z_callee', header: '', body: 'CREATE FUNCTION z_callee() RETURNS INTEGER LANGUAGE sql AS $$ SELECT 2 $$;\n' },
  );

  const plan = await planMigration(ADMIN_URL, MIGRATIONS_DIR, files);

  expect(plan.changes.sort()).toEqual([
    'create function a_caller()',
    'create function withdraw_order(p_order_id uuid, p_reason text)',
    'create function z_callee()',
    'drop function receipt_disagreements()',
    'drop function withdraw_order(p_order_id uuid)',
    'replace function order_payment_pending(o orders)',
  ]);
  const dir = await migrationsWith('edited', plan.statements.join('\n\n'));
  const migrated = await createTestDatabase(1);
  try {
    await applyMigrations(migrated.url, dir);
    const definitions = await definitionsOf(migrated.url);
    expect(disagreements(definitions, asFiles(plan.wanted))).toEqual([]);
    expect(definitions.find((d) => d.name === 'order_payment_pending')?.text).toContain('/* edited */');
  } finally {
    await migrated.drop();
  }
});

test('a signature change that an index depends on is refused with why, and nothing is written', async () => {
  const files = editing(await readSqlFiles(), 'order_deadline', (body) =>
    body.replace('RETURNS timestamp with time zone', 'RETURNS timestamp without time zone').replace('p_payment_pending_until)\n$', 'p_payment_pending_until)::timestamp\n$'),
  );

  await expect(planMigration(ADMIN_URL, MIGRATIONS_DIR, files)).rejects.toThrow(/cannot drop function order_deadline.*other objects depend on it.*written by hand/s);
});

test('a migration the tool writes sorts after the newest one, whatever the clock says', () => {
  const existing = ['20261207000000_one_rule', '20261211000000_retention', 'migration_lock.toml'];
  expect(nextPrefix(existing, new Date('2026-12-07T05:30:00Z'))).toBe('20261211000001');
  expect(nextPrefix(existing, new Date('2026-12-12T08:00:00Z'))).toBe('20261212080000');
  expect(nextPrefix(['20261231235959_x'], new Date('2026-01-01T00:00:00Z'))).toBe('20270101000000');
});
