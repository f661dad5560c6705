/**
 * Fault: PostgreSQL crashes (`pg_ctl stop -m immediate`) while orders come in, then starts
 * again. The API's database client has the API's timeouts (src/db/client.ts). Every request must
 * answer 503 SERVICE_UNAVAILABLE with Retry-After within seconds and hold nothing; once the
 * database is back, the same requests must place, pay and cancel each order once.
 */
import request from 'supertest';
import { orderIdFor } from '../../src/api/placement';
import { API_DATABASE_TIMEOUTS } from '../../src/db/client';
import { checkInventory } from '../../src/db/inventory-check';
import { cancelOrder, getOrder, payOrder, placeOrder, placeToPayAndToCancel } from '../support/api-calls';
import { boundedApi, expectUnavailable, type BoundedApi } from '../support/bounded-api';
import { movementsOf } from '../support/fault-checks';
import { addProduct, stockOf } from '../support/database';
import { useOwnPostgresStack } from '../support/fault-stack';
import { eventually } from '../support/wait';
import { DEFAULT_CHANNEL } from '../../activities/types';
import { TEST_ORDER_ID_SECRET } from '../support/stack';

const CUSTOMER = 'bounded-postgres-down';

let api: BoundedApi;
const stack = useOwnPostgresStack(CUSTOMER, { databaseTimeouts: API_DATABASE_TIMEOUTS, beforeStop: () => (api ? api.close() : Promise.resolve()) });

beforeAll(() => {
  api = boundedApi({ prisma: stack.prisma, temporal: stack.env.client, taskQueue: stack.scenario.taskQueue });
});

test('PostgreSQL stopped: placement, payment, cancel and reads answer 503 with Retry-After at once, hold nothing; after restart the same requests succeed once', async () => {
  const { postgres, prisma, scenario } = stack;
  const { app } = api;
  await addProduct(prisma, 'PD-PAY', 10, 300);
  await addProduct(prisma, 'PD-NEW', 10, 500);
  await addProduct(prisma, 'PD-CANCEL', 10, 700);
  await scenario.startWorker('checkout-worker');
  const { payId, cancelId } = await placeToPayAndToCancel(app, CUSTOMER, { toPay: [{ sku: 'PD-PAY', quantity: 2 }], toCancel: [{ sku: 'PD-CANCEL', quantity: 1 }] }, 'pd');

  await postgres.crash();

  const newOrder = { customerId: CUSTOMER, items: [{ sku: 'PD-NEW', quantity: 5 }] };
  const newId = orderIdFor(TEST_ORDER_ID_SECRET, DEFAULT_CHANNEL, CUSTOMER, 'pd-new');
  expectUnavailable(await placeOrder(app, newOrder, { idempotencyKey: 'pd-new' }), 'postgres');
  expectUnavailable(await placeOrder(app, newOrder, { idempotencyKey: 'pd-new' }), 'postgres');
  expectUnavailable(await getOrder(app, newId), 'postgres');
  expectUnavailable(await payOrder(app, payId, { paymentId: 'pd-payment', amountCents: 600 }), 'postgres');
  expectUnavailable(await cancelOrder(app, cancelId), 'postgres');
  const notReady = await request(app).get('/readyz').expect(503);
  expect(notReady.body.error.details).toMatchObject({ postgres: expect.stringMatching(/^unavailable: /), temporal: 'ok' });

  await postgres.start();

  // Nothing was started while it was down: the order does not exist until it is sent again.
  await eventually(() => getOrder(app, newId), (a) => a.status !== 503, 60_000);
  expect((await getOrder(app, newId)).status).toBe(404);
  expect(await stockOf(prisma, 'PD-NEW')).toEqual({ available: 10, reserved: 0, sold: 0 });
  const placed = await eventually(() => placeOrder(app, newOrder, { idempotencyKey: 'pd-new' }), (a) => a.status !== 202 && a.status !== 503, 60_000);
  expect(placed).toMatchObject({ status: 201, body: { orderId: newId, status: 'AWAITING_PAYMENT', totalCents: 2500 } });
  const paid = await eventually(() => payOrder(app, payId, { paymentId: 'pd-payment', amountCents: 600 }), (a) => a.status !== 202 && a.status !== 503, 60_000);
  expect(paid).toMatchObject({ status: 200, body: { outcome: 'APPLIED', order: { orderId: payId, status: 'PAID' } } });
  const cancelled = await eventually(() => cancelOrder(app, cancelId), (a) => a.status !== 202 && a.status !== 503, 60_000);
  expect(cancelled).toMatchObject({ status: 200, body: { orderId: cancelId, status: 'CANCELLED' } });

  expect(await stockOf(prisma, 'PD-PAY')).toEqual({ available: 8, reserved: 0, sold: 2 });
  expect(await stockOf(prisma, 'PD-NEW')).toEqual({ available: 5, reserved: 5, sold: 0 });
  expect(await stockOf(prisma, 'PD-CANCEL')).toEqual({ available: 10, reserved: 0, sold: 0 });
  expect(await movementsOf(prisma, [payId, newId, cancelId])).toEqual({
    [`${payId} PD-PAY`]: ['RESERVE', 'COMMIT'],
    [`${newId} PD-NEW`]: ['RESERVE'],
    [`${cancelId} PD-CANCEL`]: ['RESERVE', 'RELEASE'],
  });
  expect(await checkInventory(prisma)).toEqual({ ok: true, violations: [] });
}, 240_000);
