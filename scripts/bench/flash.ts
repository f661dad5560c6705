/**
 * `--scenario flash`: a drop. One sku with `--units` units, `--buyers` one-unit buyers (each a
 * customer of their own) sent by `--connections` clients as fast as they are answered. Reports
 * how fast every buyer got an answer, the latency of held and of sold-out answers, how fast the
 * stock was held compared with ordinary orders in the same run, how many workflows the drop
 * started, and how many units ended held (exactly the units on sale, never more).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Client as TemporalClient, Connection } from '@temporalio/client';
import { putProduct } from '../../activities/inventory';
import { createPrismaClient } from '../../src/db/client';
import { withDatabase } from '../processes';
import { driveOrders } from './load';
import type { ScenarioContext } from './context';
import { percentile } from './stats';

const LONG_PAYMENT_WINDOW_SECONDS = 86_400;
/** How long the bench waits for orders answered 202 (no decision yet) to be decided. */
const DECISION_WAIT_MS = 180_000;

interface Answer {
  status: number;
  latencyMs: number;
  /** When it arrived, in ms since the drop started. */
  atMs: number;
}

export async function flashScenario(c: ScenarioContext, run: number): Promise<void> {
  const { options: o, results, monitor } = c;
  const label = `flash ${run}/${o.repeat}`;
  const baseline = await holdBaseline(c, label, run);

  const sku = `BENCH-DROP-${c.runTag}-${run}`;
  await addDropProduct(c.stack.databaseUrl, sku, o.units);
  c.log(`${label}: the drop: ${o.units} units of ${sku}, ${o.buyers} one-unit buyers from ${o.connections} clients`);
  const answers: Answer[] = [];
  const dropStart = new Date();
  monitor.start();
  const load = await driveOrders({
    apiUrl: c.stack.apiUrl,
    apiKey: c.stack.apiKey,
    connections: o.connections,
    amount: o.buyers,
    body: (n) => JSON.stringify({ customerId: `bench-${c.runTag}-buyer-${run}-${n}`, items: [{ sku, quantity: 1 }], paymentTimeoutSeconds: LONG_PAYMENT_WINDOW_SECONDS }),
    progressSeconds: o.progressSeconds,
    onProgress: (p) => c.log(`${label}: ${p.responses}/${o.buyers} answered (${(p.responses / p.seconds).toFixed(0)}/s), ${p.held} held`),
    onAnswer: (status, latencyMs) => answers.push({ status, latencyMs, atMs: Date.now() - dropStart.getTime() }),
  });
  const usage = monitor.finish();
  const dropMs = Date.now() - dropStart.getTime();

  // Orders answered 202 are decided later: the figures wait for every order of the drop.
  const undecided = await waitUntilDecided(c.stack.databaseUrl, sku);
  const outcome = await dropOutcome(c.stack.databaseUrl, sku, dropStart);
  const workflows = c.stack.temporalAddress ? await workflowsStartedSince(c.stack.temporalAddress, dropStart) : Number.NaN;

  const latencies = (status: number) => answers.filter((a) => a.status === status).map((a) => a.latencyMs).sort((x, y) => x - y);
  const held = latencies(201);
  const soldOut = latencies(409);
  // "Once sold out": from the first sold-out answer to the last answer of the drop.
  const firstSoldOut = answers.find((a) => a.status === 409)?.atMs;
  const afterSoldOut = firstSoldOut === undefined ? 0 : answers.filter((a) => a.atMs >= firstSoldOut).length;
  const soldOutRate = firstSoldOut === undefined ? Number.NaN : afterSoldOut / Math.max(0.001, (dropMs - firstSoldOut) / 1000);
  const holdRate = outcome.held / Math.max(0.001, outcome.lastHoldMs / 1000);
  const answersPerSecond = load.answered / load.seconds;

  results.recordUsage('flash', `flash: ${o.units} units, ${o.buyers} buyers`, usage, answersPerSecond);
  results.record('flashAnswersPerSecond', answersPerSecond);
  results.record('flashHeldP50', percentile(held, 0.5));
  results.record('flashHeldP99', percentile(held, 0.99));
  results.record('flashSoldOutP50', percentile(soldOut, 0.5));
  results.record('flashSoldOutP99', percentile(soldOut, 0.99));
  results.record('flashSoldOutRate', soldOutRate);
  results.record('flashHoldRate', holdRate);
  results.record('flashBaselineRate', baseline);
  results.record('flashHoldRatio', holdRate / baseline);
  results.record('flashWorkflows', workflows);
  results.record('flashHeld', outcome.held);
  if (outcome.held !== o.units) results.fail(`${label}: ${outcome.held} units held of the ${o.units} on sale (must be exactly all of them)`);
  if (outcome.available < 0) results.fail(`${label}: oversold: available is ${outcome.available}`);
  if (undecided > 0) results.fail(`${label}: ${undecided} orders of the drop still PENDING ${DECISION_WAIT_MS / 1000} s after it`);
  c.log(
    `${label}: ${load.answered} answered in ${load.seconds.toFixed(1)} s = ${answersPerSecond.toFixed(1)}/s, statuses ${JSON.stringify(load.statuses)}, ` +
      `errors ${load.errors}; held answers p50 ${Math.round(percentile(held, 0.5))} ms p99 ${Math.round(percentile(held, 0.99))} ms; ` +
      `sold-out answers p50 ${Math.round(percentile(soldOut, 0.5))} ms p99 ${Math.round(percentile(soldOut, 0.99))} ms; ` +
      `once sold out (from ${((firstSoldOut ?? Number.NaN) / 1000).toFixed(1)} s) ${soldOutRate.toFixed(0)} answers/s; ` +
      `${outcome.held} held (${outcome.orders} orders awaiting payment, available ${outcome.available}), the last hold ${(outcome.lastHoldMs / 1000).toFixed(1)} s ` +
      `after the start = ${holdRate.toFixed(1)} holds/s (${((holdRate / baseline) * 100).toFixed(0)} % of the same-run baseline ${baseline.toFixed(1)}/s); ` +
      `${workflows} workflows started; ${outcome.rejected} orders REJECTED`,
  );
}

/**
 * Holds per second of ordinary one-unit orders on ample stock, on the same stack just before the
 * drop: what the drop's holds are compared with (the same clients, the same order shape).
 */
async function holdBaseline(c: ScenarioContext, label: string, run: number): Promise<number> {
  const { options: o } = c;
  const load = await driveOrders({
    apiUrl: c.stack.apiUrl,
    apiKey: c.stack.apiKey,
    connections: o.connections,
    durationSeconds: o.flashBaseline,
    body: (n) =>
      JSON.stringify({
        customerId: `bench-${c.runTag}-baseline-${run}-${n}`,
        items: [{ sku: c.skus[n % c.skus.length], quantity: 1 }],
        paymentTimeoutSeconds: LONG_PAYMENT_WINDOW_SECONDS,
      }),
    progressSeconds: o.progressSeconds,
  });
  const rate = load.held / load.seconds;
  c.log(`${label}: baseline ${load.held} one-unit orders held in ${load.seconds.toFixed(1)} s = ${rate.toFixed(1)}/s (${o.connections} clients)`);
  // Its last requests are still being placed: the drop starts once they are.
  await waitUntilDecided(c.stack.databaseUrl);
  return rate;
}

async function addDropProduct(databaseUrl: string, sku: string, units: number): Promise<void> {
  const prisma = createPrismaClient(databaseUrl, 1);
  try {
    await putProduct(prisma, { sku, name: `Drop ${sku}`, priceCents: 1000, available: units });
  } finally {
    await prisma.$disconnect();
  }
}

/** Waits until no order (of the sku, when given) is PENDING; answers how many still are. */
async function waitUntilDecided(databaseUrl: string, sku?: string): Promise<number> {
  return withDatabase(databaseUrl, async (db) => {
    const started = Date.now();
    for (;;) {
      const { rows } = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM orders o
          WHERE o.status = 'PENDING' AND ($1::text IS NULL OR EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.id AND i.sku = $1))`,
        [sku ?? null],
      );
      const pending = rows[0]?.n ?? 0;
      if (pending === 0 || Date.now() - started > DECISION_WAIT_MS) return pending;
      await sleep(200);
    }
  });
}

interface DropOutcome {
  held: number;
  available: number;
  orders: number;
  rejected: number;
  /** From the start of the drop to the last RESERVE of the sku. */
  lastHoldMs: number;
}

async function dropOutcome(databaseUrl: string, sku: string, dropStart: Date): Promise<DropOutcome> {
  return withDatabase(databaseUrl, async (db) => {
    const { rows } = await db.query<{ held: number; available: number; orders: number; rejected: number; last_hold: Date | null }>(
      `SELECT p.reserved + p.sold AS held, p.available,
              (SELECT count(*)::int FROM order_items i JOIN orders o ON o.id = i.order_id WHERE i.sku = p.sku AND o.status = 'AWAITING_PAYMENT') AS orders,
              (SELECT count(*)::int FROM order_items i JOIN orders o ON o.id = i.order_id WHERE i.sku = p.sku AND o.status = 'REJECTED') AS rejected,
              (SELECT max(m.created_at) FROM stock_movements m WHERE m.sku = p.sku AND m.kind = 'RESERVE') AS last_hold
         FROM products p WHERE p.sku = $1`,
      [sku],
    );
    const row = rows[0];
    return {
      held: row?.held ?? 0,
      available: row?.available ?? 0,
      orders: row?.orders ?? 0,
      rejected: row?.rejected ?? 0,
      lastHoldMs: row?.last_hold ? row.last_hold.getTime() - dropStart.getTime() : Number.NaN,
    };
  });
}

/** Order workflows started since the drop began, from Temporal's visibility (it trails by moments). */
async function workflowsStartedSince(address: string, since: Date): Promise<number> {
  const connection = await Connection.connect({ address });
  try {
    const client = new TemporalClient({ connection });
    const query = `WorkflowType = "orderWorkflow" AND StartTime >= "${since.toISOString()}"`;
    let last = -1;
    const deadline = Date.now() + 30_000;
    for (;;) {
      const { count } = await client.workflow.count(query);
      if (count === last || Date.now() > deadline) return count;
      last = count;
      await sleep(2000);
    }
  } finally {
    await connection.close();
  }
}
