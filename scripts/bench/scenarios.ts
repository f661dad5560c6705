/**
 * The three scenarios. Each drives real HTTP load at the stack and reads its outcome from the
 * database, which records when stock was held and released; the client's clock is used only
 * for request latency.
 *
 * Over 400 lines: the scenarios share the database and Temporal probes below (counts, lags,
 * open workflows), which would otherwise be imported back and forth.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Client as TemporalClient, Connection } from '@temporalio/client';
import { withDatabase } from '../processes';
import { putProduct } from '../../activities/inventory';
import { createPrismaClient } from '../../src/db/client';
import { runSqlCeiling } from './ceiling';
import { floorBeside } from './floor';
import { driveOrders, type LoadResult, type OrderLoad, type OrderPayments } from './load';
import type { ScenarioContext } from './context';
import { orderBody, randomItems } from './orders';
import type { Stack } from './stack';

/** Orders the throughput and scale scenarios place stay open well past the bench. */
const LONG_PAYMENT_WINDOW_SECONDS = 86_400;
const CALIBRATION_SECONDS = 3;

/**
 * Drives orders that stay open (the long window) for `customerId`, for some seconds or a number
 * of requests; with `payments`, each client pays that share of its held orders as it goes.
 */
function driveOpenOrders(
  c: ScenarioContext,
  customerId: string,
  limit: { durationSeconds: number } | { amount: number },
  onProgress?: OrderLoad['onProgress'],
  payments?: OrderPayments,
): Promise<LoadResult> {
  return driveOrders({
    apiUrl: c.stack.apiUrl,
    apiKey: c.stack.apiKey,
    connections: c.options.connections,
    ...limit,
    body: () => orderBody(customerId, c.skus, LONG_PAYMENT_WINDOW_SECONDS),
    progressSeconds: c.options.progressSeconds,
    ...(onProgress && { onProgress }),
    ...(payments && { payments }),
  });
}

/** The throughput scenario's payments (--paid-share), signed with the secret the stack's API accepts. */
function throughputPayments(c: ScenarioContext): OrderPayments | undefined {
  if (c.options.paidShare === 0) return undefined;
  const webhookSecret = c.stack.webhookSecret;
  if (!webhookSecret) throw new Error('--paid-share needs the stack\'s webhook secret (--webhook-secret)');
  return { share: c.options.paidShare, webhookSecret, paymentId: (orderId) => `bench-${c.runTag}-${orderId}` };
}

export async function warmUp(c: ScenarioContext): Promise<void> {
  if (c.options.warmup === 0) return;
  c.log(`warm-up: ${c.options.warmup} s of orders, not measured`);
  await driveOpenOrders(c, `bench-${c.runTag}-warmup`, { durationSeconds: c.options.warmup }, undefined, throughputPayments(c));
}

/** Orders held per second and POST /orders latency, then the bare-SQL ceiling in the same run. */
export async function throughput(c: ScenarioContext, run: number): Promise<void> {
  const { options: o, results, monitor } = c;
  const label = `throughput ${run}/${o.repeat}`;
  const customerId = `bench-${c.runTag}-http-${run}`;
  const payments = throughputPayments(c);
  monitor.start();
  const http = await driveOpenOrders(
    c,
    customerId,
    { durationSeconds: o.duration },
    (p) => c.log(`${label}: HTTP ${Math.round(p.seconds)}/${o.duration} s, ${p.held} held (${(p.held / p.seconds).toFixed(0)}/s), ${p.paid} paid`),
    payments,
  );
  const heldPerSecond = http.held / http.seconds;
  results.recordUsage('throughput', 'throughput: HTTP → workflow → stock', monitor.finish(), heldPerSecond);
  // Every order answered 201 holds its stock, or sold it when paid.
  const heldInDatabase = await countOrders(c.stack.databaseUrl, customerId, 'AWAITING_PAYMENT', 'PAID');
  if (heldInDatabase < http.held) results.fail(`${label}: ${http.held} answered 201 but ${heldInDatabase} orders hold or sold stock`);
  results.record('heldPerSecond', heldPerSecond);
  // With no answer in the run there is no latency to report (it is longer than the run).
  results.record('latencyP50', http.answered ? http.latencyMs.p50 : Number.NaN);
  results.record('latencyP99', http.answered ? http.latencyMs.p99 : Number.NaN);
  results.record('failed', http.failed);
  c.log(
    `${label}: ${http.held} held in ${http.seconds.toFixed(1)} s = ${heldPerSecond.toFixed(1)}/s, ` +
      `latency p50 ${http.latencyMs.p50} ms p99 ${http.latencyMs.p99} ms max ${http.latencyMs.max} ms, ` +
      `statuses ${JSON.stringify(http.statuses)}, errors ${http.errors}, failed ${http.failed}, in flight at the end ${http.inFlightAtEnd}`,
  );
  let paidPerSecond: number | undefined;
  if (http.payments) {
    const { paid, answered, outcomes, latencyMs } = http.payments;
    paidPerSecond = paid / http.seconds;
    const paidInDatabase = await countOrders(c.stack.databaseUrl, customerId, 'PAID');
    if (paidInDatabase < paid) results.fail(`${label}: ${paid} payments answered APPLIED but ${paidInDatabase} orders are paid`);
    results.record('paidPerSecond', paidPerSecond);
    results.record('payLatencyP50', answered ? latencyMs.p50 : Number.NaN);
    results.record('payLatencyP99', answered ? latencyMs.p99 : Number.NaN);
    c.log(
      `${label}: ${paid} paid = ${paidPerSecond.toFixed(1)}/s (${((paid / Math.max(1, http.held)) * 100).toFixed(0)} % of those held), ` +
        `webhook latency p50 ${latencyMs.p50} ms p99 ${latencyMs.p99} ms, outcomes ${JSON.stringify(outcomes)}, ${paidInDatabase} PAID in the database`,
    );
  }
  await floorBeside(c, label, heldPerSecond, paidPerSecond);

  monitor.start();
  const sql = await runSqlCeiling({
    databaseUrl: c.stack.databaseUrl,
    callers: o.connections,
    poolSize: o.sqlPool,
    durationSeconds: o.duration,
    customerId: `bench-${c.runTag}-sql-${run}`,
    items: () => randomItems(c.skus),
    progressSeconds: o.progressSeconds,
    onProgress: (p) => c.log(`${label}: bare SQL ${Math.round(p.seconds)}/${o.duration} s, ${p.held} held (${(p.held / p.seconds).toFixed(0)}/s)`),
  });
  results.recordUsage('throughput', 'throughput: bare-SQL ceiling', monitor.finish());
  if (sql.failed > 0) results.fail(`${label}: ${sql.failed} bare-SQL holds failed`);
  const ceiling = sql.held / sql.seconds;
  results.record('ceilingPerSecond', ceiling);
  results.record('ceilingRatio', heldPerSecond / ceiling);
  c.log(
    `${label}: bare SQL ${sql.held} held = ${ceiling.toFixed(1)}/s (p50 ${sql.latencyMs.p50.toFixed(1)} ms, ` +
      `p99 ${sql.latencyMs.p99.toFixed(1)} ms); end to end is ${((heldPerSecond / ceiling) * 100).toFixed(1)} % of it`,
  );
}

/**
 * Places the orders so that they fall due evenly within the window, which starts once they
 * are all expected to be placed; then waits for their stock to come back and reads the lag
 * (ledger RELEASE time − expires_at) from the database.
 */
export async function expiry(c: ScenarioContext, run: number): Promise<void> {
  const { options: o, results, monitor } = c;
  const label = `expiry ${run}/${o.repeat}`;
  const customerId = `bench-${c.runTag}-expiry-${run}`;
  // Leave room to place them all before the first falls due: measure how fast orders are placed
  // right now, and assume placing them all goes slower than that.
  const calibration = await driveOpenOrders(c, `bench-${c.runTag}-calibration`, { durationSeconds: CALIBRATION_SECONDS });
  const expectedRate = Math.max(5, (calibration.held / calibration.seconds) * 0.7);
  const leadMs = (o.expiryOrders / expectedRate) * 1000 + 5000;
  const windowStart = Date.now() + leadMs;
  const windowMs = o.expiryWindow * 1000;
  c.log(`${label}: placing ${o.expiryOrders} orders, due from ${(leadMs / 1000).toFixed(0)} s from now over ${o.expiryWindow} s`);
  // A scarce sku held across the whole window (the last order holds one unit too): right after
  // the last deadline, all of it must be back on sale for one buyer.
  const flashSku = `BENCH-FLASH-${c.runTag}-${run}`;
  const flashHolders = Math.min(FLASH_UNITS, o.expiryOrders);
  const flashEvery = Math.max(1, Math.floor(o.expiryOrders / flashHolders));
  await addBenchProduct(c.stack.databaseUrl, flashSku, flashHolders);
  const holdsFlash = (n: number) => (o.expiryOrders - 1 - n) % flashEvery === 0 && (o.expiryOrders - 1 - n) / flashEvery < flashHolders;
  const placed = await driveOrders({
    apiUrl: c.stack.apiUrl,
    apiKey: c.stack.apiKey,
    connections: o.connections,
    amount: o.expiryOrders,
    body: (n) => {
      const due = windowStart + (Math.min(n, o.expiryOrders - 1) / o.expiryOrders) * windowMs;
      const paymentTimeoutSeconds = Math.max(1, Math.ceil((due - Date.now()) / 1000));
      const items = randomItems(c.skus);
      if (holdsFlash(n)) items.push({ sku: flashSku, quantity: 1 });
      return JSON.stringify({ customerId, items, paymentTimeoutSeconds });
    },
    progressSeconds: o.progressSeconds,
    onProgress: (p) => c.log(`${label}: ${p.held}/${o.expiryOrders} placed (${(p.held / p.seconds).toFixed(0)}/s)`),
  });
  const placedLate = Math.max(0, Date.now() - windowStart);
  // The database, not the client, says how many orders hold stock: a request that timed out at
  // the client may still have been held.
  const held = await countOrders(c.stack.databaseUrl, customerId, 'AWAITING_PAYMENT', 'EXPIRED');
  c.log(`${label}: ${placed.held} answered 201 in ${placed.seconds.toFixed(1)} s; ${held} orders hold stock`);
  if (placedLate > 0) {
    results.note(`${label}: placing ended ${(placedLate / 1000).toFixed(1)} s after the first order fell due, so expiry overlapped the load`);
  }
  if (held === 0) {
    results.fail(`${label}: no order was held`);
    return;
  }

  await sleepUntil(windowStart);
  monitor.start();
  const lastDeadline = await lastExpiresAt(c.stack.databaseUrl, customerId);
  const freed = await flashHeld(c.stack.databaseUrl, flashSku);
  await sleepUntil(lastDeadline + FLASH_BUYER_DELAY_MS);
  const asked = Date.now();
  const bought = await buyAll(c.stack, `bench-${c.runTag}-flash-buyer-${run}`, flashSku, freed);
  results.record('expiryFreedBought', bought.held ? 1 : 0);
  // The stock is on sale at once; the buyer's hold waits for its workflow's first task, queued
  // behind the timers firing meanwhile, so the answer may be a 202 that is held later.
  if (bought.held) results.record('expiryFreedHeldAfterMs', bought.heldAt - asked);
  c.log(
    `${label}: a buyer asked for all ${freed} units of ${flashSku} ${FLASH_BUYER_DELAY_MS} ms after the last deadline: ` +
      `${bought.status} after ${((bought.answeredAt - asked) / 1000).toFixed(1)} s, ` +
      (bought.held ? `held after ${((bought.heldAt - asked) / 1000).toFixed(1)} s` : `not held (${bought.body})`),
  );
  if (!bought.held) results.fail(`${label}: the buyer of the whole freed quantity was not held (${bought.status} ${bought.body})`);

  const deadline = windowStart + windowMs + Math.max(60_000, windowMs * 2);
  for (;;) {
    const released = await countOrders(c.stack.databaseUrl, customerId, 'EXPIRED');
    if (released >= held || Date.now() > deadline) break;
    c.log(`${label}: ${released}/${held} expired and released`);
    await sleep(Math.min(o.progressSeconds * 1000, 5000));
  }
  const lag = await expiryLag(c.stack.databaseUrl, customerId);
  // Every order of the run is due by now; one still awaiting payment still holds its stock.
  const stillHeld = await countOrders(c.stack.databaseUrl, customerId, 'AWAITING_PAYMENT');
  results.record('expiryLagP50', lag.p50);
  results.record('expiryLagP99', lag.p99);
  results.record('expiryLagMax', lag.max);
  results.record('expiryNotReleased', stillHeld);
  if (stillHeld > 0) results.fail(`${label}: ${stillHeld} orders past their expiresAt still held their stock at the end of the wait`);
  c.log(
    `${label}: ${lag.released} released; lag p50 ${Math.round(lag.p50)} ms, p99 ${Math.round(lag.p99)} ms, ` +
      `max ${Math.round(lag.max)} ms; due over ${(lag.dueSpreadMs / 1000).toFixed(1)} s; ` +
      `release rate ${lag.releasedPerSecond.toFixed(0)}/s while due`,
  );

  // The workflows follow at their own pace: each finds its order EXPIRED and closes.
  if (c.stack.temporalAddress) {
    const closing = await workflowCloseLag(c.stack.temporalAddress, c.stack.databaseUrl, customerId, held, (m) => c.log(`${label}: ${m}`));
    results.record('workflowCloseLagP50', closing.p50);
    results.record('workflowCloseLagP99', closing.p99);
    results.record('workflowCloseLagMax', closing.max);
    results.record('workflowsNotExpired', held - closing.closedExpired);
    if (closing.closedExpired < held) results.fail(`${label}: ${held - closing.closedExpired} workflows not closed as EXPIRED at the end of the wait`);
    c.log(
      `${label}: ${closing.closedExpired}/${held} workflows closed as EXPIRED; close lag p50 ${Math.round(closing.p50)} ms, ` +
        `p99 ${Math.round(closing.p99)} ms, max ${Math.round(closing.max)} ms`,
    );
  }
  results.recordUsage('expiry', 'expiry: stock released, then workflows close', monitor.finish());
}

/** Units of the expiry scenario's scarce sku: the most one order line may ask for. */
const FLASH_UNITS = 1000;
/** The contract's bound: on sale again within 1 s of expiresAt. */
const FLASH_BUYER_DELAY_MS = 1000;

async function addBenchProduct(databaseUrl: string, sku: string, available: number): Promise<void> {
  const prisma = createPrismaClient(databaseUrl, 1);
  try {
    await putProduct(prisma, { sku, name: `Flash sale ${sku}`, priceCents: 1000, available });
  } finally {
    await prisma.$disconnect();
  }
}

async function lastExpiresAt(databaseUrl: string, customerId: string): Promise<number> {
  return withDatabase(databaseUrl, async (db) => {
    const { rows } = await db.query<{ last: Date | null }>(`SELECT max(expires_at) AS last FROM orders WHERE customer_id = $1`, [customerId]);
    return rows[0]?.last?.getTime() ?? Date.now();
  });
}

/** Units of the sku the run's orders hold (all of it comes back once they expire). */
async function flashHeld(databaseUrl: string, sku: string): Promise<number> {
  return withDatabase(databaseUrl, async (db) => {
    const { rows } = await db.query<{ n: number }>(`SELECT (available + reserved)::int AS n FROM products WHERE sku = $1`, [sku]);
    return rows[0]?.n ?? 0;
  });
}

/** Longer than the engine's backlog after 10,000 timers (minutes here), so a 202 is followed to its hold. */
const FLASH_BUYER_WINDOW_SECONDS = 1800;
const FLASH_BUYER_FOLLOW_MS = 900_000;

/**
 * One order for the whole quantity, as a storefront places it: answered 201 (held), or 202 (not
 * decided within the API's wait: then read until decided). Held: AWAITING_PAYMENT.
 */
async function buyAll(
  stack: Stack,
  customerId: string,
  sku: string,
  quantity: number,
): Promise<{ held: boolean; status: number; body: string; answeredAt: number; heldAt: number }> {
  const headers = { 'Content-Type': 'application/json', Authorization: `Bearer ${stack.apiKey}` };
  const res = await fetch(`${stack.apiUrl}/orders`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ customerId, items: [{ sku, quantity }], paymentTimeoutSeconds: FLASH_BUYER_WINDOW_SECONDS }),
  });
  const answeredAt = Date.now();
  let body = await res.text();
  let status = (JSON.parse(body) as { status?: string }).status;
  const orderId = (JSON.parse(body) as { orderId?: string }).orderId;
  const until = answeredAt + FLASH_BUYER_FOLLOW_MS;
  while (res.status === 202 && status === 'PENDING' && orderId !== undefined && Date.now() < until) {
    await sleep(500);
    const read = await fetch(`${stack.apiUrl}/orders/${orderId}`, { headers });
    body = await read.text();
    status = read.ok ? (JSON.parse(body) as { status?: string }).status : status;
  }
  return { held: status === 'AWAITING_PAYMENT', status: res.status, body, answeredAt, heldAt: Date.now() };
}

interface CloseLag {
  closedExpired: number;
  p50: number;
  p99: number;
  max: number;
}

/** Waits until the run's workflows have closed, then reads close time − expiresAt from Temporal's visibility store. */
async function workflowCloseLag(address: string, databaseUrl: string, customerId: string, expected: number, log: (m: string) => void): Promise<CloseLag> {
  const connection = await Connection.connect({ address });
  try {
    const client = new TemporalClient({ connection });
    const running = `CustomerId = "${customerId}" AND ExecutionStatus = "Running"`;
    // Workflows close at the engine's pace (~50/s at best here); allow for it.
    const deadline = Date.now() + Math.max(600_000, (expected / 10) * 1000);
    for (;;) {
      const { count } = await client.workflow.count(running);
      if (count === 0 || Date.now() > deadline) break;
      log(`${count} workflows still running`);
      await sleep(5000);
    }
    const expiresAt = await withDatabase(databaseUrl, async (db) => {
      const { rows } = await db.query<{ id: string; expires_at: Date }>(`SELECT id::text, expires_at FROM orders WHERE customer_id = $1`, [customerId]);
      return new Map(rows.map((r) => [`order-${r.id}`, r.expires_at.getTime()]));
    });
    const lags: number[] = [];
    let closedExpired = 0;
    for await (const wf of client.workflow.list({ query: `CustomerId = "${customerId}" AND ExecutionStatus = "Completed" AND OrderStatus = "EXPIRED"` })) {
      const due = expiresAt.get(wf.workflowId);
      if (due === undefined || !wf.closeTime) continue;
      closedExpired++;
      lags.push(wf.closeTime.getTime() - due);
    }
    lags.sort((a, b) => a - b);
    const at = (q: number) => lags[Math.min(lags.length - 1, Math.floor(q * lags.length))] ?? Number.NaN;
    return { closedExpired, p50: at(0.5), p99: at(0.99), max: lags[lags.length - 1] ?? Number.NaN };
  } finally {
    await connection.close();
  }
}

/** Many orders awaiting payment at once: how much memory the worker and the server need. */
export async function scale(c: ScenarioContext): Promise<void> {
  const { options: o, results, monitor } = c;
  const customerId = `bench-${c.runTag}-scale`;
  c.log(`scale: placing ${o.scaleOrders} orders that stay open (payment window ${LONG_PAYMENT_WINDOW_SECONDS} s)`);
  monitor.start();
  const placed = await driveOpenOrders(c, customerId, { amount: o.scaleOrders }, (p) =>
    c.log(
      `scale: ${p.held}/${o.scaleOrders} placed (${(p.held / p.seconds).toFixed(0)}/s), ` +
        `worker RSS ${Math.round(monitor.rssMiB('worker'))} MiB, Temporal ${Math.round(monitor.rssMiB('temporal'))} MiB`,
    ),
  );
  // Let the last workflow tasks settle before reading memory at the end.
  await sleep(o.smoke ? 1000 : 5000);
  const usage = monitor.finish();
  results.recordUsage('scale', 'scale: orders placed and kept open', usage);

  const awaitingInDatabase = await countOrders(c.stack.databaseUrl, customerId, 'AWAITING_PAYMENT');
  const openWorkflows = c.stack.temporalAddress
    ? await countOpenWorkflows(c.stack.temporalAddress, customerId, awaitingInDatabase)
    : undefined;
  const awaiting = Math.min(awaitingInDatabase, openWorkflows ?? awaitingInDatabase);
  if (awaiting < placed.held) results.fail(`scale: ${placed.held} answered 201 but only ${awaiting} orders are awaiting payment`);
  results.record('awaiting', awaiting);
  const part = (name: string) => usage.parts[name];
  const worker = part('worker');
  if (worker) {
    results.record('workerRssPeak', worker.rssPeakMiB);
    results.record('workerRssEnd', worker.rssEndMiB);
  }
  const temporal = part('temporal');
  if (temporal) results.record('temporalRssEnd', temporal.rssEndMiB);
  const api = part('api');
  if (api) results.record('apiRssPeak', api.rssPeakMiB);
  c.log(
    `scale: ${placed.held} placed in ${placed.seconds.toFixed(0)} s (statuses ${JSON.stringify(placed.statuses)}, ` +
      `errors ${placed.errors}); awaiting payment: ${awaitingInDatabase} in the database` +
      (openWorkflows === undefined ? '' : `, ${openWorkflows} open workflows in Temporal`),
  );
}

async function countOrders(databaseUrl: string, customerId: string, ...statuses: string[]): Promise<number> {
  return withDatabase(databaseUrl, async (db) => {
    const { rows } = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM orders WHERE customer_id = $1 AND status::text = ANY($2::text[])`,
      [customerId, statuses],
    );
    return rows[0]?.n ?? 0;
  });
}

interface ExpiryLag {
  released: number;
  /** Releases per second between the first and the last deadline. */
  releasedPerSecond: number;
  p50: number;
  p99: number;
  max: number;
  dueSpreadMs: number;
}

/** From each order's expires_at to the RELEASE ledger row (written in the transaction that put the stock back). */
async function expiryLag(databaseUrl: string, customerId: string): Promise<ExpiryLag> {
  return withDatabase(databaseUrl, async (db) => {
    const { rows } = await db.query<{ released: number; p50: number; p99: number; max: number; due_spread_ms: number }>(
      `WITH released AS (
         SELECT o.expires_at, MAX(m.created_at) AS released_at
           FROM orders o JOIN stock_movements m ON m.order_id = o.id AND m.kind = 'RELEASE'
          WHERE o.customer_id = $1
          GROUP BY o.id, o.expires_at),
       lag AS (SELECT EXTRACT(EPOCH FROM released_at - expires_at) * 1000 AS ms, expires_at FROM released)
       SELECT count(*)::int AS released,
              COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), 'NaN')::float8 AS p50,
              COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), 'NaN')::float8 AS p99,
              COALESCE(max(ms), 'NaN')::float8 AS max,
              COALESCE(EXTRACT(EPOCH FROM max(expires_at) - min(expires_at)) * 1000, 0)::float8 AS due_spread_ms
         FROM lag`,
      [customerId],
    );
    const row = rows[0];
    return {
      released: row?.released ?? 0,
      p50: row?.p50 ?? Number.NaN,
      p99: row?.p99 ?? Number.NaN,
      max: row?.max ?? Number.NaN,
      dueSpreadMs: row?.due_spread_ms ?? 0,
      releasedPerSecond: (row?.released ?? 0) / Math.max(1, (row?.due_spread_ms ?? 0) / 1000),
    };
  });
}

/** Counts from Temporal's visibility store, which catches up with search-attribute changes within moments. */
async function countOpenWorkflows(address: string, customerId: string, expected: number): Promise<number> {
  const connection = await Connection.connect({ address });
  try {
    const client = new TemporalClient({ connection });
    const query = `ExecutionStatus = "Running" AND OrderStatus = "AWAITING_PAYMENT" AND CustomerId = "${customerId}"`;
    const deadline = Date.now() + 30_000;
    for (;;) {
      const { count } = await client.workflow.count(query);
      if (count >= expected || Date.now() > deadline) return count;
      await sleep(1000);
    }
  } finally {
    await connection.close();
  }
}

async function sleepUntil(time: number): Promise<void> {
  const wait = time - Date.now();
  if (wait > 0) await sleep(wait);
}
