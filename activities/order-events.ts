/**
 * The outbox of order events: written inside the transaction of the change it describes (so an
 * event exists if and only if its change committed), and leased from there by the dispatcher
 * in every worker (src/order-events-dispatcher.ts, src/db/order-event-deliveries.ts) to be
 * delivered to each endpoint.
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

/** Scheme, host and path only: an endpoint URL may carry a token in its query or credentials. */
export function redactEndpoint(endpoint: string): string {
  if (!URL.canParse(endpoint)) return '(invalid URL)';
  const url = new URL(endpoint);
  return `${url.protocol}//${url.host}${url.pathname}`;
}
