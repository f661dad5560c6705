/**
 * The outbox's deliveries as the dispatcher (src/order-events-dispatcher.ts) leases and settles
 * them: each statement short and on its own, so no transaction is open while a POST runs.
 */
import type { Prisma } from '../../prisma/generated/client';
import type { OrderEventType } from '../../activities/order-events';
import type { OrderId } from '../../activities/types';

/** A delivery the dispatcher has leased: no other dispatcher sends it until the lease ends. */
export interface ClaimedDelivery {
  eventId: string;
  endpoint: string;
  orderId: OrderId;
  /** Attempts including this one: also the lease's token (a later claim of the delivery raises it). */
  attempts: number;
  type: OrderEventType;
  data: unknown;
  createdAt: Date;
}

/** How many deliveries to claim for one endpoint (what its free sending slots allow). */
export interface EndpointClaim {
  endpoint: string;
  limit: number;
}

/**
 * Claims, per endpoint, up to its limit of due deliveries, each the oldest still pending of its
 * order for that endpoint (so an order's events go out in order), and leases them for
 * `leaseSeconds`: their next attempt moves past the lease, so the claim commits at once and no
 * other dispatcher takes them while the POST runs. One statement per endpoint, its row locks held
 * only while it runs (SKIP LOCKED: concurrent claims share the work).
 */
export async function claimDueDeliveries(
  db: Prisma.TransactionClient,
  wanted: readonly EndpointClaim[],
  leaseSeconds: number,
): Promise<ClaimedDelivery[]> {
  const claims = await Promise.all(wanted.filter((w) => w.limit > 0).map((w) => claimForEndpoint(db, w, leaseSeconds)));
  return claims.flat();
}

/**
 * One endpoint's claim. It reads the index on (endpoint, next_attempt_at) of pending deliveries,
 * so another endpoint's backlog is never scanned, and joins each claimed delivery to its event by
 * primary key. Its limit is a constant of the statement, so the planner knows the claim is small
 * (with a limit per row of a join it guessed thousands of rows: a hash join over every event, and
 * JIT on top).
 */
async function claimForEndpoint(db: Prisma.TransactionClient, { endpoint, limit }: EndpointClaim, leaseSeconds: number): Promise<ClaimedDelivery[]> {
  const rows = await db.$queryRaw<
    { event_id: string; endpoint: string; order_id: string; attempts: number; type: OrderEventType; data: unknown; created_at: Date }[]
  >`
    WITH due AS MATERIALIZED (
      SELECT d.event_id, d.endpoint, e.type, e.data, e.created_at
        FROM order_event_deliveries d JOIN order_events e ON e.id = d.event_id
       WHERE d.state = 'PENDING' AND d.endpoint = ${endpoint} AND d.next_attempt_at <= now()
         AND NOT EXISTS (SELECT 1 FROM order_event_deliveries p
                          WHERE p.endpoint = d.endpoint AND p.order_id = d.order_id AND p.seq < d.seq AND p.state = 'PENDING')
       ORDER BY d.next_attempt_at
       LIMIT ${limit}
         FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE order_event_deliveries d
       SET attempts = d.attempts + 1, last_attempt_at = now(), next_attempt_at = now() + make_interval(secs => ${leaseSeconds})
      FROM due
     WHERE d.event_id = due.event_id AND d.endpoint = due.endpoint
    RETURNING d.event_id::text AS event_id, d.endpoint, d.order_id::text AS order_id, d.attempts, due.type, due.data, due.created_at`;
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

/**
 * Marks the delivery done (a 2xx), whoever's lease it was under: a success is a success even
 * from a dispatcher whose lease ran out. False when it was no longer pending.
 */
export async function markDelivered(db: Prisma.TransactionClient, delivery: ClaimedDelivery): Promise<boolean> {
  const updated = await db.$executeRaw`
    UPDATE order_event_deliveries
       SET state = 'DELIVERED', delivered_at = now(), last_error = NULL
     WHERE event_id = ${delivery.eventId}::uuid AND endpoint = ${delivery.endpoint} AND state = 'PENDING'`;
  return updated > 0;
}

/**
 * Records a failed attempt under this claim's lease: the next one after `retryInSeconds`, or
 * FAILED when that would fall past the event's max age (counted from when the event was written).
 * STALE when the lease was lost meanwhile (the delivery was claimed again, or is done): then the
 * newer attempt decides, and this one changes nothing.
 */
export async function markAttemptFailed(
  db: Prisma.TransactionClient,
  delivery: ClaimedDelivery,
  error: string,
  retryInSeconds: number,
  maxAgeSeconds: number,
): Promise<'RETRY' | 'FAILED' | 'STALE'> {
  const [row] = await db.$queryRaw<{ state: 'PENDING' | 'FAILED' }[]>`
    UPDATE order_event_deliveries d
       SET last_error = ${error.slice(0, 500)},
           next_attempt_at = now() + make_interval(secs => ${retryInSeconds}),
           state = CASE WHEN now() + make_interval(secs => ${retryInSeconds}) > d.created_at + make_interval(secs => ${maxAgeSeconds})
                        THEN 'FAILED' ELSE 'PENDING' END::"OrderEventDeliveryState"
     WHERE event_id = ${delivery.eventId}::uuid AND endpoint = ${delivery.endpoint}
       AND state = 'PENDING' AND attempts = ${delivery.attempts}
    RETURNING state::text AS state`;
  if (row === undefined) return 'STALE';
  return row.state === 'FAILED' ? 'FAILED' : 'RETRY';
}

/**
 * Seconds since the oldest event still waiting for a delivery to one of `endpoints` was written;
 * 0 when none waits.
 */
export async function oldestPendingAgeSeconds(tx: Prisma.TransactionClient, endpoints: readonly string[]): Promise<number> {
  const [row] = await tx.$queryRaw<{ age: number | null }[]>`
    SELECT EXTRACT(EPOCH FROM now() - MIN(created_at))::float8 AS age
      FROM order_event_deliveries WHERE state = 'PENDING' AND endpoint = ANY(${[...endpoints]}::text[])`;
  return Math.max(0, row?.age ?? 0);
}

/**
 * Deliveries to an endpoint that is no longer in ORDER_EVENTS_URL are not sent; once older than
 * the max age they are marked FAILED, as an unanswered one would be, rather than wait forever.
 */
export async function giveUpUnlistedDeliveries(tx: Prisma.TransactionClient, endpoints: readonly string[], maxAgeSeconds: number): Promise<number> {
  return tx.$executeRaw`
    UPDATE order_event_deliveries
       SET state = 'FAILED', last_error = 'endpoint no longer in ORDER_EVENTS_URL'
     WHERE state = 'PENDING' AND endpoint <> ALL(${[...endpoints]}::text[])
       AND created_at < now() - make_interval(secs => ${maxAgeSeconds})`;
}
