/**
 * The ceiling: the same hold step the reservation activity performs (conditional decrement of
 * each item in sku order, the order row, its items, its RESERVE ledger rows, one transaction),
 * issued directly with `pg` at the same concurrency, with no HTTP, Temporal or Prisma between.
 */
import { randomUUID } from 'node:crypto';
import { Pool, type PoolClient } from 'pg';
import type { RequestedItem } from '../../activities/types';
import { percentile } from './stats';

export interface CeilingRun {
  databaseUrl: string;
  /** Concurrent callers, each holding one order after another. */
  callers: number;
  poolSize: number;
  durationSeconds: number;
  customerId: string;
  items: () => RequestedItem[];
  progressSeconds: number;
  onProgress?: (progress: { seconds: number; held: number }) => void;
}

export interface CeilingResult {
  seconds: number;
  held: number;
  failed: number;
  latencyMs: { p50: number; p99: number };
}

export async function runSqlCeiling(run: CeilingRun): Promise<CeilingResult> {
  const pool = new Pool({ connectionString: run.databaseUrl, max: run.poolSize });
  const latencies: number[] = [];
  let failed = 0;
  const started = Date.now();
  const deadline = started + run.durationSeconds * 1000;
  const progress = setInterval(
    () => run.onProgress?.({ seconds: (Date.now() - started) / 1000, held: latencies.length }),
    run.progressSeconds * 1000,
  );
  try {
    // Connect the pool before the clock matters, as the API and worker pools are.
    await Promise.all(Array.from({ length: run.poolSize }, () => pool.connect().then((c) => c.release())));
    await Promise.all(
      Array.from({ length: run.callers }, async () => {
        while (Date.now() < deadline) {
          const begin = performance.now();
          const client = await pool.connect();
          try {
            await holdOrder(client, run.customerId, run.items());
            latencies.push(performance.now() - begin);
          } catch {
            failed++;
          } finally {
            client.release();
          }
        }
      }),
    );
  } finally {
    clearInterval(progress);
    await pool.end();
  }
  const sorted = latencies.sort((a, b) => a - b);
  return {
    seconds: (Date.now() - started) / 1000,
    held: latencies.length,
    failed,
    latencyMs: { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) },
  };
}

async function holdOrder(client: PoolClient, customerId: string, requested: RequestedItem[]): Promise<void> {
  const items = [...requested].sort((a, b) => (a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : 0));
  const orderId = randomUUID();
  await client.query('BEGIN');
  try {
    const prices: number[] = [];
    for (const { sku, quantity } of items) {
      const { rows } = await client.query<{ price_cents: number }>(
        `UPDATE products SET available = available - $2, reserved = reserved + $2, updated_at = now()
          WHERE sku = $1 AND available >= $2 RETURNING price_cents`,
        [sku, quantity],
      );
      const price = rows[0]?.price_cents;
      if (price === undefined) throw new Error(`no stock for ${sku}`);
      prices.push(price);
    }
    const total = items.reduce((sum, item, i) => sum + item.quantity * (prices[i] ?? 0), 0);
    await client.query(
      `INSERT INTO orders (id, customer_id, status, total_cents, created_at, expires_at, currency)
       VALUES ($1, $2, 'AWAITING_PAYMENT', $3, now(), now() + interval '1 day', 'eur')`,
      [orderId, customerId, total],
    );
    await client.query(
      `INSERT INTO order_items (order_id, sku, quantity, unit_price_cents)
       SELECT $1, * FROM unnest($2::text[], $3::int[], $4::int[])`,
      [orderId, items.map((i) => i.sku), items.map((i) => i.quantity), prices],
    );
    await client.query(
      `INSERT INTO stock_movements (sku, order_id, kind, quantity)
       SELECT sku, $1, 'RESERVE', quantity FROM unnest($2::text[], $3::int[]) AS t(sku, quantity)`,
      [orderId, items.map((i) => i.sku), items.map((i) => i.quantity)],
    );
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  }
}
