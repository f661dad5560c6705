/**
 * Idempotency-Key on POST /orders: the same key from the same customer with the same body is
 * the same order with the same status code, and holds nothing more, also when the requests
 * race and after the order's workflow has closed (or its history is gone). A different body
 * is 422 IDEMPOTENCY_KEY_REUSED.
 */
import { WorkflowNotFoundError } from '@temporalio/common';
import type express from 'express';
import type { ApiServices } from '../src/api/services';
import { orderWorkflowId } from '../workflows/messages';
import { addProduct, stockOf } from './support/database';
import { cancelOrder, errorCode, getOrder, orderIdOf, type OrderRequest, payOrder, placeOrder } from './support/api-calls';
import { createTestApi, TEST_CURRENCY, useStack } from './support/stack';
import { eventually } from './support/wait';

/** Four API instances over the same Temporal and database, as behind a load balancer. */
let instances: { app: express.Express; services: ApiServices }[] = [];
const stack = useStack({ beforeStop: async () => void (await Promise.all(instances.map((i) => i.services.readiness.close()))) });

beforeAll(() => {
  instances = Array.from({ length: 4 }, () => {
    const { app, services } = createTestApi({
      prisma: stack.db.prisma,
      temporal: stack.client,
      taskQueue: stack.taskQueue,
      defaultPaymentTimeoutSeconds: 900,
      checkoutCurrency: TEST_CURRENCY,
    });
    return { app, services };
  });
});


function place(key: string, body: OrderRequest, app: express.Express = stack.app) {
  return placeOrder(app, body, { idempotencyKey: key });
}

/** Request i goes to instance i mod 4. */
function placeAcrossInstances(key: string, body: OrderRequest, i: number) {
  return place(key, body, instances[i % instances.length]?.app);
}

async function pay(orderId: string, payment: { paymentId: string; amountCents: number }) {
  const answer = await payOrder(stack.app, orderId, payment);
  expect(answer).toMatchObject({ status: 200, body: { outcome: 'APPLIED' } });
  return answer;
}

async function reserveMovements(sku: string): Promise<number> {
  return stack.db.prisma.stockMovement.count({ where: { sku, kind: 'RESERVE' } });
}

async function orderWorkflowRuns(orderId: string): Promise<number> {
  const runs: string[] = [];
  for await (const run of stack.client.workflow.list({ query: `WorkflowId = "${orderWorkflowId(orderId)}"` })) runs.push(run.runId);
  return runs.length;
}

test('the same key and body, sent again, answers the same 201 order and holds nothing more', async () => {
  await addProduct(stack.db.prisma, 'IDEM-1', 10);
  const body = { customerId: 'idem-1', items: [{ sku: 'IDEM-1', quantity: 3 }] };
  const first = await place('key-1', body);
  expect(first.status).toBe(201);
  const second = await place('key-1', body);
  expect(second.status).toBe(201);
  expect(second.body).toEqual(first.body);
  expect(await stockOf(stack.db.prisma, 'IDEM-1')).toEqual({ available: 7, reserved: 3, sold: 0 });
  expect(await reserveMovements('IDEM-1')).toBe(1);
});

test('20 racing requests with one key and body, over four API instances, make one order, hold the stock once, and all answer it', async () => {
  await addProduct(stack.db.prisma, 'RACE-1', 10);
  const body = { customerId: 'racer', items: [{ sku: 'RACE-1', quantity: 4 }], paymentTimeoutSeconds: 600 };
  const responses = await Promise.all(Array.from({ length: 20 }, (_, i) => placeAcrossInstances('race-key', body, i)));
  expect(responses.map((r) => r.status)).toEqual(Array(20).fill(201));
  const orderIds = new Set(responses.map((r) => (r.body as { orderId: string }).orderId));
  expect(orderIds.size).toBe(1);
  const [orderId] = [...orderIds] as [string];
  for (const res of responses) expect(res.body).toMatchObject({ orderId, status: 'AWAITING_PAYMENT', totalCents: 4000 });
  expect(await stockOf(stack.db.prisma, 'RACE-1')).toEqual({ available: 6, reserved: 4, sold: 0 });
  expect(await reserveMovements('RACE-1')).toBe(1);
  expect(await stack.db.prisma.order.count({ where: { customerId: 'racer' } })).toBe(1);
  expect(await orderWorkflowRuns(orderId)).toBe(1);
});

test('racing requests with one key and two bodies: one body wins, its requests get the order, the others 422', async () => {
  await addProduct(stack.db.prisma, 'RACE-2', 100);
  const bodies = [
    { customerId: 'racer-2', items: [{ sku: 'RACE-2', quantity: 1 }] },
    { customerId: 'racer-2', items: [{ sku: 'RACE-2', quantity: 2 }] },
  ];
  const sent = Array.from({ length: 16 }, (_, i) => Math.floor(i / 4) % 2);
  const responses = await Promise.all(sent.map((b, i) => placeAcrossInstances('race-key-2', bodies[b] as OrderRequest, i)));
  const winners = responses.filter((r) => r.status === 201);
  expect(winners.length).toBeGreaterThan(0);
  const winningQuantity = (winners[0]?.body as { items: { quantity: number }[] }).items[0]?.quantity;
  responses.forEach((res, i) => {
    const quantity = bodies[sent[i] as number]?.items[0]?.quantity;
    if (quantity === winningQuantity) {
      expect(res.status).toBe(201);
      expect(res.body.orderId).toBe(winners[0]?.body.orderId);
    } else {
      expect(res.status).toBe(422);
      expect(errorCode(res)).toBe('IDEMPOTENCY_KEY_REUSED');
    }
  });
  expect(await stockOf(stack.db.prisma, 'RACE-2')).toEqual({ available: 100 - (winningQuantity ?? 0), reserved: winningQuantity, sold: 0 });
  expect(await reserveMovements('RACE-2')).toBe(1);
});

test('the same key with a different body answers 422 IDEMPOTENCY_KEY_REUSED and holds nothing; item order does not make a body different', async () => {
  await addProduct(stack.db.prisma, 'IDEM-2', 10);
  await addProduct(stack.db.prisma, 'IDEM-3', 10);
  const body = { customerId: 'idem-2', items: [{ sku: 'IDEM-2', quantity: 1 }, { sku: 'IDEM-3', quantity: 1 }] };
  const first = await place('key-2', body);
  expect(first.status).toBe(201);
  for (const different of [
    { ...body, items: [{ sku: 'IDEM-2', quantity: 2 }, { sku: 'IDEM-3', quantity: 1 }] },
    { ...body, items: [{ sku: 'IDEM-2', quantity: 1 }] },
    { ...body, paymentTimeoutSeconds: 30 },
  ]) {
    const res = await place('key-2', different);
    expect(res.status).toBe(422);
    expect(res.body).toEqual({ error: { code: 'IDEMPOTENCY_KEY_REUSED', message: expect.any(String) } });
  }
  const reordered = await place('key-2', { ...body, items: [...body.items].reverse() });
  expect(reordered.status).toBe(201);
  expect(reordered.body.orderId).toBe(first.body.orderId);
  expect(await stockOf(stack.db.prisma, 'IDEM-2')).toEqual({ available: 9, reserved: 1, sold: 0 });
});

test('the same key from another customer is another order', async () => {
  await addProduct(stack.db.prisma, 'IDEM-4', 10);
  const items = [{ sku: 'IDEM-4', quantity: 1 }];
  const a = await place('shared-key', { customerId: 'alice-4', items });
  expect(a.status).toBe(201);
  const b = await place('shared-key', { customerId: 'bob-4', items });
  expect(b.status).toBe(201);
  expect(a.body.orderId).not.toBe(b.body.orderId);
  expect(await stockOf(stack.db.prisma, 'IDEM-4')).toEqual({ available: 8, reserved: 2, sold: 0 });
});

test('racing requests for an order that cannot be filled all answer the same 409 with one orderId, and hold nothing', async () => {
  await addProduct(stack.db.prisma, 'SHORT-1', 2);
  const body = { customerId: 'short', items: [{ sku: 'SHORT-1', quantity: 5 }] };
  const responses = await Promise.all(Array.from({ length: 10 }, (_, i) => placeAcrossInstances('short-key', body, i)));
  expect(responses.map((r) => r.status)).toEqual(Array(10).fill(409));
  const first = responses[0]?.body;
  for (const res of responses) expect(res.body).toEqual(first);
  expect(first).toMatchObject({ orderId: expect.any(String), error: { code: 'OUT_OF_STOCK', details: [{ sku: 'SHORT-1', requested: 5, available: 2 }] } });
  const replay = await place('short-key', body);
  expect(replay.status).toBe(409);
  expect(replay.body).toEqual(first);
  expect(await stockOf(stack.db.prisma, 'SHORT-1')).toEqual({ available: 2, reserved: 0, sold: 0 });
});

describe('replays after the order closed', () => {
  test('paid, expired and cancelled orders answer 201 with the order as it is now; a different body still 422', async () => {
    await addProduct(stack.db.prisma, 'DONE-1', 10, 100);
    const bodyOf = (customerId: string) => ({ customerId, items: [{ sku: 'DONE-1', quantity: 1 }], paymentTimeoutSeconds: 1 });

    const paid = await place('done-paid', bodyOf('done-a'));
    expect(paid.status).toBe(201);
    await pay(orderIdOf(paid), { paymentId: 'done-pay', amountCents: 100 });
    const cancelled = await place('done-cancel', bodyOf('done-b'));
    expect(cancelled.status).toBe(201);
    expect((await cancelOrder(stack.app, orderIdOf(cancelled))).status).toBe(200);
    const expired = await place('done-expire', bodyOf('done-c'));
    expect(expired.status).toBe(201);
    await eventually(
      async () => (await getOrder(stack.app, orderIdOf(expired))).body.status,
      (status) => status === 'EXPIRED',
    );
    const stockBefore = await stockOf(stack.db.prisma, 'DONE-1');

    for (const [key, customer, original, status] of [
      ['done-paid', 'done-a', paid, 'PAID'],
      ['done-cancel', 'done-b', cancelled, 'CANCELLED'],
      ['done-expire', 'done-c', expired, 'EXPIRED'],
    ] as const) {
      const replays = await Promise.all([1, 2, 3].map(() => place(key, bodyOf(customer))));
      for (const res of replays) {
        expect(res.status).toBe(201);
        expect(res.body).toMatchObject({ orderId: original.body.orderId, status, closedAt: expect.any(String) });
      }
      const reused = await place(key, { ...bodyOf(customer), items: [{ sku: 'DONE-1', quantity: 2 }] });
      expect(reused.status).toBe(422);
      expect(errorCode(reused)).toBe('IDEMPOTENCY_KEY_REUSED');
      expect(await orderWorkflowRuns(orderIdOf(original))).toBe(1);
    }
    expect(await stockOf(stack.db.prisma, 'DONE-1')).toEqual(stockBefore);
    expect(stockBefore).toEqual({ available: 9, reserved: 0, sold: 1 });
  });

  test('once the workflow history is deleted (retention), a replay answers from the record and starts nothing', async () => {
    await addProduct(stack.db.prisma, 'GONE-1', 5, 100);
    const body = { customerId: 'gone', items: [{ sku: 'GONE-1', quantity: 2 }] };
    const placed = await place('gone-key', body);
    expect(placed.status).toBe(201);
    await pay(orderIdOf(placed), { paymentId: 'gone-pay', amountCents: 200 });
    const workflowId = orderWorkflowId(orderIdOf(placed));
    await eventually(
      async () => (await stack.client.workflow.getHandle(workflowId).describe()).status.name,
      (status) => status === 'COMPLETED',
    );

    await stack.client.workflowService.deleteWorkflowExecution({
      namespace: stack.client.options.namespace,
      workflowExecution: { workflowId },
    });
    await eventually(
      () => stack.client.workflow.getHandle(workflowId).describe().then(() => 'present', (e: unknown) => (e instanceof WorkflowNotFoundError ? 'gone' : 'error')),
      (state) => state === 'gone',
      90_000,
    );

    const replay = await place('gone-key', body);
    expect(replay.status).toBe(201);
    expect(replay.body).toMatchObject({ orderId: placed.body.orderId, status: 'PAID', paymentId: 'gone-pay' });
    expect((await place('gone-key', { ...body, items: [{ sku: 'GONE-1', quantity: 1 }] })).status).toBe(422);
    await expect(stack.client.workflow.getHandle(workflowId).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
    expect(await stockOf(stack.db.prisma, 'GONE-1')).toEqual({ available: 3, reserved: 0, sold: 2 });
  }, 120_000);
});
