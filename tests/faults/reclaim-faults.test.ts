/**
 * Faults in the reclaim, with real worker processes (each runs the reclaim loop, as in
 * production): a worker SIGKILLed while its batch is inside its transaction, PostgreSQL
 * crashing during a batch, and two workers reclaiming at once. The due orders are written
 * straight into the database (no workflows), so only the reclaim can release them, and a
 * product row held by the test stops a batch mid-transaction (it waits for that lock).
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { PrismaClient } from '../../prisma/generated/client';
import { createPrismaClient } from '../../src/db/client';
import { checkInventory } from '../../src/db/inventory-check';
import { applyMigrations } from '../../src/db/migrate';
import { addProduct } from '../support/database';
import { holdOrders } from '../support/due-orders';
import { faultScenario, type FaultScenario } from '../support/fault-scenario';
import { LockHolder } from '../support/lock-holder';
import { startPostgresInstance, type PostgresInstance } from '../support/postgres-instance';
import { eventually, startDevServer } from '../support/stack';

const SKUS = ['RF-A', 'RF-B', 'RF-C'];

let postgres: PostgresInstance;
let env: TestWorkflowEnvironment;
let databaseUrl: string;
let prisma: PrismaClient;
let scenario: FaultScenario;

beforeAll(async () => {
  [postgres, env] = await Promise.all([startPostgresInstance(), startDevServer()]);
  databaseUrl = await postgres.createDatabase('checkout');
  await applyMigrations(databaseUrl);
  prisma = createPrismaClient(databaseUrl, 5);
  scenario = faultScenario({ temporalAddress: env.address, client: env.client, databaseUrl, prisma, customerId: 'reclaim-faults' });
  for (const sku of SKUS) await addProduct(prisma, sku, 1_000_000);
}, 120_000);

afterEach(async () => {
  await scenario?.stopWorkers();
  expect(await checkInventory(prisma)).toEqual({ ok: true, violations: [] });
});

afterAll(async () => {
  await prisma?.$disconnect();
  await env?.teardown();
  await postgres?.destroy();
});

async function statuses(ids: string[]): Promise<Record<string, number>> {
  const rows = await prisma.$queryRaw<{ status: string; n: number }[]>`
    SELECT status::text AS status, COUNT(*)::int AS n FROM orders WHERE id = ANY(${ids}::uuid[]) GROUP BY status`;
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

async function releaseRows(ids: string[]): Promise<{ orders: number; rows: number }> {
  const [row] = await prisma.$queryRaw<{ orders: number; rows: number }[]>`
    SELECT COUNT(DISTINCT order_id)::int AS orders, COUNT(*)::int AS rows
      FROM stock_movements WHERE kind = 'RELEASE' AND order_id = ANY(${ids}::uuid[])`;
  return row ?? { orders: 0, rows: 0 };
}

/** Holds a product row, then waits until `worker`'s reclaim batch is stuck behind it. */
async function stopBatchInsideItsTransaction(locks: LockHolder, worker: string, ids: string[]): Promise<void> {
  for (const sku of SKUS) await locks.lockProduct(sku);
  await eventually(() => locks.backendsOf(worker, 'waiting-for-lock'), (n) => n >= 1, 30_000);
  // The batch has claimed its orders (their rows are locked) but changed nothing yet that others see.
  expect(await statuses(ids)).toEqual({ AWAITING_PAYMENT: ids.length });
}

test('a worker SIGKILLed inside a reclaim batch: the batch rolls back whole, and another worker releases every order once', async () => {
  const ids = await holdOrders(prisma, { count: 600, skus: SKUS, expiresAt: new Date(Date.now() + 3_000) });
  const killed = await scenario.startWorker('killed-reclaimer');
  const locks = await LockHolder.open(databaseUrl);
  try {
    await stopBatchInsideItsTransaction(locks, 'killed-reclaimer', ids);
    await killed.kill();
    await locks.release();
    // The dead worker's transaction ends with its connection, rolled back by PostgreSQL.
    await eventually(() => locks.backendsOf('killed-reclaimer'), (n) => n === 0, 30_000);
  } finally {
    await locks.close();
  }
  expect(await statuses(ids)).toEqual({ AWAITING_PAYMENT: ids.length });
  expect(await releaseRows(ids)).toEqual({ orders: 0, rows: 0 });

  await scenario.startWorker('next-reclaimer');

  await eventually(() => statuses(ids), (s) => s.EXPIRED === ids.length, 60_000);
  expect(await releaseRows(ids)).toEqual({ orders: ids.length, rows: 2 * ids.length });
}, 120_000);

test('PostgreSQL crashing during a reclaim batch: the worker rides it out and releases every order once when the database is back', async () => {
  const ids = await holdOrders(prisma, { count: 600, skus: SKUS, expiresAt: new Date(Date.now() + 3_000) });
  const worker = await scenario.startWorker('crash-reclaimer');
  const locks = await LockHolder.open(databaseUrl);
  try {
    await stopBatchInsideItsTransaction(locks, 'crash-reclaimer', ids);
    await postgres.crash();
  } finally {
    await locks.close().catch(() => undefined);
  }
  // Several reclaim ticks fail against the dead database.
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  await postgres.start();

  await eventually(() => statuses(ids), (s) => s.EXPIRED === ids.length, 60_000);
  expect(await releaseRows(ids)).toEqual({ orders: ids.length, rows: 2 * ids.length });
  expect(worker.alive()).toBe(true);
}, 120_000);

test('two workers reclaiming at once release each of 3,000 due orders exactly once', async () => {
  await Promise.all([scenario.startWorker('reclaimer-1'), scenario.startWorker('reclaimer-2')]);
  const ids = await holdOrders(prisma, { count: 3_000, skus: SKUS, expiresAt: new Date(Date.now() - 1_000) });

  await eventually(() => statuses(ids), (s) => s.EXPIRED === ids.length, 60_000);
  expect(await releaseRows(ids)).toEqual({ orders: ids.length, rows: 2 * ids.length });
}, 120_000);
