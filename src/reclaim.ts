/**
 * The reclaim loop each worker process runs: every `intervalMs` (at once again when a batch was
 * full) it releases a batch of orders past their deadline (activities/reclaim.ts). Workers share
 * the work through SKIP LOCKED; a failed batch (database down) rolls back whole and is retried on
 * the next tick.
 */
import type { Logger } from 'pino';
import { reclaimDueOrders } from '../activities/reclaim';
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
