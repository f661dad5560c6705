-- Admission in channels: issue 27's admission and purchase limits (20261209000000_admission_and_limits)
-- meet issue 28's channels (20261209000000_api_keys_and_channels). An order is admitted into its
-- caller's channel, and both purchase limits are counted per channel and customer: two storefronts
-- may use the same customer ids without sharing limits (docs/api.md, "Purchase limits").

-- The orders that count against a customer's limits, now found per channel.
DROP INDEX "orders_customer_holding_idx";
CREATE INDEX "orders_channel_customer_holding_idx" ON "orders" ("channel", "customer_id") WHERE "status" IN ('PENDING', 'AWAITING_PAYMENT', 'PAID');

-- The signatures without a channel go: nothing released calls them (both migrations land together).
DROP FUNCTION admit_order(UUID, TEXT, JSONB, TIMESTAMPTZ, TIMESTAMPTZ, TEXT, TEXT, TEXT, INTEGER, INTEGER, INTEGER, TEXT[]);
DROP FUNCTION insert_order(UUID, TEXT, JSONB, TIMESTAMPTZ, TIMESTAMPTZ, TEXT, TEXT, TEXT, JSONB, TEXT[]);
DROP FUNCTION purchase_limit_refusal(UUID, TEXT, JSONB, INTEGER);
DROP FUNCTION lock_customer(TEXT);
DROP FUNCTION hold_order_in_channel(TEXT, UUID, TEXT, JSONB, TIMESTAMPTZ, TIMESTAMPTZ, TEXT, TEXT, TEXT, INTEGER, TEXT[]);

-- Racing orders of one customer of one channel are admitted and held one at a time, so together
-- they never pass a limit. (A two-key advisory lock never collides with Prisma Migrate's one-key
-- lock.) Taken before any order or product row lock, by admit_order, hold_order_in_channel and
-- hold_order alike (re-entrant within a transaction).
CREATE FUNCTION lock_customer(p_channel TEXT, p_customer_id TEXT) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(27, hashtext(p_channel || chr(31) || p_customer_id));
END
$$;

-- As in 20261209000000_admission_and_limits, counting only the customer's orders of this channel.
CREATE FUNCTION purchase_limit_refusal(p_channel TEXT, p_order_id UUID, p_customer_id TEXT, p_items JSONB, p_max_open_orders INTEGER)
RETURNS JSONB LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_open INTEGER;
  v_excess JSONB;
BEGIN
  IF p_max_open_orders > 0 THEN
    SELECT count(*)::int INTO v_open FROM orders o
     WHERE o.channel = p_channel AND o.customer_id = p_customer_id AND o.id <> p_order_id AND o.status IN ('PENDING', 'AWAITING_PAYMENT', 'PAID')
       AND (o.status = 'AWAITING_PAYMENT'
            OR (o.status = 'PENDING' AND EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.id AND i.admitted_at IS NOT NULL)));
    IF v_open >= p_max_open_orders THEN
      RETURN jsonb_build_object('code', 'TOO_MANY_OPEN_ORDERS', 'details', jsonb_build_object('limit', p_max_open_orders, 'openOrders', v_open));
    END IF;
  END IF;
  -- Only items with a limit cost a look at the customer's orders.
  SELECT jsonb_agg(jsonb_build_object('sku', l.sku, 'limit', l.max_per_customer, 'alreadyHeld', held.units, 'requested', l.quantity)
                   ORDER BY l.sku COLLATE "C")
    INTO v_excess
    FROM (SELECT h.sku, h.quantity, p.max_per_customer
            FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) JOIN products p ON p.sku = h.sku
           WHERE p.max_per_customer IS NOT NULL) l
    CROSS JOIN LATERAL (
      SELECT COALESCE(SUM(i.quantity), 0)::int AS units
        FROM orders o JOIN order_items i ON i.order_id = o.id AND i.sku = l.sku
       WHERE o.channel = p_channel AND o.customer_id = p_customer_id AND o.id <> p_order_id AND o.status IN ('PENDING', 'AWAITING_PAYMENT', 'PAID')
         AND (o.status <> 'PENDING' OR i.admitted_at IS NOT NULL)) held
   WHERE held.units + l.quantity > l.max_per_customer;
  IF v_excess IS NOT NULL THEN
    RETURN jsonb_build_object('code', 'PURCHASE_LIMIT_EXCEEDED', 'details', v_excess);
  END IF;
  RETURN NULL;
END
$$;

-- As in 20261209000000_admission_and_limits, the order recorded in its channel. False, changing
-- nothing, when an order with this id, or this channel's customer's idempotency key, exists already.
CREATE FUNCTION insert_order(
  p_channel TEXT,
  p_order_id UUID,
  p_customer_id TEXT,
  p_items JSONB,
  p_created_at TIMESTAMPTZ,
  p_expires_at TIMESTAMPTZ,
  p_currency TEXT,
  p_idempotency_key TEXT,
  p_request_hash TEXT,
  p_refusal JSONB,
  p_endpoints TEXT[]
) RETURNS BOOLEAN
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO orders (id, channel, customer_id, status, total_cents, created_at, expires_at, currency, idempotency_key, request_hash,
                      closed_at, rejection, rejection_code)
  SELECT p_order_id, p_channel, p_customer_id, CASE WHEN p_refusal IS NULL THEN 'PENDING' ELSE 'REJECTED' END::"OrderStatus",
         COALESCE(SUM(h.quantity::bigint * p.price_cents), 0), p_created_at, p_expires_at, p_currency, p_idempotency_key, p_request_hash,
         CASE WHEN p_refusal IS NOT NULL THEN now() END, p_refusal -> 'details', p_refusal ->> 'code'
    FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) JOIN products p ON p.sku = h.sku
  ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  INSERT INTO order_items (order_id, sku, quantity, unit_price_cents)
  SELECT p_order_id, h.sku, h.quantity, p.price_cents FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) JOIN products p ON p.sku = h.sku;
  IF p_refusal IS NOT NULL THEN
    PERFORM record_order_event(p_order_id, 'order.rejected', NULL, p_endpoints);
  END IF;
  RETURN true;
END
$$;

-- As in 20261209000000_admission_and_limits, in the caller's channel: the order is recorded in it,
-- and the customer's lock and purchase limits are those of the channel's customer.
CREATE FUNCTION admit_order(
  p_channel TEXT,
  p_order_id UUID,
  p_customer_id TEXT,
  p_items JSONB,
  p_created_at TIMESTAMPTZ,
  p_expires_at TIMESTAMPTZ,
  p_currency TEXT,
  p_idempotency_key TEXT,
  p_request_hash TEXT,
  p_max_open_orders INTEGER,
  p_admission_seconds INTEGER,
  p_lock_timeout_ms INTEGER,
  p_endpoints TEXT[]
) RETURNS JSONB
LANGUAGE plpgsql AS $$
DECLARE
  v_unknown JSONB;
  v_skus TEXT[];
  v_refusal JSONB;
BEGIN
  PERFORM set_config('lock_timeout', p_lock_timeout_ms || 'ms', true);
  SELECT jsonb_agg(h.sku ORDER BY h.sku COLLATE "C") INTO v_unknown
    FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER)
   WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.sku = h.sku);
  IF v_unknown IS NOT NULL THEN
    RETURN jsonb_build_object('outcome', 'UNKNOWN_SKU', 'skus', v_unknown);
  END IF;
  SELECT array_agg(h.sku) INTO v_skus FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER);

  v_refusal := admission_shortage(p_items);
  IF v_refusal IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM order_items i
                      WHERE i.sku = ANY(v_skus) AND i.admitted_at IS NOT NULL
                        AND i.admitted_at <= now() - make_interval(secs => p_admission_seconds)) THEN
    IF NOT insert_order(p_channel, p_order_id, p_customer_id, p_items, p_created_at, p_expires_at, p_currency, p_idempotency_key,
                        p_request_hash, v_refusal, p_endpoints) THEN
      RETURN jsonb_build_object('outcome', 'EXISTS');
    END IF;
    RETURN v_refusal || jsonb_build_object('outcome', 'REFUSED', 'order', order_document(p_order_id));
  END IF;

  PERFORM lock_customer(p_channel, p_customer_id);
  -- The products before the lines: inserting a line takes a key-share lock on its product (the
  -- foreign key), and two admissions upgrading theirs would deadlock.
  PERFORM 1 FROM products p WHERE p.sku = ANY(v_skus) ORDER BY p.sku COLLATE "C" FOR NO KEY UPDATE;
  IF NOT insert_order(p_channel, p_order_id, p_customer_id, p_items, p_created_at, p_expires_at, p_currency, p_idempotency_key,
                      p_request_hash, NULL, p_endpoints) THEN
    RETURN jsonb_build_object('outcome', 'EXISTS');
  END IF;
  PERFORM lapse_admissions(v_skus, p_admission_seconds);
  v_refusal := COALESCE(admission_shortage(p_items), purchase_limit_refusal(p_channel, p_order_id, p_customer_id, p_items, p_max_open_orders));
  IF v_refusal IS NOT NULL THEN
    PERFORM reject_order(p_order_id, v_refusal, p_endpoints);
    RETURN v_refusal || jsonb_build_object('outcome', 'REFUSED', 'order', order_document(p_order_id));
  END IF;
  UPDATE order_items SET admitted_at = now() WHERE order_id = p_order_id;
  UPDATE products p SET admitted = p.admitted + h.quantity
    FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) WHERE p.sku = h.sku;
  RETURN jsonb_build_object('outcome', 'ADMITTED', 'order', order_document(p_order_id));
END
$$;

-- As in 20261209000000_admission_and_limits, with the order's channel (read from its row) for the
-- customer's lock and the purchase limits. The signature is unchanged, and so is the previous
-- one's wrapper (it calls this one).
CREATE OR REPLACE FUNCTION hold_order(
  p_order_id UUID,
  p_customer_id TEXT,
  p_items JSONB,
  p_created_at TIMESTAMPTZ,
  p_expires_at TIMESTAMPTZ,
  p_currency TEXT,
  p_idempotency_key TEXT,
  p_request_hash TEXT,
  p_max_open_orders INTEGER,
  p_lock_timeout_ms INTEGER,
  p_endpoints TEXT[]
) RETURNS JSONB
LANGUAGE plpgsql
AS $$
DECLARE
  v_status TEXT;
  v_unknown TEXT;
  v_refusal JSONB;
  v_lines JSONB;
  v_total BIGINT;
  v_channel TEXT;
BEGIN
  -- A hold waits for other holds of the same skus; past this budget it fails and the activity retries.
  PERFORM set_config('lock_timeout', p_lock_timeout_ms || 'ms', true);
  -- The order's channel (it never changes, so it is read before the locks, which come in the same
  -- order as admit_order takes them); with no row yet, the default channel, where hold_order
  -- would make it (hold_order_in_channel makes the row in its channel first).
  SELECT channel INTO v_channel FROM orders WHERE id = p_order_id;
  v_channel := COALESCE(v_channel, 'default');
  PERFORM lock_customer(v_channel, p_customer_id);
  -- The API's PENDING row, locked; or the decision of an earlier attempt.
  SELECT status::text INTO v_status FROM orders WHERE id = p_order_id FOR UPDATE;
  IF FOUND AND v_status <> 'PENDING' THEN
    RETURN order_reservation(p_order_id);
  END IF;

  -- In sku order (byte order, as every other writer of products sorts), so holds never deadlock;
  -- NO KEY UPDATE, so refusals inserting lines of these skus (admit_order) never wait for it.
  PERFORM 1 FROM products p WHERE p.sku IN (SELECT h.sku FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER)) ORDER BY p.sku COLLATE "C" FOR NO KEY UPDATE;

  SELECT h.sku INTO v_unknown FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER)
   WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.sku = h.sku) ORDER BY h.sku COLLATE "C" LIMIT 1;
  IF v_unknown IS NOT NULL THEN
    RETURN jsonb_build_object('outcome', 'UNKNOWN_SKU', 'sku', v_unknown);
  END IF;

  IF v_status IS NULL THEN
    -- No PENDING row: its start failed and the API withdrew the row (the start reached Temporal
    -- after all). A concurrent attempt of this same hold may insert it first.
    INSERT INTO orders (id, customer_id, status, total_cents, created_at, expires_at, currency, idempotency_key, request_hash)
    VALUES (p_order_id, p_customer_id, 'PENDING', 0, p_created_at, p_expires_at, p_currency, p_idempotency_key, p_request_hash)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      SELECT status::text INTO v_status FROM orders WHERE id = p_order_id FOR UPDATE;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'order % conflicts with another order of customer % under the same idempotency key', p_order_id, p_customer_id;
      END IF;
      IF v_status <> 'PENDING' THEN
        RETURN order_reservation(p_order_id);
      END IF;
    END IF;
  END IF;

  PERFORM release_admission(p_order_id);

  SELECT jsonb_build_object('code', 'OUT_OF_STOCK', 'details',
           jsonb_agg(jsonb_build_object('sku', h.sku, 'requested', h.quantity, 'available', p.available) ORDER BY h.sku COLLATE "C"))
    INTO v_refusal
    FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) JOIN products p ON p.sku = h.sku
   WHERE p.available < h.quantity
  HAVING count(*) > 0;
  v_refusal := COALESCE(v_refusal, purchase_limit_refusal(v_channel, p_order_id, p_customer_id, p_items, p_max_open_orders));

  -- The lines at the catalog's prices (a rejection records them too).
  SELECT jsonb_agg(jsonb_build_object('sku', h.sku, 'quantity', h.quantity, 'unitPriceCents', p.price_cents) ORDER BY h.sku COLLATE "C"),
         SUM(h.quantity::bigint * p.price_cents)
    INTO v_lines, v_total
    FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) JOIN products p ON p.sku = h.sku;

  DELETE FROM order_items WHERE order_id = p_order_id;
  INSERT INTO order_items (order_id, sku, quantity, unit_price_cents)
  SELECT p_order_id, h.sku, h.quantity, p.price_cents FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) JOIN products p ON p.sku = h.sku;

  IF v_refusal IS NOT NULL THEN
    UPDATE orders
       SET total_cents = v_total, created_at = p_created_at, expires_at = p_expires_at, currency = p_currency
     WHERE id = p_order_id;
    PERFORM reject_order(p_order_id, v_refusal, p_endpoints);
    RETURN order_reservation(p_order_id);
  END IF;

  UPDATE products p
     SET available = p.available - h.quantity, reserved = p.reserved + h.quantity, updated_at = now()
    FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) WHERE p.sku = h.sku;
  INSERT INTO stock_movements (sku, order_id, kind, quantity)
  SELECT h.sku, p_order_id, 'RESERVE', h.quantity FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) ORDER BY h.sku COLLATE "C";
  UPDATE orders
     SET status = 'AWAITING_PAYMENT', total_cents = v_total, created_at = p_created_at, expires_at = p_expires_at,
         currency = p_currency, deadline_movable = true
   WHERE id = p_order_id;
  PERFORM record_order_event(p_order_id, 'order.placed', NULL, p_endpoints);
  RETURN jsonb_build_object('outcome', 'HELD', 'lines', v_lines, 'totalCents', v_total);
END
$$;

-- hold_order for an order of a channel (as in 20261209000000_api_keys_and_channels), now with the
-- cap on open orders that hold_order takes: the missing PENDING row is made in the order's channel,
-- under the channel's customer's lock (taken first, as admit_order takes it), then held.
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
  p_max_open_orders INTEGER,
  p_lock_timeout_ms INTEGER,
  p_endpoints TEXT[]
) RETURNS JSONB
LANGUAGE plpgsql
AS $$
BEGIN
  PERFORM set_config('lock_timeout', p_lock_timeout_ms || 'ms', true);
  PERFORM lock_customer(p_channel, p_customer_id);
  INSERT INTO orders (id, channel, customer_id, status, total_cents, created_at, expires_at, currency, idempotency_key, request_hash)
  SELECT p_order_id, p_channel, p_customer_id, 'PENDING', 0, p_created_at, p_expires_at, p_currency, p_idempotency_key, p_request_hash
   WHERE NOT EXISTS (SELECT 1 FROM orders WHERE id = p_order_id)
     AND NOT EXISTS (SELECT 1 FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER)
                      WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.sku = h.sku))
  ON CONFLICT DO NOTHING;
  RETURN hold_order(p_order_id, p_customer_id, p_items, p_created_at, p_expires_at, p_currency,
                    p_idempotency_key, p_request_hash, p_max_open_orders, p_lock_timeout_ms, p_endpoints);
END
$$;

-- The order as GET /orders/:orderId and every event show it: as PL/pgSQL (20261209000000_admission_and_limits,
-- its plan cached), with its channel (20261209000000_api_keys_and_channels, which ran after it and
-- made it LANGUAGE sql again).
CREATE OR REPLACE FUNCTION order_document(p_order_id UUID) RETURNS JSONB
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (
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
      FROM orders o WHERE o.id = p_order_id);
END
$$;
