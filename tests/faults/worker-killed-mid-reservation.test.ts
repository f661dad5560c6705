/**
 * Fault: the worker process dies (SIGKILL) while orders are being placed, their reservations
 * (local activities, run inside the order's first workflow task) sent to PostgreSQL and waiting
 * there on a row lock. The lock is on the orders' own rows, taken once the API has admitted them
 * (admission locks the products, so a product lock would stop placement before any hold). A hold is one statement (hold_order), so what the dead worker sent runs
 * to its end once the lock is free: each order is held, once, though no worker heard the answer.
 * The workflow task times out and the next worker runs it again; its hold finds the decision
 * already made and moves nothing: every caller gets its order (201, or 202 PENDING when that
 * took longer than the decision wait), held exactly once.
 */
import { checkInventory } from '../../src/db/inventory-check';
import { getOrderQuery, orderWorkflowId } from '../../workflows/messages';
import { addProduct, stockOf } from '../support/database';
import { killInsideItsTransactions } from '../support/fault-checks';
import { useFaultStack } from '../support/fault-stack';
import { LockHolder } from '../support/lock-holder';
import { eventually } from '../support/wait';
import { DEFAULT_CHANNEL } from '../../activities/types';

const stack = useFaultStack('reserve-kill');

test('a worker killed while its reservations wait on a lock: what it sent holds each order once, the next worker finds those holds and holds nothing twice, and every caller gets its order', async () => {
  const { env, db, scenario } = stack;
  const { checkout } = scenario;
  await addProduct(db.prisma, 'MR-A', 100, 1000);
  await addProduct(db.prisma, 'MR-B', 100, 500);
  const quantities = [1, 2, 3, 4, 5, 6];

  // No worker yet: the API admits each order (a PENDING row, holding nothing) and starts its
  // workflow, whose first task waits for a worker.
  const placing = quantities.map((quantity) =>
    checkout.placeOrder({
      customerId: 'reserve-kill',
      items: [{ sku: 'MR-A', quantity }, { sku: 'MR-B', quantity: 1 }],
      paymentTimeoutSeconds: 600,
    }, undefined, DEFAULT_CHANNEL),
  );
  const locks = await LockHolder.open(db.url);
  try {
    const admitted = await eventually(
      () => db.prisma.order.findMany({ where: { status: 'PENDING', items: { every: { admittedAt: { not: null } } } }, select: { id: true } }),
      (rows) => rows.length === quantities.length,
      30_000,
    );
    // With the PENDING rows locked, every reservation waits for its order's row (or, behind the
    // first, for the customer's lock), inside its transaction.
    for (const { id } of admitted) await locks.lockOrder(id);
    const killed = await scenario.startWorker('killed-worker');
    await eventually(() => locks.backendsOf('killed-worker', 'waiting-for-lock'), (n) => n >= quantities.length, 30_000);
    await killInsideItsTransactions(locks, killed, 'killed-worker');
  } finally {
    await locks.close();
  }
  // The statements outlived their worker: every order is held once, and nobody has been answered yet.
  expect(await db.prisma.order.count({ where: { status: 'AWAITING_PAYMENT' } })).toBe(quantities.length);
  expect(await db.prisma.stockMovement.count({ where: { kind: 'RESERVE' } })).toBe(quantities.length * 2);
  expect(await stockOf(db.prisma, 'MR-A')).toEqual({ available: 79, reserved: 21, sold: 0 });
  expect(await db.prisma.orderEvent.count({ where: { type: 'order.placed' } })).toBe(quantities.length);

  await scenario.startWorker('next-worker');

  const answers = await Promise.all(placing);
  for (const answer of answers) expect(['HELD', 'UNDECIDED']).toContain(answer.outcome);
  // The database decided before any worker heard it, so the workflows are what shows the next
  // worker's attempt: the killed worker's first task timed out, and the retried one completed
  // with the hold the database already had.
  const views = await Promise.all(
    answers.map(async ({ order }) => {
      const handle = env.client.workflow.getHandle(orderWorkflowId(order.orderId));
      await eventually(
        async () => (await handle.fetchHistory()).events ?? [],
        (events) => events.some((e) => e.workflowTaskTimedOutEventAttributes) && events.some((e) => e.workflowTaskCompletedEventAttributes),
        60_000,
      );
      return handle.query(getOrderQuery);
    }),
  );
  expect(views.map((v) => v.status)).toEqual(quantities.map(() => 'AWAITING_PAYMENT'));
  expect(views.map((v) => v.totalCents)).toEqual(quantities.map((q) => q * 1000 + 500));
  expect(await stockOf(db.prisma, 'MR-A')).toEqual({ available: 79, reserved: 21, sold: 0 });
  expect(await stockOf(db.prisma, 'MR-B')).toEqual({ available: 94, reserved: 6, sold: 0 });
  const holds = await db.prisma.stockMovement.groupBy({ where: { kind: 'RESERVE' }, by: ['orderId', 'sku'], _count: { _all: true } });
  expect(holds).toHaveLength(quantities.length * 2);
  expect(holds.every((h) => h._count._all === 1)).toBe(true);
  expect(await db.prisma.orderEvent.count({ where: { type: 'order.placed' } })).toBe(quantities.length);
  expect(await checkInventory(db.prisma)).toEqual({ ok: true, violations: [] });
}, 120_000);
