-- Order events to the storefront: an outbox written in the same transaction as each change.

CREATE TYPE "OrderEventDeliveryState" AS ENUM ('PENDING', 'DELIVERED', 'FAILED');

CREATE TABLE "order_events" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "order_id" UUID NOT NULL,
    -- 1, 2, 3… per order: the order of the changes (each is written under the order's row lock).
    "seq" INTEGER NOT NULL,
    "type" TEXT NOT NULL,
    -- { order, refund? } as of the change.
    "data" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT clock_timestamp(),
    -- The writing transaction: the feed's cursor is (tx_id, id), read only below every open transaction.
    "tx_id" BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    CONSTRAINT "order_events_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "order_events_order_id_fkey" FOREIGN KEY ("order_id") REFERENCES "orders"("id") ON DELETE RESTRICT ON UPDATE CASCADE
);
CREATE UNIQUE INDEX "order_events_order_id_seq_key" ON "order_events"("order_id", "seq");
CREATE INDEX "order_events_tx_id_id_idx" ON "order_events"("tx_id", "id");

CREATE TABLE "order_event_deliveries" (
    "event_id" UUID NOT NULL,
    "endpoint" TEXT NOT NULL,
    "order_id" UUID NOT NULL,
    "seq" INTEGER NOT NULL,
    "state" "OrderEventDeliveryState" NOT NULL DEFAULT 'PENDING',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "next_attempt_at" TIMESTAMPTZ(3) NOT NULL DEFAULT clock_timestamp(),
    "last_attempt_at" TIMESTAMPTZ(3),
    "last_error" TEXT,
    "delivered_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT "order_event_deliveries_pkey" PRIMARY KEY ("event_id", "endpoint"),
    CONSTRAINT "order_event_deliveries_event_id_fkey" FOREIGN KEY ("event_id") REFERENCES "order_events"("id") ON DELETE CASCADE ON UPDATE CASCADE
);
-- What the dispatcher claims, and the earlier events of the same order it must wait for.
CREATE INDEX "order_event_deliveries_due_idx" ON "order_event_deliveries"("next_attempt_at") WHERE "state" = 'PENDING';
CREATE INDEX "order_event_deliveries_endpoint_order_id_seq_idx" ON "order_event_deliveries"("endpoint", "order_id", "seq") WHERE "state" = 'PENDING';

-- The order as GET /orders/:orderId shows it (src/api/checkout.ts toOrderResponse), built in the
-- writing transaction so the event describes exactly the committed change.
CREATE FUNCTION order_document(p_order_id UUID) RETURNS JSONB
LANGUAGE sql STABLE AS $$
  SELECT jsonb_strip_nulls(jsonb_build_object(
           'orderId', o.id::text,
           'customerId', o.customer_id,
           'status', o.status::text,
           'items', COALESCE((SELECT jsonb_agg(jsonb_build_object('sku', i.sku, 'quantity', i.quantity, 'unitPriceCents', i.unit_price_cents) ORDER BY i.sku COLLATE "C")
                                FROM order_items i WHERE i.order_id = o.id), '[]'::jsonb),
           'totalCents', o.total_cents,
           'createdAt', to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'expiresAt', to_char(o.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'paidAt', to_char(o.paid_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'closedAt', to_char(o.closed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'paymentId', o.payment_id,
           'paymentPending', CASE WHEN o.status = 'AWAITING_PAYMENT' AND o.payment_pending_until > now() THEN true END))
    FROM orders o WHERE o.id = p_order_id
$$;

-- Writes one event and one delivery per endpoint. The caller holds the order's row lock (or
-- created the row), so seq follows the order of the changes.
CREATE FUNCTION record_order_event(p_order_id UUID, p_type TEXT, p_extra JSONB, p_endpoints TEXT[])
RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
  v_id UUID;
  v_seq INTEGER;
BEGIN
  SELECT COALESCE(MAX(seq), 0) + 1 INTO v_seq FROM order_events WHERE order_id = p_order_id;
  INSERT INTO order_events (order_id, seq, type, data)
  VALUES (p_order_id, v_seq, p_type, jsonb_build_object('order', order_document(p_order_id)) || COALESCE(p_extra, '{}'::jsonb))
  RETURNING id INTO v_id;
  INSERT INTO order_event_deliveries (event_id, endpoint, order_id, seq)
  SELECT v_id, e, p_order_id, v_seq FROM unnest(p_endpoints) AS e;
END
$$;
