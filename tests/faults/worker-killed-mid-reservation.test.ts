/**
 * Fault: the worker process dies (SIGKILL) while orders are being placed, their reservations
 * (local activities, run inside the order's first workflow task) stopped inside their database
 * transactions. PostgreSQL rolls the cut-off holds back; the workflow task times out and the next
 * worker runs it again: every caller still gets its order (201, or 202 PENDING when that took
 * longer than the decision wait), held exactly once.
 */
import { checkInventory } from '../../src/db/inventory-check';
import { orderWorkflowId } from '../../workflows/messages';
import { addProduct, stockOf } from '../support/database';
import { killInsideItsTransactions } from '../support/fault-checks';
import { useFaultStack } from '../support/fault-stack';
import { LockHolder } from '../support/lock-holder';
import { eventually } from '../support/wait';

const stack = useFaultStack('reserve-kill');

test('a worker killed while reservations are inside their transactions holds nothing; the next worker holds each order once and every caller gets its order', async () => {
  const { env, db, scenario } = stack;
  const { checkout } = scenario;
  await addProduct(db.prisma, 'MR-A', 100, 1000);
  await addProduct(db.prisma, 'MR-B', 100, 500);
  const killed = await scenario.startWorker('killed-worker');
  const quantities = [1, 2, 3, 4, 5, 6];

  // With MR-B's row locked, every reservation takes MR-A and then waits at MR-B, uncommitted.
  const locks = await LockHolder.open(db.url);
  let placing: ReturnType<typeof checkout.placeOrder>[];
  try {
    await locks.lockProduct('MR-B');
    placing = quantities.map((quantity) =>
      checkout.placeOrder({
        customerId: 'reserve-kill',
        items: [{ sku: 'MR-A', quantity }, { sku: 'MR-B', quantity: 1 }],
        paymentTimeoutSeconds: 600,
      }),
    );
    await eventually(() => locks.backendsOf('killed-worker', 'waiting-for-lock'), (n) => n >= quantities.length, 30_000);
    await killInsideItsTransactions(locks, killed, 'killed-worker');
  } finally {
    await locks.close();
  }
  // Nothing of the cut-off holds survived: the orders are as the API recorded them, PENDING.
  expect(await db.prisma.order.count({ where: { status: { not: 'PENDING' } } })).toBe(0);
  expect(await db.prisma.order.count({ where: { status: 'PENDING' } })).toBe(quantities.length);
  expect(await db.prisma.stockMovement.count({ where: { kind: 'RESERVE' } })).toBe(0);
  expect(await stockOf(db.prisma, 'MR-A')).toEqual({ available: 100, reserved: 0, sold: 0 });

  await scenario.startWorker('next-worker');

  const answers = await Promise.all(placing);
  for (const answer of answers) expect(['HELD', 'PENDING']).toContain(answer.outcome);
  const placed = await Promise.all(
    answers.map(async (p) => ({ order: await eventually(() => checkout.getOrder(p.order.orderId), (o) => o.status !== 'PENDING', 60_000) })),
  );
  expect(placed.map((p) => p.order.status)).toEqual(quantities.map(() => 'AWAITING_PAYMENT'));
  expect(placed.map((p) => p.order.totalCents)).toEqual(quantities.map((q) => q * 1000 + 500));
  expect(await stockOf(db.prisma, 'MR-A')).toEqual({ available: 79, reserved: 21, sold: 0 });
  expect(await stockOf(db.prisma, 'MR-B')).toEqual({ available: 94, reserved: 6, sold: 0 });
  const holds = await db.prisma.stockMovement.groupBy({ where: { kind: 'RESERVE' }, by: ['orderId', 'sku'], _count: { _all: true } });
  expect(holds).toHaveLength(quantities.length * 2);
  expect(holds.every((h) => h._count._all === 1)).toBe(true);
  for (const { order } of placed) {
    // The killed worker's first workflow task timed out; the next worker's attempt held the stock.
    const { events } = await env.client.workflow.getHandle(orderWorkflowId(order.orderId)).fetchHistory();
    expect((events ?? []).some((e) => e.workflowTaskTimedOutEventAttributes)).toBe(true);
  }
  expect(await checkInventory(db.prisma)).toEqual({ ok: true, violations: [] });
}, 120_000);
