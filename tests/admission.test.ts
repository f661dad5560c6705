/**
 * A drop, against the real worker, dev server and PostgreSQL: sold out is answered by the API
 * without a workflow, orders are admitted only while stock lasts and never oversold, an order in
 * flight that ends without stock gives its admission back, and an order no worker takes blocks
 * its sku only for ORDER_ADMISSION_SECONDS.
 */
import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import request from 'supertest';
import { createActivities } from '../activities';
import { putProduct } from '../activities/inventory';
import { createLocalPaymentProvider } from '../activities/payment-provider';
import { FailureType } from '../activities/types';
import { admitOrder } from '../src/api/admission';
import { DEFAULTS } from '../src/config';
import { orderWorkflowId } from '../workflows/messages';
import { admissionRequest } from './support/admission';
import { addProduct, stockOf } from './support/database';
import { cancelOrder, getOrder, orderIdOf, placeOrder } from './support/api-calls';
import { createTestApi, useStack } from './support/stack';
import { eventually, sleep } from './support/wait';

const stack = useStack();

async function hasWorkflow(orderId: string): Promise<boolean> {
  try {
    await stack.client.workflow.getHandle(orderWorkflowId(orderId)).describe();
    return true;
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return false;
    throw error;
  }
}

/** Units admitted to orders in flight, and the admitted lines they are the sum of. */
async function admittedOf(sku: string): Promise<number> {
  const product = await stack.db.prisma.product.findUniqueOrThrow({ where: { sku } });
  return product.admitted;
}

test('a sold-out order is refused by the API without a workflow, recorded REJECTED with its event, and its replay answers the same 409', async () => {
  await addProduct(stack.db.prisma, 'ADM-1', 1);
  const held = await placeOrder(stack.app, { customerId: 'first', items: [{ sku: 'ADM-1', quantity: 1 }] });
  expect(held.status).toBe(201);
  expect(await hasWorkflow(orderIdOf(held))).toBe(true);

  const refused = await placeOrder(stack.app, { customerId: 'late', items: [{ sku: 'ADM-1', quantity: 1 }] }, { idempotencyKey: 'late-key' });
  expect(refused.status).toBe(409);
  const replay = await placeOrder(stack.app, { customerId: 'late', items: [{ sku: 'ADM-1', quantity: 1 }] }, { idempotencyKey: 'late-key' });
  expect(replay.status).toBe(409);

  const orderId = orderIdOf(refused);
  expect(refused.body).toEqual({
    orderId,
    error: { code: 'OUT_OF_STOCK', message: expect.any(String), details: [{ sku: 'ADM-1', requested: 1, available: 0 }] },
  });
  expect(replay.body).toEqual(refused.body);
  expect(await hasWorkflow(orderId)).toBe(false);
  const order = await getOrder(stack.app, orderId);
  expect(order.status).toBe(200);
  expect(order.body).toMatchObject({ orderId, status: 'REJECTED', items: [{ sku: 'ADM-1', quantity: 1, unitPriceCents: 1000 }], closedAt: expect.any(String) });
  expect(await stack.db.prisma.orderEvent.findMany({ where: { orderId }, select: { type: true } })).toEqual([{ type: 'order.rejected' }]);
  // A cancel of it needs no workflow either.
  expect((await cancelOrder(stack.app, orderId)).body).toMatchObject({ error: { code: 'ORDER_REJECTED' } });
  const metrics = (await request(stack.app).get('/metrics').expect(200)).text;
  expect(metrics).toMatch(/^checkout_order_refusals_total\{reason="OUT_OF_STOCK",decided_by="api"\} 1$/m);
  expect(await stockOf(stack.db.prisma, 'ADM-1')).toEqual({ available: 0, reserved: 1, sold: 0 });
});

test('a drop of 8 units to 80 concurrent buyers holds exactly 8, never more, and starts a workflow only for the buyers admitted', async () => {
  await addProduct(stack.db.prisma, 'ADM-DROP', 8);
  const answers = await Promise.all(
    Array.from({ length: 80 }, (_, n) => placeOrder(stack.app, { customerId: `buyer-${n}`, items: [{ sku: 'ADM-DROP', quantity: 1 }] })),
  );

  const statuses = answers.map((a) => a.status);
  expect(statuses.filter((s) => s === 201)).toHaveLength(8);
  expect(statuses.filter((s) => s === 409)).toHaveLength(72);
  expect(await stockOf(stack.db.prisma, 'ADM-DROP')).toEqual({ available: 0, reserved: 8, sold: 0 });
  expect(await admittedOf('ADM-DROP')).toBe(0);
  const withWorkflow = await Promise.all(answers.map((a) => hasWorkflow(orderIdOf(a))));
  // Every admitted buyer held a unit here (nothing else took stock), so no refused buyer has a workflow.
  expect(withWorkflow.filter(Boolean)).toHaveLength(8);
  for (const [n, answer] of answers.entries()) expect(withWorkflow[n]).toBe(answer.status === 201);
});

test('a held order that is cancelled or expires puts its unit back on sale for the next buyer at once', async () => {
  await addProduct(stack.db.prisma, 'ADM-BACK', 1);
  const cancelled = await placeOrder(stack.app, { customerId: 'canceller', items: [{ sku: 'ADM-BACK', quantity: 1 }] });
  expect(cancelled.status).toBe(201);
  expect((await placeOrder(stack.app, { customerId: 'waiting', items: [{ sku: 'ADM-BACK', quantity: 1 }] })).status).toBe(409);
  expect((await cancelOrder(stack.app, orderIdOf(cancelled))).status).toBe(200);

  const expiring = await placeOrder(stack.app, { customerId: 'waiting', items: [{ sku: 'ADM-BACK', quantity: 1 }], paymentTimeoutSeconds: 1 });
  expect(expiring.status).toBe(201);
  await eventually(
    async () => (await getOrder(stack.app, orderIdOf(expiring))).body.status,
    (status) => status === 'EXPIRED',
  );
  expect((await placeOrder(stack.app, { customerId: 'after-expiry', items: [{ sku: 'ADM-BACK', quantity: 1 }] })).status).toBe(201);
  expect(await stockOf(stack.db.prisma, 'ADM-BACK')).toEqual({ available: 0, reserved: 1, sold: 0 });
});

test('an admitted order whose hold finds the stock gone is rejected and gives its admission back at once', async () => {
  await addProduct(stack.db.prisma, 'ADM-GONE', 2);
  const orderId = randomUUID();
  const items = [{ sku: 'ADM-GONE', quantity: 2 }];
  // Admitted, and then (before any worker holds it) the operator takes the stock off sale.
  const admitted = await admitOrder(stack.db.prisma, admissionRequest(orderId, 'gone', items));
  expect(admitted.outcome).toBe('ADMITTED');
  expect(await admittedOf('ADM-GONE')).toBe(2);
  await putProduct(stack.db.prisma, { sku: 'ADM-GONE', name: 'Product ADM-GONE', priceCents: 1000, available: 0 });
  expect((await placeOrder(stack.app, { customerId: 'meanwhile', items: [{ sku: 'ADM-GONE', quantity: 1 }] })).status).toBe(409);

  const activities = createActivities({ prisma: stack.db.prisma, payments: createLocalPaymentProvider(), maxPaymentWindowSeconds: DEFAULTS.maxPaymentWindowSeconds });
  const now = new Date();
  const hold = new MockActivityEnvironment().run(activities.reserveStock, {
    orderId,
    customerId: 'gone',
    items,
    createdAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + 60_000).toISOString(),
    currency: 'eur',
  });
  await expect(hold).rejects.toMatchObject({ type: FailureType.OutOfStock });
  expect(await admittedOf('ADM-GONE')).toBe(0);

  // Back on sale: the next buyer is admitted and held, with nothing kept for the rejected order.
  await putProduct(stack.db.prisma, { sku: 'ADM-GONE', name: 'Product ADM-GONE', priceCents: 1000, available: 2 });
  expect((await placeOrder(stack.app, { customerId: 'next', items: [{ sku: 'ADM-GONE', quantity: 2 }] })).status).toBe(201);
  expect(await stockOf(stack.db.prisma, 'ADM-GONE')).toEqual({ available: 0, reserved: 2, sold: 0 });
});

test('an order that no worker takes keeps its units from other buyers for ORDER_ADMISSION_SECONDS only', async () => {
  await addProduct(stack.db.prisma, 'ADM-STUCK', 1);
  const admissionSeconds = 2;
  // An API whose task queue no worker polls: its order is started and stays PENDING.
  const unserved = createTestApi({
    prisma: stack.db.prisma,
    temporal: stack.client,
    taskQueue: `no-worker-${randomUUID()}`,
    defaultPaymentTimeoutSeconds: 900,
    decisionWaitSeconds: 1,
    admissionSeconds,
  });
  const api = createTestApi({ prisma: stack.db.prisma, temporal: stack.client, taskQueue: stack.taskQueue, defaultPaymentTimeoutSeconds: 900, admissionSeconds });
  try {
    const stuck = await placeOrder(unserved.app, { customerId: 'stuck', items: [{ sku: 'ADM-STUCK', quantity: 1 }] });
    expect(stuck.status).toBe(202);
    const stuckId = orderIdOf(stuck);
    const blocked = await placeOrder(api.app, { customerId: 'blocked', items: [{ sku: 'ADM-STUCK', quantity: 1 }] });
    expect(blocked.status).toBe(409);
    expect(blocked.body).toMatchObject({ error: { details: [{ sku: 'ADM-STUCK', requested: 1, available: 0 }] } });

    await sleep(admissionSeconds * 1000 + 200);
    expect((await placeOrder(api.app, { customerId: 'served', items: [{ sku: 'ADM-STUCK', quantity: 1 }] })).status).toBe(201);
    expect(await stockOf(stack.db.prisma, 'ADM-STUCK')).toEqual({ available: 0, reserved: 1, sold: 0 });
    expect(await admittedOf('ADM-STUCK')).toBe(0);
    // The stuck order is still PENDING, holding nothing and keeping nothing.
    expect((await getOrder(stack.app, stuckId)).body.status).toBe('PENDING');
    await stack.client.workflow.getHandle(orderWorkflowId(stuckId)).terminate('test: no worker will ever take it');
  } finally {
    await Promise.all([unserved.services.readiness.close(), api.services.readiness.close()]);
  }
});

