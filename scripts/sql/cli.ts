/**
 * `npm run sql:dump`, `npm run sql:check`, `npm run sql:migration -- <name>`: sql/ holds the
 * current text of every function and view the migrations define (docs/development.md,
 * "Changing a SQL function"). Each works on scratch databases of its own on the server of
 * DATABASE_URL, dropped afterwards.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadDatabaseConfig } from '../../src/config';
import { MIGRATIONS_DIR, readMigrations } from '../../src/db/migrate';
import { disagreements, readSqlFiles, SQL_DIR } from './definitions';
import { writeSqlFiles } from './dump';
import { migrationText, nextPrefix, planMigration } from './migration';
import { definitionsOfMigrations } from './scratch';

const USAGE = `usage:
  npm run sql:dump                         write sql/ from a database the migrations built
  npm run sql:check                        say where sql/ and the migrations disagree (exit 1 if they do)
  npm run sql:migration -- <name> [--prefix YYYYMMDDHHMMSS]
                                           write prisma/migrations/<prefix>_<name>/ from what sql/ changes`;

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args: argv, allowPositionals: true, options: { prefix: { type: 'string' } } });
  const [command, name] = positionals;
  const { databaseUrl } = loadDatabaseConfig();
  switch (command) {
    case 'dump': {
      const definitions = await definitionsOfMigrations(databaseUrl);
      const { written, removed } = await writeSqlFiles(SQL_DIR, definitions, await readMigrations());
      console.log(`sql/: ${definitions.length} definitions; written ${list(written)}; removed ${list(removed)}`);
      return 0;
    }
    case 'check': {
      const found = disagreements(await definitionsOfMigrations(databaseUrl), await readSqlFiles());
      for (const { name: of, problem } of found) console.log(`${of}: ${problem}`);
      console.log(found.length === 0 ? 'sql/ matches the migrations' : 'run `npm run sql:migration -- <name>` (sql/ is newer) or `npm run sql:dump` (the migrations are)');
      return found.length === 0 ? 0 : 1;
    }
    case 'migration':
      return writeMigration(databaseUrl, name, values.prefix);
    default:
      console.error(USAGE);
      return 2;
  }
}

async function writeMigration(databaseUrl: string, name: string | undefined, prefix: string | undefined): Promise<number> {
  if (name === undefined || !/^[a-z0-9_]+$/.test(name) || (prefix !== undefined && !/^\d{14}$/.test(prefix))) {
    console.error(USAGE);
    return 2;
  }
  const plan = await planMigration(databaseUrl, MIGRATIONS_DIR, await readSqlFiles());
  if (plan.statements.length === 0) {
    console.log('sql/ says what the migrations say: no migration written');
    return 0;
  }
  const folder = `${prefix ?? nextPrefix(await readdir(MIGRATIONS_DIR), new Date())}_${name}`;
  await mkdir(path.join(MIGRATIONS_DIR, folder));
  await writeFile(path.join(MIGRATIONS_DIR, folder, 'migration.sql'), migrationText(folder, plan));
  // The files as PostgreSQL prints them, so that sql:check finds them equal to the migrations.
  await writeSqlFiles(SQL_DIR, plan.wanted, await readMigrations());
  console.log(`wrote prisma/migrations/${folder}/migration.sql:\n${plan.changes.map((c) => `  ${c}`).join('\n')}`);
  return 0;
}

function list(names: string[]): string {
  return names.length === 0 ? 'none' : names.join(', ');
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
