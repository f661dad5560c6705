/** Each test file gets its own freshly migrated database, dropped at the end. */
import { randomBytes } from 'node:crypto';
import type { Client } from 'pg';
import { putProduct } from '../../activities/inventory';
import type { PrismaClient } from '../../prisma/generated/client';
import { createPrismaClient } from '../../src/db/client';
import { applyMigrations } from '../../src/db/migrate';
import { withDatabase } from '../../scripts/processes';

export const ADMIN_URL = process.env.TEST_DATABASE_ADMIN_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  name: string;
  url: string;
  prisma: PrismaClient;
  drop(): Promise<void>;
}

function admin<T>(fn: (client: Client) => Promise<T>): Promise<T> {
  return withDatabase(ADMIN_URL, fn);
}

/** `icuLocale`: create the database with that ICU collation (e.g. 'en-US') instead of the cluster's default. */
export async function createTestDatabase(poolSize = 20, options: { icuLocale?: string } = {}): Promise<TestDatabase> {
  const name = `checkout_test_${randomBytes(6).toString('hex')}`;
  const { icuLocale } = options;
  // Interpolated into DDL (no parameters there): only a plain locale name gets through.
  if (icuLocale !== undefined && !/^[A-Za-z0-9_-]+$/.test(icuLocale)) throw new Error(`invalid ICU locale ${JSON.stringify(icuLocale)}`);
  const collation = icuLocale === undefined ? '' : ` LOCALE_PROVIDER icu ICU_LOCALE '${icuLocale}' TEMPLATE template0`;
  await admin((c) => c.query(`CREATE DATABASE "${name}"${collation}`));
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  await applyMigrations(url.toString());
  const prisma = createPrismaClient(url.toString(), poolSize);
  return {
    name,
    url: url.toString(),
    prisma,
    async drop() {
      await prisma.$disconnect();
      await admin((c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
    },
  };
}

export async function addProduct(prisma: PrismaClient, sku: string, available: number, priceCents = 1000): Promise<void> {
  await putProduct(prisma, { sku, name: `Product ${sku}`, priceCents, available });
}

export async function stockOf(prisma: PrismaClient, sku: string): Promise<{ available: number; reserved: number; sold: number }> {
  const { available, reserved, sold } = await prisma.product.findUniqueOrThrow({ where: { sku } });
  return { available, reserved, sold };
}

/**
 * Sessions of the process whose connections are named `applicationName` that sit inside a
 * transaction, waiting on their client, for over a second: what a transaction held open across a
 * network call looks like. (A worker's loops run short transactions of a few statements; under
 * load one is often caught between two of them, which is not that.)
 */
export async function idleInTransaction(prisma: PrismaClient, applicationName: string): Promise<number> {
  const [row] = await prisma.$queryRaw<{ count: number }[]>`
    SELECT count(*)::int AS count FROM pg_stat_activity
     WHERE datname = current_database() AND application_name = ${applicationName} AND state LIKE 'idle in transaction%'
       AND state_change < now() - interval '1 second'`;
  return row?.count ?? 0;
}
