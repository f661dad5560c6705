/** The order path through HTTP, against the real worker, dev server and PostgreSQL. */
import request from 'supertest';
import { addProduct, stockOf } from './support/database';
import { getOrder, orderIdOf, payOrder, placeOrder, statusAndBody } from './support/api-calls';
import { useStack } from './support/stack';
import { eventually } from './support/wait';

const stack = useStack();

beforeAll(async () => {
  await addProduct(stack.db.prisma, 'HTTP-1', 10, 1999);
  await addProduct(stack.db.prisma, 'HTTP-2', 3, 500);
});

test('POST /orders holds the stock, the webhook pays it, GET shows it PAID', async () => {
  const created = await placeOrder(stack.app, { customerId: 'web-1', items: [{ sku: 'HTTP-1', quantity: 2 }] });
  expect(created.status).toBe(201);
  expect(created.body).toMatchObject({
    customerId: 'web-1',
    status: 'AWAITING_PAYMENT',
    items: [{ sku: 'HTTP-1', quantity: 2, unitPriceCents: 1999 }],
    totalCents: 3998,
  });
  const orderId = orderIdOf(created);
  expect(await stockOf(stack.db.prisma, 'HTTP-1')).toEqual({ available: 8, reserved: 2, sold: 0 });
  // One definition of an order (order_document): the placement answers what GET shows.
  const read = await getOrder(stack.app, orderId);
  expect(read.status).toBe(200);
  expect(read.body).toEqual(created.body);

  const paid = await payOrder(stack.app, orderId, { paymentId: 'psp-1', amountCents: 3998 });
  expect(paid).toMatchObject({ status: 200, body: { outcome: 'APPLIED', order: { orderId, status: 'PAID', paymentId: 'psp-1' } } });

  const fetched = await getOrder(stack.app, orderId);
  expect(fetched.status).toBe(200);
  expect(fetched.body).toEqual(paid.body.order);
  const product = await request(stack.app).get('/products/HTTP-1').expect(200);
  expect(product.body).toEqual({ sku: 'HTTP-1', name: 'Product HTTP-1', priceCents: 1999, available: 8, reserved: 0, sold: 2 });
});

test('an unpaid order placed over HTTP expires and GET shows EXPIRED with the stock back', async () => {
  const created = await placeOrder(stack.app, { customerId: 'web-2', items: [{ sku: 'HTTP-2', quantity: 3 }], paymentTimeoutSeconds: 1 });
  expect(created.status).toBe(201);
  const { orderId, expiresAt } = created.body as { orderId: string; expiresAt: string };
  expect(Date.parse(expiresAt) - Date.parse((created.body as { createdAt: string }).createdAt)).toBe(1000);

  const expired = await eventually(
    async () => (await getOrder(stack.app, orderId)).body as { status: string; closedAt?: string },
    (order) => order.status === 'EXPIRED',
  );
  expect(Date.parse(expired.closedAt ?? '')).toBeGreaterThanOrEqual(Date.parse(expiresAt));
  expect(await stockOf(stack.db.prisma, 'HTTP-2')).toEqual({ available: 3, reserved: 0, sold: 0 });
});

test('POST /orders for more than is on sale answers 409 OUT_OF_STOCK with the orderId', async () => {
  const res = await placeOrder(stack.app, { customerId: 'web-3', items: [{ sku: 'HTTP-2', quantity: 4 }] });
  expect(res.status).toBe(409);
  expect(res.body).toEqual({
    orderId: expect.any(String),
    error: {
      code: 'OUT_OF_STOCK',
      message: expect.any(String),
      details: [{ sku: 'HTTP-2', requested: 4, available: 3 }],
    },
  });
  const order = await getOrder(stack.app, orderIdOf(res));
  expect(order.status).toBe(200);
  expect((order.body as { status: string }).status).toBe('REJECTED');
});

test('GET /products lists the products with their stock', async () => {
  const res = await request(stack.app).get('/products').expect(200);
  const skus = (res.body as { products: { sku: string }[] }).products.map((p) => p.sku);
  expect(skus).toEqual(['HTTP-1', 'HTTP-2']);
});

test('unknown orders, products and routes answer 404 in the contract shape', async () => {
  const notAnId = await getOrder(stack.app, 'not-a-uuid');
  expect(statusAndBody(notAnId)).toEqual({ status: 404, body: { error: { code: 'ORDER_NOT_FOUND', message: 'no order not-a-uuid' } } });
  const missing = await getOrder(stack.app, '00000000-0000-4000-8000-000000000000');
  expect(missing.status).toBe(404);
  expect((missing.body as { error: { code: string } }).error.code).toBe('ORDER_NOT_FOUND');
  const product = await request(stack.app).get('/products/NOPE').expect(404);
  expect((product.body as { error: { code: string } }).error.code).toBe('PRODUCT_NOT_FOUND');
});
