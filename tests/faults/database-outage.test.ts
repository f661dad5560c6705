/**
 * Fault: PostgreSQL crashes (`pg_ctl stop -m immediate`) while orders settle, and stays down
 * for a while. The test owns that PostgreSQL server (its own data directory and port), so the
 * machine's shared server is never touched. The worker runs in its own process, as in
 * production, and must ride out the outage: its activities fail, retry, and complete once the
 * database is back, moving every unit of stock exactly once.
 */
import { checkInventory } from '../../src/db/inventory-check';
import { cancelOrderSignal, orderWorkflowId, paymentReceivedSignal } from '../../workflows/messages';
import { addProduct, stockOf } from '../support/database';
import { oneSettlementPerItem, settlementAnswers, settlementsOf, workflowsCompleted } from '../support/fault-checks';
import { useOwnPostgresStack } from '../support/fault-stack';
import { LockHolder } from '../support/lock-holder';
import { eventually, sleep } from '../support/wait';
import { EVERY_CHANNEL } from '../../src/api/order-records';

const WORKER = 'checkout-worker';
/** How long PostgreSQL stays down: several retries of every settlement at 200 ms doubling. */
const OUTAGE_MS = 8_000;

const stack = useOwnPostgresStack('db-outage');

test('PostgreSQL crashing mid-release and staying down: releases and commits retry until it is back, and settle each order once', async () => {
  const { postgres, env, databaseUrl, prisma, scenario } = stack;
  const { checkout, place, statusesOf } = scenario;
  const worker = await scenario.startWorker(WORKER);
  await addProduct(prisma, 'DB-A', 10, 400);
  await addProduct(prisma, 'DB-B', 10, 600);
  const paid = await place([{ sku: 'DB-B', quantity: 2 }], 120);
  const cancelled = await place([{ sku: 'DB-A', quantity: 1 }], 120);
  // Each expiring order's row is locked as soon as it is placed, so its release stops inside
  // its transaction (first writes made, not committed) and the crash cuts it off there.
  const locks = await LockHolder.open(databaseUrl);
  const placeLocked = async (items: { sku: string; quantity: number }[], paymentTimeoutSeconds: number) => {
    const order = await place(items, paymentTimeoutSeconds);
    await locks.lockOrder(order.orderId);
    expect(Date.now()).toBeLessThan(Date.parse(order.expiresAt)); // locked before its release could run
    return order;
  };
  // The provider's delivery was verified and recorded before the database went down.
  await prisma.$executeRaw`
    INSERT INTO payment_receipts (payment_id, order_id, amount_cents, currency, succeeded_at)
    VALUES ('pay-db-down', ${paid.orderId}::uuid, ${2 * 600}, 'eur', now())`;
  const expiring = await Promise.all([
    placeLocked([{ sku: 'DB-A', quantity: 3 }, { sku: 'DB-B', quantity: 1 }], 5),
    placeLocked([{ sku: 'DB-B', quantity: 4 }], 5),
  ]);
  try {
    await eventually(() => locks.backendsOf(WORKER, 'waiting-for-lock'), (n) => n >= expiring.length, 30_000);
    await postgres.crash();
  } finally {
    await locks.close();
  }
  // While the database is down, the payment's signal and the cancellation reach the workflows
  // directly (the API cannot serve them: it reads the order from the database first).
  await env.client.workflow.getHandle(orderWorkflowId(paid.orderId)).signal(paymentReceivedSignal, { paymentId: 'pay-db-down', amountCents: 2 * 600 });
  await env.client.workflow.getHandle(orderWorkflowId(cancelled.orderId)).signal(cancelOrderSignal);
  const orders = [...expiring, cancelled, paid];
  // Every settlement runs and fails against the dead database (local activities, so their
  // attempts show only once one completes), as does every reclaim batch meanwhile.
  const settling = [
    ...expiring.map((o) => ({ order: o, activity: 'releaseStock' })),
    { order: cancelled, activity: 'releaseStock' },
    { order: paid, activity: 'commitStock' },
  ];
  await sleep(OUTAGE_MS);

  await postgres.start();

  const finalStatuses = await eventually(
    () => statusesOf(orders),
    (statuses) => statuses.every((s) => s !== 'AWAITING_PAYMENT'),
    60_000,
  );
  expect(finalStatuses).toEqual(['EXPIRED', 'EXPIRED', 'CANCELLED', 'PAID']);
  await workflowsCompleted(env.client, orders);
  for (const { order, activity } of settling) {
    // One completed attempt, after failed ones.
    const answers = await settlementAnswers(env.client, order.orderId, activity);
    expect(answers).toHaveLength(1);
    expect(answers[0]?.attempt).toBeGreaterThanOrEqual(2);
  }
  expect(await checkout.getOrder(paid.orderId, EVERY_CHANNEL)).toMatchObject({ status: 'PAID', paymentId: 'pay-db-down' });
  expect(await stockOf(prisma, 'DB-A')).toEqual({ available: 10, reserved: 0, sold: 0 });
  expect(await stockOf(prisma, 'DB-B')).toEqual({ available: 8, reserved: 0, sold: 2 });
  expect(await settlementsOf(prisma, orders.map((o) => o.orderId))).toEqual({
    ...oneSettlementPerItem([...expiring, cancelled], 'RELEASE'),
    ...oneSettlementPerItem([paid], 'COMMIT'),
  });
  expect(await checkInventory(prisma)).toEqual({ ok: true, violations: [] });
  // The same worker process rode out the outage.
  expect(worker.alive()).toBe(true);
}, 120_000);
