/**
 * Fault: the worker process dies (SIGKILL) while orders wait for payment, and no worker runs
 * while their deadlines pass. Real dev server, real PostgreSQL, real worker processes: the next
 * worker must finish every order as the first would have, each unit of stock moved once.
 */
import { checkInventory } from '../../src/db/inventory-check';
import { addProduct, stockOf } from '../support/database';
import { deadlines, oneSettlementPerItem, settlementsOf, waitPast } from '../support/fault-checks';
import { useFaultStack } from '../support/fault-stack';
import { eventually } from '../support/wait';
import { EVERY_CHANNEL } from '../../src/api/order-records';
import { DEFAULT_CHANNEL } from '../../activities/types';

const stack = useFaultStack('worker-kill');

test('orders waiting when the worker is killed are finished by a new worker at their deadlines, each unit of stock moved once', async () => {
  const { db, scenario } = stack;
  const { checkout, place, statusesOf } = scenario;
  await addProduct(db.prisma, 'WK-A', 10, 500);
  await addProduct(db.prisma, 'WK-B', 10, 700);
  await addProduct(db.prisma, 'WK-C', 5, 900);
  const first = await scenario.startWorker('first-worker');
  const paidBeforeKill = await place([{ sku: 'WK-A', quantity: 1 }, { sku: 'WK-C', quantity: 2 }], 120);
  const paidWhileDown = await place([{ sku: 'WK-B', quantity: 3 }], 120);
  const cancelledWhileDown = await place([{ sku: 'WK-C', quantity: 1 }], 120);
  expect((await checkout.pay(paidBeforeKill.orderId, { paymentId: 'pay-before', amountCents: 500 + 2 * 900 })).order.status).toBe('PAID');
  const expiring = await Promise.all([
    place([{ sku: 'WK-A', quantity: 2 }, { sku: 'WK-B', quantity: 1 }], 3),
    place([{ sku: 'WK-A', quantity: 3 }], 4),
    place([{ sku: 'WK-B', quantity: 2 }, { sku: 'WK-C', quantity: 1 }], 5),
  ]);

  await first.kill();
  expect(await first.exited).toBe('SIGKILL');

  // Delivered while no worker runs: each call waits (at most the decision wait) for the decision.
  const payment = checkout.pay(paidWhileDown.orderId, { paymentId: 'pay-while-down', amountCents: 3 * 700 });
  const cancellation = checkout.cancel(cancelledWhileDown.orderId, DEFAULT_CHANNEL);
  await waitPast(deadlines(expiring).last, 1_000);
  // Nothing ran them: the deadlines passed with the stock still held.
  expect(await statusesOf(expiring)).toEqual(['AWAITING_PAYMENT', 'AWAITING_PAYMENT', 'AWAITING_PAYMENT']);
  expect(await stockOf(db.prisma, 'WK-A')).toEqual({ available: 4, reserved: 5, sold: 1 });

  await scenario.startWorker('second-worker');

  await eventually(() => statusesOf(expiring), (s) => s.every((status) => status === 'EXPIRED'), 60_000);
  // Decided by the new worker, or still undecided when the wait ran out: then the redelivery and
  // the repeated cancel get the decision.
  expect(['UNDECIDED', 'APPLIED']).toContain((await payment).outcome);
  expect(['UNDECIDED', 'CANCELLED']).toContain((await cancellation).outcome);
  const redelivered = await eventually(
    () => checkout.pay(paidWhileDown.orderId, { paymentId: 'pay-while-down', amountCents: 3 * 700 }),
    (r) => r.outcome !== 'UNDECIDED',
  );
  expect(redelivered).toMatchObject({ outcome: 'APPLIED', order: { status: 'PAID', paymentId: 'pay-while-down' } });
  const cancelledAgain = await eventually(() => checkout.cancel(cancelledWhileDown.orderId, DEFAULT_CHANNEL), (r) => r.outcome !== 'UNDECIDED');
  expect(cancelledAgain).toMatchObject({ outcome: 'CANCELLED', order: { status: 'CANCELLED' } });
  for (const order of expiring) {
    const closed = await checkout.getOrder(order.orderId, EVERY_CHANNEL);
    // Released at the deadline or after it (the worker was dead), never before.
    expect(Date.parse(closed.closedAt ?? '')).toBeGreaterThanOrEqual(Date.parse(order.expiresAt));
  }
  expect(await stockOf(db.prisma, 'WK-A')).toEqual({ available: 9, reserved: 0, sold: 1 });
  expect(await stockOf(db.prisma, 'WK-B')).toEqual({ available: 7, reserved: 0, sold: 3 });
  expect(await stockOf(db.prisma, 'WK-C')).toEqual({ available: 3, reserved: 0, sold: 2 });
  expect(await settlementsOf(db.prisma, [...expiring, paidBeforeKill, paidWhileDown, cancelledWhileDown].map((o) => o.orderId))).toEqual({
    ...oneSettlementPerItem([...expiring, cancelledWhileDown], 'RELEASE'),
    ...oneSettlementPerItem([paidBeforeKill, paidWhileDown], 'COMMIT'),
  });
  expect(await checkInventory(db.prisma)).toEqual({ ok: true, violations: [] });
}, 120_000);
