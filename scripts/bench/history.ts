/**
 * The history scenario: what the hot path costs with a year of history kept, against the same
 * operations on an empty database in the same run; then retention pruning that history while
 * holds run, and what it costs them. Runs on a database of its own, without Temporal: the
 * operations are the very functions the API and the worker call (admission, hold, receipt and
 * commit, the reclaim's batch, the dispatcher's claim, the admin feed's page, the inventory check).
 * The history is generated in SQL (generate_series), a chunk of orders per statement.
 * Over 400 lines: the generator's SQL, the measured operations and the pruning phase share one
 * scratch database and its pools; split, each part would need them passed around.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { Pool } from 'pg';
import { createActivities } from '../../activities';
import { claimDueDeliveries } from '../../src/db/order-event-deliveries';
import { createLocalPaymentProvider } from '../../activities/payment-provider';
import { reclaimDueOrders } from '../../src/reclaim';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '../../prisma/generated/client';
import { admitOrder } from '../../src/api/admission';
import { OrderEventsReader } from '../../src/api/order-events';
import { DEFAULTS, loadConfig } from '../../src/config';
import { createPrismaClient } from '../../src/db/client';
import { checkInventory } from '../../src/db/inventory-check';
import { catchUpLedgerCheckpoint } from '../../src/db/ledger-checkpoint';
import { catchUpReceiptRechecks } from '../../src/db/receipt-rechecks';
import { applyMigrations } from '../../src/db/migrate';
import { createWorkerMetrics } from '../../src/metrics';
import { startRetentionLoop } from '../../src/retention';
import { withDatabase } from '../processes';
import type { BenchOptions } from './options';
import { addBenchProducts, randomItems } from './orders';
import type { FigureId, Results } from './report';
import { percentile } from './stats';
import { setTimeout as sleep } from 'node:timers/promises';

export interface HistoryContext {
  options: BenchOptions;
  results: Results;
  skus: string[];
  log: (line: string) => void;
}

/** Where the history's and the measured orders' events were (and would be) sent. */
const EVENT_ENDPOINT = 'http://order-events.bench.invalid/order-events';
/** The lease a claim takes (measured inside a rolled-back transaction, so it never holds). */
const CLAIM_LEASE_SECONDS = 15;
const CHUNK_ORDERS = 50_000;
/** Orders the reclaim finds due in each measured batch. */
const RECLAIM_BATCH = 50;
/** Concurrent callers placing orders while the history is pruned (and just before, for the baseline). */
const HOLD_CALLERS = 4;
/** What a measurement allows: the hot path may cost at most this much more with history kept. */
export const HISTORY_RATIO_GOAL = 1.2;

type Operation = 'hold' | 'payment' | 'reclaim' | 'claim' | 'feed' | 'check';
const OPERATIONS: Operation[] = ['hold', 'payment', 'reclaim', 'claim', 'feed', 'check'];
const FIGURE_OF: Record<Operation, { empty: FigureId; full: FigureId; ratio: FigureId }> = {
  hold: { empty: 'historyHoldEmpty', full: 'historyHoldFull', ratio: 'historyHoldRatio' },
  payment: { empty: 'historyPaymentEmpty', full: 'historyPaymentFull', ratio: 'historyPaymentRatio' },
  reclaim: { empty: 'historyReclaimEmpty', full: 'historyReclaimFull', ratio: 'historyReclaimRatio' },
  claim: { empty: 'historyClaimEmpty', full: 'historyClaimFull', ratio: 'historyClaimRatio' },
  feed: { empty: 'historyFeedEmpty', full: 'historyFeedFull', ratio: 'historyFeedRatio' },
  check: { empty: 'historyCheckEmpty', full: 'historyCheckFull', ratio: 'historyCheckRatio' },
};

export async function historyScenario(c: HistoryContext): Promise<void> {
  const { options: o, results, log } = c;
  const name = `checkout_bench_${randomBytes(5).toString('hex')}`;
  const adminUrl = o.databaseAdminUrl;
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const databaseUrl = url.toString();
  log(`history: database ${name} of its own (no Temporal: the functions the API and worker call, directly)`);
  await withDatabase(adminUrl, (db) => db.query(`CREATE DATABASE "${name}"`));
  // No statement timeout: the inventory check at history size is what is measured.
  const prisma = createPrismaClient(databaseUrl, 10, { connectionTimeoutMs: 30_000, statementTimeoutMs: 0 });
  try {
    await applyMigrations(databaseUrl);
    await addBenchProducts(databaseUrl, c.skus);
    // As a worker's retention loop keeps them: the inventory check reads the ledger checkpoint plus
    // the rows written since, and the receipts of the orders named since the last drain (here, the
    // measured operations' own).
    await catchUpLedgerCheckpoint(prisma);
    await catchUpReceiptRechecks(prisma);
    const bench = new HotPath(prisma, c.skus);

    // Connections, plans and caches warmed first, and statistics gathered (autovacuum may be off,
    // as on the project's machines), so the empty database is measured with the plans it would have.
    await bench.measureAll(Math.min(10, o.historySamples));
    await prisma.$executeRawUnsafe('ANALYZE');
    log('history: the hot path on the empty database');
    const empty = await bench.measureAll(o.historySamples);
    (results.loads.history ??= []).push(os.loadavg()[0] ?? 0);

    const loadStarted = Date.now();
    const loaded = await loadHistory(databaseUrl, o.historyOrders, c.skus, log);
    const loadSeconds = (Date.now() - loadStarted) / 1000;
    results.record('historyOrders', o.historyOrders);
    results.record('historyLedgerRows', loaded.stock_movements ?? 0);
    results.record('historyEvents', loaded.order_events ?? 0);
    results.record('historyLoadSeconds', loadSeconds);
    log(`history: ${JSON.stringify(loaded)} rows in ${loadSeconds.toFixed(0)} s (with VACUUM ANALYZE)`);
    // The history was written in SQL, past any worker: the checkpoint counts it now, in one pass
    // (what a worker's first ticks do once after the migration), so the check measured next is
    // the one a running system has, not the first, linear one.
    const checkpointStarted = Date.now();
    await catchUpLedgerCheckpoint(prisma, 3_600_000);
    log(`history: the ledger checkpoint counts the history (${((Date.now() - checkpointStarted) / 1000).toFixed(1)} s, once)`);
    // Likewise the receipts' rechecks: the loader's inserts wrote a row per paid order and receipt
    // (the triggers), which a worker's loop drains in steps of 10,000 rows, at once one after another;
    // then vacuumed, as the loaded tables were (autovacuum may be off here, and the check reads the table).
    const rechecksStarted = Date.now();
    await catchUpReceiptRechecks(prisma, 3_600_000);
    await prisma.$executeRawUnsafe('VACUUM (ANALYZE) receipt_rechecks');
    log(`history: the receipts' rechecks of the history drained (${((Date.now() - rechecksStarted) / 1000).toFixed(1)} s, once)`);

    log('history: the same hot path with the history kept');
    const full = await bench.measureAll(o.historySamples);
    // The machine's load beside the figures (a shared machine moves them).
    (results.loads.history ??= []).push(os.loadavg()[0] ?? 0);
    for (const op of OPERATIONS) {
      const e = median(empty[op]);
      const f = median(full[op]);
      results.record(FIGURE_OF[op].empty, e);
      results.record(FIGURE_OF[op].full, f);
      results.record(FIGURE_OF[op].ratio, f / e);
      log(`history: ${op}: empty ${e.toFixed(2)} ms, with history ${f.toFixed(2)} ms (× ${(f / e).toFixed(2)})`);
    }

    if (o.explain) {
      const plans = await explainHotPath(databaseUrl, c.skus);
      writeFileSync(o.explain, plans);
      log(`history: EXPLAIN (ANALYZE, BUFFERS) of every statement of the hot path written to ${o.explain}`);
    }

    await pruneWhileHolding(c, prisma, bench);

    const report = await checkInventory(prisma);
    if (!report.ok) results.fail(`history: inventory invariants violated after pruning: ${JSON.stringify(report.violations.slice(0, 5))}`);
    log(`inventory invariants after history: ${report.ok ? 'ok' : 'VIOLATED'}`);
  } finally {
    await prisma.$disconnect();
    await withDatabase(adminUrl, (db) => db.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
  }
}

/** The hot path's operations, each timed around the call the API or the worker makes. */
class HotPath {
  private readonly activities;
  private readonly reader;

  constructor(private readonly prisma: PrismaClient, private readonly skus: string[]) {
    this.activities = createActivities({
      prisma,
      payments: createLocalPaymentProvider(),
      maxPaymentWindowSeconds: DEFAULTS.maxPaymentWindowSeconds,
      eventEndpoints: [EVENT_ENDPOINT],
    });
    this.reader = new OrderEventsReader({ prisma });
  }

  async measureAll(samples: number): Promise<Record<Operation, number[]>> {
    const held: { orderId: string; totalCents: number }[] = [];
    const hold = await this.times(samples, async () => void held.push(await this.hold(900)));
    const payment = await this.times(samples, async () => {
      const order = held.pop();
      if (order) await this.pay(order.orderId, order.totalCents);
    });
    const reclaim: number[] = [];
    for (let i = 0; i < Math.max(2, Math.ceil(samples / 20)); i++) reclaim.push(await this.reclaimBatch());
    const claim = await this.times(samples, () => this.claim());
    const cursor = await this.tailCursor(100);
    const feed = await this.times(samples, async () => void (await this.reader.page(cursor, 100)));
    const check = await this.times(3, async () => void (await checkInventory(this.prisma)));
    return { hold, payment, reclaim, claim, feed, check };
  }

  private async times(samples: number, op: () => Promise<void>): Promise<number[]> {
    const ms: number[] = [];
    for (let i = 0; i < samples; i++) {
      const started = performance.now();
      await op();
      ms.push(performance.now() - started);
    }
    return ms;
  }

  /** What POST /orders does in PostgreSQL: the admission, then the worker's hold. */
  async hold(paymentTimeoutSeconds: number, items = randomItems(this.skus)): Promise<{ orderId: string; totalCents: number }> {
    const orderId = randomUUID();
    const customerId = `bench-${orderId.slice(0, 8)}`;
    const admission = await admitOrder(this.prisma, {
      orderId,
      channel: 'default',
      body: { customerId, items },
      paymentTimeoutSeconds,
      currency: DEFAULTS.checkoutCurrency,
      idempotencyKey: null,
      requestHash: null,
      maxOpenOrders: DEFAULTS.maxOpenOrdersPerCustomer,
      admissionSeconds: DEFAULTS.orderAdmissionSeconds,
      eventEndpoints: [EVENT_ENDPOINT],
    });
    if (admission.outcome !== 'ADMITTED') throw new Error(`admission answered ${admission.outcome}`);
    const held = await this.activities.reserveStock({
      orderId,
      customerId,
      items,
      createdAt: admission.order.createdAt,
      expiresAt: admission.order.expiresAt,
      currency: DEFAULTS.checkoutCurrency,
    });
    return { orderId, totalCents: held.totalCents };
  }

  /** A payment.succeeded: its receipt recorded, then the commit decided by the rule. */
  async pay(orderId: string, totalCents: number): Promise<void> {
    const paymentId = `bench-pay-${orderId}`;
    await this.prisma.paymentReceipt.create({
      data: { paymentId, orderId, amountCents: BigInt(totalCents), currency: DEFAULTS.checkoutCurrency, succeededAt: new Date() },
    });
    const answer = await this.activities.commitStock({ orderId, paymentId });
    if (answer.payment !== 'APPLIED') throw new Error(`payment of ${orderId} answered ${answer.payment}`);
  }

  /** RECLAIM_BATCH orders held for a second, then the reclaim's batch that expires them (timed). */
  private async reclaimBatch(): Promise<number> {
    for (let i = 0; i < RECLAIM_BATCH; i++) await this.hold(1);
    await sleep(1_200);
    const started = performance.now();
    const batch = await reclaimDueOrders(this.prisma, 10 * RECLAIM_BATCH, [EVENT_ENDPOINT]);
    const ms = performance.now() - started;
    if (batch.released < RECLAIM_BATCH) throw new Error(`the reclaim released ${batch.released} of ${RECLAIM_BATCH} due orders`);
    return ms;
  }

  /** The dispatcher's claim of a batch of due deliveries, rolled back so the next sample finds them again. */
  private async claim(): Promise<void> {
    const rollback = new Error('rollback');
    await this.prisma
      .$transaction(async (tx) => {
        const claimed = await claimDueDeliveries(tx, [{ endpoint: EVENT_ENDPOINT, limit: 50 }], CLAIM_LEASE_SECONDS);
        if (claimed.length === 0) throw new Error('no delivery due to claim');
        throw rollback;
      })
      .catch((error: unknown) => {
        if (error !== rollback) throw error;
      });
  }

  /** The cursor of a consumer `behind` events behind the newest (it reads the tail of the feed). */
  private async tailCursor(behind: number): Promise<string> {
    const [row] = await this.prisma.$queryRaw<{ tx_id: bigint; id: string }[]>`
      SELECT tx_id, id::text AS id FROM order_events ORDER BY tx_id DESC, id DESC OFFSET ${behind} LIMIT 1`;
    return row ? `${row.tx_id.toString()}-${row.id}` : '0-00000000-0000-0000-0000-000000000000';
  }
}

const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 0.5);

/**
 * `orders` closed orders spread evenly over the past year (80 % paid, 15 % expired, 5 % cancelled),
 * each with 1–3 lines, a RESERVE and a COMMIT or RELEASE ledger row per line, the paid ones with
 * their receipt and payment, two events each (placed, and how it closed), each delivered to one
 * endpoint; the products' counters moved as those orders moved them. Answers the rows per table.
 */
async function loadHistory(databaseUrl: string, orders: number, skus: string[], log: (line: string) => void): Promise<Record<string, number>> {
  const pool = new Pool({ connectionString: databaseUrl, max: 1 });
  try {
    const db = await pool.connect();
    try {
      // Bulk load only: a crash would lose the bench's own scratch database, nothing else.
      await db.query('SET synchronous_commit = off');
      for (let from = 1; from <= orders; from += CHUNK_ORDERS) {
        const to = Math.min(orders, from + CHUNK_ORDERS - 1);
        await db.query(HISTORY_CHUNK_SQL, [from, to, orders, skus, EVENT_ENDPOINT]);
        log(`history: ${to.toLocaleString('en-US')} of ${orders.toLocaleString('en-US')} closed orders loaded`);
      }
      for (const table of HISTORY_TABLES) await db.query(`VACUUM (ANALYZE) "${table}"`);
      const counts: Record<string, number> = {};
      for (const table of HISTORY_TABLES) {
        counts[table] = Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM "${table}"`)).rows[0]?.n ?? 0);
      }
      return counts;
    } finally {
      db.release();
    }
  } finally {
    await pool.end();
  }
}

const HISTORY_TABLES = ['orders', 'order_items', 'stock_movements', 'payment_receipts', 'payments', 'order_events', 'order_event_deliveries', 'products'];

/** $1..$2: the orders of this chunk; $3: all orders (they spread over the year); $4: skus; $5: the endpoint. */
const HISTORY_CHUNK_SQL = `
WITH h AS (
  SELECT i, gen_random_uuid() AS id,
         (CASE WHEN i % 20 < 16 THEN 'PAID' WHEN i % 20 < 19 THEN 'EXPIRED' ELSE 'CANCELLED' END)::"OrderStatus" AS status,
         now() - interval '1 hour' - ((($3::int - i)::float8 / $3::int) * interval '365 days') AS closed_at
    FROM generate_series($1::int, $2::int) AS i
), lines AS (
  SELECT h.id, h.i, h.status, h.closed_at, ($4::text[])[1 + ((h.i * 7 + k * 13) % cardinality($4::text[]))] AS sku, 1 + ((h.i + k) % 2) AS quantity
    FROM h, generate_series(1, 1 + h.i % 3) AS k
), totals AS (
  SELECT id, SUM(quantity)::bigint * 1000 AS total FROM lines GROUP BY id
), new_orders AS (
  INSERT INTO orders (id, customer_id, status, total_cents, created_at, expires_at, paid_at, closed_at, payment_id, currency, deadline_movable)
  SELECT h.id, 'history-' || (h.i % 50000), h.status, t.total, h.closed_at - interval '10 minutes',
         CASE WHEN h.status = 'EXPIRED' THEN h.closed_at ELSE h.closed_at + interval '5 minutes' END,
         CASE WHEN h.status = 'PAID' THEN h.closed_at END, h.closed_at,
         CASE WHEN h.status = 'PAID' THEN 'history-pay-' || h.i END, 'eur', true
    FROM h JOIN totals t ON t.id = h.id
), new_items AS (
  INSERT INTO order_items (order_id, sku, quantity, unit_price_cents) SELECT id, sku, quantity, 1000 FROM lines
), new_ledger AS (
  INSERT INTO stock_movements (sku, order_id, kind, quantity, created_at)
  SELECT sku, id, 'RESERVE', quantity, closed_at - interval '10 minutes' FROM lines
  UNION ALL
  SELECT sku, id, (CASE WHEN status = 'PAID' THEN 'COMMIT' ELSE 'RELEASE' END)::"StockMovementKind", quantity, closed_at FROM lines
), new_receipts AS (
  INSERT INTO payment_receipts (payment_id, order_id, amount_cents, currency, received_at, succeeded_at, outcome)
  SELECT 'history-pay-' || h.i, h.id, t.total, 'eur', h.closed_at - interval '1 second', h.closed_at - interval '1 second', 'APPLIED'
    FROM h JOIN totals t ON t.id = h.id WHERE h.status = 'PAID'
), new_payments AS (
  INSERT INTO payments (order_id, payment_id, amount_cents, outcome, received_at)
  SELECT h.id, 'history-pay-' || h.i, t.total, 'APPLIED', h.closed_at FROM h JOIN totals t ON t.id = h.id WHERE h.status = 'PAID'
), events AS (
  SELECT gen_random_uuid() AS event_id, h.id, h.status, s.seq,
         CASE s.seq WHEN 1 THEN h.closed_at - interval '10 minutes' ELSE h.closed_at END AS at
    FROM h, generate_series(1, 2) AS s(seq)
), new_events AS (
  INSERT INTO order_events (id, order_id, seq, type, data, created_at)
  SELECT event_id, id, seq, CASE seq WHEN 1 THEN 'order.placed' ELSE 'order.' || lower(status::text) END,
         jsonb_build_object('order', jsonb_build_object('orderId', id::text, 'status', CASE seq WHEN 1 THEN 'AWAITING_PAYMENT' ELSE status::text END)), at
    FROM events
), new_deliveries AS (
  INSERT INTO order_event_deliveries (event_id, endpoint, order_id, seq, state, attempts, next_attempt_at, last_attempt_at, delivered_at, created_at)
  SELECT event_id, $5, id, seq, 'DELIVERED', 1, at, at + interval '1 second', at + interval '1 second', at FROM events
)
UPDATE products p SET available = p.available - c.units, sold = p.sold + c.units
  FROM (SELECT sku, SUM(quantity)::int AS units FROM lines WHERE status = 'PAID' GROUP BY sku) c
 WHERE p.sku = c.sku`;

/** Holds for a while with nothing else running, then the same holds while every closed order past retention is pruned. */
async function pruneWhileHolding(c: HistoryContext, prisma: PrismaClient, bench: HotPath): Promise<void> {
  const { options: o, results, log } = c;
  const baselineSeconds = o.smoke ? 2 : 15;
  log(`history: ${HOLD_CALLERS} callers holding orders for ${baselineSeconds} s (no pruning)`);
  const baseline = await holdFor(bench, baselineSeconds * 1000);

  const retention = loadConfig({}).retention;
  const metrics = createWorkerMetrics();
  const config = { retentionSeconds: retention.retentionSeconds, eventRetentionSeconds: retention.eventRetentionSeconds, batchSize: retention.batchSize, intervalMs: 100 };
  const [due] = await prisma.$queryRaw<{ n: bigint }[]>`
    SELECT count(*) AS n FROM orders WHERE status IN ('PAID', 'EXPIRED', 'CANCELLED', 'REJECTED') AND closed_at < now() - make_interval(secs => ${retention.retentionSeconds}::int)`;
  log(`history: pruning ${Number(due?.n ?? 0).toLocaleString('en-US')} closed orders past ${DEFAULTS.retentionDays} days with ${o.pruners} pruner(s) (batches of ${retention.batchSize}) while ${HOLD_CALLERS} callers hold orders, for at most ${o.pruneSeconds} s`);
  const started = Date.now();
  const pruners = Array.from({ length: o.pruners }, () => startRetentionLoop({ prisma, config, metrics }));
  let prunedOrders = 0;
  const stopAt = started + o.pruneSeconds * 1000;
  const watch = (async () => {
    for (;;) {
      await sleep(500);
      prunedOrders = await prunedOf(metrics, 'orders');
      if (prunedOrders >= Number(due?.n ?? 0) || Date.now() >= stopAt) return;
    }
  })();
  const during = await Promise.all([holdFor(bench, o.pruneSeconds * 1000, () => Date.now() >= stopAt || prunedOrders >= Number(due?.n ?? 0)), watch]).then(([h]) => h);
  await Promise.all(pruners.map((p) => p.stop()));
  const seconds = (Date.now() - started) / 1000;
  prunedOrders = await prunedOf(metrics, 'orders');
  const prunedRows = (await metrics.retentionPrunedRows.get()).values.reduce((s, v) => s + v.value, 0);
  results.record('historyPruneOrdersPerSecond', prunedOrders / seconds);
  results.record('historyPruneRowsPerSecond', prunedRows / seconds);
  results.record('historyPruneHoldP50Ratio', during.p50 / baseline.p50);
  results.record('historyPruneHoldP99Ratio', during.p99 / baseline.p99);
  results.record('historyPruneHoldsPerSecondRatio', during.perSecond / baseline.perSecond);
  log(
    `history: pruned ${prunedOrders.toLocaleString('en-US')} orders (${prunedRows.toLocaleString('en-US')} rows) in ${seconds.toFixed(1)} s; ` +
      `holds p50 ${baseline.p50.toFixed(1)} → ${during.p50.toFixed(1)} ms, p99 ${baseline.p99.toFixed(1)} → ${during.p99.toFixed(1)} ms, ` +
      `${baseline.perSecond.toFixed(0)} → ${during.perSecond.toFixed(0)} holds/s`,
  );
  const checkStarted = performance.now();
  await checkInventory(prisma);
  results.record('historyCheckAfterPrune', performance.now() - checkStarted);
}

async function prunedOf(metrics: ReturnType<typeof createWorkerMetrics>, table: string): Promise<number> {
  return (await metrics.retentionPrunedRows.get()).values.find((v) => v.labels.table === table)?.value ?? 0;
}

/** HOLD_CALLERS callers holding one order after another for `ms` (or until `done`): latencies and rate. */
async function holdFor(bench: HotPath, ms: number, done = () => false): Promise<{ p50: number; p99: number; perSecond: number }> {
  const latencies: number[] = [];
  const started = Date.now();
  const deadline = started + ms;
  await Promise.all(
    Array.from({ length: HOLD_CALLERS }, async () => {
      while (Date.now() < deadline && !done()) {
        const begin = performance.now();
        await bench.hold(900);
        latencies.push(performance.now() - begin);
      }
    }),
  );
  const sorted = latencies.sort((a, b) => a - b);
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), perSecond: latencies.length / ((Date.now() - started) / 1000) };
}

/**
 * Every statement of the hot path at history size with its plan: one hold, one payment, one
 * reclaim batch, one claim, one feed page, one inventory check, through the same functions, on a
 * connection with auto_explain reporting each statement (nested ones too) as a notice.
 */
async function explainHotPath(databaseUrl: string, skus: string[]): Promise<string> {
  const notices: string[] = [];
  const pool = new Pool({
    connectionString: databaseUrl,
    max: 1,
    options:
      '-c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=0 -c auto_explain.log_analyze=on ' +
      '-c auto_explain.log_buffers=on -c auto_explain.log_nested_statements=on -c auto_explain.log_level=notice -c client_min_messages=notice',
  });
  pool.on('connect', (client) => client.on('notice', (notice) => notices.push(notice.message ?? '')));
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  const bench = new HotPath(prisma, skus);
  const sections: string[] = [];
  const section = async (title: string, op: () => Promise<unknown>) => {
    notices.length = 0;
    await op();
    sections.push(`### ${title}\n\n${distinctPlans(notices).join('\n\n')}\n`);
  };
  try {
    const order = await bench.hold(900);
    await section('a hold (admit_order, then hold_order_in_channel)', () => bench.hold(900));
    await section('a payment (the receipt, then decide_order COMMIT)', () => bench.pay(order.orderId, order.totalCents));
    for (let i = 0; i < 5; i++) await bench.hold(1);
    await sleep(1_200);
    await section('the reclaim\'s batch (reclaim_due_orders, 5 due)', () => reclaimDueOrders(prisma, 500, [EVENT_ENDPOINT]));
    await section('the dispatcher\'s claim (claimDueDeliveries, 50)', () => prisma.$transaction((tx) => claimDueDeliveries(tx, [{ endpoint: EVENT_ENDPOINT, limit: 50 }], CLAIM_LEASE_SECONDS)));
    await section('the admin feed (GET /admin/events, a page of 100 at the tail)', async () => {
      const [row] = await prisma.$queryRaw<{ cursor: string }[]>`
        SELECT tx_id::text || '-' || id::text AS cursor FROM order_events ORDER BY tx_id DESC, id DESC OFFSET 100 LIMIT 1`;
      notices.length = 0;
      await new OrderEventsReader({ prisma }).page(row?.cursor, 100);
    });
    await section('the inventory check', () => checkInventory(prisma));
  } finally {
    await prisma.$disconnect();
    // The adapter was handed the pool, so it is the caller's to end.
    await pool.end();
  }
  return sections.join('\n');
}

/**
 * The plans worth reading: those that read a table or an index (a plan without a scan computes a
 * value or calls a function whose statements are reported on their own), each statement once,
 * with how many times it ran (the reclaim settles each order with the same statements).
 */
function distinctPlans(notices: string[]): string[] {
  const byStatement = new Map<string, { plan: string; runs: number }>();
  for (const notice of notices) {
    const text = /Query Text: ([\s\S]*?)\n(?=[A-Z][a-zA-Z ]+ {2}\(cost)/.exec(notice)?.[1] ?? notice;
    const seen = byStatement.get(text);
    if (seen) seen.runs++;
    else byStatement.set(text, { plan: notice.trim(), runs: 1 });
  }
  return [...byStatement.values()]
    .filter(({ plan }) => / Scan /.test(plan))
    .map(({ plan, runs }) => '```\n' + (runs > 1 ? `(ran ${runs} times; the first shown)\n` : '') + plan + '\n```');
}
