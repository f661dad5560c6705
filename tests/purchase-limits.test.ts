/**
 * Purchase limits against the real worker, dev server and PostgreSQL: a product's maxPerCustomer
 * (set with PUT /admin/products) and MAX_OPEN_ORDERS_PER_CUSTOMER, each holding when one
 * customer's orders race, refused with the contract's 409 and recorded REJECTED; and the hold's
 * own check, for orders the API did not admit.
 */
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import request from 'supertest';
import { createActivities } from '../activities';
import { createLocalPaymentProvider } from '../activities/payment-provider';
import { FailureType } from '../activities/types';
import { DEFAULTS } from '../src/config';
import { addProduct, stockOf } from './support/database';
import { cancelOrder, orderIdOf, type OrderLines, payOrder, placeOrder, putProductAsOperator, withStatus } from './support/api-calls';
import { TEST_ADMIN_TOKEN, useStack } from './support/stack';

const MAX_OPEN_ORDERS = 5;
const stack = useStack({ maxOpenOrdersPerCustomer: MAX_OPEN_ORDERS });

test('PUT /admin/products sets and removes maxPerCustomer, and the product shows it while set', async () => {
  const created = withStatus(201, await putProductAsOperator(stack.app, 'LIM-SHOW', { name: 'Limited', priceCents: 900, available: 5, maxPerCustomer: 2 }));
  expect(created.body).toEqual({ sku: 'LIM-SHOW', name: 'Limited', priceCents: 900, available: 5, reserved: 0, sold: 0, maxPerCustomer: 2 });
  expect((await request(stack.app).get('/products/LIM-SHOW').expect(200)).body).toMatchObject({ maxPerCustomer: 2 });
  // Absent leaves it; null removes it; below 1 is refused.
  expect((withStatus(200, await putProductAsOperator(stack.app, 'LIM-SHOW', { name: 'Limited', priceCents: 900 }))).body).toMatchObject({ maxPerCustomer: 2 });
  const removed = withStatus(200, await putProductAsOperator(stack.app, 'LIM-SHOW', { name: 'Limited', priceCents: 900, maxPerCustomer: null }));
  expect(removed.body).toEqual({ sku: 'LIM-SHOW', name: 'Limited', priceCents: 900, available: 5, reserved: 0, sold: 0 });
  const invalid = withStatus(400, await putProductAsOperator(stack.app, 'LIM-SHOW', { name: 'Limited', priceCents: 900, maxPerCustomer: 0 }));
  expect(invalid.body).toMatchObject({ error: { code: 'VALIDATION_FAILED', details: [{ path: 'maxPerCustomer' }] } });
});

test('30 concurrent one-unit orders of one customer under maxPerCustomer 3: exactly 3 held, the rest refused PURCHASE_LIMIT_EXCEEDED', async () => {
  withStatus(201, await putProductAsOperator(stack.app, 'LIM-3', { name: 'Three each', priceCents: 1000, available: 100, maxPerCustomer: 3 }));
  const answers = await Promise.all(Array.from({ length: 30 }, () => placeOrder(stack.app, { customerId: 'hoarder', items: [{ sku: 'LIM-3', quantity: 1 }] })));

  expect(answers.filter((a) => a.status === 201)).toHaveLength(3);
  const refused = answers.filter((a) => a.status === 409);
  expect(refused).toHaveLength(27);
  for (const answer of refused) {
    expect(answer.body).toEqual({
      orderId: expect.any(String),
      error: { code: 'PURCHASE_LIMIT_EXCEEDED', message: expect.any(String), details: [{ sku: 'LIM-3', limit: 3, alreadyHeld: 3, requested: 1 }] },
    });
  }
  const statuses = await stack.db.prisma.order.groupBy({ by: ['status', 'rejectionCode'], where: { customerId: 'hoarder' }, _count: true });
  expect(statuses.map(({ status, rejectionCode, _count }) => ({ status, rejectionCode, count: _count })).sort((a, b) => a.status.localeCompare(b.status))).toEqual([
    { status: 'AWAITING_PAYMENT', rejectionCode: null, count: 3 },
    { status: 'REJECTED', rejectionCode: 'PURCHASE_LIMIT_EXCEEDED', count: 27 },
  ]);
  expect(await stockOf(stack.db.prisma, 'LIM-3')).toEqual({ available: 97, reserved: 3, sold: 0 });
  // Another customer is not limited by this one.
  expect((await placeOrder(stack.app, { customerId: 'someone-else', items: [{ sku: 'LIM-3', quantity: 3 }] })).status).toBe(201);
});

test('paid units count against the limit, a replayed refusal answers the same 409, and a cancel frees room', async () => {
  withStatus(201, await putProductAsOperator(stack.app, 'LIM-PAID', { name: 'Two each', priceCents: 500, available: 10, maxPerCustomer: 3 }));
  const first = await placeOrder(stack.app, { customerId: 'collector', items: [{ sku: 'LIM-PAID', quantity: 2 }] });
  expect(first.status).toBe(201);
  const firstId = orderIdOf(first);
  expect((await payOrder(stack.app, firstId, { paymentId: `pay-${firstId}`, amountCents: 1000 })).body).toMatchObject({ outcome: 'APPLIED' });
  const second = await placeOrder(stack.app, { customerId: 'collector', items: [{ sku: 'LIM-PAID', quantity: 1 }] });
  expect(second.status).toBe(201);

  const refused = await placeOrder(stack.app, { customerId: 'collector', items: [{ sku: 'LIM-PAID', quantity: 1 }] }, { idempotencyKey: 'one-more' });
  expect(refused.status).toBe(409);
  const replay = await placeOrder(stack.app, { customerId: 'collector', items: [{ sku: 'LIM-PAID', quantity: 1 }] }, { idempotencyKey: 'one-more' });
  expect(replay.status).toBe(409);
  expect(refused.body).toMatchObject({ error: { code: 'PURCHASE_LIMIT_EXCEEDED', details: [{ sku: 'LIM-PAID', limit: 3, alreadyHeld: 3, requested: 1 }] } });
  expect(replay.body).toEqual(refused.body);

  expect((await cancelOrder(stack.app, orderIdOf(second))).status).toBe(200);
  expect((await placeOrder(stack.app, { customerId: 'collector', items: [{ sku: 'LIM-PAID', quantity: 1 }] })).status).toBe(201);
  expect(await stockOf(stack.db.prisma, 'LIM-PAID')).toEqual({ available: 7, reserved: 1, sold: 2 });
});

test('30 concurrent orders of one customer under MAX_OPEN_ORDERS_PER_CUSTOMER 5: exactly 5 held, the rest refused TOO_MANY_OPEN_ORDERS; a paid or cancelled one frees a place', async () => {
  await addProduct(stack.db.prisma, 'LIM-OPEN', 1000);
  const answers = await Promise.all(Array.from({ length: 30 }, () => placeOrder(stack.app, { customerId: 'bot', items: [{ sku: 'LIM-OPEN', quantity: 1 }] })));

  const held = answers.filter((a) => a.status === 201).map((a) => orderIdOf(a));
  expect(held).toHaveLength(MAX_OPEN_ORDERS);
  const refused = answers.filter((a) => a.status === 409);
  expect(refused).toHaveLength(30 - MAX_OPEN_ORDERS);
  for (const answer of refused) {
    expect(answer.body).toMatchObject({ error: { code: 'TOO_MANY_OPEN_ORDERS', details: { limit: MAX_OPEN_ORDERS, openOrders: MAX_OPEN_ORDERS } } });
  }
  expect((await placeOrder(stack.app, { customerId: 'bot', items: [{ sku: 'LIM-OPEN', quantity: 1 }] })).status).toBe(409);
  const [paid, cancelled] = held;
  expect((await payOrder(stack.app, paid ?? '', { paymentId: `pay-${paid}`, amountCents: 1000 })).body).toMatchObject({ outcome: 'APPLIED' });
  expect((await cancelOrder(stack.app, cancelled ?? '')).status).toBe(200);
  expect((await placeOrder(stack.app, { customerId: 'bot', items: [{ sku: 'LIM-OPEN', quantity: 1 }] })).status).toBe(201);
  expect((await placeOrder(stack.app, { customerId: 'bot', items: [{ sku: 'LIM-OPEN', quantity: 1 }] })).status).toBe(201);
  expect((await placeOrder(stack.app, { customerId: 'bot', items: [{ sku: 'LIM-OPEN', quantity: 1 }] })).status).toBe(409);
  expect(await stockOf(stack.db.prisma, 'LIM-OPEN')).toEqual({ available: 994, reserved: 5, sold: 1 });
});

test('the hold checks the limits too, in its own transaction: racing holds of orders the API never admitted pass no limit', async () => {
  withStatus(201, await putProductAsOperator(stack.app, 'LIM-HOLD', { name: 'Two each', priceCents: 100, available: 50, maxPerCustomer: 2 }));
  await addProduct(stack.db.prisma, 'LIM-HOLD-OPEN', 50, 100);
  const activities = createActivities({
    prisma: stack.db.prisma,
    payments: createLocalPaymentProvider(),
    maxPaymentWindowSeconds: DEFAULTS.maxPaymentWindowSeconds,
    maxOpenOrdersPerCustomer: 3,
  });
  const hold = (customerId: string, sku: string) => {
    const now = new Date();
    return new MockActivityEnvironment().run(activities.reserveStock, {
      orderId: randomUUID(),
      customerId,
      items: [{ sku, quantity: 1 }],
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + 60_000).toISOString(),
      currency: 'eur',
    });
  };

  const perProduct = await Promise.allSettled(Array.from({ length: 12 }, () => hold('racer', 'LIM-HOLD')));
  expect(perProduct.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
  for (const r of perProduct.filter((r): r is PromiseRejectedResult => r.status === 'rejected')) {
    expect(r.reason).toMatchObject({ type: FailureType.PurchaseLimitExceeded, nonRetryable: true });
  }
  const open = await Promise.allSettled(Array.from({ length: 12 }, () => hold('racer', 'LIM-HOLD-OPEN')));
  // The two held above are open too: one more fits under the cap of 3.
  expect(open.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  for (const r of open.filter((r): r is PromiseRejectedResult => r.status === 'rejected')) {
    expect(r.reason).toMatchObject({ type: FailureType.TooManyOpenOrders, nonRetryable: true });
  }
  const rejected = await stack.db.prisma.order.findMany({ where: { customerId: 'racer', status: 'REJECTED' }, select: { rejectionCode: true } });
  expect(rejected.map((o) => o.rejectionCode).sort()).toEqual([...Array(10).fill('PURCHASE_LIMIT_EXCEEDED'), ...Array(11).fill('TOO_MANY_OPEN_ORDERS')]);
  expect(await stockOf(stack.db.prisma, 'LIM-HOLD')).toEqual({ available: 48, reserved: 2, sold: 0 });
  expect(await stockOf(stack.db.prisma, 'LIM-HOLD-OPEN')).toEqual({ available: 49, reserved: 1, sold: 0 });
});

test('the limits count per channel and customer: the same customer id in another channel has limits of its own, at admission and at the hold', async () => {
  withStatus(201, await putProductAsOperator(stack.app, 'LIM-CHAN', { name: 'Two each', priceCents: 300, available: 50, maxPerCustomer: 2 }));
  const created = await request(stack.bareApp)
    .post('/admin/api-keys')
    .set('Authorization', `Bearer ${TEST_ADMIN_TOKEN}`)
    .send({ name: 'app storefront', scope: 'orders', channel: 'app' })
    .expect(201);
  const appKey = (created.body as { key: string }).key;
  const postInApp = (items: OrderLines) => placeOrder(stack.bareApp, { customerId: 'twin', items }, { headers: { Authorization: `Bearer ${appKey}` } });

  // The default channel's twin reaches the limit...
  expect((await placeOrder(stack.app, { customerId: 'twin', items: [{ sku: 'LIM-CHAN', quantity: 2 }] })).status).toBe(201);
  const over = await placeOrder(stack.app, { customerId: 'twin', items: [{ sku: 'LIM-CHAN', quantity: 1 }] });
  expect(over.status).toBe(409);
  expect(over.body).toMatchObject({ error: { code: 'PURCHASE_LIMIT_EXCEEDED', details: [{ sku: 'LIM-CHAN', limit: 2, alreadyHeld: 2, requested: 1 }] } });
  // ...and the app's twin, another customer, still has the whole limit.
  const inApp = await postInApp([{ sku: 'LIM-CHAN', quantity: 2 }]);
  expect(inApp.status).toBe(201);
  expect(inApp.body).toMatchObject({ channel: 'app', status: 'AWAITING_PAYMENT' });
  const overInApp = await postInApp([{ sku: 'LIM-CHAN', quantity: 1 }]);
  expect(overInApp.status).toBe(409);
  expect(overInApp.body).toMatchObject({ error: { code: 'PURCHASE_LIMIT_EXCEEDED', details: [{ sku: 'LIM-CHAN', limit: 2, alreadyHeld: 2, requested: 1 }] } });

  // The hold counts per channel too (an order the API never admitted, in a third channel).
  const activities = createActivities({
    prisma: stack.db.prisma,
    payments: createLocalPaymentProvider(),
    maxPaymentWindowSeconds: DEFAULTS.maxPaymentWindowSeconds,
  });
  const hold = (channel: string, quantity: number) => {
    const now = new Date();
    return new MockActivityEnvironment().run(activities.reserveStock, {
      orderId: randomUUID(),
      channel,
      customerId: 'twin',
      items: [{ sku: 'LIM-CHAN', quantity }],
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + 60_000).toISOString(),
      currency: 'eur',
    });
  };
  await expect(hold('kiosk', 2)).resolves.toMatchObject({ totalCents: 600 });
  await expect(hold('kiosk', 1)).rejects.toMatchObject({ type: FailureType.PurchaseLimitExceeded, nonRetryable: true });
  await expect(hold('app', 1)).rejects.toMatchObject({ type: FailureType.PurchaseLimitExceeded, nonRetryable: true });

  const byChannel = await stack.db.prisma.order.groupBy({ by: ['channel', 'status'], where: { customerId: 'twin' }, _count: true });
  expect(byChannel.map(({ channel, status, _count }) => `${channel} ${status} ${_count}`).sort()).toEqual([
    'app AWAITING_PAYMENT 1',
    'app REJECTED 2',
    'default AWAITING_PAYMENT 1',
    'default REJECTED 1',
    'kiosk AWAITING_PAYMENT 1',
    'kiosk REJECTED 1',
  ]);
  expect(await stockOf(stack.db.prisma, 'LIM-CHAN')).toEqual({ available: 44, reserved: 6, sold: 0 });
});
