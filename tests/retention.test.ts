/**
 * Retention against real PostgreSQL: closed orders past the retention period are pruned with
 * everything that hangs off them, their ledger rows' sums carried into the per-sku opening
 * balance, so conservation and the inventory check hold after pruning, also while holds,
 * payments, cancels and expiries race the pruners; a prune never holds a lock a hold or a payment
 * waits on; finished deliveries go after their own period, undelivered events never.
 */
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { Client } from 'pg';
import { createActivities } from '../activities';
import { createLocalPaymentProvider } from '../activities/payment-provider';
import { reclaimDueOrders } from '../src/reclaim';
import { PRUNED_TABLES, pruneClosedOrders, pruneFinishedDeliveries, type PrunedRows } from '../src/db/retention';
import type { RequestedItem } from '../activities/types';
import { DEFAULTS } from '../src/config';
import { checkInventory } from '../src/db/inventory-check';
import { catchUpLedgerCheckpoint } from '../src/db/ledger-checkpoint';
import { createWorkerMetrics } from '../src/metrics';
import { startReclaimLoop } from '../src/reclaim';
import { startRetentionLoop } from '../src/retention';
import { addProduct, createTestDatabase, stockOf, type TestDatabase } from './support/database';
import { holdOrders, recordReceipt } from './support/due-orders';
import { eventually, sleep } from './support/wait';

const SKUS = ['KEEP-A', 'KEEP-B', 'KEEP-C'];
const STOCK = 1_000_000;
const PRICE_CENTS = 1000;
const DAY = 86_400;
const RETENTION_SECONDS = DEFAULTS.retentionDays * DAY;
const NEVER_ANSWERS = 'http://127.0.0.1:9/order-events';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase(30);
  for (const sku of SKUS) await addProduct(db.prisma, sku, STOCK, PRICE_CENTS);
});

afterAll(async () => {
  await db?.drop();
});

afterEach(async () => {
  expect(await checkInventory(db.prisma)).toEqual({ ok: true, violations: [] });
  expect(await checkInventory(db.prisma, DEFAULTS.reclaimBoundSeconds, { full: true })).toEqual({ ok: true, violations: [] });
});

const activitiesFor = (eventEndpoints: string[] = []) =>
  createActivities({ prisma: db.prisma, payments: createLocalPaymentProvider(), maxPaymentWindowSeconds: DEFAULTS.maxPaymentWindowSeconds, eventEndpoints });
/** Each activity call in an activity context of its own, as the worker runs it. */
const run = { run: <P extends unknown[], R>(fn: (...args: P) => Promise<R>, ...args: P): Promise<R> => new MockActivityEnvironment().run(fn, ...args) };

/** Holds one order through the hold activity; its deadline `windowMs` from now. */
async function hold(items: RequestedItem[], windowMs: number, eventEndpoints: string[] = []): Promise<{ orderId: string; totalCents: number }> {
  const orderId = randomUUID();
  const now = Date.now();
  const held = await run.run(activitiesFor(eventEndpoints).reserveStock, {
    orderId,
    customerId: `retention-${orderId.slice(0, 8)}`,
    items,
    createdAt: new Date(now).toISOString(),
    expiresAt: new Date(now + windowMs).toISOString(),
    currency: 'eur',
  });
  return { orderId, totalCents: held.totalCents };
}

async function pay(orderId: string, totalCents: number): Promise<string> {
  const paymentId = `pay-${orderId}`;
  await recordReceipt(db.prisma, { paymentId, orderId, succeededAt: new Date(), amountCents: totalCents });
  const answer = await run.run(activitiesFor().commitStock, { orderId, paymentId });
  return answer.order?.status ?? answer.payment;
}

async function cancel(orderId: string): Promise<string> {
  const answer = await run.run(activitiesFor().releaseStock, { orderId, reason: 'CANCELLED' });
  return answer.status;
}

/** Test setup only: moves the orders' closedAt back, as if they had closed `days` ago. */
async function closedDaysAgo(orderIds: string[], days: number): Promise<void> {
  await db.prisma.$executeRaw`UPDATE orders SET closed_at = now() - make_interval(days => ${days}::int) WHERE id = ANY(${orderIds}::uuid[])`;
}

/** Rows that name one of the orders, per table (order_event_deliveries by their events' order). */
async function rowsOf(orderIds: string[]): Promise<Record<string, number>> {
  const [row] = await db.prisma.$queryRaw<Record<string, bigint>[]>`
    SELECT (SELECT count(*) FROM orders WHERE id = ANY(${orderIds}::uuid[])) AS orders,
           (SELECT count(*) FROM order_items WHERE order_id = ANY(${orderIds}::uuid[])) AS order_items,
           (SELECT count(*) FROM stock_movements WHERE order_id = ANY(${orderIds}::uuid[])) AS stock_movements,
           (SELECT count(*) FROM payments WHERE order_id = ANY(${orderIds}::uuid[])) AS payments,
           (SELECT count(*) FROM refunds WHERE order_id = ANY(${orderIds}::uuid[])) AS refunds,
           (SELECT count(*) FROM payment_receipts WHERE order_id = ANY(${orderIds}::uuid[])) AS payment_receipts,
           (SELECT count(*) FROM order_extensions WHERE order_id = ANY(${orderIds}::uuid[])) AS order_extensions,
           (SELECT count(*) FROM order_events WHERE order_id = ANY(${orderIds}::uuid[])) AS order_events,
           (SELECT count(*) FROM order_event_deliveries WHERE order_id = ANY(${orderIds}::uuid[])) AS order_event_deliveries`;
  return Object.fromEntries(Object.entries(row ?? {}).map(([table, n]) => [table, Number(n)]));
}

/** The whole ledger per sku and kind: the rows kept plus the opening balances of those pruned. */
async function ledgerTotals(): Promise<Record<string, number>> {
  const rows = await db.prisma.$queryRaw<{ key: string; quantity: bigint }[]>`
    SELECT sku || ':' || kind AS key, SUM(quantity)::bigint AS quantity FROM (
      SELECT sku, kind::text AS kind, quantity::bigint AS quantity FROM stock_movements
      UNION ALL SELECT sku, kind::text, quantity FROM stock_opening_balances) l
     GROUP BY 1 ORDER BY 1`;
  return Object.fromEntries(rows.map((r) => [r.key, Number(r.quantity)]));
}

async function drainPrune(retentionSeconds: number, batchSize: number): Promise<Required<PrunedRows>> {
  // Only ledger rows the checkpoint counts are pruned: brought up to now, as a worker's loop keeps it.
  await catchUpLedgerCheckpoint(db.prisma);
  const total = Object.fromEntries(PRUNED_TABLES.map((t) => [t, 0])) as Required<PrunedRows>;
  for (;;) {
    const pruned = await pruneClosedOrders(db.prisma, retentionSeconds, batchSize);
    for (const [table, n] of Object.entries(pruned)) total[table as keyof PrunedRows] += n;
    if ((pruned.orders ?? 0) === 0) return total;
  }
}

const counters = () => Promise.all(SKUS.map((sku) => stockOf(db.prisma, sku)));
const oneOfEach = (i: number): RequestedItem[] => [
  { sku: SKUS[i % SKUS.length] as string, quantity: 1 + (i % 2) },
  { sku: SKUS[(i + 1) % SKUS.length] as string, quantity: 1 },
];

test('closed orders past the retention period go with all their rows; their ledger moves into the opening balance, so the counters, the ledger totals and the inventory check are as before', async () => {
  // Orders closed every way there is: paid, cancelled, expired by the reclaim, rejected, and a late payment refunded.
  const paid = await Promise.all([0, 1, 2, 3].map(async (i) => {
    const order = await hold(oneOfEach(i), 600_000);
    expect(await pay(order.orderId, order.totalCents)).toBe('PAID');
    return order.orderId;
  }));
  const cancelled = await Promise.all([4, 5].map(async (i) => {
    const order = await hold(oneOfEach(i), 600_000);
    expect(await cancel(order.orderId)).toBe('CANCELLED');
    return order.orderId;
  }));
  const expired = await holdOrders(db.prisma, { count: 5, skus: SKUS, expiresAt: new Date(Date.now() - 1000) });
  while ((await reclaimDueOrders(db.prisma, 100)).released > 0);
  const rejected = randomUUID();
  await expect(run.run(activitiesFor().reserveStock, {
    orderId: rejected, customerId: 'retention-rejected', items: [{ sku: 'KEEP-A', quantity: STOCK + 1 }],
    createdAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 600_000).toISOString(), currency: 'eur',
  })).rejects.toThrow();
  const refundedLate = cancelled[0] as string;
  await recordReceipt(db.prisma, { paymentId: `late-${refundedLate}`, orderId: refundedLate, succeededAt: new Date(), amountCents: 1 });
  await run.run(activitiesFor().refundPayment, { orderId: refundedLate, paymentId: `late-${refundedLate}`, reason: 'ORDER_CANCELLED' });
  const old = [...paid, ...cancelled, ...expired, rejected];
  await closedDaysAgo(old, DEFAULTS.retentionDays + 1);
  // Kept: closed within the period, and open.
  const recent = await hold(oneOfEach(7), 600_000);
  await cancel(recent.orderId);
  const open = await hold(oneOfEach(8), 600_000);
  const kept = [recent.orderId, open.orderId];
  const before = { counters: await counters(), ledger: await ledgerTotals(), kept: await rowsOf(kept), old: await rowsOf(old) };

  const pruned = await drainPrune(RETENTION_SECONDS, 3);

  expect(before.old.refunds).toBe(1);
  expect(pruned).toEqual(before.old);
  expect(await rowsOf(old)).toEqual(Object.fromEntries(PRUNED_TABLES.map((t) => [t, 0])));
  expect(await rowsOf(kept)).toEqual(before.kept);
  expect(await counters()).toEqual(before.counters);
  expect(await ledgerTotals()).toEqual(before.ledger);
  const [balance] = await db.prisma.$queryRaw<{ movements: bigint }[]>`SELECT COALESCE(SUM(movements), 0)::bigint AS movements FROM stock_opening_balances`;
  expect(Number(balance?.movements)).toBe(before.old.stock_movements);
  // A second pass finds nothing more to prune.
  expect(await pruneClosedOrders(db.prisma, RETENTION_SECONDS, 100)).toEqual({});
  await cancel(open.orderId);
});

test('an order with an event not yet delivered is kept until the delivery succeeds or is given up; finished deliveries go after EVENT_RETENTION_DAYS, pending ones never', async () => {
  const undelivered = await hold(oneOfEach(0), 600_000, [NEVER_ANSWERS]);
  const delivered = await hold(oneOfEach(1), 600_000, [NEVER_ANSWERS]);
  for (const { orderId } of [undelivered, delivered]) {
    await run.run(activitiesFor([NEVER_ANSWERS]).releaseStock, { orderId, reason: 'CANCELLED' });
  }
  await closedDaysAgo([undelivered.orderId, delivered.orderId], DEFAULTS.retentionDays + 1);
  await db.prisma.$executeRaw`
    UPDATE order_event_deliveries SET state = 'DELIVERED', delivered_at = now() - interval '40 days'
     WHERE order_id = ${delivered.orderId}::uuid`;
  // A kept order's deliveries: one finished 40 days ago, one a day ago, one still pending.
  const kept = await hold(oneOfEach(2), 600_000, [NEVER_ANSWERS]);
  await db.prisma.$executeRaw`
    UPDATE order_event_deliveries SET state = 'FAILED', last_attempt_at = now() - interval '40 days', attempts = 9
     WHERE order_id = ${kept.orderId}::uuid`;
  const keptRecent = await hold(oneOfEach(3), 600_000, [NEVER_ANSWERS]);
  await db.prisma.$executeRaw`
    UPDATE order_event_deliveries SET state = 'DELIVERED', delivered_at = now() - interval '1 day'
     WHERE order_id = ${keptRecent.orderId}::uuid`;

  await drainPrune(RETENTION_SECONDS, 10);
  const finishedGone = await pruneFinishedDeliveries(db.prisma, DEFAULTS.eventRetentionDays * DAY, 10);

  expect((await rowsOf([delivered.orderId])).orders).toBe(0);
  expect(await rowsOf([undelivered.orderId])).toMatchObject({ orders: 1, order_events: 2, order_event_deliveries: 2 });
  expect(finishedGone).toBe(1);
  expect(await rowsOf([kept.orderId])).toMatchObject({ orders: 1, order_events: 1, order_event_deliveries: 0 });
  expect(await rowsOf([keptRecent.orderId])).toMatchObject({ order_events: 1, order_event_deliveries: 1 });

  // Given up at last: then it goes.
  await db.prisma.$executeRaw`
    UPDATE order_event_deliveries SET state = 'FAILED', last_attempt_at = now() WHERE order_id = ${undelivered.orderId}::uuid`;
  await drainPrune(RETENTION_SECONDS, 10);
  expect((await rowsOf([undelivered.orderId])).orders).toBe(0);
  for (const { orderId } of [kept, keptRecent]) await cancel(orderId);
});

test('a prune batch in flight holds no lock a hold or a payment of the same products waits on, and skips an old order a late payment has locked', async () => {
  const old = await Promise.all([0, 1, 2].map(async (i) => {
    const order = await hold(oneOfEach(i), 600_000);
    await cancel(order.orderId);
    return order.orderId;
  }));
  await closedDaysAgo(old, DEFAULTS.retentionDays + 1);
  const toPay = await hold(oneOfEach(0), 600_000);
  const lockedByLatePayment = old[0] as string;
  await catchUpLedgerCheckpoint(db.prisma);
  const latePayment = new Client({ connectionString: db.url });
  const pruner = new Client({ connectionString: db.url });
  await Promise.all([latePayment.connect(), pruner.connect()]);
  try {
    // A receipt for the old order being written: its row locked FOR SHARE, as recordReceipt locks it.
    await latePayment.query('BEGIN');
    await latePayment.query('SELECT 1 FROM orders WHERE id = $1 FOR SHARE', [lockedByLatePayment]);
    // The prune batch, left open (not committed) while the others act.
    await pruner.query('BEGIN');
    const { rows } = await pruner.query<{ table_name: string; deleted: string }>(
      'SELECT table_name, deleted FROM prune_closed_orders($1, 100)', [RETENTION_SECONDS]);

    // Both lock the same products the pruned orders' lines and ledger rows named; neither waits.
    const held = await hold(oneOfEach(1), 600_000);
    const paidStatus = await pay(toPay.orderId, toPay.totalCents);

    await pruner.query('COMMIT');
    await latePayment.query('COMMIT');
    expect(rows.find((r) => r.table_name === 'orders')?.deleted).toBe('2');
    expect(paidStatus).toBe('PAID');
    expect(await rowsOf([lockedByLatePayment])).toMatchObject({ orders: 1 });
    expect((await rowsOf(old)).orders).toBe(1);
    // Unlocked again, it goes with the next batch.
    await drainPrune(RETENTION_SECONDS, 10);
    expect((await rowsOf(old)).orders).toBe(0);
    await cancel(held.orderId);
  } finally {
    await Promise.all([latePayment.end(), pruner.end()]);
  }
});

test('pruning at once while orders race (holds, payments, cancels, expiries, two pruners, retention zero): no stock lost or duplicated, each ledger row carried once', async () => {
  const before = await counters();
  const soldBefore = before.reduce((s, c) => s + c.sold, 0);
  const balanceBefore = await ledgerTotals();
  let soldHere = 0;
  const outcomes = { PAID: 0, CANCELLED: 0, EXPIRED: 0 };
  const reclaim = startReclaimLoop({ prisma: db.prisma, config: { enabled: true, intervalMs: 50, batchSize: 20, boundSeconds: 10 } });
  const prunerConfig = { retentionSeconds: 0, eventRetentionSeconds: 0, batchSize: 4, intervalMs: 100 };
  const pruners = [startRetentionLoop({ prisma: db.prisma, config: prunerConfig }), startRetentionLoop({ prisma: db.prisma, config: prunerConfig })];
  const placed: string[] = [];
  try {
    const buyer = async (k: number) => {
      for (let i = 0; i < 30; i++) {
        const items = oneOfEach(k + i);
        const fate = (k + i) % 3;
        // Those left to expire fall due within a second; the others are paid or cancelled well before their deadline.
        const order = await hold(items, fate === 2 ? 300 + ((k * 97 + i * 31) % 700) : 600_000);
        placed.push(order.orderId);
        if (fate === 0) {
          expect(await pay(order.orderId, order.totalCents)).toBe('PAID');
          soldHere += items.reduce((s, item) => s + item.quantity, 0);
          outcomes.PAID++;
        } else if (fate === 1) {
          expect(await cancel(order.orderId)).toBe('CANCELLED');
          outcomes.CANCELLED++;
        } else {
          outcomes.EXPIRED++;
        }
      }
    };
    await Promise.all(Array.from({ length: 6 }, (_, k) => buyer(k)));
    // Every order expires or has closed; the pruners then take them all.
    await eventually(() => rowsOf(placed), (rows) => rows.orders === 0, 60_000);
  } finally {
    await Promise.all([reclaim.stop(), ...pruners.map((p) => p.stop())]);
  }

  const after = await counters();
  expect(outcomes.PAID + outcomes.CANCELLED + outcomes.EXPIRED).toBe(180);
  expect(after.map((c) => c.available + c.reserved + c.sold)).toEqual(before.map((c) => c.available + c.reserved + c.sold));
  expect(after.map((c) => c.reserved)).toEqual(before.map((c) => c.reserved));
  expect(after.reduce((s, c) => s + c.sold, 0) - soldBefore).toBe(soldHere);
  expect(await rowsOf(placed)).toEqual(Object.fromEntries(PRUNED_TABLES.map((t) => [t, 0])));
  // The ledger's COMMITs (kept and carried) grew by exactly the units sold here, once.
  const balance = await ledgerTotals();
  const commits = (totals: Record<string, number>) => SKUS.reduce((s, sku) => s + (totals[`${sku}:COMMIT`] ?? 0), 0);
  expect(commits(balance) - commits(balanceBefore)).toBe(soldHere);
}, 120_000);

test('the loop counts the rows it pruned by table and reports the age of the oldest row it will prune', async () => {
  const old = await Promise.all([0, 1].map(async (i) => {
    const order = await hold(oneOfEach(i), 600_000);
    await cancel(order.orderId);
    return order.orderId;
  }));
  await closedDaysAgo(old, DEFAULTS.retentionDays + 1);
  const recent = await hold(oneOfEach(2), 600_000);
  await cancel(recent.orderId);
  await closedDaysAgo([recent.orderId], 10);
  // As a worker that has been running keeps it, so the loop's first tick prunes (and reads the gauge after).
  await catchUpLedgerCheckpoint(db.prisma);
  const metrics = createWorkerMetrics();
  const loop = startRetentionLoop({
    prisma: db.prisma,
    metrics,
    config: { retentionSeconds: RETENTION_SECONDS, eventRetentionSeconds: DEFAULTS.eventRetentionDays * DAY, batchSize: 100, intervalMs: 100 },
  });
  try {
    await eventually(() => rowsOf(old), (rows) => rows.orders === 0);
    await sleep(200);
  } finally {
    await loop.stop();
  }

  const pruned = Object.fromEntries((await metrics.retentionPrunedRows.get()).values.map((v) => [v.labels.table, v.value]));
  expect(pruned).toMatchObject({ orders: 2, order_items: 4, stock_movements: 8, order_events: 4 });
  const ages = Object.fromEntries((await metrics.retentionOldestRowAge.get()).values.map((v) => [v.labels.table, v.value]));
  // The oldest closed order left is the recent one, closed ten days ago.
  expect(Math.round((ages.orders ?? 0) / DAY)).toBe(10);
  expect(Number.isFinite(ages.order_event_deliveries)).toBe(true);
});
