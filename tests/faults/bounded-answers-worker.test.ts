/**
 * Fault: the worker process stops (SIGSTOP: frozen with its connections open) or dies (SIGKILL)
 * while a new order, a payment and a cancellation come in. Real dev server, real PostgreSQL, a
 * real worker process. Each request must answer within the decision wait with the contract's
 * 202 (never hang), the same request again must give the same order, and once a worker runs
 * again every decision is made once: one hold, one commit, one release.
 */
import request from 'supertest';
import { orderIdFor } from '../../src/api/placement';
import { checkInventory } from '../../src/db/inventory-check';
import { cancelOrder, getOrder, type HttpAnswer, payOrder, placeOrder, placeToPayAndToCancel } from '../support/api-calls';
import { ANSWER_BOUND_MS, boundedApi, type BoundedApi } from '../support/bounded-api';
import { movementsOf } from '../support/fault-checks';
import { addProduct, stockOf } from '../support/database';
import { useFaultStack } from '../support/fault-stack';
import { eventually } from '../support/wait';
import { DEFAULT_CHANNEL } from '../../activities/types';
import { TEST_ORDER_ID_SECRET } from '../support/stack';

const CUSTOMER = 'bounded-worker';
const stack = useFaultStack(CUSTOMER);
let api: BoundedApi;

beforeAll(() => {
  api = boundedApi({ prisma: stack.db.prisma, temporal: stack.env.client, taskQueue: stack.scenario.taskQueue });
});

afterAll(async () => {
  await api?.close();
});

function expectPending(answer: HttpAnswer, orderId: string): void {
  expect(answer.ms).toBeLessThan(ANSWER_BOUND_MS);
  expect(answer.status).toBe(202);
  expect(answer.headers.location).toBe(`/orders/${orderId}`);
  expect(answer.headers['retry-after']).toMatch(/^\d+$/);
}

async function runWithWorkerDown(fault: 'paused' | 'killed'): Promise<void> {
  const { app } = api;
  const { db, scenario } = stack;
  const sku = (name: string) => `${fault.toUpperCase()}-${name}`;
  await addProduct(db.prisma, sku('PAY'), 10, 500);
  await addProduct(db.prisma, sku('NEW'), 10, 700);
  await addProduct(db.prisma, sku('CANCEL'), 10, 900);
  const worker = await scenario.startWorker(`${fault}-worker`);
  const { payId, cancelId } = await placeToPayAndToCancel(app, CUSTOMER, { toPay: [{ sku: sku('PAY'), quantity: 2 }], toCancel: [{ sku: sku('CANCEL'), quantity: 1 }] }, fault);

  if (fault === 'paused') worker.pause();
  else await worker.kill();

  // Placement: the order exists at once, PENDING, holding nothing.
  const newOrder = { customerId: CUSTOMER, items: [{ sku: sku('NEW'), quantity: 3 }] };
  const newKey = `${fault}-new`;
  const newId = orderIdFor(TEST_ORDER_ID_SECRET, DEFAULT_CHANNEL, CUSTOMER, newKey);
  const placed = await placeOrder(app, newOrder, { idempotencyKey: newKey });
  expectPending(placed, newId);
  expect(placed.body).toMatchObject({ orderId: newId, status: 'PENDING', items: [{ sku: sku('NEW'), quantity: 3, unitPriceCents: 700 }], totalCents: 2100 });
  expect((await getOrder(app, newId)).body).toMatchObject({ orderId: newId, status: 'PENDING' });
  // A storefront polling with the same request, more often than Temporal's cap on updates in
  // flight per workflow (10): each is the same order, still 202.
  for (let retry = 0; retry < 12; retry++) {
    const placedAgain = await placeOrder(app, newOrder, { idempotencyKey: newKey });
    expectPending(placedAgain, newId);
    expect(placedAgain.body).toMatchObject({ orderId: newId, status: 'PENDING' });
  }
  expect(await stockOf(db.prisma, sku('NEW'))).toEqual({ available: 10, reserved: 0, sold: 0 });

  // Payment: received, not decided in time.
  const payment = { paymentId: `${fault}-payment`, amountCents: 1000 };
  const paid = await payOrder(app, payId, payment);
  expectPending(paid, payId);
  expect(paid.body).toMatchObject({ outcome: 'PENDING', order: { orderId: payId, status: 'AWAITING_PAYMENT' } });
  expectPending(await payOrder(app, payId, payment), payId);

  // Cancel: asked for, the stock not back yet.
  const cancelled = await cancelOrder(app, cancelId);
  expectPending(cancelled, cancelId);
  expect(cancelled.body).toMatchObject({ orderId: cancelId, status: 'AWAITING_PAYMENT' });
  expectPending(await cancelOrder(app, cancelId), cancelId);

  if (fault === 'killed') {
    // No worker is alive any more: /readyz says so once the dead worker's last heartbeat is old enough.
    const notReady = await eventually(() => request(app).get('/readyz'), (res) => res.status === 503, 60_000);
    expect(notReady.body.error.details.worker).toMatch(/^unavailable: no worker of task queue \S+ wrote its heartbeat/);
    await scenario.startWorker('second-worker');
  } else {
    worker.resume();
  }

  // Each decision made once; the same requests now get it.
  await eventually(() => getOrder(app, newId), (o) => o.body.status === 'AWAITING_PAYMENT', 90_000);
  const decided = await placeOrder(app, newOrder, { idempotencyKey: newKey });
  expect(decided).toMatchObject({ status: 201, body: { orderId: newId, status: 'AWAITING_PAYMENT', totalCents: 2100 } });
  const applied = await eventually(() => payOrder(app, payId, payment), (a) => a.status !== 202, 90_000);
  expect(applied).toMatchObject({ status: 200, body: { outcome: 'APPLIED', order: { orderId: payId, status: 'PAID', paymentId: `${fault}-payment` } } });
  const closed = await eventually(() => cancelOrder(app, cancelId), (a) => a.status !== 202, 90_000);
  expect(closed).toMatchObject({ status: 200, body: { orderId: cancelId, status: 'CANCELLED' } });
  if (fault === 'killed') await eventually(() => request(app).get('/readyz'), (res) => res.status === 200, 60_000);

  expect(await stockOf(db.prisma, sku('PAY'))).toEqual({ available: 8, reserved: 0, sold: 2 });
  expect(await stockOf(db.prisma, sku('NEW'))).toEqual({ available: 7, reserved: 3, sold: 0 });
  expect(await stockOf(db.prisma, sku('CANCEL'))).toEqual({ available: 10, reserved: 0, sold: 0 });
  expect(await movementsOf(db.prisma, [payId, newId, cancelId])).toEqual({
    [`${payId} ${sku('PAY')}`]: ['RESERVE', 'COMMIT'],
    [`${newId} ${sku('NEW')}`]: ['RESERVE'],
    [`${cancelId} ${sku('CANCEL')}`]: ['RESERVE', 'RELEASE'],
  });
  expect(await checkInventory(db.prisma)).toEqual({ ok: true, violations: [] });
  await scenario.stopWorkers();
}

test('worker stopped (SIGSTOP): placement, payment and cancel answer 202 within the wait; after SIGCONT each is decided once', async () => {
  await runWithWorkerDown('paused');
}, 240_000);

test('worker killed (SIGKILL): the same 202s, /readyz turns 503 (checks.worker); a new worker decides each once', async () => {
  await runWithWorkerDown('killed');
}, 420_000);
