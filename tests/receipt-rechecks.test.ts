/**
 * The receipts' part of the inventory check reads only the orders receipt_rechecks names, against
 * real PostgreSQL: every kind of disagreement the predicate knows, planted in drained orders (and
 * in an order checked long ago), is named by the fast check as by the full one and stays named
 * through later drains; the fast check reads no receipt or order it was not pointed at, however
 * many closed orders are kept; drains racing receipt writes and order updates on connections of
 * their own lose nothing; a database that had orders when migrated is seeded in steps; retention
 * prunes orders the table names.
 */
import { randomUUID } from 'node:crypto';
import { PrismaPg } from '@prisma/adapter-pg';
import { Client, Pool } from 'pg';
import { PrismaClient } from '../prisma/generated/client';
import { DEFAULTS } from '../src/config';
import { checkInventory, type InventoryReport, type InventoryViolation } from '../src/db/inventory-check';
import { catchUpReceiptRechecks, drainReceiptRechecks } from '../src/db/receipt-rechecks';
import { pruneClosedOrders } from '../src/db/retention';
import { addProduct, createTestDatabase, type TestDatabase } from './support/database';
import { holdOrders, settleHeldOrder } from './support/due-orders';
import { sleep } from './support/wait';

const SKUS: [string, string] = ['RR-A', 'RR-B'];
const DAY = 86_400;
const OK: InventoryReport = { ok: true, violations: [] };

type ReceiptViolation = Extract<InventoryViolation, { kind: 'RECEIPT_DISAGREES_WITH_ORDER' }>;
type Outcome = 'APPLIED' | 'REFUSED' | null;

let db: TestDatabase;

beforeEach(async () => {
  db = await createTestDatabase(20);
  await Promise.all(SKUS.map((sku) => addProduct(db.prisma, sku, 1_000_000)));
});

afterEach(async () => {
  await db?.drop();
});

const fast = () => checkInventory(db.prisma);
const full = () => checkInventory(db.prisma, DEFAULTS.reclaimBoundSeconds, { full: true });
const receiptViolations = (report: InventoryReport) => report.violations.filter((v): v is ReceiptViolation => v.kind === 'RECEIPT_DISAGREES_WITH_ORDER');
const byValue = <T>(rows: T[]) => [...rows].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));

function disagreement(orderId: string, paymentId: string | null, receiptOutcome: Outcome, orderStatus: string, orderPaymentId: string | null): ReceiptViolation {
  return { kind: 'RECEIPT_DISAGREES_WITH_ORDER', orderId, paymentId, receiptOutcome, orderStatus, orderPaymentId };
}

/** `count` orders held and settled as the worker settles them (a PAID one with its receipt, APPLIED). */
async function settled(count: number, status: 'PAID' | 'CANCELLED'): Promise<{ orderId: string; paymentId: string }[]> {
  const ids = await holdOrders(db.prisma, { count, skus: SKUS, expiresAt: new Date(Date.now() + 600_000), customerId: `rr-${randomUUID().slice(0, 8)}` });
  const orders = [];
  for (const orderId of ids) orders.push({ orderId, paymentId: (await settleHeldOrder(db.prisma, orderId, status)) ?? '' });
  return orders;
}

/** Closed paid orders written in one statement, each with its APPLIED receipt, closed `daysAgo` days ago. */
async function paidHistory(count: number, daysAgo: number): Promise<void> {
  await db.prisma.$executeRaw`
    WITH o AS (
      INSERT INTO orders (id, customer_id, status, total_cents, created_at, expires_at, paid_at, closed_at, payment_id, currency)
      SELECT gen_random_uuid(), 'history', 'PAID', 200, t.at, t.at, t.at, t.at, 'history-' || gen_random_uuid(), 'eur'
        FROM generate_series(1, ${count}::int) AS i, LATERAL (SELECT now() - make_interval(days => ${daysAgo}::int, secs => i) AS at) t
      RETURNING id, payment_id, paid_at
    )
    INSERT INTO payment_receipts (payment_id, order_id, amount_cents, currency, succeeded_at, outcome)
    SELECT payment_id, id, 200, 'eur', paid_at, 'APPLIED' FROM o`;
}

/** The orders receipt_rechecks names, each once. */
async function named(): Promise<string[]> {
  const rows = await db.prisma.$queryRaw<{ order_id: string }[]>`SELECT DISTINCT order_id::text AS order_id FROM receipt_rechecks`;
  return rows.map((r) => r.order_id).sort();
}

async function rowsWaiting(): Promise<number> {
  const [row] = await db.prisma.$queryRaw<{ n: number }[]>`SELECT count(*)::int AS n FROM receipt_rechecks`;
  return row?.n ?? -1;
}

test('every kind of disagreement, planted in drained orders, is named by the fast check as by the full one, and stays named through later drains', async () => {
  const [notPaid, secondReceipt, refused, noReceipt, undecided, moved, takesPayment, givesPayment] = await settled(8, 'PAID');
  const [cancelled] = await settled(1, 'CANCELLED');
  if (!notPaid || !secondReceipt || !refused || !noReceipt || !undecided || !moved || !takesPayment || !givesPayment || !cancelled) throw new Error('orders not settled');
  await catchUpReceiptRechecks(db.prisma);
  expect(await rowsWaiting()).toBe(0);
  expect(await fast()).toEqual(OK);

  const stray = `stray-${randomUUID()}`;
  const writtenPaid = randomUUID();
  const neverReceived = `never-${randomUUID()}`;
  await db.prisma.$transaction([
    // A receipt APPLIED to an order that is not PAID.
    db.prisma.$executeRaw`UPDATE orders SET status = 'CANCELLED' WHERE id = ${notPaid.orderId}::uuid`,
    // A second receipt APPLIED to a PAID order that names another payment.
    db.prisma.$executeRaw`
      INSERT INTO payment_receipts (payment_id, order_id, amount_cents, currency, succeeded_at, outcome)
      VALUES (${stray}, ${secondReceipt.orderId}::uuid, 200, 'eur', now(), 'APPLIED')`,
    // A REFUSED receipt its order names as paid (so also a PAID order whose receipt is not APPLIED).
    db.prisma.$executeRaw`UPDATE payment_receipts SET outcome = 'REFUSED' WHERE payment_id = ${refused.paymentId}`,
    // A PAID order whose receipt is gone.
    db.prisma.$executeRaw`DELETE FROM payment_receipts WHERE payment_id = ${noReceipt.paymentId}`,
    // A PAID order whose receipt has no outcome.
    db.prisma.$executeRaw`UPDATE payment_receipts SET outcome = NULL WHERE payment_id = ${undecided.paymentId}`,
    // A receipt moved to another order: APPLIED to that one (not PAID), and missing from the PAID
    // order whose payment_id names it (found by payment, not by order).
    db.prisma.$executeRaw`UPDATE payment_receipts SET order_id = ${cancelled.orderId}::uuid WHERE payment_id = ${moved.paymentId}`,
    // An order that takes another order's payment: that receipt is not its own, and its own receipt
    // is APPLIED to an order that names another payment. The other order still agrees.
    db.prisma.$executeRaw`UPDATE orders SET payment_id = ${givesPayment.paymentId} WHERE id = ${takesPayment.orderId}::uuid`,
    // An order written PAID with a payment no receipt records.
    db.prisma.$executeRaw`
      INSERT INTO orders (id, customer_id, status, total_cents, expires_at, paid_at, closed_at, payment_id, currency)
      VALUES (${writtenPaid}::uuid, 'rr-written', 'PAID', 200, now(), now(), now(), ${neverReceived}, 'eur')`,
  ]);
  // Traffic after the planting, so that drains read agreeing rows among the others.
  await settled(3, 'PAID');
  const expected = byValue([
    disagreement(notPaid.orderId, notPaid.paymentId, 'APPLIED', 'CANCELLED', notPaid.paymentId),
    disagreement(secondReceipt.orderId, stray, 'APPLIED', 'PAID', secondReceipt.paymentId),
    disagreement(refused.orderId, refused.paymentId, 'REFUSED', 'PAID', refused.paymentId),
    disagreement(refused.orderId, refused.paymentId, 'REFUSED', 'PAID', refused.paymentId),
    disagreement(noReceipt.orderId, noReceipt.paymentId, null, 'PAID', noReceipt.paymentId),
    disagreement(undecided.orderId, undecided.paymentId, null, 'PAID', undecided.paymentId),
    disagreement(cancelled.orderId, moved.paymentId, 'APPLIED', 'CANCELLED', null),
    disagreement(moved.orderId, moved.paymentId, 'APPLIED', 'PAID', moved.paymentId),
    disagreement(takesPayment.orderId, takesPayment.paymentId, 'APPLIED', 'PAID', givesPayment.paymentId),
    disagreement(takesPayment.orderId, givesPayment.paymentId, 'APPLIED', 'PAID', givesPayment.paymentId),
    disagreement(writtenPaid, neverReceived, null, 'PAID', neverReceived),
  ]);
  const disagreeing = [notPaid, secondReceipt, refused, noReceipt, undecided, cancelled, moved, takesPayment].map((o) => o.orderId).concat(writtenPaid).sort();

  const rounds: { fast: ReceiptViolation[]; full: InventoryReport; fastReport: InventoryReport; named: string[] }[] = [];
  for (let round = 0; round < 3; round++) {
    const fastReport = await fast();
    rounds.push({ fast: byValue(receiptViolations(fastReport)), fastReport, full: await full(), named: await named() });
    // Small steps, so the disagreeing orders' rows go round behind the others more than once.
    for (let step = 0; step < 12; step++) await drainReceiptRechecks(db.prisma, { batch: 3 });
  }

  for (const r of rounds) {
    expect(r.fast).toEqual(expected);
    expect(r.full).toEqual(r.fastReport);
  }
  // Drained: one row for each order that disagrees, and nothing else.
  expect(rounds.slice(1).map((r) => r.named)).toEqual([disagreeing, disagreeing]);
  expect(await rowsWaiting()).toBe(disagreeing.length);
});

test('a disagreement planted in orders paid long ago, and drained many times since, is named by the fast check', async () => {
  await paidHistory(500, 60);
  await catchUpReceiptRechecks(db.prisma);
  for (let round = 0; round < 3; round++) {
    await settled(3, 'PAID');
    await catchUpReceiptRechecks(db.prisma);
  }
  expect(await rowsWaiting()).toBe(0);
  const oldest = await db.prisma.$queryRaw<{ order_id: string; payment_id: string }[]>`
    SELECT id::text AS order_id, payment_id FROM orders WHERE customer_id = 'history' ORDER BY closed_at LIMIT 2`;
  const [receiptChanged, orderChanged] = oldest;
  if (!receiptChanged || !orderChanged) throw new Error('no history');

  await db.prisma.$executeRaw`UPDATE payment_receipts SET outcome = NULL WHERE payment_id = ${receiptChanged.payment_id}`;
  await db.prisma.$executeRaw`UPDATE orders SET status = 'EXPIRED' WHERE id = ${orderChanged.order_id}::uuid`;

  const report = await fast();
  expect(byValue(receiptViolations(report))).toEqual(
    byValue([
      disagreement(receiptChanged.order_id, receiptChanged.payment_id, null, 'PAID', receiptChanged.payment_id),
      disagreement(orderChanged.order_id, orderChanged.payment_id, 'APPLIED', 'EXPIRED', orderChanged.payment_id),
    ]),
  );
  expect(await full()).toEqual(report);
});

/**
 * Rows of `tables` that `op` reads through a client of its own, from the plans of every statement
 * it runs (nested ones too), as auto_explain reports them: rows returned plus rows filtered out,
 * times the loops, of every scan of those tables.
 */
async function rowsReadBy(tables: string[], op: (prisma: PrismaClient) => Promise<unknown>): Promise<number> {
  const plans: string[] = [];
  const pool = new Pool({
    connectionString: db.url,
    max: 1,
    options:
      '-c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=0 -c auto_explain.log_analyze=on ' +
      '-c auto_explain.log_nested_statements=on -c auto_explain.log_format=json -c auto_explain.log_level=notice -c client_min_messages=notice',
  });
  pool.on('connect', (client) => client.on('notice', (notice) => plans.push(notice.message ?? '')));
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  try {
    await op(prisma);
  } finally {
    await prisma.$disconnect();
    await pool.end();
  }
  interface PlanNode {
    'Relation Name'?: string;
    'Actual Rows'?: number;
    'Actual Loops'?: number;
    'Rows Removed by Filter'?: number;
    'Rows Removed by Index Recheck'?: number;
    Plans?: PlanNode[];
  }
  const read = (node: PlanNode): number =>
    (node['Relation Name'] !== undefined && tables.includes(node['Relation Name'])
      ? ((node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Index Recheck'] ?? 0)) * (node['Actual Loops'] ?? 1)
      : 0) + (node.Plans ?? []).reduce((sum, child) => sum + read(child), 0);
  return plans
    .map((message) => message.slice(message.indexOf('{')))
    .filter((json) => json.startsWith('{'))
    .reduce((sum, json) => sum + read((JSON.parse(json) as { Plan: PlanNode }).Plan), 0);
}

test('the fast check reads only the receipts and orders receipt_rechecks names, however many closed orders are kept', async () => {
  const HISTORY = 3_000;
  await paidHistory(HISTORY, 10);
  await catchUpReceiptRechecks(db.prisma);
  await db.prisma.$executeRawUnsafe('ANALYZE');
  // Since the last drain: two orders paid, one old receipt refused.
  await settled(2, 'PAID');
  const [old] = await db.prisma.$queryRaw<{ payment_id: string }[]>`SELECT payment_id FROM orders WHERE customer_id = 'history' LIMIT 1`;
  await db.prisma.$executeRaw`UPDATE payment_receipts SET outcome = 'REFUSED' WHERE payment_id = ${old?.payment_id ?? ''}`;
  const waiting = await rowsWaiting();
  const TABLES = ['payment_receipts', 'orders'];

  let fastReport: InventoryReport = OK;
  let fullReport: InventoryReport = OK;
  const fastRead = await rowsReadBy(TABLES, async (prisma) => void (fastReport = await checkInventory(prisma)));
  const fullRead = await rowsReadBy(TABLES, async (prisma) => void (fullReport = await checkInventory(prisma, DEFAULTS.reclaimBoundSeconds, { full: true })));

  expect(receiptViolations(fastReport)).toHaveLength(2);
  expect(fullReport).toEqual(fastReport);
  // Five rows wait (two per paid order, one refused receipt): a few probes per row named, not the history.
  expect(waiting).toBe(5);
  expect(fastRead).toBeLessThanOrEqual(10 * waiting);
  // The measure sees a pass over the history when there is one.
  expect(fullRead).toBeGreaterThan(2 * HISTORY);
});

test('drains racing receipt writes and order updates on connections of their own lose no disagreement: fast and full agree in every snapshot and at the end', async () => {
  const WRITERS = 4;
  const ORDERS_PER_WRITER = 5;
  const TRANSACTIONS_PER_WRITER = 150;
  const orders = await settled(WRITERS * ORDERS_PER_WRITER, 'PAID');
  await catchUpReceiptRechecks(db.prisma);
  const pick = <T>(values: T[]): T => values[Math.floor(Math.random() * values.length)] as T;
  const outcomes: Outcome[] = ['APPLIED', 'REFUSED', null];

  /** One writer's random changes to its own orders and receipts (disjoint from the others', so no deadlocks). */
  async function writer(own: { orderId: string; paymentId: string }[]): Promise<void> {
    const client = new Client({ connectionString: db.url });
    await client.connect();
    const orderIds = own.map((o) => o.orderId);
    const paymentIds = own.map((o) => o.paymentId);
    const changes: (() => Promise<unknown>)[] = [
      () => client.query('UPDATE payment_receipts SET outcome = $2 WHERE payment_id = $1', [pick(paymentIds), pick(outcomes)]),
      () => client.query('UPDATE orders SET status = $2 WHERE id = $1', [pick(orderIds), pick(['PAID', 'CANCELLED'])]),
      () => client.query('UPDATE orders SET payment_id = $2 WHERE id = $1', [pick(orderIds), pick([...paymentIds, null])]),
      () => client.query('UPDATE payment_receipts SET order_id = $2 WHERE payment_id = $1', [pick(paymentIds), pick(orderIds)]),
      () => client.query('DELETE FROM payment_receipts WHERE payment_id = $1', [pick(paymentIds)]),
      () =>
        client.query(
          `INSERT INTO payment_receipts (payment_id, order_id, amount_cents, currency, succeeded_at, outcome)
           VALUES ($1, $2, 200, 'eur', now(), $3) ON CONFLICT (payment_id) DO NOTHING`,
          [pick(paymentIds), pick(orderIds), pick(outcomes)],
        ),
    ];
    try {
      for (let i = 0; i < TRANSACTIONS_PER_WRITER; i++) {
        await client.query('BEGIN');
        for (let n = 1 + Math.floor(Math.random() * 3); n > 0; n--) {
          await pick(changes)();
          // Held open a moment, so drains run while it is uncommitted.
          if (Math.random() < 0.5) await client.query('SELECT pg_sleep($1)', [Math.random() * 0.004]);
        }
        await client.query(Math.random() < 0.1 ? 'ROLLBACK' : 'COMMIT');
      }
    } finally {
      await client.end();
    }
  }

  const SNAPSHOT_QUERY = (source: string) =>
    `SELECT order_id::text, payment_id, receipt_outcome, order_status, order_payment_id FROM ${source} ORDER BY 1, 2, 3, 4, 5`;
  let racing = true;
  const drainers = [0, 1].map(async () => {
    while (racing) {
      await drainReceiptRechecks(db.prisma, { batch: 4 });
      await sleep(1);
    }
  });
  const checker = (async () => {
    const client = new Client({ connectionString: db.url });
    await client.connect();
    const compared: { fast: unknown[]; full: unknown[] }[] = [];
    try {
      while (racing) {
        // One snapshot for both: the fast answer must be the full one at every moment.
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
        const fastRows = (await client.query(SNAPSHOT_QUERY('rechecked_receipt_disagreements()'))).rows;
        const fullRows = (await client.query(SNAPSHOT_QUERY('receipt_disagreements()'))).rows;
        await client.query('COMMIT');
        compared.push({ fast: fastRows, full: fullRows });
        await sleep(5);
      }
    } finally {
      await client.end();
    }
    return compared;
  })();
  try {
    await Promise.all(Array.from({ length: WRITERS }, (_, k) => writer(orders.slice(k * ORDERS_PER_WRITER, (k + 1) * ORDERS_PER_WRITER))));
  } finally {
    racing = false;
  }
  await Promise.all(drainers);
  const compared = await checker;
  await catchUpReceiptRechecks(db.prisma);

  expect(compared.length).toBeGreaterThan(10);
  const mismatched = compared.filter((c) => JSON.stringify(c.fast) !== JSON.stringify(c.full));
  expect({ mismatched: mismatched.length, first: mismatched[0] }).toEqual({ mismatched: 0, first: undefined });
  // The race left disagreements to find, and every drain since kept them.
  const report = await fast();
  expect(receiptViolations(report).length).toBeGreaterThan(0);
  expect(receiptViolations(await full())).toEqual(receiptViolations(report));
}, 120_000);

test('a database that had orders when migrated is checked in full until the drains have evaluated each order once, in steps, then fast', async () => {
  await paidHistory(250, 10);
  const history = await db.prisma.$queryRaw<{ order_id: string; payment_id: string }[]>`
    SELECT id::text AS order_id, payment_id FROM orders WHERE customer_id = 'history' ORDER BY id`;
  const [first, middle, last] = [history[0], history[125], history[249]];
  if (!first || !middle || !last) throw new Error('no history');
  await db.prisma.$executeRaw`UPDATE payment_receipts SET outcome = 'REFUSED' WHERE payment_id = ${middle.payment_id}`;
  await db.prisma.$executeRaw`UPDATE orders SET status = 'CANCELLED' WHERE id = ${last.order_id}::uuid`;
  // What the migration leaves on a database that had orders: nothing named, not seeded.
  await db.prisma.$executeRaw`DELETE FROM receipt_rechecks`;
  await db.prisma.$executeRaw`UPDATE receipt_recheck_seeding SET through_order_id = NULL, seeded_at = NULL`;
  const beforeSeeding = await fast();

  const steps = [await drainReceiptRechecks(db.prisma, { seedOrders: 100 })];
  // A change after the migration, in orders a step has already evaluated: the triggers name it.
  await db.prisma.$executeRaw`UPDATE orders SET payment_id = NULL WHERE id = ${first.order_id}::uuid`;
  const whileSeeding = await fast();
  for (let i = 0; i < 3; i++) steps.push(await drainReceiptRechecks(db.prisma, { seedOrders: 100 }));
  const seeded = await fast();

  const planted = [
    disagreement(middle.order_id, middle.payment_id, 'REFUSED', 'PAID', middle.payment_id),
    disagreement(middle.order_id, middle.payment_id, 'REFUSED', 'PAID', middle.payment_id),
    disagreement(last.order_id, last.payment_id, 'APPLIED', 'CANCELLED', last.payment_id),
  ];
  expect(byValue(receiptViolations(beforeSeeding))).toEqual(byValue(planted));
  // 250 orders in steps of 100: the third evaluates the last 50 and finishes.
  expect(steps.map((s) => s.seeded)).toEqual([false, false, true, true]);
  const afterwards = byValue([...planted, disagreement(first.order_id, first.payment_id, 'APPLIED', 'PAID', null), disagreement(first.order_id, null, null, 'PAID', null)]);
  expect(byValue(receiptViolations(whileSeeding))).toEqual(afterwards);
  expect(byValue(receiptViolations(seeded))).toEqual(afterwards);
  expect(await full()).toEqual(seeded);
  expect(await named()).toEqual([first.order_id, middle.order_id, last.order_id].sort());
});

test('retention prunes closed orders the table names, and their rows with them, even rows a drain holds; the check still agrees', async () => {
  await paidHistory(20, DEFAULTS.retentionDays + 1);
  const old = await db.prisma.$queryRaw<{ order_id: string; payment_id: string }[]>`
    SELECT id::text AS order_id, payment_id FROM orders WHERE customer_id = 'history' ORDER BY id`;
  const [disagreeing, changedTwice] = old;
  if (!disagreeing || !changedTwice) throw new Error('no history');
  await catchUpReceiptRechecks(db.prisma);
  const [recent] = await settled(1, 'PAID');
  if (!recent) throw new Error('not settled');
  // Not drained: rows naming old orders (one disagreeing, one that agrees again) and a recent one.
  await db.prisma.$executeRaw`UPDATE payment_receipts SET outcome = 'REFUSED' WHERE payment_id = ${disagreeing.payment_id}`;
  await db.prisma.$executeRaw`UPDATE payment_receipts SET outcome = NULL WHERE payment_id = ${changedTwice.payment_id}`;
  await db.prisma.$executeRaw`UPDATE payment_receipts SET outcome = 'APPLIED' WHERE payment_id = ${changedTwice.payment_id}`;
  await db.prisma.$executeRaw`UPDATE orders SET status = 'CANCELLED' WHERE id = ${recent.orderId}::uuid`;
  // A drain in the middle of reading the disagreeing order's row holds it.
  const drain = new Client({ connectionString: db.url });
  await drain.connect();
  let pruned = 0;
  try {
    await drain.query('BEGIN');
    await drain.query('SELECT id FROM receipt_rechecks WHERE order_id = $1 FOR UPDATE', [disagreeing.order_id]);
    for (;;) {
      const batch = (await pruneClosedOrders(db.prisma, DEFAULTS.retentionDays * DAY, 7)).orders ?? 0;
      if (batch === 0) break;
      pruned += batch;
    }
    await drain.query('COMMIT');
  } finally {
    await drain.end();
  }
  const [orphans] = await db.prisma.$queryRaw<{ held: number; other: number }[]>`
    SELECT count(*) FILTER (WHERE c.order_id = ${disagreeing.order_id}::uuid)::int AS held,
           count(*) FILTER (WHERE c.order_id <> ${disagreeing.order_id}::uuid)::int AS other
      FROM receipt_rechecks c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = c.order_id)`;
  const afterPruning = await fast();
  await catchUpReceiptRechecks(db.prisma);

  expect(pruned).toBe(old.length);
  // Only the row the drain held outlived its order; it names no disagreement.
  expect(orphans).toEqual({ held: 1, other: 0 });
  expect(receiptViolations(afterPruning)).toEqual([disagreement(recent.orderId, recent.paymentId, 'APPLIED', 'CANCELLED', recent.paymentId)]);
  expect(await full()).toEqual(afterPruning);
  // The next drain leaves only the recent order that disagrees.
  expect(await named()).toEqual([recent.orderId]);
});
