/**
 * The reclaim: settles orders past their effective deadline in SQL batches, without waiting for
 * each order's workflow (which later finds its order decided and just records it). Each batch is
 * one statement (reclaim_due_orders) that applies the same rule as every other path: a due order
 * that a payment in time pays ends PAID, every other due order EXPIRED with its stock back on
 * sale. Claimed FOR UPDATE SKIP LOCKED, so any number of workers share the work.
 */
import type { PrismaClient } from '../prisma/generated/client';
import { LOCK_TIMEOUT_MS, TRANSACTION_OPTIONS } from './timeouts';

export interface ReclaimBatch {
  /** Orders this batch settled. */
  released: number;
  /** Of those, orders paid in time whose workflow had not committed them (they end PAID). */
  paid: number;
  /** Per expired order that held stock: seconds from its effective deadline to the release. */
  lagSeconds: number[];
}

export async function reclaimDueOrders(prisma: PrismaClient, batchSize: number, eventEndpoints: readonly string[] = []): Promise<ReclaimBatch> {
  const rows = await prisma.$transaction(async (tx) => {
    // The batch waits for a product row no longer than any hold would.
    await tx.$executeRaw`SELECT set_config('lock_timeout', ${`${LOCK_TIMEOUT_MS}ms`}, true)`;
    return tx.$queryRaw<{ status: string; lag_seconds: number | null }[]>`
      SELECT status, lag_seconds FROM reclaim_due_orders(${batchSize}::int, ${[...eventEndpoints]}::text[])`;
  }, TRANSACTION_OPTIONS);
  const paid = rows.filter((r) => r.status === 'PAID').length;
  // A PENDING order that never held stock has no lag to report (NULL).
  const lagSeconds = rows.flatMap((r) => (r.status === 'EXPIRED' && r.lag_seconds !== null ? [r.lag_seconds] : []));
  return { released: rows.length, paid, lagSeconds };
}
