/**
 * Fault: the worker process dies (SIGKILL) while many releases and a commit wait inside their
 * database statements. Each is one statement: PostgreSQL finishes it whole or not at all, and the
 * next worker settles what is left once: every order settled, each unit of stock moved exactly once.
 */
import { checkInventory } from '../../src/db/inventory-check';
import { addProduct, stockOf } from '../support/database';
import { decidedNowOf, killInsideItsTransactions, oneSettlementPerItem, settlementAnswers, settlementsOf, workflowsCompleted } from '../support/fault-checks';
import { useFaultStack } from '../support/fault-stack';
import { LockHolder } from '../support/lock-holder';
import { eventually } from '../support/wait';
import { EVERY_CHANNEL } from '../../src/api/order-records';

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
  // Each decision the dead worker had sent is one statement (decide_order): a backend waiting for
  // a lock does not notice its client is gone, so once the locks go it either finishes the whole
  // statement or never ran it. Nothing is half done: an order is settled for all its items or none.
  const early = await settlementsOf(db.prisma, orders.map((o) => o.orderId));
  const settledEarly = new Set(
    orders.filter((order) => {
      const rows = order.items.map((i) => early[`${order.orderId} ${i.sku}`]);
      expect(rows.every((r) => r === undefined) || rows.every((r) => r?.length === 1)).toBe(true);
      return rows.every((r) => r?.length === 1);
    }).map((o) => o.orderId),
  );
  expect(await checkInventory(db.prisma)).toEqual({ ok: true, violations: [] });

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
    // The run on the next worker decided, unless the dead worker's statement had finished first.
    const answers = await settlementAnswers(env.client, order.orderId, activity);
    expect(answers).toHaveLength(1);
    expect(decidedNowOf(answers[0]?.result)).toBe(!settledEarly.has(order.orderId));
  }
  expect(await checkInventory(db.prisma)).toEqual({ ok: true, violations: [] });
}, 120_000);
