/**
 * Faults in the reclaim, with real worker processes (each runs the reclaim loop, as in
 * production): a worker SIGKILLed while its batch is inside its transaction, PostgreSQL
 * crashing during a batch, and two workers reclaiming at once. The due orders are written
 * straight into the database (no workflows), so only the reclaim can release them, and a
 * product row held by the test stops a batch mid-transaction (it waits for that lock).
 */
import { checkInventory } from '../../src/db/inventory-check';
import { addProduct } from '../support/database';
import { holdOrders } from '../support/due-orders';
import { killInsideItsTransactions } from '../support/fault-checks';
import { useOwnPostgresStack } from '../support/fault-stack';
import { LockHolder } from '../support/lock-holder';
import { eventually, sleep } from '../support/wait';

const SKUS = ['RF-A', 'RF-B', 'RF-C'];

const stack = useOwnPostgresStack('reclaim-faults');

beforeAll(async () => {
  for (const sku of SKUS) await addProduct(stack.prisma, sku, 1_000_000);
});

afterEach(async () => {
  await stack.scenario.stopWorkers();
  expect(await checkInventory(stack.prisma)).toEqual({ ok: true, violations: [] });
});

async function statuses(ids: string[]): Promise<Record<string, number>> {
  const rows = await stack.prisma.$queryRaw<{ status: string; n: number }[]>`
    SELECT status::text AS status, COUNT(*)::int AS n FROM orders WHERE id = ANY(${ids}::uuid[]) GROUP BY status`;
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

async function releaseRows(ids: string[]): Promise<{ orders: number; rows: number }> {
  const [row] = await stack.prisma.$queryRaw<{ orders: number; rows: number }[]>`
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
  const { databaseUrl, prisma, scenario } = stack;
  const ids = await holdOrders(prisma, { count: 600, skus: SKUS, expiresAt: new Date(Date.now() + 3_000) });
  const killed = await scenario.startWorker('killed-reclaimer');
  const locks = await LockHolder.open(databaseUrl);
  try {
    await stopBatchInsideItsTransaction(locks, 'killed-reclaimer', ids);
    // The dead worker's transaction ends with its connection, rolled back by PostgreSQL.
    await killInsideItsTransactions(locks, killed, 'killed-reclaimer');
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
  const { postgres, databaseUrl, prisma, scenario } = stack;
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
  await sleep(3_000);
  await postgres.start();

  await eventually(() => statuses(ids), (s) => s.EXPIRED === ids.length, 60_000);
  expect(await releaseRows(ids)).toEqual({ orders: ids.length, rows: 2 * ids.length });
  expect(worker.alive()).toBe(true);
}, 120_000);

test('two workers reclaiming at once release each of 3,000 due orders exactly once', async () => {
  const { prisma, scenario } = stack;
  await Promise.all([scenario.startWorker('reclaimer-1'), scenario.startWorker('reclaimer-2')]);
  const ids = await holdOrders(prisma, { count: 3_000, skus: SKUS, expiresAt: new Date(Date.now() - 1_000) });

  await eventually(() => statuses(ids), (s) => s.EXPIRED === ids.length, 60_000);
  expect(await releaseRows(ids)).toEqual({ orders: ids.length, rows: 2 * ids.length });
}, 120_000);
