/**
 * The outbox of order events: written inside the transaction of the change it describes (so an
 * event exists if and only if its change committed), and claimed from there by the dispatcher
 * in every worker (src/order-events-dispatcher.ts) to be delivered to each endpoint.
 */
import type { Prisma } from '../prisma/generated/client';
import type { Cents, OrderId, PaymentRefusal } from './types';

export const ORDER_EVENT_TYPES = [
  'order.placed',
  'order.rejected',
  'order.paid',
  'order.expired',
  'order.cancelled',
  'order.extended',
  'payment.refunded',
] as const;
export type OrderEventType = (typeof ORDER_EVENT_TYPES)[number];

/** The refund a `payment.refunded` event carries beside the order. */
export interface RefundDetails {
  paymentId: string;
  status: 'REFUNDED';
  amountCents: Cents;
  reason: PaymentRefusal;
}

/**
 * Writes one event for the order (its document as of now, in this transaction) and a pending
 * delivery for each endpoint. The caller must hold the order's row lock or have created the row,
 * so the per-order sequence follows the order of the changes.
 */
export async function recordOrderEvent(
  tx: Prisma.TransactionClient,
  orderId: OrderId,
  type: OrderEventType,
  endpoints: readonly string[],
  refund?: RefundDetails,
): Promise<void> {
  const extra = refund ? JSON.stringify({ refund }) : null;
  await tx.$executeRaw`SELECT record_order_event(${orderId}::uuid, ${type}, ${extra}::jsonb, ${[...endpoints]}::text[])`;
}

/** The same for many orders of one change (the reclaim's batch), in one statement. */
export async function recordOrderEvents(
  tx: Prisma.TransactionClient,
  orderIds: readonly OrderId[],
  type: OrderEventType,
  endpoints: readonly string[],
): Promise<void> {
  if (orderIds.length === 0) return;
  await tx.$executeRaw`
    SELECT record_order_event(id, ${type}, NULL, ${[...endpoints]}::text[])
      FROM unnest(${[...orderIds]}::uuid[]) AS id`;
}

/** A delivery the dispatcher holds (row-locked) while it sends it. */
export interface ClaimedDelivery {
  eventId: string;
  endpoint: string;
  orderId: OrderId;
  attempts: number;
  type: OrderEventType;
  data: unknown;
  createdAt: Date;
}

/**
 * Claims up to `limit` deliveries that are due, each the oldest still pending of its order for
 * its endpoint (so events of one order go out in order), locked FOR UPDATE SKIP LOCKED: workers
 * share the work, and a worker that dies mid-delivery drops its locks with its connection.
 */
export async function claimDueDeliveries(tx: Prisma.TransactionClient, limit: number): Promise<ClaimedDelivery[]> {
  const rows = await tx.$queryRaw<
    { event_id: string; endpoint: string; order_id: string; attempts: number; type: OrderEventType; data: unknown; created_at: Date }[]
  >`
    SELECT d.event_id::text AS event_id, d.endpoint, d.order_id::text AS order_id, d.attempts, e.type, e.data, e.created_at
      FROM order_event_deliveries d JOIN order_events e ON e.id = d.event_id
     WHERE d.state = 'PENDING' AND d.next_attempt_at <= now()
       AND NOT EXISTS (SELECT 1 FROM order_event_deliveries p
                        WHERE p.endpoint = d.endpoint AND p.order_id = d.order_id AND p.seq < d.seq AND p.state = 'PENDING')
     ORDER BY d.next_attempt_at
     LIMIT ${limit}
     FOR UPDATE OF d SKIP LOCKED`;
  return rows.map((r) => ({
    eventId: r.event_id,
    endpoint: r.endpoint,
    orderId: r.order_id,
    attempts: r.attempts,
    type: r.type,
    data: r.data,
    createdAt: r.created_at,
  }));
}

/** Marks the deliveries done, in one statement (the common case of a batch). */
export async function markDelivered(tx: Prisma.TransactionClient, deliveries: readonly ClaimedDelivery[]): Promise<void> {
  if (deliveries.length === 0) return;
  await tx.$executeRaw`
    UPDATE order_event_deliveries d
       SET state = 'DELIVERED', attempts = d.attempts + 1, last_attempt_at = now(), delivered_at = now(), last_error = NULL
      FROM unnest(${deliveries.map((x) => x.eventId)}::uuid[], ${deliveries.map((x) => x.endpoint)}::text[]) AS done(event_id, endpoint)
     WHERE d.event_id = done.event_id AND d.endpoint = done.endpoint`;
}

/**
 * Records a failed attempt: the next one after `retryInSeconds`, or FAILED when that would fall
 * past the event's max age (counted from when the event was written).
 */
export async function markAttemptFailed(
  tx: Prisma.TransactionClient,
  delivery: ClaimedDelivery,
  error: string,
  retryInSeconds: number,
  maxAgeSeconds: number,
): Promise<'RETRY' | 'FAILED'> {
  const [row] = await tx.$queryRaw<{ state: 'PENDING' | 'FAILED' }[]>`
    UPDATE order_event_deliveries d
       SET attempts = attempts + 1, last_attempt_at = now(), last_error = ${error.slice(0, 500)},
           next_attempt_at = now() + make_interval(secs => ${retryInSeconds}),
           state = CASE WHEN now() + make_interval(secs => ${retryInSeconds}) > d.created_at + make_interval(secs => ${maxAgeSeconds})
                        THEN 'FAILED' ELSE 'PENDING' END::"OrderEventDeliveryState"
     WHERE event_id = ${delivery.eventId}::uuid AND endpoint = ${delivery.endpoint}
    RETURNING state::text AS state`;
  return row?.state === 'FAILED' ? 'FAILED' : 'RETRY';
}

/** Seconds since the oldest event still waiting for a delivery was written; 0 when none waits. */
export async function oldestPendingAgeSeconds(tx: Prisma.TransactionClient): Promise<number> {
  const [row] = await tx.$queryRaw<{ age: number | null }[]>`
    SELECT EXTRACT(EPOCH FROM now() - MIN(created_at))::float8 AS age FROM order_event_deliveries WHERE state = 'PENDING'`;
  return Math.max(0, row?.age ?? 0);
}

/** Scheme, host and path only: an endpoint URL may carry a token in its query or credentials. */
export function redactEndpoint(endpoint: string): string {
  if (!URL.canParse(endpoint)) return '(invalid URL)';
  const url = new URL(endpoint);
  return `${url.protocol}//${url.host}${url.pathname}`;
}
