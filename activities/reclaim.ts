/**
 * The reclaim: puts the stock of orders past their deadline back on sale in SQL batches, without
 * waiting for each order's workflow (which later finds its order EXPIRED and just records it).
 * One batch is one transaction: claim due orders (FOR UPDATE SKIP LOCKED, so any number of
 * workers share the work and never wait on each other or on an order being decided), then
 * mark them EXPIRED, write their RELEASE ledger rows and move the counters, set-based.
 */
import type { PrismaClient } from '../prisma/generated/client';
import { recordOrderEvents } from './order-events';

export interface ReclaimBatch {
  /** Orders this batch released. */
  released: number;
  /** Per released order: seconds from its expiresAt to the release (closedAt). */
  lagSeconds: number[];
}

/** A batch has at most a few thousand rows; it finishes in milliseconds unless the database is stuck. */
const TRANSACTION_OPTIONS = { maxWait: 5_000, timeout: 15_000 } as const;

/**
 * An order under a processing hold (payment_pending_until in the future) is not due. An order
 * with a payment that succeeded by its (effective) deadline is never taken: its workflow decides
 * it. The API records such a receipt while holding the order row FOR SHARE, so a batch either
 * skips that row (locked) or locks it first, and then no receipt can be added until it commits.
 * A receipt committed between the claim's snapshot and its lock is caught by the release
 * statement, which checks again with a fresh snapshot once the lock is held.
 */
export async function reclaimDueOrders(prisma: PrismaClient, batchSize: number, eventEndpoints: readonly string[] = []): Promise<ReclaimBatch> {
  return prisma.$transaction(async (tx) => {
    const claimed = await tx.$queryRaw<{ id: string }[]>`
      SELECT o.id::text AS id FROM orders o
       WHERE o.status = 'AWAITING_PAYMENT' AND o.expires_at <= now()
         AND (o.payment_pending_until IS NULL OR o.payment_pending_until <= now())
         AND NOT EXISTS (SELECT 1 FROM payment_receipts r
                          WHERE r.order_id = o.id AND r.succeeded_at <= GREATEST(o.expires_at, o.payment_pending_until))
       ORDER BY o.expires_at
       LIMIT ${batchSize}
       FOR UPDATE OF o SKIP LOCKED`;
    if (claimed.length === 0) return { released: 0, lagSeconds: [] };
    const ids = claimed.map((c) => c.id);
    // Product rows in sku order, as every other transaction that moves stock takes them: no deadlocks.
    await tx.$queryRaw`
      SELECT sku FROM products
       WHERE sku IN (SELECT DISTINCT sku FROM order_items WHERE order_id = ANY(${ids}::uuid[]))
       ORDER BY sku
       FOR UPDATE`;
    const released = await tx.$queryRaw<{ id: string; lag_seconds: number }[]>`
      WITH released AS (
        UPDATE orders o SET status = 'EXPIRED', closed_at = clock_timestamp()
         WHERE o.id = ANY(${ids}::uuid[]) AND o.status = 'AWAITING_PAYMENT'
           AND (o.payment_pending_until IS NULL OR o.payment_pending_until <= now())
           AND NOT EXISTS (SELECT 1 FROM payment_receipts r
                            WHERE r.order_id = o.id AND r.succeeded_at <= GREATEST(o.expires_at, o.payment_pending_until))
        RETURNING o.id, o.expires_at, o.closed_at
      ), moved AS (
        INSERT INTO stock_movements (sku, order_id, kind, quantity, created_at)
        SELECT i.sku, i.order_id, 'RELEASE', i.quantity, r.closed_at
          FROM order_items i JOIN released r ON r.id = i.order_id
        ON CONFLICT (order_id, sku, kind) DO NOTHING
        RETURNING sku, quantity
      ), per_sku AS (
        SELECT sku, SUM(quantity)::int AS quantity FROM moved GROUP BY sku
      ), counters AS (
        UPDATE products p
           SET available = p.available + s.quantity, reserved = p.reserved - s.quantity, updated_at = now()
          FROM per_sku s WHERE p.sku = s.sku
        RETURNING p.sku
      )
      SELECT id::text AS id, EXTRACT(EPOCH FROM (closed_at - expires_at))::float8 AS lag_seconds FROM released`;
    // A separate statement: the CTE's changes are not visible to other parts of its own statement.
    await recordOrderEvents(tx, released.map((r) => r.id), 'order.expired', eventEndpoints);
    return { released: released.length, lagSeconds: released.map((r) => r.lag_seconds) };
  }, TRANSACTION_OPTIONS);
}
