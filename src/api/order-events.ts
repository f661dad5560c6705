/**
 * Reading the outbox: an order's events with their deliveries (GET /orders/:orderId/events) and
 * the feed of all events (GET /admin/events). The feed is ordered by (writing transaction, id)
 * and shows only events below every transaction still open, so an event can never appear
 * behind a cursor already handed out: a reader that pages on from its last cursor misses none.
 */
import { redactEndpoint, type OrderEventType } from '../../activities/order-events';
import { Prisma, type PrismaClient } from '../../prisma/generated/client';
import { isOrderId, orderNotFound } from './order-records';
import type { OrderEventResponse, OrderEventsPageResponse } from './schemas';

interface EventRow {
  id: string;
  tx_id: bigint;
  type: OrderEventType;
  data: OrderEventResponse['data'];
  created_at: Date;
  deliveries: DeliveryRow[] | null;
}

interface DeliveryRow {
  endpoint: string;
  state: 'PENDING' | 'DELIVERED' | 'FAILED';
  attempts: number;
  last_attempt_at: string | null;
  next_attempt_at: string;
  delivered_at: string | null;
  last_error: string | null;
}

export class OrderEventsReader {
  constructor(private readonly deps: { prisma: PrismaClient }) {}

  /** Every event of the order, oldest first; 404 ORDER_NOT_FOUND when no order has that id. */
  /** The order's events, if the storefront's channel may see the order (else ORDER_NOT_FOUND, as an unknown id). */
  async forOrder(orderId: string, channel: string): Promise<OrderEventResponse[]> {
    if (!isOrderId(orderId)) throw orderNotFound(orderId);
    const [rows, order] = await Promise.all([
      this.deps.prisma.$queryRaw<EventRow[]>`
        SELECT e.id::text AS id, e.tx_id, e.type, e.data, e.created_at, ${DELIVERIES_OF_E} AS deliveries
          FROM order_events e JOIN orders o ON o.id = e.order_id
         WHERE e.order_id = ${orderId}::uuid AND o.channel = ${channel} ORDER BY e.seq`,
      this.deps.prisma.order.findUnique({ where: { id: orderId, channel }, select: { id: true } }),
    ]);
    if (!order) throw orderNotFound(orderId);
    return rows.map(toEvent);
  }

  /** Up to `limit` events after `after` (a cursor of an earlier page), in the feed's order. */
  async page(after: string | undefined, limit: number): Promise<OrderEventsPageResponse> {
    const [afterTx = '0', afterId = '00000000-0000-0000-0000-000000000000'] = after === undefined ? [] : splitCursor(after);
    const rows = await this.deps.prisma.$queryRaw<EventRow[]>`
      SELECT e.id::text AS id, e.tx_id, e.type, e.data, e.created_at, ${DELIVERIES_OF_E} AS deliveries
        FROM order_events e
       WHERE (e.tx_id, e.id) > (${BigInt(afterTx)}, ${afterId}::uuid)
         AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
       ORDER BY e.tx_id, e.id
       LIMIT ${limit}`;
    const events = rows.map((row) => ({ ...toEvent(row), cursor: cursorOf(row) }));
    return { events, nextCursor: events.at(-1)?.cursor ?? after ?? null };
  }
}

/** The event's deliveries as one JSON array, in endpoint order. */
const DELIVERIES_OF_E = Prisma.sql`(
  SELECT json_agg(json_build_object(
           'endpoint', d.endpoint, 'state', d.state, 'attempts', d.attempts,
           'last_attempt_at', d.last_attempt_at, 'next_attempt_at', d.next_attempt_at,
           'delivered_at', d.delivered_at, 'last_error', d.last_error) ORDER BY d.endpoint)
    FROM order_event_deliveries d WHERE d.event_id = e.id)`;

function toEvent(row: EventRow): OrderEventResponse {
  return {
    id: row.id,
    type: row.type,
    timestamp: row.created_at.toISOString(),
    data: row.data,
    deliveries: (row.deliveries ?? []).map((d) => ({
      endpoint: redactEndpoint(d.endpoint),
      state: d.state,
      attempts: d.attempts,
      ...(d.last_attempt_at !== null && { lastAttemptAt: new Date(d.last_attempt_at).toISOString() }),
      ...(d.state === 'PENDING' && { nextAttemptAt: new Date(d.next_attempt_at).toISOString() }),
      ...(d.delivered_at !== null && { deliveredAt: new Date(d.delivered_at).toISOString() }),
      ...(d.last_error !== null && { lastError: d.last_error }),
    })),
  };
}

function cursorOf(row: EventRow): string {
  return `${row.tx_id.toString()}-${row.id}`;
}

function splitCursor(cursor: string): [string, string] {
  const dash = cursor.indexOf('-');
  return [cursor.slice(0, dash), cursor.slice(dash + 1)];
}
