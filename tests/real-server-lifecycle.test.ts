/**
 * The order's lifecycle on the production engine: the real temporal-server v1.29.1 on this
 * machine's PostgreSQL (4 history shards, schemas and namespace by the compose jobs' scripts),
 * as docker-compose.yml runs it, rather than the dev server every other suite uses. Held,
 * paid, expired, cancelled; stock and search attributes checked on that server.
 */
import { randomUUID } from 'node:crypto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { ProcessGroup } from '../scripts/processes';
import { startRealTemporalServer, type RealTemporalServer } from '../scripts/temporal-server';
import { checkInventory } from '../src/db/inventory-check';
import { createTestDatabase, addProduct, stockOf, type TestDatabase } from './support/database';
import { cancelOrder, orderIdOf, payOrder, placeOrder } from './support/api-calls';
import { createTestApi, startWorker, type RunningWorker } from './support/stack';
import { eventually } from './support/wait';
import { orderStatusKey, orderWorkflowId } from '../workflows/messages';
import { EVERY_CHANNEL } from '../src/api/order-records';

const ADMIN_URL = process.env.TEST_DATABASE_ADMIN_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

let group: ProcessGroup;
let server: RealTemporalServer;
let env: TestWorkflowEnvironment;
let db: TestDatabase;
let worker: RunningWorker;
let api: ReturnType<typeof createTestApi>;
const serverLines: string[] = [];

beforeAll(async () => {
  group = new ProcessGroup({
    onLine: (_name, line) => {
      serverLines.push(line);
      if (serverLines.length > 50) serverLines.shift();
    },
    onUnexpectedExit: () => undefined,
  });
  // The first run on a machine builds the server with go install (minutes); later runs find it cached.
  server = await startRealTemporalServer({ databaseAdminUrl: ADMIN_URL, shards: 4, group, log: () => undefined }).catch((error: unknown) => {
    // Why the server did not come up is in its own output.
    throw new Error(`${error instanceof Error ? error.message : String(error)}; the server's last lines:\n${serverLines.join('\n')}`);
  });
  env = await TestWorkflowEnvironment.createFromExistingServer({ address: server.address, namespace: server.namespace });
  db = await createTestDatabase();
  const taskQueue = `checkout-real-server-${randomUUID()}`;
  worker = await startWorker(env, db, taskQueue);
  api = createTestApi({ prisma: db.prisma, temporal: env.client, taskQueue, defaultPaymentTimeoutSeconds: 900 });
}, 900_000);

afterAll(async () => {
  await worker?.stop();
  await api?.services.readiness.close();
  await env?.teardown();
  await server?.stop();
  await db?.drop();
});

afterEach(async () => {
  expect(await checkInventory(db.prisma)).toEqual({ ok: true, violations: [] });
});

async function newProduct(available: number, priceCents = 1000): Promise<string> {
  const sku = `REAL-${randomUUID().slice(0, 8)}`;
  await addProduct(db.prisma, sku, available, priceCents);
  return sku;
}

async function orderStatusAttribute(orderId: string): Promise<unknown> {
  const { typedSearchAttributes } = await env.client.workflow.getHandle(orderWorkflowId(orderId)).describe();
  return typedSearchAttributes.get(orderStatusKey);
}

describe('on the real temporal-server with PostgreSQL', () => {
  test('an order is held, then paid: reserved → sold, and the workflow closes PAID', async () => {
    const sku = await newProduct(5, 1250);
    const placed = await placeOrder(api.app, { customerId: 'real-paid', items: [{ sku, quantity: 2 }] });
    expect(placed.status).toBe(201);
    expect(await stockOf(db.prisma, sku)).toEqual({ available: 3, reserved: 2, sold: 0 });
    const orderId = orderIdOf(placed);
    expect(await orderStatusAttribute(orderId)).toBe('AWAITING_PAYMENT');

    const paid = await payOrder(api.app, orderId, { paymentId: `pay-${randomUUID()}`, amountCents: 2500 });

    expect(paid.status).toBe(200);
    expect(await stockOf(db.prisma, sku)).toEqual({ available: 3, reserved: 0, sold: 2 });
    await env.client.workflow.getHandle(orderWorkflowId(orderId)).result();
    expect(await orderStatusAttribute(orderId)).toBe('PAID');
  });

  test('an unpaid order expires when its window ends and its stock is back on sale', async () => {
    const sku = await newProduct(4);
    const placed = await placeOrder(api.app, { customerId: 'real-expired', items: [{ sku, quantity: 3 }], paymentTimeoutSeconds: 2 });
    expect(placed.status).toBe(201);
    const orderId = orderIdOf(placed);

    const order = await eventually(() => api.services.checkout.getOrder(orderId, EVERY_CHANNEL), (o) => o.status === 'EXPIRED', 60_000);

    expect(order.closedAt).toBeDefined();
    expect(await stockOf(db.prisma, sku)).toEqual({ available: 4, reserved: 0, sold: 0 });
    await env.client.workflow.getHandle(orderWorkflowId(orderId)).result();
    expect(await orderStatusAttribute(orderId)).toBe('EXPIRED');
  });

  test('a cancelled order gives its stock back at once', async () => {
    const sku = await newProduct(2);
    const placed = await placeOrder(api.app, { customerId: 'real-cancelled', items: [{ sku, quantity: 2 }] });

    const cancelled = await cancelOrder(api.app, orderIdOf(placed));

    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ status: 'CANCELLED' });
    expect(await stockOf(db.prisma, sku)).toEqual({ available: 2, reserved: 0, sold: 0 });
  });

  test('an order for more than is on sale is rejected and holds nothing', async () => {
    const sku = await newProduct(1);
    const placed = await placeOrder(api.app, { customerId: 'real-rejected', items: [{ sku, quantity: 2 }] });
    expect(placed.status).toBe(409);
    expect(await stockOf(db.prisma, sku)).toEqual({ available: 1, reserved: 0, sold: 0 });
  });
});
