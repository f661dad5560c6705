/** The reservation activity against real PostgreSQL under real concurrency. */
import { DEFAULTS } from '../src/config';
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { type ApplicationFailure } from '@temporalio/common';
import { createActivities } from '../activities';
import { createLocalPaymentProvider } from '../activities/payment-provider';
import { checkInventory } from '../src/db/inventory-check';
import { addProduct, createTestDatabase, stockOf, type TestDatabase } from './support/database';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase(40);
});

afterAll(async () => {
  await db?.drop();
});

function reserve(items: { sku: string; quantity: number }[]) {
  const activities = createActivities({ prisma: db.prisma, payments: createLocalPaymentProvider(), maxPaymentWindowSeconds: DEFAULTS.maxPaymentWindowSeconds });
  const now = new Date();
  return new MockActivityEnvironment().run(activities.reserveStock, {
    orderId: randomUUID(),
    customerId: 'racer',
    items,
    createdAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + 60_000).toISOString(),
    currency: 'eur',
  });
}

test('40 concurrent reservations for 7 units: exactly 7 succeed and the rest are rejected as out of stock', async () => {
  await addProduct(db.prisma, 'RACE-1', 7);

  const results = await Promise.allSettled(Array.from({ length: 40 }, () => reserve([{ sku: 'RACE-1', quantity: 1 }])));

  const succeeded = results.filter((r) => r.status === 'fulfilled');
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  expect(succeeded).toHaveLength(7);
  expect(failed).toHaveLength(33);
  for (const f of failed) expect((f.reason as ApplicationFailure).type).toBe('OutOfStock');
  expect(await stockOf(db.prisma, 'RACE-1')).toEqual({ available: 0, reserved: 7, sold: 0 });
  expect(await db.prisma.order.count({ where: { status: 'REJECTED' } })).toBe(33);
  expect(await checkInventory(db.prisma)).toEqual({ ok: true, violations: [] });
});

test('concurrent multi-item orders in opposite sku order hold all items or none, without deadlock', async () => {
  await addProduct(db.prisma, 'PAIR-A', 10);
  await addProduct(db.prisma, 'PAIR-B', 10);

  const results = await Promise.allSettled(
    Array.from({ length: 30 }, (_, i) =>
      reserve(
        i % 2 === 0
          ? [
              { sku: 'PAIR-A', quantity: 1 },
              { sku: 'PAIR-B', quantity: 1 },
            ]
          : [
              { sku: 'PAIR-B', quantity: 1 },
              { sku: 'PAIR-A', quantity: 1 },
            ],
      ),
    ),
  );

  expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(10);
  expect(await stockOf(db.prisma, 'PAIR-A')).toEqual({ available: 0, reserved: 10, sold: 0 });
  expect(await stockOf(db.prisma, 'PAIR-B')).toEqual({ available: 0, reserved: 10, sold: 0 });
  expect(await checkInventory(db.prisma)).toEqual({ ok: true, violations: [] });
});

test('a retried reservation finds its own earlier work and holds nothing twice', async () => {
  await addProduct(db.prisma, 'RETRY-1', 5);
  const activities = createActivities({ prisma: db.prisma, payments: createLocalPaymentProvider(), maxPaymentWindowSeconds: DEFAULTS.maxPaymentWindowSeconds });
  const input = {
    orderId: randomUUID(),
    customerId: 'retrier',
    items: [{ sku: 'RETRY-1', quantity: 2 }],
    createdAt: new Date().toISOString(),
    expiresAt: new Date(Date.now() + 60_000).toISOString(),
    currency: 'eur',
  };

  const first = await new MockActivityEnvironment().run(activities.reserveStock, input);
  const again = await Promise.all([1, 2, 3].map(() => new MockActivityEnvironment().run(activities.reserveStock, input)));

  for (const result of again) expect(result).toEqual(first);
  expect(await stockOf(db.prisma, 'RETRY-1')).toEqual({ available: 3, reserved: 2, sold: 0 });
});
