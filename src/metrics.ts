/**
 * Prometheus metrics (prom-client). Each process has its own registry: the API measures
 * HTTP; the worker measures what happens to orders and stock, because that is where it
 * happens (see src/metrics-activity-interceptor.ts).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface ApiMetrics {
  registry: Registry;
  httpRequestDuration: Histogram<'method' | 'route' | 'status_code'>;
  orderRefusals: Counter<'reason' | 'decided_by'>;
}

export function createApiMetrics(): ApiMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    httpRequestDuration: new Histogram({
      name: 'checkout_http_request_duration_seconds',
      help: 'HTTP request latency by method, route pattern and status code',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    orderRefusals: new Counter({
      name: 'checkout_order_refusals_total',
      help: 'Orders refused (409, recorded REJECTED) by reason: OUT_OF_STOCK, PURCHASE_LIMIT_EXCEEDED, TOO_MANY_OPEN_ORDERS; decided_by "api" (at admission, no workflow) or "hold" (by the order\'s workflow). Replays are not counted again.',
      labelNames: ['reason', 'decided_by'],
      registers: [registry],
    }),
  };
}

export type OrderOutcome = 'PAID' | 'EXPIRED' | 'CANCELLED' | 'REJECTED';

export interface WorkerMetrics {
  registry: Registry;
  ordersClosed: Counter<'outcome'>;
  stockHolds: Counter;
  expiries: Counter;
  expiryLag: Histogram;
  refunds: Counter<'reason'>;
  unverifiedPayments: Counter<'reason'>;
  reclaimReleased: Counter;
  reclaimBatchDuration: Histogram;
  reclaimFailures: Counter;
  orderEventAttempts: Counter<'outcome'>;
  orderEventDeliveryDuration: Histogram;
  orderEventOldestPendingAge: Gauge;
  retentionPrunedRows: Counter<'table'>;
  retentionOldestRowAge: Gauge<'table'>;
  retentionFailures: Counter;
}

export function createWorkerMetrics(): WorkerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    ordersClosed: new Counter({
      name: 'checkout_orders_total',
      help: 'Orders that reached a final state, by outcome (PAID, EXPIRED, CANCELLED, REJECTED)',
      labelNames: ['outcome'],
      registers,
    }),
    stockHolds: new Counter({
      name: 'checkout_stock_holds_total',
      help: 'Orders whose stock was held (reservations made)',
      registers,
    }),
    expiries: new Counter({
      name: 'checkout_order_expiries_total',
      help: 'Orders whose payment window closed unpaid and whose stock went back on sale',
      registers,
    }),
    expiryLag: new Histogram({
      name: 'checkout_order_expiry_lag_seconds',
      help: "Seconds between an order's expiresAt and the release of its stock",
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
      registers,
    }),
    refunds: new Counter({
      name: 'checkout_payment_refunds_total',
      help: 'Payments refused and refunded, by reason',
      labelNames: ['reason'],
      registers,
    }),
    unverifiedPayments: new Counter({
      name: 'checkout_unverified_payments_total',
      help: 'paymentReceived signals (or late payments) that no verified receipt of their order backs; nothing moved (a security event)',
      labelNames: ['reason'],
      registers,
    }),
    reclaimReleased: new Counter({
      name: 'checkout_reclaim_released_total',
      help: 'Orders past their deadline whose stock the reclaim put back on sale (also counted in the expiries)',
      registers,
    }),
    reclaimBatchDuration: new Histogram({
      name: 'checkout_reclaim_batch_duration_seconds',
      help: 'Duration of one reclaim batch (claim, release, ledger, counters in one transaction)',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    reclaimFailures: new Counter({
      name: 'checkout_reclaim_failures_total',
      help: 'Reclaim batches that failed and rolled back (e.g. database unreachable); retried on the next tick',
      registers,
    }),
    orderEventAttempts: new Counter({
      name: 'checkout_order_event_deliveries_total',
      help: 'Delivery attempts of order events, by outcome: delivered (2xx), retry (failed, tried again later), failed (given up at ORDER_EVENTS_MAX_AGE)',
      labelNames: ['outcome'],
      registers,
    }),
    orderEventDeliveryDuration: new Histogram({
      name: 'checkout_order_event_delivery_duration_seconds',
      help: 'Duration of one delivery attempt (the POST to the endpoint)',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    orderEventOldestPendingAge: new Gauge({
      name: 'checkout_order_event_oldest_undelivered_age_seconds',
      help: 'Age of the oldest order event still waiting to be delivered to an endpoint (0 when none waits)',
      registers,
    }),
    retentionPrunedRows: new Counter({
      name: 'checkout_retention_pruned_rows_total',
      help: 'Rows deleted by retention, by table (closed orders past RETENTION_DAYS with what hangs off them; deliveries past EVENT_RETENTION_DAYS)',
      labelNames: ['table'],
      registers,
    }),
    retentionOldestRowAge: new Gauge({
      name: 'checkout_retention_oldest_row_age_seconds',
      help: 'Age of the oldest row retention will prune, by table: orders (since the longest-closed order closed), order_event_deliveries (since the oldest finished delivery finished); stays near the retention period when pruning keeps up',
      labelNames: ['table'],
      registers,
    }),
    retentionFailures: new Counter({
      name: 'checkout_retention_prune_failures_total',
      help: 'Prune batches that failed and rolled back (e.g. database unreachable, a lock not had within 1 s); retried on the next tick',
      registers,
    }),
  };
}

/** A small listener that answers GET /metrics from a registry (the worker has no other HTTP). */
export async function serveMetrics(registry: Registry, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url?.split('?')[0] === '/metrics') {
      registry
        .metrics()
        .then((text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text))
        .catch(() => res.writeHead(500).end());
      return;
    }
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error: { code: 'ROUTE_NOT_FOUND', message: `no route for ${req.method} ${req.url}` } }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, () => resolve());
  });
  return server;
}

export function listeningPort(server: Server): number {
  return (server.address() as AddressInfo).port;
}
