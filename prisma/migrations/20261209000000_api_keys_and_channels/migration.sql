-- Callers and keys (contract v3): scoped API keys, and the channel every order belongs to.

-- A key is 32 random bytes shown once; only its SHA-256 is kept, which cannot be turned back into
-- the key or guessed. A storefront key (scope orders) names its channel; an operator key sees every
-- channel and names none.
CREATE TYPE "ApiKeyScope" AS ENUM ('orders', 'operator');
CREATE TABLE "api_keys" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "scope" "ApiKeyScope" NOT NULL,
    "channel" TEXT,
    "key_hash" BYTEA NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT now(),
    "revoked_at" TIMESTAMPTZ(3),
    -- Written in batches by each API replica, never once per request.
    "last_used_at" TIMESTAMPTZ(3),
    CONSTRAINT "api_keys_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "api_keys_channel_by_scope" CHECK (("scope" = 'orders') = ("channel" IS NOT NULL))
);
CREATE UNIQUE INDEX "api_keys_key_hash_key" ON "api_keys"("key_hash");

-- Orders placed before channels existed belong to the bootstrap storefront key's channel.
ALTER TABLE "orders" ADD COLUMN "channel" TEXT NOT NULL DEFAULT 'default';

-- Idempotency is per channel, customer and key: two storefronts may use the same customer ids and keys.
DROP INDEX "orders_customer_id_idempotency_key_key";
CREATE UNIQUE INDEX "orders_channel_customer_id_idempotency_key_key" ON "orders"("channel", "customer_id", "idempotency_key");

-- The order as GET /orders/:orderId shows it, for the API and for events alike (one definition),
-- now with its channel: one ORDER_EVENTS_URL receiver serves every storefront and routes by it.
CREATE OR REPLACE FUNCTION order_document(p_order_id UUID) RETURNS JSONB
LANGUAGE sql STABLE AS $$
  SELECT jsonb_strip_nulls(jsonb_build_object(
           'orderId', o.id::text,
           'channel', o.channel,
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
           'paymentPending', CASE WHEN order_payment_pending(o) THEN true END))
    FROM orders o WHERE o.id = p_order_id
$$;

-- hold_order for an order of a channel. The API records the PENDING row, with its channel, before
-- the workflow starts; when it withdrew that row (a start that seemed to fail reached Temporal after
-- all), hold_order would make the row itself in the default channel. So the row is made here first,
-- in the order's channel, as hold_order would make it (not for an unknown sku: it answers that
-- without a row). hold_order itself is unchanged.
CREATE FUNCTION hold_order_in_channel(
  p_channel TEXT,
  p_order_id UUID,
  p_customer_id TEXT,
  p_items JSONB,
  p_created_at TIMESTAMPTZ,
  p_expires_at TIMESTAMPTZ,
  p_currency TEXT,
  p_idempotency_key TEXT,
  p_request_hash TEXT,
  p_lock_timeout_ms INTEGER,
  p_endpoints TEXT[]
) RETURNS JSONB
LANGUAGE plpgsql
AS $$
BEGIN
  INSERT INTO orders (id, channel, customer_id, status, total_cents, created_at, expires_at, currency, idempotency_key, request_hash)
  SELECT p_order_id, p_channel, p_customer_id, 'PENDING', 0, p_created_at, p_expires_at, p_currency, p_idempotency_key, p_request_hash
   WHERE NOT EXISTS (SELECT 1 FROM orders WHERE id = p_order_id)
     AND NOT EXISTS (SELECT 1 FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER)
                      WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.sku = h.sku))
  ON CONFLICT DO NOTHING;
  RETURN hold_order(p_order_id, p_customer_id, p_items, p_created_at, p_expires_at, p_currency,
                    p_idempotency_key, p_request_hash, p_lock_timeout_ms, p_endpoints);
END
$$;
