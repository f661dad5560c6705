/**
 * Retention's SQL: one batch of closed orders pruned with everything that hangs off them, their
 * ledger rows' sums carried into the per-sku opening balance in the same transaction
 * (prune_closed_orders), and one batch of finished event deliveries (prune_finished_deliveries);
 * both claim rows FOR UPDATE SKIP LOCKED (sql/prune_closed_orders.sql, sql/prune_finished_deliveries.sql).
 */
import type { PrismaClient } from '../../prisma/generated/client';

/** The tables retention deletes from, as prune_closed_orders names them. */
export const PRUNED_TABLES = [
  'orders',
  'order_items',
  'stock_movements',
  'payments',
  'refunds',
  'payment_receipts',
  'order_extensions',
  'order_events',
  'order_event_deliveries',
] as const;
export type PrunedTable = (typeof PRUNED_TABLES)[number];

export type PrunedRows = Partial<Record<PrunedTable, number>>;

/**
 * A prune waits for a row lock no longer than this: the rows it claims are skipped when locked,
 * so a wait can only be on a balance another pruner is adding to, and a wait past this fails the
 * batch (retried on the next tick) rather than queue anything behind it.
 */
export const PRUNE_LOCK_TIMEOUT_MS = 1_000;
const PRUNE_TRANSACTION_OPTIONS = { maxWait: 2_000, timeout: 10_000 } as const;

/** One batch of closed orders older than `retentionSeconds` (by closedAt): rows deleted per table. */
export async function pruneClosedOrders(prisma: PrismaClient, retentionSeconds: number, batchSize: number): Promise<PrunedRows> {
  const rows = await prisma.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT set_config('lock_timeout', ${`${PRUNE_LOCK_TIMEOUT_MS}ms`}, true)`;
    return tx.$queryRaw<{ table_name: PrunedTable; deleted: bigint }[]>`
      SELECT table_name, deleted FROM prune_closed_orders(${retentionSeconds}::int, ${batchSize}::int)`;
  }, PRUNE_TRANSACTION_OPTIONS);
  return Object.fromEntries(rows.map((r) => [r.table_name, Number(r.deleted)]));
}

/** One batch of event deliveries delivered or given up more than `retentionSeconds` ago: how many went. */
export async function pruneFinishedDeliveries(prisma: PrismaClient, retentionSeconds: number, batchSize: number): Promise<number> {
  const [row] = await prisma.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT set_config('lock_timeout', ${`${PRUNE_LOCK_TIMEOUT_MS}ms`}, true)`;
    return tx.$queryRaw<{ deleted: bigint }[]>`
      SELECT prune_finished_deliveries(${retentionSeconds}::int, ${batchSize}::int) AS deleted`;
  }, PRUNE_TRANSACTION_OPTIONS);
  return Number(row?.deleted ?? 0);
}

/** Seconds since the longest-closed order closed and the longest-finished delivery finished (0: none). */
export async function oldestRetainedAges(prisma: PrismaClient): Promise<{ orders: number; orderEventDeliveries: number }> {
  const rows = await prisma.$queryRaw<{ table_name: string; age_seconds: number }[]>`
    SELECT table_name, age_seconds FROM retention_oldest_ages()`;
  const age = (table: string) => rows.find((r) => r.table_name === table)?.age_seconds ?? 0;
  return { orders: age('orders'), orderEventDeliveries: age('order_event_deliveries') };
}
