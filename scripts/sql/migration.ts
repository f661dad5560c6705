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
  /** The statements, in an order in which they run; empty when sql/ says what the migrations say. */
  statements: string[];
  /** One line per change, for the developer. */
  changes: string[];
  /** What the database defines once the statements ran: what sql/ will hold. */
  wanted: Definition[];
}

const keyOf = (d: Definition) => `${d.kind} ${d.name}(${d.identity})`;

/** What turns `current` into `wanted`: drops, then creates (in no particular order yet), then reindexes. */
export function planChanges(current: Definition[], wanted: Definition[]): Steps & { changes: string[] } {
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
  // Views first: a view may use a function dropped here, never the other way round.
  drops.sort((a, b) => Number(b.kind === 'view') - Number(a.kind === 'view'));
  return {
    drops: drops.map((d) => d.drop),
    creates: creates.map((d) => d.text.trimEnd()),
    reindexes: [...reindex].sort().map((index) => `REINDEX INDEX ${index};`),
    changes,
  };
}

interface Steps {
  drops: string[];
  creates: string[];
  reindexes: string[];
}

/**
 * What sql/ changes against the migrations in `migrationsDir`, checked: the statements are
 * run on a database migrated from them, which must then define exactly what sql/ does.
 */
export async function planMigration(serverUrl: string, migrationsDir: string, files: SqlFile[]): Promise<MigrationPlan> {
  const wanted = await withMigratedScratch(serverUrl, migrationsDir, async (db) => {
    await applyFilesAlone(db, files);
    return readDefinitions(db);
  });
  return withMigratedScratch(serverUrl, migrationsDir, async (db) => {
    const { changes, ...steps } = planChanges(await readDefinitions(db), wanted);
    const statements = await runChecked(db, steps);
    const apart = disagreements(await readDefinitions(db), asFiles(wanted));
    if (apart.length > 0) throw new Error(`the migration would not reach sql/ (${apart.map((d) => d.name).join(', ')}); write it by hand`);
    return { statements, changes, wanted };
  });
}

/**
 * Runs the steps on the migrated database as the migration will, with its bodies checked.
 * A LANGUAGE sql function is checked when it is created, so it must come after what it calls:
 * creates that fail are tried again after the others, and the order that worked is returned.
 */
async function runChecked(db: Client, steps: Steps): Promise<string[]> {
  const run = async (statement: string) => {
    try {
      await db.query(statement);
      return undefined;
    } catch (error) {
      return `"${statement.split('\n')[0] ?? statement}": ${(error as Error).message}`;
    }
  };
  const ran: string[] = [];
  for (const statement of steps.drops) {
    const failure = await run(statement);
    if (failure) throw refusal([failure]);
    ran.push(statement);
  }
  let pending = steps.creates;
  while (pending.length > 0) {
    const failed: { statement: string; failure: string }[] = [];
    for (const statement of pending) {
      const failure = await run(statement);
      if (failure) failed.push({ statement, failure });
      else ran.push(statement);
    }
    if (failed.length === pending.length) throw refusal(failed.map((f) => f.failure));
    pending = failed.map((f) => f.statement);
  }
  for (const statement of steps.reindexes) {
    const failure = await run(statement);
    if (failure) throw refusal([failure]);
    ran.push(statement);
  }
  return ran;
}

function refusal(failures: string[]): Error {
  return new Error(
    `no migration written: on a database the migrations built, ${failures.join('; ')}. ` +
      'A view whose columns change, or a function whose arguments or result change while an index, a trigger, ' +
      'a default or a view depends on it, needs a migration written by hand (drop the dependent, change, recreate it).',
  );
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
