/**
 * Orders holding stock, written straight into the database in one statement (thousands in
 * milliseconds), for tests of the reclaim and the compare-and-set that need many orders at a
 * deadline of their choosing. Each order holds one unit of two of the given skus, as a
 * reservation would: order row, items, RESERVE ledger rows, counters moved.
 */
import type { PrismaClient } from '../../prisma/generated/client';

export const DUE_ORDER_PRICE_CENTS = 100;

export async function holdOrders(
  prisma: PrismaClient,
  options: { count: number; skus: string[]; expiresAt: Date; customerId?: string },
): Promise<string[]> {
  const { count, skus, expiresAt } = options;
  const customerId = options.customerId ?? 'held-in-bulk';
  const rows = await prisma.$queryRaw<{ id: string }[]>`
    WITH o AS (
      INSERT INTO orders (id, customer_id, status, total_cents, created_at, expires_at, currency, deadline_movable)
      SELECT gen_random_uuid(), ${customerId}, 'AWAITING_PAYMENT', ${2 * DUE_ORDER_PRICE_CENTS}, now(), ${expiresAt}, 'eur', true
        FROM generate_series(1, ${count})
      RETURNING id
    ), numbered AS (
      SELECT id, row_number() OVER () AS n FROM o
    ), lines AS (
      SELECT id AS order_id, (${skus}::text[])[1 + ((n + k) % ${skus.length})] AS sku, 1 AS quantity
        FROM numbered, generate_series(0, 1) AS k
    ), items AS (
      INSERT INTO order_items (order_id, sku, quantity, unit_price_cents)
      SELECT order_id, sku, quantity, ${DUE_ORDER_PRICE_CENTS} FROM lines
    ), ledger AS (
      INSERT INTO stock_movements (sku, order_id, kind, quantity)
      SELECT sku, order_id, 'RESERVE', quantity FROM lines
    ), counters AS (
      UPDATE products p SET available = p.available - s.quantity, reserved = p.reserved + s.quantity
        FROM (SELECT sku, SUM(quantity)::int AS quantity FROM lines GROUP BY sku) s
       WHERE p.sku = s.sku
    )
    SELECT id::text AS id FROM numbered ORDER BY n`;
  return rows.map((r) => r.id);
}

/** A payment receipt as the API records it before it signals the workflow. */
export async function recordReceipt(
  prisma: PrismaClient,
  receipt: { paymentId: string; orderId: string; succeededAt: Date; amountCents?: number },
): Promise<void> {
  await prisma.$executeRaw`
    INSERT INTO payment_receipts (payment_id, order_id, amount_cents, currency, succeeded_at)
    VALUES (${receipt.paymentId}, ${receipt.orderId}::uuid, ${receipt.amountCents ?? 2 * DUE_ORDER_PRICE_CENTS}, 'eur', ${receipt.succeededAt})`;
}

/**
 * Closes a held order the way the worker does (settle_order: status, ledger rows, counters); a PAID
 * one with its receipt recorded first (`pay-<orderId>`). Answers the payment id (null unless PAID).
 */
export async function settleHeldOrder(prisma: PrismaClient, orderId: string, status: 'PAID' | 'CANCELLED' | 'EXPIRED'): Promise<string | null> {
  const paymentId = status === 'PAID' ? `pay-${orderId}` : null;
  if (paymentId !== null) await recordReceipt(prisma, { paymentId, orderId, succeededAt: new Date() });
  await prisma.$executeRaw`SELECT settle_order(${orderId}::uuid, ${status}::"OrderStatus", ${paymentId}::text, ARRAY[]::text[])`;
  return paymentId;
}
