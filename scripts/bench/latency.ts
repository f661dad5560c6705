/**
 * `--scenario latency`: first the closed-loop maximum (saturation: `connections` clients as
 * fast as they are answered), then an open loop at half that rate, which is how a storefront's
 * customers arrive; p50/p99/max of POST /orders at that offered rate.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { driveOrders } from './load';
import { driveOpenLoop } from './open-loop';
import { orderBody } from './orders';
import type { ScenarioContext } from './context';
import { warmUp } from './scenarios';

const LONG_PAYMENT_WINDOW_SECONDS = 86_400;
/** The share of the measured maximum offered in the open loop. */
export const OPEN_LOOP_SHARE = 0.5;

export async function latencyScenario(c: ScenarioContext, run: number): Promise<void> {
  const { options: o, results, monitor } = c;
  const label = `latency ${run}/${o.repeat}`;
  if (run === 1) await warmUp(c);
  const saturation = await driveOrders({
    apiUrl: c.stack.apiUrl,
    apiKey: c.stack.apiKey,
    connections: o.connections,
    durationSeconds: Math.max(3, Math.round(o.duration / 2)),
    body: () => orderBody(`bench-${c.runTag}-saturation-${run}`, c.skus, LONG_PAYMENT_WINDOW_SECONDS),
    progressSeconds: o.progressSeconds,
  });
  const maximum = saturation.held / saturation.seconds;
  const rate = Math.max(1, maximum * OPEN_LOOP_SHARE);
  // The closed loop leaves its last requests (one per client) still being placed; offered load
  // starting on top of that backlog would measure the backlog, not the offered rate.
  const backlog = await waitUntilPlaced(c.stack.databaseUrl);
  c.log(`${label}: ${backlog.pending} orders left by the closed loop placed after ${backlog.ms} ms`);
  c.log(`${label}: closed-loop maximum ${maximum.toFixed(1)}/s (${o.connections} clients); offering ${rate.toFixed(1)}/s open loop for ${o.duration} s`);
  monitor.start();
  const open = await driveOpenLoop({
    apiUrl: c.stack.apiUrl,
    apiKey: c.stack.apiKey,
    ratePerSecond: rate,
    durationSeconds: o.duration,
    body: () => orderBody(`bench-${c.runTag}-open-${run}`, c.skus, LONG_PAYMENT_WINDOW_SECONDS),
  });
  results.recordUsage('latency', `latency: open loop at ${Math.round(OPEN_LOOP_SHARE * 100)} % of the maximum`, monitor.finish(), open.held / o.duration);
  results.record('openLoopMaximum', maximum);
  results.record('openLoopRate', open.sentPerSecond);
  results.record('openLoopP50', open.latencyMs.p50);
  results.record('openLoopP99', open.latencyMs.p99);
  results.record('openLoopMax', open.latencyMs.max);
  results.record('openLoopFailed', open.failed);
  c.log(
    `${label}: ${open.held}/${open.sent} held at ${open.sentPerSecond.toFixed(1)}/s offered; p50 ${Math.round(open.latencyMs.p50)} ms, ` +
      `p99 ${Math.round(open.latencyMs.p99)} ms, max ${Math.round(open.latencyMs.max)} ms; statuses ${JSON.stringify(open.statuses)}`,
  );
}

/** Waits until no order is PENDING (recorded by the API, not yet held or rejected), up to a minute. */
async function waitUntilPlaced(databaseUrl: string): Promise<{ pending: number; ms: number }> {
  const db = new Client({ connectionString: databaseUrl });
  await db.connect();
  const started = Date.now();
  try {
    let first: number | undefined;
    for (;;) {
      const { rows } = await db.query<{ pending: string }>(`SELECT count(*) AS pending FROM orders WHERE status = 'PENDING'`);
      const pending = Number(rows[0]?.pending ?? 0);
      first ??= pending;
      if (pending === 0 || Date.now() - started > 60_000) return { pending: first, ms: Date.now() - started };
      await sleep(100);
    }
  } finally {
    await db.end();
  }
}
