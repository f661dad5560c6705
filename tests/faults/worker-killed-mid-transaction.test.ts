/**
 * Fault: the worker process dies (SIGKILL) while many releases and a commit are inside their
 * database transactions. PostgreSQL must roll the cut-off work back, and the next worker must
 * redo it once: every order settled, each unit of stock moved exactly once.
 */
import { checkInventory } from '../../src/db/inventory-check';
import { addProduct, stockOf } from '../support/database';
import { killInsideItsTransactions, oneSettlementPerItem, settlementAnswers, settlementsOf, workflowsCompleted } from '../support/fault-checks';
import { useFaultStack } from '../support/fault-stack';
import { LockHolder } from '../support/lock-holder';
import { eventually } from '../support/wait';
import { EVERY_CHANNEL } from '../../src/api/checkout';

const stack = useFaultStack('worker-kill');

test('a worker killed while many releases and a commit are in flight leaves nothing half done; the next worker settles each order once', async () => {
  const { env, db, scenario } = stack;
  const { checkout, place, statusesOf } = scenario;
  await addProduct(db.prisma, 'MF-A', 50, 1000);
  await addProduct(db.prisma, 'MF-B', 50, 1000);
  const killed = await scenario.startWorker('killed-worker');
  const paid = await place([{ sku: 'MF-A', quantity: 2 }], 120);
  const cancelled = await Promise.all(
    [1, 2, 3, 4, 5, 6].map((quantity) => place([{ sku: 'MF-A', quantity }, { sku: 'MF-B', quantity: 1 }], 120)),
  );
  const orders = [...cancelled, paid];
  expect(await stockOf(db.prisma, 'MF-A')).toEqual({ available: 27, reserved: 23, sold: 0 });

  // With every order's row locked, each release and the commit stops inside its transaction,
  // its first writes made but not committed, waiting for a lock (the order's row, or a product
  // row another stopped transaction has updated): the worker is then killed mid-transaction.
  const locks = await LockHolder.open(db.url);
  try {
    for (const order of orders) await locks.lockOrder(order.orderId);
    // All at the same moment: six cancellations and a payment.
    await scenario.cancelAndPay(cancelled, paid, { paymentId: 'pay-mid-flight', amountCents: 2000 });
    // At least one waiting transaction per order (a retry of a timed-out attempt would add more).
    await eventually(() => locks.backendsOf('killed-worker', 'waiting-for-lock'), (n) => n >= orders.length, 30_000);
    // The dead worker's transactions end with its connections, rolled back by PostgreSQL.
    await killInsideItsTransactions(locks, killed, 'killed-worker');
  } finally {
    await locks.close();
  }
  expect(await statusesOf(orders)).toEqual(orders.map(() => 'AWAITING_PAYMENT'));
  expect(await settlementsOf(db.prisma, orders.map((o) => o.orderId))).toEqual({});
  expect(await db.prisma.payment.count({ where: { orderId: paid.orderId } })).toBe(0);
  expect(await stockOf(db.prisma, 'MF-A')).toEqual({ available: 27, reserved: 23, sold: 0 });

  await scenario.startWorker('next-worker');

  await eventually(() => statusesOf(orders), (s) => s.every((status) => status !== 'AWAITING_PAYMENT'), 60_000);
  expect(await statusesOf(orders)).toEqual([...cancelled.map(() => 'CANCELLED'), 'PAID']);
  expect(await checkout.getOrder(paid.orderId, EVERY_CHANNEL)).toMatchObject({ paymentId: 'pay-mid-flight', totalCents: 2000 });
  expect(await db.prisma.payment.count({ where: { orderId: paid.orderId } })).toBe(1);
  expect(await stockOf(db.prisma, 'MF-A')).toEqual({ available: 48, reserved: 0, sold: 2 });
  expect(await stockOf(db.prisma, 'MF-B')).toEqual({ available: 50, reserved: 0, sold: 0 });
  expect(await settlementsOf(db.prisma, orders.map((o) => o.orderId))).toEqual({
    ...oneSettlementPerItem(cancelled, 'RELEASE'),
    ...oneSettlementPerItem([paid], 'COMMIT'),
  });
  await workflowsCompleted(env.client, orders);
  for (const [order, activity] of [...cancelled.map((o) => [o, 'releaseStock'] as const), [paid, 'commitStock'] as const]) {
    // The killed run's transaction was rolled back; the run on the next worker decided.
    const answers = await settlementAnswers(env.client, order.orderId, activity);
    expect(answers).toHaveLength(1);
    expect(answers[0]?.result).toMatchObject({ decidedNow: true });
  }
  expect(await checkInventory(db.prisma)).toEqual({ ok: true, violations: [] });
}, 120_000);
