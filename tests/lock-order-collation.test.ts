/**
 * One lock order everywhere (byte order): admissions, holds, cancels and the reclaim lock products
 * `ORDER BY sku COLLATE "C"`. On a C database that is also the database's order, so only a
 * database with another collation (ICU en-US here) can show a locker that forgot the COLLATE.
 */
import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { Client } from 'pg';
import { createActivities } from '../activities';
import { createLocalPaymentProvider } from '../activities/payment-provider';
import { reclaimDueOrders } from '../src/reclaim';
import { admitOrder } from '../src/api/admission';
import { checkInventory } from '../src/db/inventory-check';
import { admissionRequest } from './support/admission';
import { addProduct, createTestDatabase, type TestDatabase } from './support/database';
import { sleep } from './support/wait';

// Byte order: 'B-sku' < 'SKU-10' < 'SKU1' < 'a-sku'; en-US puts 'a-sku' first.
const SKUS = ['a-sku', 'B-sku', 'SKU-10', 'SKU1'];
const RACE_MS = 8_000;
const rand = (n: number) => Math.floor(Math.random() * n);
const isOutOfStock = (e: unknown) => e instanceof ApplicationFailure && e.type === 'OutOfStock';
// Prisma wraps the PostgreSQL error: its code (40P01) and message are in the message or the meta.
const isDeadlock = (e: unknown) => /40P01|deadlock detected/.test(`${String(e)} ${JSON.stringify(e)}`);

function activitiesOf(db: TestDatabase) {
  return createActivities({ prisma: db.prisma, payments: createLocalPaymentProvider(), maxPaymentWindowSeconds: 604_800 });
}

function hold(db: TestDatabase, items: { sku: string; quantity: number }[], windowMs: number) {
  const now = Date.now();
  return activitiesOf(db).reserveStock({
    orderId: randomUUID(),
    customerId: 'racer',
    items,
    createdAt: new Date(now).toISOString(),
    expiresAt: new Date(now + windowMs).toISOString(),
    currency: 'eur',
  });
}

describe.each([
  ['C database', undefined],
  ['ICU en-US database', 'en-US'],
])('one lock order everywhere on a %s', (_, icuLocale) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase(24, { icuLocale });
  });
  afterAll(() => db?.drop());

  test('concurrent admissions, holds, cancels and reclaims never deadlock and conserve stock', async () => {
    // Not vacuous: the ICU database orders these skus unlike byte order (the C one like it).
    const [order] = await db.prisma.$queryRaw<{ collated: string[]; bytes: string[] }[]>`
      SELECT array_agg(s ORDER BY s) AS collated, array_agg(s ORDER BY s COLLATE "C") AS bytes FROM unnest(${SKUS}::text[]) s`;
    expect(order?.collated.join() !== order?.bytes.join()).toBe(icuLocale !== undefined);
    for (const sku of SKUS) await addProduct(db.prisma, sku, 1_000_000);

    const activities = activitiesOf(db);
    const errors: unknown[] = [];
    const held: string[] = [];
    const counts = { holds: 0, rejections: 0, cancels: 0, reclaimed: 0 };
    const end = Date.now() + RACE_MS;
    const holder = async () => {
      while (Date.now() < end) {
        // Every sku, in random order; now and then more than there is (a rejection locks the same rows).
        const greedy = Math.random() < 0.05;
        const items = [...SKUS].sort(() => Math.random() - 0.5).map((sku, i) => ({ sku, quantity: greedy && i === 0 ? 10_000_000 : 1 + rand(3) }));
        const orderId = randomUUID();
        const customerId = `racer-${rand(4)}`;
        const now = Date.now();
        try {
          // Admitted first, as the API places an order (its customer's and the products' locks too);
          // now and then not (a withdrawn row), so that the hold also meets a shortage itself.
          if (!greedy || Math.random() < 0.5) {
            const admitted = await admitOrder(db.prisma, admissionRequest(orderId, customerId, items));
            if (admitted.outcome === 'REFUSED') {
              counts.rejections++;
              continue;
            }
          }
          // Due within a few hundred ms, so the reclaim settles orders while holds run.
          const expiresAt = new Date(now + 200 + rand(400)).toISOString();
          await activities.reserveStock({ orderId, customerId, items, createdAt: new Date(now).toISOString(), expiresAt, currency: 'eur' });
          counts.holds++;
          held.push(orderId);
        } catch (e) {
          if (isOutOfStock(e)) counts.rejections++;
          else errors.push(e);
        }
        // A recent order, most likely still held (older ones the reclaim has taken).
        const victim = held[held.length - 1 - rand(Math.min(held.length, 16))];
        if (victim !== undefined && Math.random() < 0.4) {
          try {
            const answer = await activities.releaseStock({ orderId: victim, reason: 'CANCELLED' });
            if (answer.status === 'CANCELLED' && answer.decidedNow) counts.cancels++;
          } catch (e) {
            errors.push(e);
          }
        }
      }
    };
    const reclaim = async () => {
      const { released } = await reclaimDueOrders(db.prisma, 50);
      counts.reclaimed += released;
      return released;
    };
    const reclaimer = async () => {
      while (Date.now() < end) {
        try {
          if ((await reclaim()) === 0) await sleep(20);
        } catch (e) {
          errors.push(e);
        }
      }
    };
    await Promise.all([...Array.from({ length: 16 }, () => holder()), ...Array.from({ length: 3 }, () => reclaimer())]);

    // Every order is due 600 ms after the race at the latest; then the reclaim drains them.
    await sleep(700);
    const drainBy = Date.now() + 10_000;
    while ((await db.prisma.order.count({ where: { status: 'AWAITING_PAYMENT' } })) > 0 && Date.now() < drainBy) {
      if ((await reclaim()) === 0) await sleep(50);
    }
    console.log(`${icuLocale ?? 'C'}: ${JSON.stringify(counts)}`);

    expect(errors.filter(isDeadlock).map(String)).toEqual([]);
    expect(errors.map(String)).toEqual([]);
    expect(counts.holds).toBeGreaterThan(100);
    expect(counts.cancels).toBeGreaterThan(0);
    expect(counts.reclaimed).toBeGreaterThan(0);
    expect(await checkInventory(db.prisma)).toEqual({ ok: true, violations: [] });
    expect(await db.prisma.order.count({ where: { status: { in: ['PENDING', 'AWAITING_PAYMENT'] } } })).toBe(0);
    expect(await db.prisma.product.findMany({ where: { reserved: { not: 0 } } })).toEqual([]);
    // Exactly one RELEASE or COMMIT per held (order, sku), and none without a hold.
    const [ledger] = await db.prisma.$queryRaw<{ held: number; unsettled: number; orphans: number }[]>`
      SELECT (SELECT count(*) FROM stock_movements WHERE kind = 'RESERVE')::int AS held,
             (SELECT count(*) FROM stock_movements r WHERE r.kind = 'RESERVE' AND (SELECT count(*) FROM stock_movements e
                WHERE e.order_id = r.order_id AND e.sku = r.sku AND e.kind IN ('RELEASE', 'COMMIT')) <> 1)::int AS unsettled,
             (SELECT count(*) FROM stock_movements e WHERE e.kind IN ('RELEASE', 'COMMIT') AND NOT EXISTS (SELECT 1 FROM stock_movements r
                WHERE r.order_id = e.order_id AND r.sku = e.sku AND r.kind = 'RESERVE'))::int AS orphans`;
    expect(ledger).toEqual({ held: counts.holds * SKUS.length, unsettled: 0, orphans: 0 });
  }, 40_000);
});

describe('negative control on an ICU en-US database', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase(4, { icuLocale: 'en-US' });
    for (const sku of SKUS) await addProduct(db.prisma, sku, 100);
  });
  afterAll(() => db?.drop());

  test('a locker in the database collation (a-sku first) deadlocks with a hold, which locks B-sku first', async () => {
    const other = new Client({ connectionString: db.url });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query(`SELECT 1 FROM products WHERE sku = 'a-sku' FOR UPDATE`);
      const holding = hold(db, [{ sku: 'a-sku', quantity: 1 }, { sku: 'B-sku', quantity: 1 }], 60_000).then(() => undefined, (e: unknown) => e);
      // The hold has taken B-sku (byte order) and now waits for a-sku.
      while ((await db.prisma.$queryRaw<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)[0]?.n === 0) await sleep(20);
      const locking = other.query(`SELECT 1 FROM products WHERE sku = 'B-sku' FOR UPDATE`).then(() => undefined, (e: unknown) => e);
      const outcomes = await Promise.all([holding, locking]);
      // PostgreSQL breaks the cycle by failing one of the two with 40P01, which the race above would catch.
      expect(outcomes.filter(isDeadlock)).toHaveLength(1);
    } finally {
      await other.query('ROLLBACK').catch(() => undefined);
      await other.end();
    }
  });
});
