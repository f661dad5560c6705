/**
 * The order-event dispatcher each worker process runs: every tick it leases due deliveries from
 * the outbox (src/db/order-event-deliveries.ts) in one short statement, POSTs each to its endpoint
 * signed by the Standard Webhooks scheme, and records each outcome in another short statement
 * when its answer comes. No transaction is open while a POST runs, so a slow endpoint holds back
 * neither the feed (GET /admin/events reads below the oldest open transaction) nor another
 * endpoint: each endpoint has sending slots of its own, and a tick claims only for free slots.
 * A dispatcher that dies mid-delivery leaves its lease to run out; then another sends the event
 * again with the same `webhook-id`: at least once, in order per order and endpoint.
 */
import type { Logger } from 'pino';
import { Webhook } from 'standardwebhooks';
import { redactEndpoint } from '../activities/order-events';
import {
  claimDueDeliveries,
  giveUpUnlistedDeliveries,
  markAttemptFailed,
  markDelivered,
  oldestPendingAgeSeconds,
  type ClaimedDelivery,
} from './db/order-event-deliveries';
import type { PrismaClient } from '../prisma/generated/client';
import type { OrderEventsConfig } from './config';
import type { WorkerMetrics } from './metrics';
import { startPeriodicLoop, type PeriodicLoop } from './periodic-loop';

export interface DispatcherTuning {
  /** Pause between ticks when nothing more could be claimed. */
  intervalMs: number;
  /** POSTs in flight at once to one endpoint, per dispatcher: a tick claims only for free slots. */
  maxInFlightPerEndpoint: number;
  /** One POST may take this long; a slower endpoint counts as failed. */
  requestTimeoutMs: number;
  /**
   * A lease lasts the POST's timeout and this much more, for recording the outcome; a dispatcher
   * that has not recorded it by then has lost the lease and the delivery falls due again.
   */
  leaseMarginMs: number;
  /** First retry after this long, doubling per attempt up to maxRetryDelaySeconds. */
  firstRetryDelaySeconds: number;
  maxRetryDelaySeconds: number;
}

export const DEFAULT_DISPATCHER_TUNING: DispatcherTuning = {
  intervalMs: 200,
  maxInFlightPerEndpoint: 50,
  requestTimeoutMs: 10_000,
  leaseMarginMs: 5_000,
  firstRetryDelaySeconds: 1,
  maxRetryDelaySeconds: 300,
};

/** The oldest-undelivered gauge is for alerting: once a second is enough. */
const GAUGE_EVERY_MS = 1_000;
/** Deliveries to endpoints taken out of ORDER_EVENTS_URL are looked for rarely: it only ends their wait. */
const UNLISTED_SWEEP_EVERY_MS = 60_000;

export interface EventDispatcherDependencies {
  prisma: PrismaClient;
  config: OrderEventsConfig;
  tuning?: Partial<DispatcherTuning>;
  metrics?: WorkerMetrics;
  logger?: Pick<Logger, 'info' | 'warn'>;
}

/** `stop` ends the claims, cuts the POSTs in flight short and gives their leases back at once. */
export type EventDispatcher = PeriodicLoop;

type AttemptResult = { ok: true } | { ok: false; error: string };

export function startEventDispatcher({ prisma, config, tuning, metrics, logger }: EventDispatcherDependencies): EventDispatcher {
  const t = { ...DEFAULT_DISPATCHER_TUNING, ...tuning };
  const leaseSeconds = (t.requestTimeoutMs + t.leaseMarginMs) / 1000;
  const webhook = new Webhook(config.secret);
  const inFlight = new Map<string, number>(config.endpoints.map((endpoint) => [endpoint, 0]));
  const sending = new Set<Promise<void>>();
  const stopping = new AbortController();
  let failing = false;
  let gaugeReadAt = 0;
  let unlistedSweptAt = 0;

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
        signal: AbortSignal.any([AbortSignal.timeout(t.requestTimeoutMs), stopping.signal]),
      });
      await response.body?.cancel();
      return response.status >= 200 && response.status < 300 ? { ok: true } : { ok: false, error: `HTTP ${response.status}` };
    } catch (error) {
      return { ok: false, error: stopping.signal.aborted ? 'not answered before the dispatcher stopped' : describeFailure(error) };
    } finally {
      metrics?.orderEventDeliveryDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
    }
  };

  const retryDelaySeconds = (attemptsBefore: number) =>
    Math.min(t.firstRetryDelaySeconds * 2 ** attemptsBefore, t.maxRetryDelaySeconds) * (0.9 + Math.random() * 0.2);

  /** Sends one leased delivery and records how it went; the lease covers a record that fails. */
  const deliver = async (delivery: ClaimedDelivery): Promise<void> => {
    const result = await send(delivery);
    try {
      if (result.ok) {
        await markDelivered(prisma, delivery);
        metrics?.orderEventAttempts.inc({ outcome: 'delivered' });
        return;
      }
      // Cut short by a stop: due again at once, for the next dispatcher.
      const retryIn = stopping.signal.aborted ? 0 : retryDelaySeconds(delivery.attempts - 1);
      const outcome = await markAttemptFailed(prisma, delivery, result.error, retryIn, config.maxAgeSeconds);
      if (outcome === 'STALE') return;
      metrics?.orderEventAttempts.inc({ outcome: outcome === 'FAILED' ? 'failed' : 'retry' });
      if (outcome === 'FAILED') {
        logger?.warn(
          { eventId: delivery.eventId, endpoint: redactEndpoint(delivery.endpoint), error: result.error },
          'order event given up: older than ORDER_EVENTS_MAX_AGE',
        );
      }
    } catch (error) {
      // The lease runs out and the delivery falls due again: at least once still holds.
      logger?.warn({ err: error, eventId: delivery.eventId }, 'order events: could not record an attempt; it is sent again when its lease ends');
    } finally {
      inFlight.set(delivery.endpoint, (inFlight.get(delivery.endpoint) ?? 1) - 1);
    }
  };

  const start = (delivery: ClaimedDelivery) => {
    inFlight.set(delivery.endpoint, (inFlight.get(delivery.endpoint) ?? 0) + 1);
    const running: Promise<void> = deliver(delivery).finally(() => sending.delete(running));
    sending.add(running);
  };

  /** One claim for every endpoint's free slots; true when every slot asked for was filled (more may be due). */
  const runOnce = async (): Promise<boolean> => {
    try {
      const wanted = config.endpoints.map((endpoint) => ({ endpoint, limit: t.maxInFlightPerEndpoint - (inFlight.get(endpoint) ?? 0) }));
      const asked = wanted.reduce((sum, w) => sum + Math.max(0, w.limit), 0);
      const claimed = await claimDueDeliveries(prisma, wanted, leaseSeconds);
      for (const delivery of claimed) start(delivery);
      await readGauges();
      if (failing) logger?.info('order events: claims succeed again');
      failing = false;
      return asked > 0 && claimed.length >= asked;
    } catch (error) {
      if (!failing) logger?.warn({ err: error }, 'order events: claim failed; retrying every tick');
      failing = true;
      return false;
    }
  };

  const readGauges = async () => {
    const now = Date.now();
    if (metrics && now - gaugeReadAt >= GAUGE_EVERY_MS) {
      gaugeReadAt = now;
      metrics.orderEventOldestPendingAge.set(await oldestPendingAgeSeconds(prisma, config.endpoints));
    }
    if (now - unlistedSweptAt >= UNLISTED_SWEEP_EVERY_MS) {
      unlistedSweptAt = now;
      const given = await giveUpUnlistedDeliveries(prisma, config.endpoints, config.maxAgeSeconds);
      if (given > 0) logger?.warn({ deliveries: given }, 'order events: deliveries to endpoints no longer in ORDER_EVENTS_URL given up (older than ORDER_EVENTS_MAX_AGE)');
    }
  };

  const loop = startPeriodicLoop(runOnce, t.intervalMs);
  return {
    async stop() {
      await loop.stop();
      stopping.abort();
      await Promise.all([...sending]);
    },
  };
}

function describeFailure(error: unknown): string {
  // Read by shape: fetch's errors may come from another realm than this module's Error. The
  // network cause (ECONNREFUSED, a timeout) sits one level down, sometimes only as a code.
  const { cause } = (typeof error === 'object' && error !== null ? error : {}) as { cause?: { code?: unknown; message?: unknown } };
  const detail = [cause?.code, cause?.message].filter((part) => typeof part === 'string' && part !== '').join(' ');
  return detail === '' ? String(error) : `${String(error)} (${detail})`;
}
