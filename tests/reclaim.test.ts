/**
 * The reclaim against real PostgreSQL: due orders released in batches, once each, however many
 * reclaims and commits run at once; never an order whose payment succeeded by its deadline, nor
 * one whose receipt is being written (row locked FOR SHARE) as the deadline passes.
 */
import { DEFAULTS } from '../src/config';
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../activities';
import { createLocalPaymentProvider } from '../activities/payment-provider';
import { reclaimDueOrders } from '../src/reclaim';
import type { CommitAnswer } from '../activities/types';
import { checkInventory } from '../src/db/inventory-check';
import { createPrismaClient } from '../src/db/client';
import { createWorkerMetrics } from '../src/metrics';
import { startReclaimLoop } from '../src/reclaim';
import { addProduct, createTestDatabase, stockOf, type TestDatabase } from './support/database';
import { holdOrders, recordReceipt } from './support/due-orders';
import { eventually, sleep } from './support/wait';

const SKUS = ['RECLAIM-A', 'RECLAIM-B', 'RECLAIM-C'];
const STOCK = 100_000;

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase(30);
  for (const sku of SKUS) await addProduct(db.prisma, sku, STOCK);
});

afterAll(async () => {
  await db?.drop();
});

afterEach(async () => {
  expect(await checkInventory(db.prisma)).toEqual({ ok: true, violations: [] });
});

const secondsAgo = (s: number) => new Date(Date.now() - s * 1000);

async function statusOf(ids: string[]): Promise<Map<string, string>> {
  const rows = await db.prisma.order.findMany({ where: { id: { in: ids } }, select: { id: true, status: true } });
  return new Map(rows.map((r) => [r.id, r.status]));
}

async function releasesPerOrder(ids: string[]): Promise<number[]> {
  const rows = await db.prisma.$queryRaw<{ n: number }[]>`
    SELECT COUNT(m.id)::int AS n FROM unnest(${ids}::uuid[]) AS o(id)
      LEFT JOIN stock_movements m ON m.order_id = o.id AND m.kind = 'RELEASE'
     GROUP BY o.id`;
  return rows.map((r) => r.n);
}

async function drain(batchSize: number, prisma = db.prisma): Promise<number> {
  let released = 0;
  for (;;) {
    const batch = await reclaimDueOrders(prisma, batchSize);
    released += batch.released;
    if (batch.released === 0) return released;
  }
}

test('a batch settles the orders past their deadline, oldest first: paid in time ends PAID, every other due one EXPIRED; those not due are left alone', async () => {
  const [due] = [await holdOrders(db.prisma, { count: 30, skus: SKUS, expiresAt: secondsAgo(5) })];
  const notDue = await holdOrders(db.prisma, { count: 5, skus: SKUS, expiresAt: new Date(Date.now() + 600_000) });
  const [paidInTime, paidLate] = await holdOrders(db.prisma, { count: 2, skus: SKUS, expiresAt: secondsAgo(10) });
  if (!due || !paidInTime || !paidLate) throw new Error('orders not held');
  await recordReceipt(db.prisma, { paymentId: `pay-${randomUUID()}`, orderId: paidInTime, succeededAt: secondsAgo(11) });
  await recordReceipt(db.prisma, { paymentId: `pay-${randomUUID()}`, orderId: paidLate, succeededAt: secondsAgo(1) });

  const first = await reclaimDueOrders(db.prisma, 10);
  // The oldest due order (paidLate, 10 s past) is in the first batch.
  expect((await statusOf([paidLate])).get(paidLate)).toBe('EXPIRED');
  const rest = await drain(10);

  expect(first.released).toBe(10);
  expect(first.lagSeconds.every((lag) => lag >= 4)).toBe(true);
  expect(first.released + rest).toBe(due.length + 2);
  const statuses = await statusOf([...due, ...notDue, paidInTime, paidLate]);
  for (const id of [...due, paidLate]) expect(statuses.get(id)).toBe('EXPIRED');
  for (const id of notDue) expect(statuses.get(id)).toBe('AWAITING_PAYMENT');
  // Paid in time, its workflow nowhere: the reclaim is the backstop that settles it as paid.
  expect(statuses.get(paidInTime)).toBe('PAID');
  expect(await releasesPerOrder([...due, paidLate])).toEqual(Array.from({ length: due.length + 1 }, () => 2));
  const closed = await db.prisma.order.findMany({ where: { id: { in: due } }, select: { closedAt: true } });
  expect(closed.every((o) => o.closedAt !== null)).toBe(true);
});

test('reclaims running at once in two processes\' worth of connections release each due order exactly once', async () => {
  const ids = await holdOrders(db.prisma, { count: 3_000, skus: SKUS, expiresAt: secondsAgo(1) });
  const other = createPrismaClient(db.url, 10);
  try {
    const counts = await Promise.all([drain(100), drain(100), drain(70, other), drain(130, other)]);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(ids.length);
  } finally {
    await other.$disconnect();
  }
  expect(new Set((await statusOf(ids)).values())).toEqual(new Set(['EXPIRED']));
  expect(new Set(await releasesPerOrder(ids))).toEqual(new Set([2]));
});

test('commits racing the reclaim at the deadline: a payment with a receipt in time is paid, whoever gets there first; an unverified one moves nothing and its order expires, once each', async () => {
  const activities = createActivities({ prisma: db.prisma, payments: createLocalPaymentProvider(), maxPaymentWindowSeconds: DEFAULTS.maxPaymentWindowSeconds });
  const expiresAt = secondsAgo(0.2);
  const ids = await holdOrders(db.prisma, { count: 400, skus: SKUS, expiresAt });
  const withReceipt = new Set(ids.filter((_, i) => i % 2 === 0));
  for (const orderId of withReceipt) {
    await recordReceipt(db.prisma, { paymentId: `pay-${orderId}`, orderId, succeededAt: new Date(expiresAt.getTime() - 300) });
  }
  const before = await Promise.all(SKUS.map((sku) => stockOf(db.prisma, sku)));

  // Ten payers at a time (the pool is small, and the server is shared), beside two reclaims.
  const answers: CommitAnswer[] = [];
  const payer = async (first: number) => {
    for (let i = first; i < ids.length; i += 10) {
      const orderId = ids[i] as string;
      answers[i] = await new MockActivityEnvironment().run(activities.commitStock, { orderId, paymentId: `pay-${orderId}` });
    }
  };
  await Promise.all([...Array.from({ length: 10 }, (_, k) => payer(k)), drain(25), drain(25)]);

  const statuses = await statusOf(ids);
  ids.forEach((orderId, i) => {
    const expected = withReceipt.has(orderId) ? 'PAID' : 'EXPIRED';
    expect(statuses.get(orderId)).toBe(expected);
    expect(answers[i]?.payment).toBe(withReceipt.has(orderId) ? 'APPLIED' : 'UNVERIFIED');
  });
  const after = await Promise.all(SKUS.map((sku) => stockOf(db.prisma, sku)));
  const moved = (k: 'available' | 'reserved' | 'sold') => after.reduce((s, a, i) => s + a[k] - (before[i]?.[k] ?? 0), 0);
  expect({ available: moved('available'), reserved: moved('reserved'), sold: moved('sold') }).toEqual({
    available: 2 * (ids.length - withReceipt.size),
    reserved: -2 * ids.length,
    sold: 2 * withReceipt.size,
  });
});

test('an order whose receipt is being written as the deadline passes is skipped while locked, then settled PAID by the receipt received in time', async () => {
  const [orderId] = await holdOrders(db.prisma, { count: 1, skus: SKUS, expiresAt: new Date(Date.now() + 500) });
  if (!orderId) throw new Error('order not held');
  const loop = startReclaimLoop({ prisma: db.prisma, config: { enabled: true, intervalMs: 20, batchSize: 10, boundSeconds: 10 } });
  try {
    // As the API does: lock the order FOR SHARE, record the receipt, commit; here the commit comes after the deadline.
    await db.prisma.$transaction(
      async (tx) => {
        await tx.$queryRaw`SELECT id FROM orders WHERE id = ${orderId}::uuid FOR SHARE`;
        await tx.$executeRaw`
          INSERT INTO payment_receipts (payment_id, order_id, amount_cents, currency, succeeded_at)
          VALUES (${`pay-${orderId}`}, ${orderId}::uuid, 200, 'eur', now())`;
        await sleep(1_500);
      },
      { timeout: 10_000 },
    );
    await sleep(500);
  } finally {
    await loop.stop();
  }
  expect((await statusOf([orderId])).get(orderId)).toBe('PAID');
  expect(await db.prisma.stockMovement.count({ where: { orderId, kind: 'RELEASE' } })).toBe(0);
});

test('the loop counts what it released, and a database it cannot reach fails its batches without stopping it', async () => {
  const metrics = createWorkerMetrics();
  const ids = await holdOrders(db.prisma, { count: 50, skus: SKUS, expiresAt: secondsAgo(1) });
  const unreachable = createPrismaClient('postgresql://postgres@127.0.0.1:1/none', 1);
  const broken = startReclaimLoop({ prisma: unreachable, config: { enabled: true, intervalMs: 20, batchSize: 10, boundSeconds: 10 }, metrics });
  const working = startReclaimLoop({ prisma: db.prisma, config: { enabled: true, intervalMs: 20, batchSize: 10, boundSeconds: 10 }, metrics });
  try {
    await eventually(() => statusOf(ids), (s) => [...s.values()].every((v) => v === 'EXPIRED'));
    await eventually(async () => (await metrics.reclaimFailures.get()).values[0]?.value ?? 0, (n) => n >= 2);
  } finally {
    await Promise.all([broken.stop(), working.stop()]);
    await unreachable.$disconnect();
  }
  expect((await metrics.reclaimReleased.get()).values[0]?.value).toBe(50);
  expect((await metrics.expiryLag.get()).values.find((v) => v.labels.le === '+Inf')?.value).toBe(50);
});

test('the inventory check names every hold kept past its deadline beyond the reclaim\'s bound, and every receipt that disagrees with its order', async () => {
  const [stuck, recent] = await holdOrders(db.prisma, { count: 2, skus: SKUS, expiresAt: secondsAgo(30) });
  if (!stuck || !recent) throw new Error('orders not held');
  await db.prisma.$executeRaw`UPDATE orders SET expires_at = now() - interval '2 seconds' WHERE id = ${recent}::uuid`;
  const paymentId = `pay-${randomUUID()}`;
  await recordReceipt(db.prisma, { paymentId, orderId: recent, succeededAt: secondsAgo(60), amountCents: 1 });
  // A receipt marked APPLIED whose order it did not pay: what a bug elsewhere would leave.
  await db.prisma.$executeRaw`UPDATE payment_receipts SET outcome = 'APPLIED' WHERE payment_id = ${paymentId}`;

  const report = await checkInventory(db.prisma, 10);

  expect(report.ok).toBe(false);
  expect(report.violations).toEqual([
    expect.objectContaining({ kind: 'HOLD_PAST_DEADLINE', orderId: stuck }),
    expect.objectContaining({ kind: 'RECEIPT_DISAGREES_WITH_ORDER', orderId: recent, paymentId, receiptOutcome: 'APPLIED', orderStatus: 'AWAITING_PAYMENT' }),
  ]);
  // Mended: the reclaim settles both (the wrong-amount receipt pays nothing), and the receipt is put right.
  await db.prisma.$executeRaw`UPDATE payment_receipts SET outcome = NULL WHERE payment_id = ${paymentId}`;
  await drain(10);
  expect(await checkInventory(db.prisma, 10)).toEqual({ ok: true, violations: [] });
});
