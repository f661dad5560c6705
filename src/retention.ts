/**
 * The retention loop each worker process runs beside the reclaim: every `intervalMs` (at once
 * again when a batch was full) it moves the ledger checkpoint forward (src/db/ledger-checkpoint.ts)
 * and drains the receipts' rechecks (src/db/receipt-rechecks.ts), then prunes one batch of closed
 * orders past RETENTION_DAYS (only those whose ledger rows the checkpoint counts) and one of event
 * deliveries finished past EVENT_RETENTION_DAYS (src/db/retention.ts). Workers share the work
 * through SKIP LOCKED (the checkpoint and the rechecks: one at a time, the others skip); a failed
 * batch rolls back whole and is tried again on the next tick.
 */
import type { Logger } from 'pino';
import { advanceLedgerCheckpoint, checkpointBehind } from './db/ledger-checkpoint';
import { drainReceiptRechecks, receiptRechecksBehind } from './db/receipt-rechecks';
import { oldestRetainedAges, pruneClosedOrders, pruneFinishedDeliveries, type PrunedRows } from './db/retention';
import type { PrismaClient } from '../prisma/generated/client';
import type { RetentionConfig } from './config';
import type { WorkerMetrics } from './metrics';
import { startPeriodicLoop, type PeriodicLoop } from './periodic-loop';

export type RetentionLoop = PeriodicLoop;

export interface RetentionDependencies {
  prisma: PrismaClient;
  config: Omit<RetentionConfig, 'enabled'>;
  /** False (RETENTION_PRUNE_ENABLED=false): nothing is pruned; the ledger checkpoint still advances and the rechecks drain. Default true. */
  prune?: boolean;
  metrics?: WorkerMetrics;
  logger?: Pick<Logger, 'info' | 'warn'>;
}

/** The oldest-row gauge costs two index probes; once in this long is enough for alerting. */
const GAUGE_INTERVAL_MS = 10_000;

export function startRetentionLoop({ prisma, config, prune = true, metrics, logger }: RetentionDependencies): RetentionLoop {
  let failing = false;
  let gaugeReadAt = 0;

  const runOnce = async (): Promise<boolean> => {
    try {
      // Each tick, so the checkpoint trails the ledger by about one tick and the inventory check
      // reads few rows past it; counting a long ledger the first time, at once again.
      const checkpoint = await advanceLedgerCheckpoint(prisma);
      // Likewise, so the check's receipts' part reads about one tick of changes.
      const rechecks = await drainReceiptRechecks(prisma);
      const pruned: PrunedRows = prune ? await pruneClosedOrders(prisma, config.retentionSeconds, config.batchSize) : {};
      const deliveries = prune ? await pruneFinishedDeliveries(prisma, config.eventRetentionSeconds, config.batchSize) : 0;
      for (const [table, rows] of Object.entries(pruned)) if (rows > 0) metrics?.retentionPrunedRows.inc({ table }, rows);
      if (deliveries > 0) metrics?.retentionPrunedRows.inc({ table: 'order_event_deliveries' }, deliveries);
      const orders = pruned.orders ?? 0;
      if (orders > 0 || deliveries > 0) logger?.info({ pruned, finishedDeliveries: deliveries }, 'retention: closed orders and finished deliveries pruned');
      if (metrics && Date.now() - gaugeReadAt >= GAUGE_INTERVAL_MS) {
        gaugeReadAt = Date.now();
        const ages = await oldestRetainedAges(prisma);
        metrics.retentionOldestRowAge.set({ table: 'orders' }, ages.orders);
        metrics.retentionOldestRowAge.set({ table: 'order_event_deliveries' }, ages.orderEventDeliveries);
      }
      if (failing) logger?.info('retention: batches succeed again');
      failing = false;
      return orders >= config.batchSize || deliveries >= config.batchSize || checkpointBehind(checkpoint) || receiptRechecksBehind(rechecks);
    } catch (error) {
      metrics?.retentionFailures.inc();
      // One line per outage, not one per tick.
      if (!failing) logger?.warn({ err: error }, 'retention: prune batch failed; retrying every tick');
      failing = true;
      return false;
    }
  };

  return startPeriodicLoop(runOnce, config.intervalMs);
}
