/**
 * The reclaim, the backstop for every hold: each worker process runs its loop, every
 * `intervalMs` (at once again when a batch was full) settling a batch of orders past their
 * effective deadline without waiting for each order's workflow (which later finds its order
 * decided and just records it). Each batch is one statement (reclaim_due_orders, sql/) that
 * applies the same rule as every other path: a due order that a payment in time pays ends PAID,
 * every other due order EXPIRED with its stock back on sale. Claimed FOR UPDATE SKIP LOCKED, so
 * any number of workers share the work; a failed batch (database down) rolls back whole and is
 * retried on the next tick.
 */
import type { Logger } from 'pino';
import { LOCK_TIMEOUT_MS, TRANSACTION_OPTIONS } from '../activities/timeouts';
import type { PrismaClient } from '../prisma/generated/client';
import type { ReclaimConfig } from './config';
import type { WorkerMetrics } from './metrics';
import { startPeriodicLoop, type PeriodicLoop } from './periodic-loop';

export type ReclaimLoop = PeriodicLoop;

export interface ReclaimDependencies {
  prisma: PrismaClient;
  config: ReclaimConfig;
  /** ORDER_EVENTS_URL: each released order's order.expired event is delivered to these. */
  eventEndpoints?: readonly string[];
  metrics?: WorkerMetrics;
  logger?: Pick<Logger, 'info' | 'warn'>;
}

export function startReclaimLoop({ prisma, config, eventEndpoints = [], metrics, logger }: ReclaimDependencies): ReclaimLoop {
  let failing = false;

  const runOnce = async (): Promise<boolean> => {
    const started = process.hrtime.bigint();
    try {
      const batch = await reclaimDueOrders(prisma, config.batchSize, eventEndpoints);
      metrics?.reclaimBatchDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
      if (batch.released > 0) {
        const expired = batch.released - batch.paid;
        metrics?.reclaimReleased.inc(batch.released);
        if (expired > 0) metrics?.ordersClosed.inc({ outcome: 'EXPIRED' }, expired);
        if (batch.paid > 0) metrics?.ordersClosed.inc({ outcome: 'PAID' }, batch.paid);
        metrics?.expiries.inc(expired);
        for (const lag of batch.lagSeconds) metrics?.expiryLag.observe(Math.max(0, lag));
        const maxLagSeconds = batch.lagSeconds.reduce((max, lag) => Math.max(max, lag), 0);
        logger?.info({ expired, paid: batch.paid, maxLagSeconds }, 'reclaim: orders past their deadline settled (stock of the unpaid back on sale)');
      }
      if (failing) logger?.info('reclaim: batches succeed again');
      failing = false;
      return batch.released >= config.batchSize;
    } catch (error) {
      metrics?.reclaimFailures.inc();
      // One line per outage, not one per tick.
      if (!failing) logger?.warn({ err: error }, 'reclaim: batch failed; retrying every tick');
      failing = true;
      return false;
    }
  };

  return startPeriodicLoop(runOnce, config.intervalMs);
}

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
