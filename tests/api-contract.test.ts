/**
 * Every endpoint and error code of the contract over HTTP, on the real worker, dev server and
 * PostgreSQL; after each test the stock invariants hold.
 */
import { Client, Connection } from '@temporalio/client';
import type express from 'express';
import request from 'supertest';
import { createPrismaClient } from '../src/db/client';
import { addProduct, stockOf } from './support/database';
import { cancelOrder, errorCode, getOrder, orderIdOf, payOrder, placeOrder, statusAndBody } from './support/api-calls';
import { createTestApi, TEST_ADMIN_TOKEN, useStack } from './support/stack';
import { eventually } from './support/wait';

const stack = useStack();

interface OrderBody {
  orderId: string;
  status: string;
  totalCents: number;
  expiresAt: string;
  closedAt?: string;
}

async function placeHeld(sku: string, quantity: number, extra: { paymentTimeoutSeconds?: number } = {}): Promise<OrderBody> {
  const placed = await placeOrder(stack.app, { customerId: 'contract', items: [{ sku, quantity }], ...extra });
  expect(placed.status).toBe(201);
  return placed.body as unknown as OrderBody;
}

async function expired(orderId: string): Promise<OrderBody> {
  return eventually(
    async () => (await getOrder(stack.app, orderId)).body as unknown as OrderBody,
    (order) => order.status === 'EXPIRED',
  );
}

describe('POST /orders/:orderId/cancel', () => {
  test('cancels an unpaid order once its stock is back, and answers the same when repeated', async () => {
    await addProduct(stack.db.prisma, 'CAN-1', 5);
    const order = await placeHeld('CAN-1', 4);
    const cancelled = await cancelOrder(stack.app, order.orderId);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ orderId: order.orderId, status: 'CANCELLED', closedAt: expect.any(String) });
    expect(await stockOf(stack.db.prisma, 'CAN-1')).toEqual({ available: 5, reserved: 0, sold: 0 });
    const again = await cancelOrder(stack.app, order.orderId);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(cancelled.body);
    expect(await stack.db.prisma.stockMovement.count({ where: { orderId: order.orderId, kind: 'RELEASE' } })).toBe(1);
  });

  test('refuses a paid order (409 ORDER_ALREADY_PAID) and keeps it paid', async () => {
    await addProduct(stack.db.prisma, 'CAN-2', 5, 100);
    const order = await placeHeld('CAN-2', 2);
    expect((await payOrder(stack.app, order.orderId, { paymentId: 'can-2-pay', amountCents: 200 })).body.outcome).toBe('APPLIED');
    const res = await cancelOrder(stack.app, order.orderId);
    expect(res.status).toBe(409);
    expect(errorCode(res)).toBe('ORDER_ALREADY_PAID');
    expect(await stockOf(stack.db.prisma, 'CAN-2')).toEqual({ available: 3, reserved: 0, sold: 2 });
  });

  test('refuses an expired order (409 ORDER_EXPIRED) and a rejected one (409 ORDER_REJECTED)', async () => {
    await addProduct(stack.db.prisma, 'CAN-3', 1);
    const order = await placeHeld('CAN-3', 1, { paymentTimeoutSeconds: 1 });
    await expired(order.orderId);
    const late = await cancelOrder(stack.app, order.orderId);
    expect(late.status).toBe(409);
    expect(errorCode(late)).toBe('ORDER_EXPIRED');

    const rejected = await placeOrder(stack.app, { customerId: 'c', items: [{ sku: 'CAN-3', quantity: 2 }] });
    expect(rejected.status).toBe(409);
    const res = await cancelOrder(stack.app, orderIdOf(rejected));
    expect(res.status).toBe(409);
    expect(errorCode(res)).toBe('ORDER_REJECTED');
    expect(await stockOf(stack.db.prisma, 'CAN-3')).toEqual({ available: 1, reserved: 0, sold: 0 });
  });

  test('answers 404 ORDER_NOT_FOUND for ids that name no order', async () => {
    for (const id of ['00000000-0000-4000-8000-000000000001', 'nope', '1', '%E2%82%AC', 'x'.repeat(300)]) {
      const res = await cancelOrder(stack.app, id);
      expect(res.status).toBe(404);
      expect(errorCode(res)).toBe('ORDER_NOT_FOUND');
    }
  });
});

describe('POST /webhooks/payments', () => {
  test('a repeated delivery of the same paymentId answers the same 200 APPLIED and commits once', async () => {
    await addProduct(stack.db.prisma, 'PAY-1', 3, 700);
    const order = await placeHeld('PAY-1', 3);
    const first = await payOrder(stack.app, order.orderId, { paymentId: 'p-1', amountCents: 2100 });
    expect(first).toMatchObject({ status: 200, body: { outcome: 'APPLIED', order: { orderId: order.orderId, status: 'PAID', paymentId: 'p-1' } } });
    const again = await Promise.all([1, 2, 3].map(() => payOrder(stack.app, order.orderId, { paymentId: 'p-1', amountCents: 2100 })));
    for (const res of again) expect(statusAndBody(res)).toEqual(statusAndBody(first));
    expect(await stack.db.prisma.stockMovement.count({ where: { orderId: order.orderId, kind: 'COMMIT' } })).toBe(1);
    expect(await stockOf(stack.db.prisma, 'PAY-1')).toEqual({ available: 0, reserved: 0, sold: 3 });
  });

  test('a wrong amount answers 200 AMOUNT_MISMATCH, is refunded, and the order still awaits payment', async () => {
    await addProduct(stack.db.prisma, 'PAY-2', 3, 700);
    const order = await placeHeld('PAY-2', 1);
    const res = await payOrder(stack.app, order.orderId, { paymentId: 'p-2', amountCents: 1 });
    expect(res).toMatchObject({
      status: 200,
      body: { outcome: 'AMOUNT_MISMATCH', refund: { paymentId: 'p-2', status: 'REFUNDED' }, order: { status: 'AWAITING_PAYMENT' } },
    });
    const read = await getOrder(stack.app, order.orderId);
    expect(read.status).toBe(200);
    expect(read.body.status).toBe('AWAITING_PAYMENT');
    expect((await payOrder(stack.app, order.orderId, { paymentId: 'p-2b', amountCents: 700 })).body.outcome).toBe('APPLIED');
  });

  test('a second payment of a paid order answers 200 ORDER_ALREADY_PAID and is refunded exactly once', async () => {
    await addProduct(stack.db.prisma, 'PAY-3', 3, 500);
    const order = await placeHeld('PAY-3', 1);
    expect((await payOrder(stack.app, order.orderId, { paymentId: 'p-3a', amountCents: 500 })).body.outcome).toBe('APPLIED');
    const responses = await Promise.all([1, 2].map(() => payOrder(stack.app, order.orderId, { paymentId: 'p-3b', amountCents: 500 })));
    for (const res of responses) {
      expect(res).toMatchObject({ status: 200, body: { outcome: 'ORDER_ALREADY_PAID', refund: { paymentId: 'p-3b', status: 'REFUNDED' } } });
    }
    expect(await stack.db.prisma.refund.count({ where: { orderId: order.orderId } })).toBe(1);
  });

  test('payments for expired, cancelled and rejected orders answer 200 with their outcome and are refunded', async () => {
    await addProduct(stack.db.prisma, 'PAY-4', 2, 100);
    const toExpire = await placeHeld('PAY-4', 1, { paymentTimeoutSeconds: 1 });
    const toCancel = await placeHeld('PAY-4', 1);
    expect((await cancelOrder(stack.app, toCancel.orderId)).status).toBe(200);
    const rejected = await placeOrder(stack.app, { customerId: 'c', items: [{ sku: 'PAY-4', quantity: 3 }] });
    expect(rejected.status).toBe(409);
    await expired(toExpire.orderId);

    const cases: [string, string][] = [
      [toExpire.orderId, 'ORDER_EXPIRED'],
      [toCancel.orderId, 'ORDER_CANCELLED'],
      [orderIdOf(rejected), 'ORDER_REJECTED'],
    ];
    for (const [orderId, outcome] of cases) {
      const res = await payOrder(stack.app, orderId, { paymentId: `late-${outcome}`, amountCents: 100 });
      expect(res).toMatchObject({ status: 200, body: { outcome, refund: { paymentId: `late-${outcome}`, status: 'REFUNDED' }, order: { orderId } } });
    }
    expect(await stockOf(stack.db.prisma, 'PAY-4')).toEqual({ available: 2, reserved: 0, sold: 0 });
  });

  test('an unknown order, or an orderId that is no UUID, answers 404 ORDER_NOT_FOUND and records nothing', async () => {
    for (const orderId of ['00000000-0000-4000-8000-000000000002', 'not-a-uuid', "1' OR '1'='1"]) {
      const res = await payOrder(stack.app, orderId, { paymentId: `p-${orderId}`, amountCents: 1 });
      expect({ orderId, status: res.status, code: (res.body.error as { code: string }).code }).toEqual({ orderId, status: 404, code: 'ORDER_NOT_FOUND' });
    }
    expect(await stack.db.prisma.paymentReceipt.count({ where: { paymentId: { startsWith: 'p-0000' } } })).toBe(0);
  });
});

describe('POST /orders', () => {
  test('an unknown sku answers 422 UNKNOWN_SKU listing the unknown skus, and holds nothing', async () => {
    await addProduct(stack.db.prisma, 'UNK-1', 5);
    const res = await placeOrder(stack.app, { customerId: 'u', items: [{ sku: 'UNK-1', quantity: 1 }, { sku: 'NOPE-A', quantity: 1 }, { sku: 'NOPE-B', quantity: 1 }] });
    expect(res.status).toBe(422);
    expect(res.body).toEqual({ error: { code: 'UNKNOWN_SKU', message: expect.any(String), details: ['NOPE-A', 'NOPE-B'] } });
    expect(await stockOf(stack.db.prisma, 'UNK-1')).toEqual({ available: 5, reserved: 0, sold: 0 });
  });
});

describe('health, metrics, OpenAPI, routing', () => {
  test('GET /healthz answers 200 and GET /readyz 200 with every check ok (a worker polls the task queue)', async () => {
    await request(stack.app).get('/healthz').expect(200, { status: 'ok' });
    await request(stack.app).get('/readyz').expect(200, { status: 'ready', checks: { postgres: 'ok', temporal: 'ok', worker: 'ok' } });
  });

  test('GET /metrics answers Prometheus text with the HTTP latency by route pattern', async () => {
    await request(stack.app).get('/products').expect(200);
    expect((await getOrder(stack.app, '00000000-0000-4000-8000-000000000003')).status).toBe(404);
    const res = await request(stack.app).get('/metrics').expect(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.text).toMatch(/checkout_http_request_duration_seconds_count\{method="GET",route="\/products",status_code="200"\} \d+/);
    expect(res.text).toMatch(/checkout_http_request_duration_seconds_count\{method="GET",route="\/orders\/:orderId",status_code="404"\} \d+/);
    expect(res.text).toContain('process_cpu_seconds_total');
  });

  test('GET /openapi.json documents exactly the routes the app serves, with the request schemas it validates with', async () => {
    const res = await request(stack.app).get('/openapi.json').expect(200);
    const documented = Object.entries(res.body.paths as Record<string, Record<string, unknown>>).flatMap(([path, item]) =>
      Object.keys(item).map((method) => `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`),
    );
    expect(documented.sort()).toEqual(servedRoutes(stack.bareApp).sort());
    expect(res.body.openapi).toBe('3.1.0');
    expect(res.body.components.schemas.CreateOrderRequest).toMatchObject({
      required: ['customerId', 'items'],
      additionalProperties: false,
      properties: { items: { minItems: 1, maxItems: 50 } },
    });
    expect(res.body.paths['/orders'].post.responses).toHaveProperty('409');
    expect(res.body.components.schemas.PaymentWebhook).toMatchObject({ required: ['type', 'data'], additionalProperties: false });
    for (const path of ['/webhooks/payments', '/webhooks/stripe']) {
      expect(Object.keys(res.body.paths[path].post.responses).sort()).toEqual(['200', '202', '400', '401', '404', '503']);
    }
    expect(res.body.components.schemas.PaymentAnswer.properties.outcome.enum).toEqual(expect.arrayContaining(['PAYMENT_ALREADY_USED', 'CURRENCY_MISMATCH']));
    expect(res.body.paths['/webhooks/payments'].post.parameters.map((p: { name: string }) => p.name).sort()).toEqual([
      'webhook-id',
      'webhook-signature',
      'webhook-timestamp',
    ]);
    expect(res.body.components.securitySchemes).toMatchObject({
      operatorKey: { type: 'http', scheme: 'bearer' },
      storefrontKey: { type: 'http', scheme: 'bearer' },
    });
    // Every route that needs a key says which, and documents both refusals.
    for (const [path, item] of Object.entries(res.body.paths as Record<string, Record<string, { security?: unknown; responses: object }>>)) {
      for (const operation of Object.values(item)) {
        const needsKey = path.startsWith('/admin') || path.startsWith('/orders');
        expect({ path, security: operation.security !== undefined }).toEqual({ path, security: needsKey });
        if (needsKey) expect(Object.keys(operation.responses)).toEqual(expect.arrayContaining(['401', '403']));
      }
    }
  });

  test('unknown routes answer 404 ROUTE_NOT_FOUND and wrong methods 405 METHOD_NOT_ALLOWED with Allow, in the contract shape', async () => {
    const missing = await request(stack.app).get('/nope').expect(404);
    expect(missing.body).toEqual({ error: { code: 'ROUTE_NOT_FOUND', message: 'no route for GET /nope' } });
    const wrong = await request(stack.app).delete('/orders').expect(405);
    expect(wrong.headers.allow).toBe('POST');
    expect(wrong.body.error.code).toBe('METHOD_NOT_ALLOWED');
    const admin = await request(stack.app).get('/admin/products/X').set('Authorization', `Bearer ${TEST_ADMIN_TOKEN}`).expect(405);
    expect(admin.headers.allow).toBe('PUT');
  });

  test('every response carries a request id; a sane X-Request-Id from the caller is kept', async () => {
    const given = await request(stack.app).get('/healthz').set('X-Request-Id', 'req-abc.123').expect(200);
    expect(given.headers['x-request-id']).toBe('req-abc.123');
    const generated = await request(stack.app).get('/healthz').set('X-Request-Id', 'no spaces <allowed>').expect(200);
    expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('when PostgreSQL or Temporal is down', () => {
  let app: express.Express;
  let closeAll: () => Promise<void>;

  beforeAll(async () => {
    // Real clients aimed at ports where nothing listens.
    const prisma = createPrismaClient('postgresql://postgres@127.0.0.1:1/none', 1);
    const connection = await Connection.lazy({ address: '127.0.0.1:1' });
    const temporal = new Client({ connection });
    const created = createTestApi({ prisma, temporal, taskQueue: 'nowhere', defaultPaymentTimeoutSeconds: 60 });
    app = created.app;
    const { services } = created;
    closeAll = async () => {
      await services.readiness.close();
      await connection.close();
      await prisma.$disconnect();
    };
  });

  afterAll(async () => {
    await closeAll();
  });

  test('GET /readyz answers 503 SERVICE_UNAVAILABLE naming the failed checks; /healthz still 200', async () => {
    const res = await request(app).get('/readyz').expect(503);
    expect(res.body.error).toMatchObject({
      code: 'SERVICE_UNAVAILABLE',
      details: {
        postgres: expect.stringMatching(/^unavailable: /),
        temporal: expect.stringMatching(/^unavailable: /),
        worker: expect.stringMatching(/^unavailable: /),
      },
    });
    await request(app).get('/healthz').expect(200);
  });

  test('an unreachable database answers 503 SERVICE_UNAVAILABLE with Retry-After, with no stack or cause', async () => {
    const res = await request(app).get('/products').expect(503);
    expect(res.headers['retry-after']).toMatch(/^\d+$/);
    expect(res.body).toEqual({ error: { code: 'SERVICE_UNAVAILABLE', message: expect.any(String), details: { unavailable: 'postgres' } } });
    expect(res.text).not.toMatch(/at |prisma|ECONNREFUSED|127\.0\.0\.1/i);
    const order = await placeOrder(app, { customerId: 'c', items: [{ sku: 'X', quantity: 1 }] });
    expect(order.status).toBe(503);
    expect(order.headers['retry-after']).toMatch(/^\d+$/);
  });
});

/** Method and path of every route the Express app serves (405 fallbacks excluded). */
function servedRoutes(app: express.Express): string[] {
  interface Layer {
    route?: { path: string; stack: { method?: string }[] };
  }
  const router = (app as unknown as { router: { stack: Layer[] } }).router;
  return router.stack.flatMap((layer) =>
    layer.route
      ? [...new Set(layer.route.stack.map((l) => l.method).filter((m): m is string => m !== undefined && m !== '_all'))].map(
          (m) => `${m.toUpperCase()} ${layer.route?.path}`,
        )
      : [],
  );
}
