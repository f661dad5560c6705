/** `npm run migrate`: creates the database if missing and applies pending migrations (no Prisma engine needed). */
import { applyMigrations, ensureDatabase } from '../src/db/migrate';
import { loadDatabaseConfig } from '../src/config';

async function main(): Promise<void> {
  const { databaseUrl } = loadDatabaseConfig();
  await ensureDatabase(databaseUrl);
  const applied = await applyMigrations(databaseUrl);
  console.log(applied.length ? `applied ${applied.join(', ')}` : 'database is up to date');
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
