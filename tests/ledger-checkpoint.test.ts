/**
 * The ledger checkpoint and the inventory check that reads it, against real PostgreSQL: the
 * checkpoint passes a ledger id only once every transaction that could still commit a row at or
 * below it has ended, and counts each row once; the check answers the same before and after the
 * checkpoint advances and retention prunes; violations planted in rows the checkpoint already
 * counts are still named by order id; a recent release-and-commit is named even when the sums cancel
 * out; the full check agrees with the fast one and finds a checkpoint that drifted; advancers and
 * pruners racing orders leave everything consistent.
 */
import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { DEFAULTS } from '../src/config';
import { checkInventory, type InventoryReport, type InventoryViolation } from '../src/db/inventory-check';
import { advanceLedgerCheckpoint, catchUpLedgerCheckpoint } from '../src/db/ledger-checkpoint';
import { pruneClosedOrders } from '../src/db/retention';
import { startRetentionLoop } from '../src/retention';
import { addProduct, createTestDatabase, type TestDatabase } from './support/database';
import { holdOrders, settleHeldOrder } from './support/due-orders';
import { eventually } from './support/wait';

const STOCK = 100_000;
const DAY = 86_400;
const OK: InventoryReport = { ok: true, violations: [] };

let db: TestDatabase;

beforeEach(async () => {
  db = await createTestDatabase(20);
});

afterEach(async () => {
  await db?.drop();
});

const products = (skus: string[]) => Promise.all(skus.map((sku) => addProduct(db.prisma, sku, STOCK)));
const inAWhile = () => new Date(Date.now() + 600_000);

/** One order holding one unit of each of two skus (tests/support/due-orders.ts). */
async function holdOne(skus: [string, string]): Promise<string> {
  const [orderId] = await holdOrders(db.prisma, { count: 1, skus, expiresAt: inAWhile(), customerId: `cp-${randomUUID().slice(0, 8)}` });
  if (orderId === undefined) throw new Error('no order held');
  return orderId;
}

const settle = async (orderId: string, status: 'PAID' | 'CANCELLED' | 'EXPIRED') => void (await settleHeldOrder(db.prisma, orderId, status));

const fast = () => checkInventory(db.prisma);
const full = () => checkInventory(db.prisma, DEFAULTS.reclaimBoundSeconds, { full: true });

async function newestLedgerId(): Promise<bigint> {
  const [row] = await db.prisma.$queryRaw<{ id: bigint }[]>`SELECT max(id) AS id FROM stock_movements`;
  return row?.id ?? 0n;
}

test('a ledger id is drawn only once its transaction has a transaction id of its own', async () => {
  const client = new Client({ connectionString: db.url });
  await client.connect();
  try {
    await client.query('BEGIN');
    const before = await client.query<{ xid: string | null }>('SELECT pg_current_xact_id_if_assigned()::text AS xid');
    await client.query('SELECT stock_movement_id()');
    const after = await client.query<{ xid: string | null }>('SELECT pg_current_xact_id_if_assigned()::text AS xid');
    await client.query('ROLLBACK');
    const column = await client.query<{ column_default: string }>(
      "SELECT column_default FROM information_schema.columns WHERE table_name = 'stock_movements' AND column_name = 'id'");
    expect({ before: before.rows[0]?.xid, after: after.rows[0]?.xid !== null, default: column.rows[0]?.column_default }).toEqual({
      before: null,
      after: true,
      default: 'stock_movement_id()',
    });
  } finally {
    await client.end();
  }
});

test('the checkpoint passes a ledger id only once every transaction that could still commit at or below it has ended, then counts that row once', async () => {
  const [LATE, EARLY] = ['CP-LATE', 'CP-EARLY'];
  await products([LATE, EARLY]);
  await catchUpLedgerCheckpoint(db.prisma);
  const early = new Client({ connectionString: db.url });
  const late = new Client({ connectionString: db.url });
  await Promise.all([early.connect(), late.connect()]);
  let lateRowId = 0n;
  try {
    // `early` takes its transaction id first but draws its ledger id after `late`, and commits
    // first: `late` then holds the newest transaction id and a ledger id below a committed one, and
    // no transaction newer than it has ended (a snapshot's xmax would not cover it).
    await early.query('BEGIN');
    await early.query('SELECT pg_current_xact_id()');
    await late.query('BEGIN');
    await late.query('UPDATE products SET available = available + 5 WHERE sku = $1', [LATE]);
    const inserted = await late.query<{ id: string }>("INSERT INTO stock_movements (sku, kind, quantity) VALUES ($1, 'RESTOCK', 5) RETURNING id", [LATE]);
    lateRowId = BigInt(inserted.rows[0]?.id ?? '0');
    await early.query('UPDATE products SET available = available + 3 WHERE sku = $1', [EARLY]);
    await early.query("INSERT INTO stock_movements (sku, kind, quantity) VALUES ($1, 'RESTOCK', 3)", [EARLY]);
    await early.query('COMMIT');
    expect(await newestLedgerId()).toBeGreaterThan(lateRowId);

    // Step until the candidate covers the committed row above `late`'s: a transaction of another
    // database of the cluster (another test file) can hold the snapshot's xmin back for a while, and
    // with it the earlier candidate. However many steps that takes, none may pass `late`'s row.
    const passedLateRow: bigint[] = [];
    const stepped = async () => {
      const step = await advanceLedgerCheckpoint(db.prisma);
      if (step.throughId !== null && step.throughId >= lateRowId) passedLateRow.push(step.throughId);
      return step;
    };
    await eventually(stepped, (step) => step.candidateId !== null && step.candidateId > lateRowId);
    for (let i = 0; i < 3; i++) await stepped();
    // Only the open transaction holds it back now, and the checkpoint has not passed its row.
    expect(passedLateRow).toEqual([]);
    // The check sees neither side of `late`.
    expect(await fast()).toEqual(OK);
    await late.query('COMMIT');
  } finally {
    await Promise.all([early.end(), late.end()]);
  }

  expect(await catchUpLedgerCheckpoint(db.prisma)).toBeGreaterThanOrEqual(lateRowId);
  const counted = await db.prisma.$queryRaw<{ sku: string; quantity: bigint; movements: bigint }[]>`
    SELECT sku, quantity, movements FROM stock_ledger_checkpoints WHERE kind = 'RESTOCK' ORDER BY sku`;
  expect(counted).toEqual([
    { sku: EARLY, quantity: 3n, movements: 1n },
    { sku: LATE, quantity: 5n, movements: 1n },
  ]);
  expect(await fast()).toEqual(OK);
  expect(await full()).toEqual(OK);
});

test('the check answers the same before the checkpoint exists, once it counts the ledger, and after retention pruned what it counts', async () => {
  const SKUS: [string, string] = ['CP-A', 'CP-B'];
  await products(SKUS);
  const old: string[] = [];
  for (const status of ['PAID', 'CANCELLED', 'EXPIRED', 'PAID', 'CANCELLED', 'EXPIRED'] as const) {
    const orderId = await holdOne(SKUS);
    await settle(orderId, status);
    old.push(orderId);
  }
  await db.prisma.$executeRaw`UPDATE orders SET closed_at = now() - make_interval(days => ${DEFAULTS.retentionDays + 1}::int) WHERE id = ANY(${old}::uuid[])`;
  // Kept: open orders, a recent one settled, and a recent one closed behind the ledger's back (still holding).
  await holdOne(SKUS);
  await holdOne(SKUS);
  await settle(await holdOne(SKUS), 'CANCELLED');
  const holding = await holdOne(SKUS);
  await db.prisma.$executeRaw`UPDATE orders SET status = 'EXPIRED', closed_at = now() WHERE id = ${holding}::uuid`;

  // No checkpoint yet: the opening balances and every row, as before there was one; nothing with ledger rows is pruned.
  const before = { fast: await fast(), full: await full() };
  expect(before.fast.violations).toEqual(SKUS.map((sku) => ({ kind: 'CLOSED_ORDER_HOLDS_STOCK', orderId: holding, status: 'EXPIRED', sku, held: 1 })));
  expect(await pruneClosedOrders(db.prisma, DEFAULTS.retentionDays * DAY, 100)).toEqual({});

  await catchUpLedgerCheckpoint(db.prisma);
  const counted = { fast: await fast(), full: await full() };
  let pruned = 0;
  for (;;) {
    const batch = (await pruneClosedOrders(db.prisma, DEFAULTS.retentionDays * DAY, 2)).orders ?? 0;
    if (batch === 0) break;
    pruned += batch;
  }
  const afterPruning = { fast: await fast(), full: await full() };

  expect(pruned).toBe(old.length);
  expect(before.full).toEqual(before.fast);
  expect(counted).toEqual(before);
  expect(afterPruning).toEqual(before);
});

test('a closed order still holding its reserve and an order both released and committed, in rows the checkpoint counts, are still named by order id', async () => {
  await products(['OLD-A', 'OLD-B', 'OLD-C', 'OLD-D']);
  const holding = await holdOne(['OLD-A', 'OLD-B']);
  await db.prisma.$executeRaw`UPDATE orders SET status = 'CANCELLED', closed_at = now() WHERE id = ${holding}::uuid`;
  const twice = await holdOne(['OLD-C', 'OLD-D']);
  await settle(twice, 'CANCELLED');
  await db.prisma.$executeRaw`
    INSERT INTO stock_movements (sku, order_id, kind, quantity)
    SELECT sku, order_id, 'COMMIT', quantity FROM order_items WHERE order_id = ${twice}::uuid`;
  const planted = await newestLedgerId();
  // Later traffic, and the checkpoint past all of it.
  await settle(await holdOne(['OLD-A', 'OLD-C']), 'CANCELLED');
  expect(await catchUpLedgerCheckpoint(db.prisma)).toBeGreaterThan(planted);

  const report = await fast();

  expect(report.violations).toEqual(
    expect.arrayContaining([
      { kind: 'CLOSED_ORDER_HOLDS_STOCK', orderId: holding, status: 'CANCELLED', sku: 'OLD-A', held: 1 },
      { kind: 'CLOSED_ORDER_HOLDS_STOCK', orderId: holding, status: 'CANCELLED', sku: 'OLD-B', held: 1 },
      { kind: 'CLOSED_ORDER_HOLDS_STOCK', orderId: twice, status: 'CANCELLED', sku: 'OLD-C', held: -1 },
      { kind: 'CLOSED_ORDER_HOLDS_STOCK', orderId: twice, status: 'CANCELLED', sku: 'OLD-D', held: -1 },
      { kind: 'ORDER_MOVED_TWICE', orderId: twice, sku: 'OLD-C', movements: ['RELEASE', 'COMMIT'] },
      { kind: 'ORDER_MOVED_TWICE', orderId: twice, sku: 'OLD-D', movements: ['RELEASE', 'COMMIT'] },
    ]),
  );
  // The COMMIT written behind the counters' back: conservation of OLD-C and OLD-D too.
  const conservation = report.violations.filter((v): v is Extract<InventoryViolation, { kind: 'CONSERVATION' }> => v.kind === 'CONSERVATION');
  expect(conservation.map((v) => v.sku)).toEqual(['OLD-C', 'OLD-D']);
  expect(report.violations).toHaveLength(8);
  expect(await full()).toEqual(report);
});

test('a release and a commit of one reserve written since the checkpoint are named even when another order holding stock cancels them out in the sums', async () => {
  const SKUS: [string, string] = ['NET-A', 'NET-B'];
  await products(SKUS);
  await catchUpLedgerCheckpoint(db.prisma);
  // +1 per sku held by a closed order, -1 per sku by an order whose reserve left twice: the ledger's
  // reserved equals what the open orders hold (nothing).
  const holding = await holdOne(SKUS);
  await db.prisma.$executeRaw`UPDATE orders SET status = 'CANCELLED', closed_at = now() WHERE id = ${holding}::uuid`;
  const twice = await holdOne(SKUS);
  await settle(twice, 'CANCELLED');
  await db.prisma.$executeRaw`
    INSERT INTO stock_movements (sku, order_id, kind, quantity)
    SELECT sku, order_id, 'COMMIT', quantity FROM order_items WHERE order_id = ${twice}::uuid`;

  const movedTwice = SKUS.map((sku) => ({ kind: 'ORDER_MOVED_TWICE', orderId: twice, sku, movements: ['RELEASE', 'COMMIT'] }));
  expect((await fast()).violations).toEqual(expect.arrayContaining(movedTwice));
  // The full check names both orders.
  expect((await full()).violations).toEqual(
    expect.arrayContaining([
      ...SKUS.map((sku) => ({ kind: 'CLOSED_ORDER_HOLDS_STOCK', orderId: holding, status: 'CANCELLED', sku, held: 1 })),
      ...SKUS.map((sku) => ({ kind: 'CLOSED_ORDER_HOLDS_STOCK', orderId: twice, status: 'CANCELLED', sku, held: -1 })),
      ...movedTwice,
    ]),
  );
});

test('the full check finds a checkpoint that no longer agrees with the opening balances and the ledger', async () => {
  const SKU = 'CP-DRIFT';
  await products([SKU]);
  await catchUpLedgerCheckpoint(db.prisma);
  expect(await full()).toEqual(OK);

  await db.prisma.$executeRaw`UPDATE stock_ledger_checkpoints SET quantity = quantity + 1 WHERE sku = ${SKU} AND kind = 'INITIAL'`;

  const conservation = {
    kind: 'CONSERVATION',
    sku: SKU,
    counters: { available: STOCK, reserved: 0, sold: 0 },
    fromLedger: { received: STOCK + 1, available: STOCK + 1, reserved: 0, sold: 0 },
  };
  expect(await fast()).toEqual({ ok: false, violations: [conservation] });
  expect(await full()).toEqual({
    ok: false,
    violations: [
      conservation,
      { kind: 'LEDGER_CHECKPOINT_DRIFT', sku: SKU, movementKind: 'INITIAL', fromCheckpoint: { quantity: STOCK + 1, movements: 1 }, fromLedger: { quantity: STOCK, movements: 1 } },
    ],
  });
});

test('advancers and pruners racing holds, payments, cancels and expiries leave the check ok, fast and full agreeing, and every order pruned', async () => {
  // Two skus per buyer: holdOrders writes its counters in no fixed order, so buyers never share a product row.
  const BUYERS = [0, 1, 2, 3];
  const skusOf = (k: number): [string, string] => [`RACE-${k}-A`, `RACE-${k}-B`];
  await products(BUYERS.flatMap(skusOf));
  const loops = [0, 1].map(() =>
    startRetentionLoop({ prisma: db.prisma, config: { retentionSeconds: 0, eventRetentionSeconds: 0, batchSize: 3, intervalMs: 50 } }),
  );
  let racing = true;
  const advancer = (async () => {
    while (racing) await advanceLedgerCheckpoint(db.prisma);
  })();
  const checks: InventoryReport[] = [];
  const checker = (async () => {
    while (racing) checks.push(await fast(), await full());
  })();
  const placed: string[] = [];
  try {
    await Promise.all(
      BUYERS.map(async (k) => {
        for (let i = 0; i < 15; i++) {
          const orderId = await holdOne(skusOf(k));
          placed.push(orderId);
          await settle(orderId, (['PAID', 'CANCELLED', 'EXPIRED'] as const)[(k + i) % 3] ?? 'PAID');
        }
      }),
    );
    const remaining = async () => {
      const [row] = await db.prisma.$queryRaw<{ n: number }[]>`SELECT count(*)::int AS n FROM orders WHERE id = ANY(${placed}::uuid[])`;
      return row?.n ?? -1;
    };
    await eventually(remaining, (n) => n === 0, 60_000);
  } finally {
    racing = false;
    await Promise.all([advancer, checker, ...loops.map((loop) => loop.stop())]);
  }

  expect(checks.length).toBeGreaterThan(0);
  expect(checks.filter((report) => !report.ok)).toEqual([]);
  expect(await fast()).toEqual(OK);
  expect(await full()).toEqual(OK);
  const [ledger] = await db.prisma.$queryRaw<{ rows: bigint; carried: bigint }[]>`
    SELECT (SELECT count(*) FROM stock_movements WHERE order_id IS NOT NULL)::bigint AS rows,
           (SELECT COALESCE(SUM(movements), 0) FROM stock_opening_balances)::bigint AS carried`;
  // Two lines per order, a RESERVE and a RELEASE or COMMIT each: every ledger row of every order carried once.
  expect(ledger).toEqual({ rows: 0n, carried: BigInt(placed.length * 4) });
}, 120_000);
