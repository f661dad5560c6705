/**
 * The order-event dispatcher each worker process runs: every tick it claims due deliveries from
 * the outbox (activities/order-events.ts), POSTs each to its endpoint signed by the Standard
 * Webhooks scheme, and records the outcome in the same transaction that holds the claim. A worker
 * that dies mid-delivery loses its locks with its connection, so another redelivers the event with
 * the same `webhook-id`: at least once, in order per order and endpoint.
 */
import type { Logger } from 'pino';
import { Webhook } from 'standardwebhooks';
import {
  claimDueDeliveries,
  markAttemptFailed,
  markDelivered,
  oldestPendingAgeSeconds,
  redactEndpoint,
  type ClaimedDelivery,
} from '../activities/order-events';
import type { PrismaClient } from '../prisma/generated/client';
import type { OrderEventsConfig } from './config';
import type { WorkerMetrics } from './metrics';
import { startPeriodicLoop, type PeriodicLoop } from './periodic-loop';

export interface DispatcherTuning {
  /** Pause between ticks when nothing was due. */
  intervalMs: number;
  /** Deliveries claimed (and sent in parallel) per tick. */
  batchSize: number;
  /** One POST may take this long; a slower endpoint counts as failed. */
  requestTimeoutMs: number;
  /** First retry after this long, doubling per attempt up to maxRetryDelaySeconds. */
  firstRetryDelaySeconds: number;
  maxRetryDelaySeconds: number;
}

export const DEFAULT_DISPATCHER_TUNING: DispatcherTuning = {
  intervalMs: 200,
  batchSize: 50,
  requestTimeoutMs: 10_000,
  firstRetryDelaySeconds: 1,
  maxRetryDelaySeconds: 300,
};

export interface EventDispatcherDependencies {
  prisma: PrismaClient;
  config: OrderEventsConfig;
  tuning?: Partial<DispatcherTuning>;
  metrics?: WorkerMetrics;
  logger?: Pick<Logger, 'info' | 'warn'>;
}

export type EventDispatcher = PeriodicLoop;

type AttemptResult = { ok: true } | { ok: false; error: string };

export function startEventDispatcher({ prisma, config, tuning, metrics, logger }: EventDispatcherDependencies): EventDispatcher {
  const t = { ...DEFAULT_DISPATCHER_TUNING, ...tuning };
  const webhook = new Webhook(config.secret);
  let failing = false;
  let gaugeReadAt = 0;

  const send = async (delivery: ClaimedDelivery): Promise<AttemptResult> => {
    const body = JSON.stringify({ id: delivery.eventId, type: delivery.type, timestamp: delivery.createdAt.toISOString(), data: delivery.data });
    // Whole seconds, as the header carries them, so the signature covers exactly what is sent.
    const sentAt = new Date(Math.floor(Date.now() / 1000) * 1000);
    const started = process.hrtime.bigint();
    try {
      const response = await fetch(delivery.endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'checkout-service-order-events',
          'webhook-id': delivery.eventId,
          'webhook-timestamp': String(sentAt.getTime() / 1000),
          'webhook-signature': webhook.sign(delivery.eventId, sentAt, body),
        },
        body,
        // A redirect is not a delivery: the endpoint must answer 2xx itself.
        redirect: 'manual',
        signal: AbortSignal.timeout(t.requestTimeoutMs),
      });
      await response.body?.cancel();
      return response.status >= 200 && response.status < 300 ? { ok: true } : { ok: false, error: `HTTP ${response.status}` };
    } catch (error) {
      return { ok: false, error: describeFailure(error) };
    } finally {
      metrics?.orderEventDeliveryDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
    }
  };

  const retryDelaySeconds = (attemptsBefore: number) =>
    Math.min(t.firstRetryDelaySeconds * 2 ** attemptsBefore, t.maxRetryDelaySeconds) * (0.9 + Math.random() * 0.2);

  /** One batch; true when it was full (more may be due at once). */
  const runOnce = async (): Promise<boolean> => {
    try {
      const claimed = await prisma.$transaction(
        async (tx) => {
          const due = await claimDueDeliveries(tx, t.batchSize);
          const results = await Promise.all(due.map(send));
          const delivered = due.filter((_, index) => results[index]?.ok === true);
          await markDelivered(tx, delivered);
          metrics?.orderEventAttempts.inc({ outcome: 'delivered' }, delivered.length);
          for (const [index, delivery] of due.entries()) {
            const result = results[index];
            if (result === undefined || result.ok) continue;
            const { error } = result;
            const outcome = await markAttemptFailed(tx, delivery, error, retryDelaySeconds(delivery.attempts), config.maxAgeSeconds);
            metrics?.orderEventAttempts.inc({ outcome: outcome === 'FAILED' ? 'failed' : 'retry' });
            if (outcome === 'FAILED') {
              logger?.warn({ eventId: delivery.eventId, endpoint: redactEndpoint(delivery.endpoint), error }, 'order event given up: older than ORDER_EVENTS_MAX_AGE');
            }
          }
          return due.length;
        },
        // The claim's locks are held while the POSTs run; past this the batch rolls back and is sent again.
        { maxWait: 5_000, timeout: t.requestTimeoutMs + 10_000 },
      );
      // The gauge is for alerting: once a second is enough, and spares a query per tick.
      if (metrics && Date.now() - gaugeReadAt >= 1_000) {
        gaugeReadAt = Date.now();
        metrics.orderEventOldestPendingAge.set(await oldestPendingAgeSeconds(prisma));
      }
      if (failing) logger?.info('order events: batches succeed again');
      failing = false;
      return claimed >= t.batchSize;
    } catch (error) {
      if (!failing) logger?.warn({ err: error }, 'order events: batch failed; retrying every tick');
      failing = true;
      return false;
    }
  };

  return startPeriodicLoop(runOnce, t.intervalMs);
}

function describeFailure(error: unknown): string {
  // Read by shape: fetch's errors may come from another realm than this module's Error. The
  // network cause (ECONNREFUSED, a timeout) sits one level down, sometimes only as a code.
  const { cause } = (typeof error === 'object' && error !== null ? error : {}) as { cause?: { code?: unknown; message?: unknown } };
  const detail = [cause?.code, cause?.message].filter((part) => typeof part === 'string' && part !== '').join(' ');
  return detail === '' ? String(error) : `${String(error)} (${detail})`;
}
