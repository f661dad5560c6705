/**
 * Fault: the Temporal server is stopped while orders come in, then started again on its
 * persisted state. The API's client is the one the API process makes (src/temporal.ts: its
 * connect timeout and retry budget). Every request must answer 503 SERVICE_UNAVAILABLE with
 * Retry-After within seconds, nothing may be held or left behind, and once Temporal is back
 * the same requests must place, pay and cancel each order once.
 */
import request from 'supertest';
import { orderIdFor } from '../../src/api/placement';
import { checkInventory } from '../../src/db/inventory-check';
import { connectTemporalClient } from '../../src/temporal';
import { cancelOrder, getOrder, payOrder, placeOrder, placeToPayAndToCancel } from '../support/api-calls';
import { boundedApi, expectUnavailable, type BoundedApi } from '../support/bounded-api';
import { movementsOf } from '../support/fault-checks';
import { addProduct, stockOf } from '../support/database';
import { useRestartableTemporalStack } from '../support/fault-stack';
import { eventually } from '../support/wait';
import { DEFAULT_CHANNEL } from '../../activities/types';
import { TEST_ORDER_ID_SECRET } from '../support/stack';

const CUSTOMER = 'bounded-temporal-down';

let api: BoundedApi;
const stack = useRestartableTemporalStack(CUSTOMER, {
  connect: (address) => connectTemporalClient({ address, namespace: 'default', taskQueue: 'unused' }),
  beforeStop: () => (api ? api.close() : Promise.resolve()),
});

beforeAll(() => {
  api = boundedApi({ prisma: stack.db.prisma, temporal: stack.client, taskQueue: stack.scenario.taskQueue });
});

test('Temporal stopped: placement, payment and cancel answer 503 with Retry-After at once, hold nothing; after restart the same requests succeed once', async () => {
  const { db, scenario, stopTemporal, startTemporal } = stack;
  const { app } = api;
  await addProduct(db.prisma, 'TD-PAY', 10, 400);
  await addProduct(db.prisma, 'TD-NEW', 10, 600);
  await addProduct(db.prisma, 'TD-CANCEL', 10, 800);
  await scenario.startWorker('checkout-worker');
  const { payId, cancelId } = await placeToPayAndToCancel(app, CUSTOMER, { toPay: [{ sku: 'TD-PAY', quantity: 1 }], toCancel: [{ sku: 'TD-CANCEL', quantity: 2 }] }, 'td');

  await stopTemporal();

  const newOrder = { customerId: CUSTOMER, items: [{ sku: 'TD-NEW', quantity: 4 }] };
  const newId = orderIdFor(TEST_ORDER_ID_SECRET, DEFAULT_CHANNEL, CUSTOMER, 'td-new');
  expectUnavailable(await placeOrder(app, newOrder, { idempotencyKey: 'td-new' }), 'temporal');
  // Nothing left behind: the PENDING row was withdrawn, no stock held.
  expect((await getOrder(app, newId)).status).toBe(404);
  expectUnavailable(await placeOrder(app, newOrder, { idempotencyKey: 'td-new' }), 'temporal');
  expect(await stockOf(db.prisma, 'TD-NEW')).toEqual({ available: 10, reserved: 0, sold: 0 });
  expect(await db.prisma.order.count({ where: { status: 'PENDING' } })).toBe(0);
  expectUnavailable(await payOrder(app, payId, { paymentId: 'td-payment', amountCents: 400 }), 'temporal');
  expectUnavailable(await cancelOrder(app, cancelId), 'temporal');
  // Reads come from PostgreSQL, which is up.
  expect((await getOrder(app, payId)).body).toMatchObject({ status: 'AWAITING_PAYMENT' });
  const notReady = await request(app).get('/readyz').expect(503);
  expect(notReady.body.error.details).toMatchObject({ postgres: 'ok', temporal: expect.stringMatching(/^unavailable: /) });

  await startTemporal();

  // The client and the worker reconnect on their own; the same requests now go through.
  const placed = await eventually(() => placeOrder(app, newOrder, { idempotencyKey: 'td-new' }), (a) => a.status === 201, 90_000);
  expect(placed.body).toMatchObject({ orderId: newId, status: 'AWAITING_PAYMENT', totalCents: 2400 });
  const paid = await eventually(() => payOrder(app, payId, { paymentId: 'td-payment', amountCents: 400 }), (a) => a.status === 200, 60_000);
  expect(paid.body).toMatchObject({ outcome: 'APPLIED', order: { orderId: payId, status: 'PAID' } });
  const cancelled = await eventually(() => cancelOrder(app, cancelId), (a) => a.status === 200, 60_000);
  expect(cancelled.body).toMatchObject({ orderId: cancelId, status: 'CANCELLED' });

  expect(await stockOf(db.prisma, 'TD-PAY')).toEqual({ available: 9, reserved: 0, sold: 1 });
  expect(await stockOf(db.prisma, 'TD-NEW')).toEqual({ available: 6, reserved: 4, sold: 0 });
  expect(await stockOf(db.prisma, 'TD-CANCEL')).toEqual({ available: 10, reserved: 0, sold: 0 });
  expect(await movementsOf(db.prisma, [payId, newId, cancelId])).toEqual({
    [`${payId} TD-PAY`]: ['RESERVE', 'COMMIT'],
    [`${newId} TD-NEW`]: ['RESERVE'],
    [`${cancelId} TD-CANCEL`]: ['RESERVE', 'RELEASE'],
  });
  expect(await checkInventory(db.prisma)).toEqual({ ok: true, violations: [] });
}, 240_000);
