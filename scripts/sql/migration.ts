/**
 * Writes the migration that takes a database from what the migrations define to what sql/
 * says: CREATE OR REPLACE for a changed definition, DROP and CREATE when its arguments or
 * result change (PostgreSQL's CREATE OR REPLACE refuses that), DROP for a file removed,
 * REINDEX for an index whose expression calls a changed function. Checked on a scratch
 * database before anything is written.
 */
import type { Client } from 'pg';
import { asFiles, disagreements, readDefinitions, type Definition, type SqlFile } from './definitions';
import { applyFilesAlone, withMigratedScratch } from './scratch';

export interface MigrationPlan {
  /** The statements, in the order they run; empty when sql/ says what the migrations say. */
  statements: string[];
  /** One line per change, for the developer. */
  changes: string[];
  /** What the database defines once the statements ran: what sql/ will hold. */
  wanted: Definition[];
}

const keyOf = (d: Definition) => `${d.kind} ${d.name}(${d.identity})`;

/** The statements that turn `current` into `wanted`; `order` is the order in which sql/'s files apply. */
export function planStatements(current: Definition[], wanted: Definition[], order: string[]): Omit<MigrationPlan, 'wanted'> {
  const before = new Map(current.map((d) => [keyOf(d), d]));
  const after = new Map(wanted.map((d) => [keyOf(d), d]));
  const drops: Definition[] = [];
  const creates: Definition[] = [];
  const reindex = new Set<string>();
  const changes: string[] = [];
  for (const [key, old] of before) {
    if (!after.has(key)) {
      drops.push(old);
      changes.push(`drop ${key}`);
    }
  }
  for (const [key, next] of after) {
    const old = before.get(key);
    if (!old) {
      creates.push(next);
      changes.push(`create ${key}`);
    } else if (old.text !== next.text) {
      if (next.kind !== 'view' && old.signature !== next.signature) {
        drops.push(old);
        changes.push(`drop and create ${key} (its argument names, defaults or result change)`);
      } else {
        old.indexes.forEach((index) => reindex.add(index));
        changes.push(`replace ${key}`);
      }
      creates.push(next);
    }
  }
  const rank = new Map(order.map((name, i) => [name, i]));
  const position = (d: Definition) => rank.get(d.name) ?? order.length;
  // Views first: a view may use a function dropped here, never the other way round.
  const dropsInOrder = [...drops].sort((a, b) => Number(b.kind === 'view') - Number(a.kind === 'view'));
  const createsInOrder = [...creates].sort((a, b) => position(a) - position(b));
  const statements = [
    ...dropsInOrder.map((d) => d.drop),
    ...createsInOrder.map((d) => d.text.trimEnd()),
    ...[...reindex].sort().map((index) => `REINDEX INDEX ${index};`),
  ];
  return { statements, changes };
}

/**
 * What sql/ changes against the migrations in `migrationsDir`, checked: the statements are
 * run on a database migrated from them, which must then define exactly what sql/ does.
 */
export async function planMigration(serverUrl: string, migrationsDir: string, files: SqlFile[]): Promise<MigrationPlan> {
  const { wanted, order } = await withMigratedScratch(serverUrl, migrationsDir, async (db) => {
    const applied = await applyFilesAlone(db, files);
    return { wanted: await readDefinitions(db), order: applied };
  });
  const plan = await withMigratedScratch(serverUrl, migrationsDir, async (db) => {
    const current = await readDefinitions(db);
    const planned = planStatements(current, wanted, order);
    await runChecked(db, planned.statements);
    const reached = await readDefinitions(db);
    const apart = disagreements(reached, asFiles(wanted));
    if (apart.length > 0) throw new Error(`the migration would not reach sql/ (${apart.map((d) => d.name).join(', ')}); write it by hand`);
    return planned;
  });
  return { ...plan, wanted };
}

async function runChecked(db: Client, statements: string[]): Promise<void> {
  for (const statement of statements) {
    try {
      await db.query(statement);
    } catch (error) {
      const first = statement.split('\n')[0] ?? statement;
      throw new Error(
        `the migration cannot be made from sql/ alone: "${first}" fails on the migrated database: ${(error as Error).message}. ` +
          'A view whose columns change, or a function that an index, a trigger, a default or a view depends on and whose ' +
          'arguments or result change, needs a migration written by hand (drop the dependent, change, recreate it).',
        { cause: error },
      );
    }
  }
}

/** The migration file: what wrote it, then the statements. */
export function migrationText(name: string, plan: Pick<MigrationPlan, 'statements' | 'changes'>): string {
  const summary = plan.changes.map((c) => `--   ${c}`).join('\n');
  return `-- ${name}: written by \`npm run sql:migration\` from sql/, where each function's current text lives.\n${summary}\n\n${plan.statements.join('\n\n')}\n`;
}

/** A migration folder's timestamp: now (UTC), or just after the newest one if that is later, so it applies last. */
export function nextPrefix(existing: string[], now: Date): string {
  const newest = existing.map((name) => name.slice(0, 14)).filter((p) => /^\d{14}$/.test(p)).sort().at(-1);
  const nowPrefix = formatPrefix(now);
  if (newest === undefined || nowPrefix > newest) return nowPrefix;
  const after = new Date(
    Date.UTC(+newest.slice(0, 4), +newest.slice(4, 6) - 1, +newest.slice(6, 8), +newest.slice(8, 10), +newest.slice(10, 12), +newest.slice(12, 14) + 1),
  );
  return formatPrefix(after);
}

function formatPrefix(date: Date): string {
  return date.toISOString().replace(/[-:T]/g, '').slice(0, 14);
}
