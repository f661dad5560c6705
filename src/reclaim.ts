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
        metrics?.reclaimReleased.inc(batch.released);
        metrics?.ordersClosed.inc({ outcome: 'EXPIRED' }, batch.released);
        metrics?.expiries.inc(batch.released);
        for (const lag of batch.lagSeconds) metrics?.expiryLag.observe(Math.max(0, lag));
        logger?.info({ released: batch.released, maxLagSeconds: Math.max(...batch.lagSeconds) }, 'reclaim: stock of orders past their deadline back on sale');
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
