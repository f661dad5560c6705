/**
 * reserveStock over the PENDING row the API records before it starts an order: the hold moves
 * that row on (to AWAITING_PAYMENT with the held prices, or to REJECTED) in its own transaction,
 * however many attempts run at once or late, and holds each unit once.
 */
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../activities';
import { createLocalPaymentProvider } from '../activities/payment-provider';
import { FailureType } from '../activities/types';
import { DEFAULTS } from '../src/config';
import { checkInventory } from '../src/db/inventory-check';
import { admitOrder } from '../src/api/admission';
import { reclaimDueOrders } from '../src/reclaim';
import { admissionRequest } from './support/admission';
import { addProduct, createTestDatabase, stockOf, type TestDatabase } from './support/database';

let db: TestDatabase;
let activities: ReturnType<typeof createActivities>;

beforeAll(async () => {
  db = await createTestDatabase(40);
  activities = createActivities({ prisma: db.prisma, payments: createLocalPaymentProvider(), maxPaymentWindowSeconds: DEFAULTS.maxPaymentWindowSeconds });
});

afterAll(async () => {
  await db?.drop();
});

afterEach(async () => {
  expect(await checkInventory(db.prisma)).toEqual({ ok: true, violations: [] });
});

type Lines = { sku: string; quantity: number; unitPriceCents: number }[];

/** The row as the API records it: PENDING, catalog prices, an estimated expiry. */
async function recordPending(lines: Lines): Promise<string> {
  const orderId = randomUUID();
  const createdAt = new Date(Date.now() - 1_000);
  await db.prisma.order.create({
    data: {
      id: orderId,
      customerId: 'pending',
      status: 'PENDING',
      totalCents: lines.reduce((sum, l) => sum + l.quantity * l.unitPriceCents, 0),
      createdAt,
      expiresAt: new Date(createdAt.getTime() + 60_000),
      currency: 'eur',
      idempotencyKey: orderId,
      requestHash: 'hash',
      items: { create: lines },
    },
  });
  return orderId;
}

function reserveAttempts(orderId: string, lines: Lines, times = 6, channel?: string) {
  const createdAt = new Date();
  const input = {
    orderId,
    ...(channel !== undefined && { channel }),
    customerId: 'pending',
    items: lines.map(({ sku, quantity }) => ({ sku, quantity })),
    createdAt: createdAt.toISOString(),
    expiresAt: new Date(createdAt.getTime() + 60_000).toISOString(),
    currency: 'eur',
    idempotencyKey: orderId,
    requestHash: 'hash',
  };
  const run = () => new MockActivityEnvironment().run(activities.reserveStock, input);
  return { input, run, together: () => Promise.allSettled(Array.from({ length: times }, run)) };
}

test('a PENDING order is held once, at the held prices, whatever the number of attempts at once and after', async () => {
  await addProduct(db.prisma, 'PEN-A', 10, 500);
  await addProduct(db.prisma, 'PEN-B', 10, 700);
  const lines = [{ sku: 'PEN-A', quantity: 2, unitPriceCents: 500 }, { sku: 'PEN-B', quantity: 1, unitPriceCents: 700 }];
  const orderId = await recordPending(lines);
  // The price changes between placement and hold: the hold's price counts.
  await db.prisma.product.update({ where: { sku: 'PEN-B' }, data: { priceCents: 800 } });

  const { input, run, together } = reserveAttempts(orderId, lines);
  const results = [...(await together()), ...(await Promise.allSettled([run()]))];
  const held = { lines: [{ sku: 'PEN-A', quantity: 2, unitPriceCents: 500 }, { sku: 'PEN-B', quantity: 1, unitPriceCents: 800 }], totalCents: 1800 };
  for (const result of results) expect(result).toEqual({ status: 'fulfilled', value: held });

  const order = await db.prisma.order.findUniqueOrThrow({ where: { id: orderId }, include: { items: { orderBy: { sku: 'asc' } } } });
  expect(order).toMatchObject({ status: 'AWAITING_PAYMENT', totalCents: 1800n, createdAt: new Date(input.createdAt), expiresAt: new Date(input.expiresAt) });
  expect(order.items.map(({ sku, quantity, unitPriceCents }) => ({ sku, quantity, unitPriceCents }))).toEqual(held.lines);
  expect(await stockOf(db.prisma, 'PEN-A')).toEqual({ available: 8, reserved: 2, sold: 0 });
  expect(await stockOf(db.prisma, 'PEN-B')).toEqual({ available: 9, reserved: 1, sold: 0 });
  expect(await db.prisma.stockMovement.count({ where: { orderId } })).toBe(2);
});

test('a PENDING order without the stock is rejected once, holding nothing, and every attempt answers out of stock', async () => {
  await addProduct(db.prisma, 'PEN-C', 3, 900);
  await addProduct(db.prisma, 'PEN-D', 10, 100);
  const lines = [{ sku: 'PEN-C', quantity: 5, unitPriceCents: 900 }, { sku: 'PEN-D', quantity: 1, unitPriceCents: 100 }];
  const orderId = await recordPending(lines);

  const { run, together } = reserveAttempts(orderId, lines);
  const results = [...(await together()), ...(await Promise.allSettled([run()]))];
  for (const result of results) {
    expect(result.status).toBe('rejected');
    expect((result as PromiseRejectedResult).reason).toMatchObject({ type: FailureType.OutOfStock, nonRetryable: true });
  }
  const order = await db.prisma.order.findUniqueOrThrow({ where: { id: orderId } });
  expect(order).toMatchObject({ status: 'REJECTED', rejection: [{ sku: 'PEN-C', requested: 5, available: 3 }] });
  expect(order.closedAt).not.toBeNull();
  expect(await stockOf(db.prisma, 'PEN-C')).toEqual({ available: 3, reserved: 0, sold: 0 });
  expect(await stockOf(db.prisma, 'PEN-D')).toEqual({ available: 10, reserved: 0, sold: 0 });
  expect(await db.prisma.stockMovement.count({ where: { orderId } })).toBe(0);
});

test('an order whose PENDING row is gone (its start failed and the API withdrew it) is still held once, the row created', async () => {
  await addProduct(db.prisma, 'PEN-E', 4, 250);
  const lines = [{ sku: 'PEN-E', quantity: 4, unitPriceCents: 250 }];
  const { input, together } = reserveAttempts(randomUUID(), lines);
  for (const result of await together()) expect(result).toEqual({ status: 'fulfilled', value: { lines, totalCents: 1000 } });
  expect(await db.prisma.order.findUniqueOrThrow({ where: { id: input.orderId } })).toMatchObject({ status: 'AWAITING_PAYMENT' });
  expect(await stockOf(db.prisma, 'PEN-E')).toEqual({ available: 0, reserved: 4, sold: 0 });
});

test("an order whose PENDING row is gone is created in its key's channel, so that channel's storefront still finds it", async () => {
  await addProduct(db.prisma, 'PEN-H', 4, 250);
  const lines = [{ sku: 'PEN-H', quantity: 1, unitPriceCents: 250 }];
  const { input, together } = reserveAttempts(randomUUID(), lines, 3, 'web');
  for (const result of await together()) expect(result.status).toBe('fulfilled');
  expect(await db.prisma.order.findUniqueOrThrow({ where: { id: input.orderId } })).toMatchObject({ status: 'AWAITING_PAYMENT', channel: 'web' });
  // Histories from before channels carry none: the default channel, as the migration gave old orders.
  const old = reserveAttempts(randomUUID(), lines, 1);
  await old.together();
  expect(await db.prisma.order.findUniqueOrThrow({ where: { id: old.input.orderId } })).toMatchObject({ channel: 'default' });
});

test('an order naming an unknown sku fails without retries and changes nothing: its PENDING row, the stock and the ledger stay as they were', async () => {
  await addProduct(db.prisma, 'PEN-F', 5, 100);
  const lines = [
    { sku: 'PEN-F', quantity: 1, unitPriceCents: 100 },
    { sku: 'PEN-NOWHERE', quantity: 1, unitPriceCents: 0 },
  ];
  // The API would have refused it; a workflow started by other means could still ask. The row
  // cannot name the unknown sku (a foreign key), so it carries the known line only.
  const orderId = await recordPending(lines.slice(0, 1));
  const before = await db.prisma.order.findUniqueOrThrow({ where: { id: orderId }, include: { items: true } });
  const { together } = reserveAttempts(orderId, lines, 3);
  for (const result of await together()) {
    expect(result.status).toBe('rejected');
    const reason = (result as PromiseRejectedResult).reason as { type?: string; nonRetryable?: boolean; details?: unknown[] };
    expect(reason).toMatchObject({ type: FailureType.UnknownSku, nonRetryable: true, details: [['PEN-NOWHERE']] });
  }
  expect(await db.prisma.order.findUniqueOrThrow({ where: { id: orderId }, include: { items: true } })).toEqual(before);
  // Without its PENDING row either: no row is made for it.
  const withoutRow = reserveAttempts(randomUUID(), lines, 1, 'web');
  await withoutRow.together();
  expect(await db.prisma.order.count({ where: { id: withoutRow.input.orderId } })).toBe(0);
  expect(await stockOf(db.prisma, 'PEN-F')).toEqual({ available: 5, reserved: 0, sold: 0 });
  expect(await db.prisma.stockMovement.count({ where: { orderId } })).toBe(0);
  expect(await db.prisma.orderEvent.count({ where: { orderId } })).toBe(0);
});

test('an order without a PENDING row and without the stock is recorded as REJECTED once, however many attempts at once', async () => {
  await addProduct(db.prisma, 'PEN-G', 2, 300);
  const lines = [{ sku: 'PEN-G', quantity: 3, unitPriceCents: 300 }];
  const { input, together } = reserveAttempts(randomUUID(), lines);
  for (const result of await together()) {
    expect(result.status).toBe('rejected');
    expect((result as PromiseRejectedResult).reason).toMatchObject({ type: FailureType.OutOfStock, details: [[{ sku: 'PEN-G', requested: 3, available: 2 }]] });
  }
  const order = await db.prisma.order.findUniqueOrThrow({ where: { id: input.orderId }, include: { items: true } });
  expect(order).toMatchObject({ status: 'REJECTED', totalCents: 900n, idempotencyKey: input.orderId, requestHash: 'hash' });
  expect(order.items).toEqual([{ orderId: input.orderId, ...lines[0], admittedAt: null }]);
  expect(await db.prisma.orderEvent.findMany({ where: { orderId: input.orderId }, select: { seq: true, type: true } })).toEqual([{ seq: 1, type: 'order.rejected' }]);
  expect(await stockOf(db.prisma, 'PEN-G')).toEqual({ available: 2, reserved: 0, sold: 0 });
});

test('a PENDING order whose hold never ran is closed by the reclaim a minute past its deadline, holding nothing; a hold that runs later holds nothing', async () => {
  await addProduct(db.prisma, 'PEN-LOST', 4, 500);
  const lines = [{ sku: 'PEN-LOST', quantity: 2, unitPriceCents: 500 }];
  const lost = await recordPending(lines);
  const recent = await recordPending(lines);
  await db.prisma.$executeRaw`UPDATE orders SET expires_at = now() - interval '61 seconds' WHERE id = ${lost}::uuid`;
  await db.prisma.$executeRaw`UPDATE orders SET expires_at = now() - interval '30 seconds' WHERE id = ${recent}::uuid`;

  const batch = await reclaimDueOrders(db.prisma, 100);

  expect(batch).toMatchObject({ released: 1, paid: 0, lagSeconds: [] });
  const statuses = await db.prisma.order.findMany({ where: { id: { in: [lost, recent] } }, select: { id: true, status: true } });
  expect(Object.fromEntries(statuses.map((o) => [o.id, o.status]))).toEqual({ [lost]: 'EXPIRED', [recent]: 'PENDING' });
  expect(await db.prisma.orderEvent.findMany({ where: { orderId: lost }, select: { type: true } })).toEqual([{ type: 'order.expired' }]);

  // Its workflow's hold, running only now, finds it closed and holds nothing.
  const { together } = reserveAttempts(lost, lines, 3);
  for (const attempt of await together()) {
    expect(attempt.status).toBe('rejected');
    if (attempt.status === 'rejected') expect((attempt.reason as { type?: string }).type).toBe(FailureType.ExpiredBeforeHold);
  }
  expect(await stockOf(db.prisma, 'PEN-LOST')).toEqual({ available: 4, reserved: 0, sold: 0 });
  expect(await db.prisma.stockMovement.count({ where: { orderId: lost } })).toBe(0);
  // The recent one is still held by its own (late) workflow as usual.
  await reserveAttempts(recent, lines, 1).run();
  expect(await stockOf(db.prisma, 'PEN-LOST')).toEqual({ available: 2, reserved: 2, sold: 0 });
  await db.prisma.$executeRaw`UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = ${recent}::uuid`;
  expect((await reclaimDueOrders(db.prisma, 100)).released).toBe(1);
});

test('an admitted PENDING order whose hold never ran gives its admission back when the reclaim closes it', async () => {
  // As in an expiry burst: the API admitted the order, its workflow's first task queued behind
  // thousands of timers, and the order fell a minute past its deadline while still PENDING.
  await addProduct(db.prisma, 'PEN-ADMITTED', 5, 500);
  const orderId = randomUUID();
  const admitted = await admitOrder(db.prisma, admissionRequest(orderId, 'burst-buyer', [{ sku: 'PEN-ADMITTED', quantity: 5 }]));
  expect(admitted.outcome).toBe('ADMITTED');
  const admittedUnits = async () => (await db.prisma.product.findUniqueOrThrow({ where: { sku: 'PEN-ADMITTED' } })).admitted;
  expect(await admittedUnits()).toBe(5);
  await db.prisma.$executeRaw`UPDATE orders SET expires_at = now() - interval '61 seconds' WHERE id = ${orderId}::uuid`;

  expect(await reclaimDueOrders(db.prisma, 100)).toMatchObject({ released: 1, paid: 0 });

  expect(await db.prisma.order.findUniqueOrThrow({ where: { id: orderId }, select: { status: true } })).toEqual({ status: 'EXPIRED' });
  expect(await admittedUnits()).toBe(0);
  expect(await db.prisma.orderItem.findMany({ where: { orderId }, select: { admittedAt: true } })).toEqual([{ admittedAt: null }]);
  expect(await stockOf(db.prisma, 'PEN-ADMITTED')).toEqual({ available: 5, reserved: 0, sold: 0 });
  // The next buyer is admitted for all five at once, without waiting for the admission to lapse.
  const next = await admitOrder(db.prisma, admissionRequest(randomUUID(), 'next-buyer', [{ sku: 'PEN-ADMITTED', quantity: 5 }]));
  expect(next.outcome).toBe('ADMITTED');
  await db.prisma.$executeRaw`UPDATE orders SET expires_at = now() - interval '61 seconds' WHERE customer_id = 'next-buyer'`;
  await reclaimDueOrders(db.prisma, 100);
});
