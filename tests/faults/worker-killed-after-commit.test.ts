/**
 * Fault: the worker's settling transactions commit, but the worker is cut off from Temporal
 * (a network partition) and then killed before it can report them. Temporal never hears of
 * that work and runs the activities again on the next worker: each retry must find its own
 * earlier work in the ledger and move nothing a second time.
 */
import { checkInventory } from '../../src/db/inventory-check';
import { orderWorkflowId, type OrderView } from '../../workflows/messages';
import { addProduct, stockOf } from '../support/database';
import { decidedNowOf, oneSettlementPerItem, settlementAnswers, settlementsOf, workflowsCompleted } from '../support/fault-checks';
import { useFaultStack } from '../support/fault-stack';
import { LockHolder } from '../support/lock-holder';
import { eventually } from '../support/wait';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';
import { EVERY_CHANNEL } from '../../src/api/order-records';

let proxy: TcpProxy;

const stack = useFaultStack('after-commit');

beforeAll(async () => {
  proxy = await startTcpProxy(stack.env.address);
});

afterAll(async () => {
  await proxy?.close();
});

test('settlements committed by a worker killed before it could report them are retried without moving any stock twice', async () => {
  const { env, db, scenario } = stack;
  const { checkout, place, statusesOf } = scenario;
  await addProduct(db.prisma, 'AC-A', 20, 1000);
  await addProduct(db.prisma, 'AC-B', 20, 500);
  const partitioned = await scenario.startWorker('partitioned-worker', { temporalAddress: proxy.address });
  const paid = await place([{ sku: 'AC-A', quantity: 2 }, { sku: 'AC-B', quantity: 1 }], 120);
  const cancelled = await Promise.all([
    place([{ sku: 'AC-A', quantity: 3 }], 120),
    place([{ sku: 'AC-A', quantity: 1 }, { sku: 'AC-B', quantity: 4 }], 120),
  ]);
  const orders = [...cancelled, paid];

  // Stop the settlements inside their transactions, cut the worker off from Temporal, then let
  // them commit: the stock moves, but the worker cannot report it.
  const locks = await LockHolder.open(db.url);
  try {
    for (const order of orders) await locks.lockOrder(order.orderId);
    await scenario.cancelAndPay(cancelled, paid, { paymentId: 'pay-after-commit', amountCents: 2 * 1000 + 500 });
    await eventually(() => locks.backendsOf('partitioned-worker', 'waiting-for-lock'), (n) => n >= orders.length, 30_000);
    proxy.freeze();
    await locks.release();
  } finally {
    await locks.close();
  }
  await eventually(() => statusesOf(orders), (s) => s.every((status) => status !== 'AWAITING_PAYMENT'), 30_000);
  const committed = await checkout.getOrder(paid.orderId, EVERY_CHANNEL);
  const stockAfterFirstAttempt = { a: await stockOf(db.prisma, 'AC-A'), b: await stockOf(db.prisma, 'AC-B') };
  expect(stockAfterFirstAttempt).toEqual({
    a: { available: 18, reserved: 0, sold: 2 },
    b: { available: 19, reserved: 0, sold: 1 },
  });

  await partitioned.kill();
  // The dead worker's connections go too, so the server stops handing tasks to its old polls.
  await proxy.close();
  // Temporal has not heard: no settlement has finished as far as any history says.
  for (const [order, activity] of [...cancelled.map((o) => [o, 'releaseStock'] as const), [paid, 'commitStock'] as const]) {
    expect(await settlementAnswers(env.client, order.orderId, activity)).toEqual([]);
  }

  await scenario.startWorker('next-worker');

  await workflowsCompleted(env.client, orders);
  const views: OrderView[] = await Promise.all(orders.map((o) => env.client.workflow.getHandle(orderWorkflowId(o.orderId)).result()));
  expect(views.map((v) => v.status)).toEqual(['CANCELLED', 'CANCELLED', 'PAID']);
  for (const [order, activity] of [...cancelled.map((o) => [o, 'releaseStock'] as const), [paid, 'commitStock'] as const]) {
    // The next worker proposed again and was answered with the outcome already decided.
    const answers = await settlementAnswers(env.client, order.orderId, activity);
    expect(answers).toHaveLength(1);
    expect(decidedNowOf(answers[0]?.result)).toBe(false);
  }
  // The retries found the work done: nothing moved again, and the recorded times stand.
  expect({ a: await stockOf(db.prisma, 'AC-A'), b: await stockOf(db.prisma, 'AC-B') }).toEqual(stockAfterFirstAttempt);
  expect(await checkout.getOrder(paid.orderId, EVERY_CHANNEL)).toEqual(committed);
  expect(views[2]).toMatchObject({ paidAt: committed.paidAt, closedAt: committed.closedAt, paymentId: 'pay-after-commit' });
  expect(await db.prisma.payment.count({ where: { orderId: paid.orderId } })).toBe(1);
  expect(await settlementsOf(db.prisma, orders.map((o) => o.orderId))).toEqual({
    ...oneSettlementPerItem(cancelled, 'RELEASE'),
    ...oneSettlementPerItem([paid], 'COMMIT'),
  });
  expect(await checkInventory(db.prisma)).toEqual({ ok: true, violations: [] });
}, 120_000);
