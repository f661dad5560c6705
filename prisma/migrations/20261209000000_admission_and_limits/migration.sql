-- A drop (docs/operations.md, "Running a drop"): sold out is answered at HTTP speed, orders are admitted while stock
-- lasts, and no one customer hoards.
--
-- The API records every order through admit_order before it starts a workflow:
--   - when the database already shows too little on sale and unclaimed for an item, the order is
--     recorded REJECTED right there (OUT_OF_STOCK), with its event, and gets no workflow;
--   - else, under the customer's lock and the products' row locks, the purchase limits are
--     checked (TOO_MANY_OPEN_ORDERS, PURCHASE_LIMIT_EXCEEDED: REJECTED, no workflow), and the
--     order is recorded PENDING with its units ADMITTED: counted against what is on sale until its
--     hold (hold_order) turns them into held stock, or gives them back when it rejects.
-- An admission that no hold takes up (the workflow never started, or no worker took it) lapses
-- after the API's ORDER_ADMISSION_SECONDS: the next admission of that sku gives it back.

-- Units admitted to orders in flight, per product; and per line, since when (NULL: not counted).
-- Both change only under the product's row lock, so the counter always equals the sum of the
-- lines' admitted units (GET /admin/inventory/check reports ADMISSION_MISCOUNTED otherwise).
ALTER TABLE "products" ADD COLUMN "admitted" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "products" ADD CONSTRAINT "products_admitted_not_negative" CHECK ("admitted" >= 0);
ALTER TABLE "order_items" ADD COLUMN "admitted_at" TIMESTAMPTZ(3);
CREATE INDEX "order_items_admitted_idx" ON "order_items" ("sku", "admitted_at") WHERE "admitted_at" IS NOT NULL;

-- The most units of the product one customer may hold in orders awaiting payment, paid or in flight.
ALTER TABLE "products" ADD COLUMN "max_per_customer" INTEGER;
ALTER TABLE "products" ADD CONSTRAINT "products_max_per_customer_positive" CHECK ("max_per_customer" >= 1);

-- Why a REJECTED order was refused: OUT_OF_STOCK (also NULL, every older row),
-- PURCHASE_LIMIT_EXCEEDED or TOO_MANY_OPEN_ORDERS; `rejection` holds the details.
ALTER TABLE "orders" ADD COLUMN "rejection_code" TEXT;

-- A customer's orders that count against the limits.
CREATE INDEX "orders_customer_holding_idx" ON "orders" ("customer_id") WHERE "status" IN ('PENDING', 'AWAITING_PAYMENT', 'PAID');

-- Racing orders of one customer are admitted and held one at a time, so together they never pass
-- a limit. (A two-key advisory lock never collides with Prisma Migrate's one-key lock.) Taken
-- before any order or product row lock, by admit_order and hold_order alike.
CREATE FUNCTION lock_customer(p_customer_id TEXT) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(27, hashtext(p_customer_id));
END
$$;

-- The items that the products' units on sale and not yet admitted to other orders cannot cover:
-- {"code":"OUT_OF_STOCK","details":[{sku,requested,available}]} (`available` = that remainder),
-- NULL when every item is covered.
CREATE FUNCTION admission_shortage(p_items JSONB) RETURNS JSONB
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (
    SELECT jsonb_build_object('code', 'OUT_OF_STOCK', 'details',
             jsonb_agg(jsonb_build_object('sku', h.sku, 'requested', h.quantity, 'available', GREATEST(p.available - p.admitted, 0))
                       ORDER BY h.sku COLLATE "C"))
      FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) JOIN products p ON p.sku = h.sku
     WHERE p.available - p.admitted < h.quantity
    HAVING count(*) > 0);
END
$$;

-- What the purchase limits say about order p_order_id of this customer; NULL when they allow it.
--   {"code":"TOO_MANY_OPEN_ORDERS","details":{"limit","openOrders"}}: p_max_open_orders > 0 and the
--     customer already has that many orders open (awaiting payment, or admitted and in flight);
--   {"code":"PURCHASE_LIMIT_EXCEEDED","details":[{sku,limit,alreadyHeld,requested}]}: the items whose
--     product has max_per_customer and whose units in the customer's orders awaiting payment, paid
--     or admitted, plus those requested, would exceed it.
-- The customer's other orders count, never p_order_id itself. The caller holds lock_customer.
CREATE FUNCTION purchase_limit_refusal(p_order_id UUID, p_customer_id TEXT, p_items JSONB, p_max_open_orders INTEGER)
RETURNS JSONB LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_open INTEGER;
  v_excess JSONB;
BEGIN
  IF p_max_open_orders > 0 THEN
    SELECT count(*)::int INTO v_open FROM orders o
     WHERE o.customer_id = p_customer_id AND o.id <> p_order_id AND o.status IN ('PENDING', 'AWAITING_PAYMENT', 'PAID')
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
       WHERE o.customer_id = p_customer_id AND o.id <> p_order_id AND o.status IN ('PENDING', 'AWAITING_PAYMENT', 'PAID')
         AND (o.status <> 'PENDING' OR i.admitted_at IS NOT NULL)) held
   WHERE held.units + l.quantity > l.max_per_customer;
  IF v_excess IS NOT NULL THEN
    RETURN jsonb_build_object('code', 'PURCHASE_LIMIT_EXCEEDED', 'details', v_excess);
  END IF;
  RETURN NULL;
END
$$;

-- Gives back the admission of the order's lines (its hold took them up, or it ends without stock,
-- or it is withdrawn). The caller holds the products' row locks.
CREATE FUNCTION release_admission(p_order_id UUID) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
  WITH given AS (
    UPDATE order_items SET admitted_at = NULL
     WHERE order_id = p_order_id AND admitted_at IS NOT NULL
    RETURNING sku, quantity)
  UPDATE products p SET admitted = p.admitted - g.quantity FROM given g WHERE p.sku = g.sku;
END
$$;

-- Gives back the admissions of lines of these skus admitted more than p_seconds ago and still not
-- held: their workflow never started, or no worker took it. Such an order may still be held later,
-- if its stock is there then; it just stops keeping others out. The caller holds the products'
-- row locks. Answers how many lines lapsed.
CREATE FUNCTION lapse_admissions(p_skus TEXT[], p_seconds INTEGER) RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE
  v_lapsed INTEGER;
BEGIN
  WITH lapsed AS (
    UPDATE order_items SET admitted_at = NULL
     WHERE sku = ANY(p_skus) AND admitted_at IS NOT NULL AND admitted_at <= now() - make_interval(secs => p_seconds)
    RETURNING sku, quantity),
  per_sku AS (SELECT sku, SUM(quantity)::int AS units FROM lapsed GROUP BY sku),
  counted AS (UPDATE products p SET admitted = p.admitted - s.units FROM per_sku s WHERE p.sku = s.sku RETURNING 1)
  SELECT count(*)::int INTO v_lapsed FROM lapsed;
  RETURN v_lapsed;
END
$$;

-- Records a refused order REJECTED (its status, its reason and details, closedAt) with its
-- `order.rejected` event. The caller holds the order's row.
CREATE FUNCTION reject_order(p_order_id UUID, p_refusal JSONB, p_endpoints TEXT[]) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE orders
     SET status = 'REJECTED', closed_at = now(), rejection = p_refusal -> 'details', rejection_code = p_refusal ->> 'code'
   WHERE id = p_order_id;
  PERFORM record_order_event(p_order_id, 'order.rejected', NULL, p_endpoints);
END
$$;

-- Inserts the order and its lines at the catalog's prices: PENDING, or REJECTED by p_refusal
-- (with its event). False, changing nothing, when an order with this id, or this customer's
-- idempotency key, exists already.
CREATE FUNCTION insert_order(
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
  INSERT INTO orders (id, customer_id, status, total_cents, created_at, expires_at, currency, idempotency_key, request_hash,
                      closed_at, rejection, rejection_code)
  SELECT p_order_id, p_customer_id, CASE WHEN p_refusal IS NULL THEN 'PENDING' ELSE 'REJECTED' END::"OrderStatus",
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

-- The API's first step for every order (p_items: [{sku, quantity}], distinct skus). Answers
--   {"outcome":"UNKNOWN_SKU","skus":[...]}                       nothing recorded;
--   {"outcome":"EXISTS"}                                          an order with this id (or key) exists: the
--                                                                 API reads it (a replay, or a racing request);
--   {"outcome":"REFUSED","code","details","order"}                recorded REJECTED, with its event: no workflow;
--   {"outcome":"ADMITTED","order"}                                recorded PENDING, its units admitted: the
--                                                                 API starts its workflow.
-- Sold out as the database already shows it is refused without taking any lock a hold takes, so a
-- drop's sold-out buyers never queue behind the holds. Everything else is decided under the
-- customer's lock and the products' row locks (byte order), after lapsed admissions of its skus are
-- given back.
--
-- Product rows are locked FOR NO KEY UPDATE here and in hold_order: the strength an UPDATE of the
-- counters takes anyway, which conflicts with every other writer's lock (so the byte order still
-- prevents deadlocks) but not with the key-share lock that inserting a refused order's lines takes
-- for their foreign key: a refusal never waits for a hold or an admission.
CREATE FUNCTION admit_order(
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
    IF NOT insert_order(p_order_id, p_customer_id, p_items, p_created_at, p_expires_at, p_currency, p_idempotency_key,
                        p_request_hash, v_refusal, p_endpoints) THEN
      RETURN jsonb_build_object('outcome', 'EXISTS');
    END IF;
    RETURN v_refusal || jsonb_build_object('outcome', 'REFUSED', 'order', order_document(p_order_id));
  END IF;

  PERFORM lock_customer(p_customer_id);
  -- The products before the lines: inserting a line takes a key-share lock on its product (the
  -- foreign key), and two admissions upgrading theirs would deadlock.
  PERFORM 1 FROM products p WHERE p.sku = ANY(v_skus) ORDER BY p.sku COLLATE "C" FOR NO KEY UPDATE;
  IF NOT insert_order(p_order_id, p_customer_id, p_items, p_created_at, p_expires_at, p_currency, p_idempotency_key,
                      p_request_hash, NULL, p_endpoints) THEN
    RETURN jsonb_build_object('outcome', 'EXISTS');
  END IF;
  PERFORM lapse_admissions(v_skus, p_admission_seconds);
  v_refusal := COALESCE(admission_shortage(p_items), purchase_limit_refusal(p_order_id, p_customer_id, p_items, p_max_open_orders));
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

-- Takes back a PENDING order whose workflow could not be started, with its admission; false when
-- the order is not PENDING (its hold has decided it). Order row first, then the products in byte
-- order, as the hold locks them.
CREATE FUNCTION withdraw_order(p_order_id UUID) RETURNS BOOLEAN
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM orders WHERE id = p_order_id AND status = 'PENDING' FOR UPDATE;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM 1 FROM products p WHERE p.sku IN (SELECT i.sku FROM order_items i WHERE i.order_id = p_order_id)
   ORDER BY p.sku COLLATE "C" FOR NO KEY UPDATE;
  PERFORM release_admission(p_order_id);
  DELETE FROM orders WHERE id = p_order_id;
  RETURN true;
END
$$;

-- What an order that is no longer PENDING was decided as; a rejection says why. (PL/pgSQL from
-- here on, like order_document below: its plan is cached.)
CREATE OR REPLACE FUNCTION order_reservation(p_order_id UUID) RETURNS JSONB
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (SELECT CASE WHEN o.status = 'REJECTED'
    THEN jsonb_build_object('outcome', 'REJECTED', 'code', COALESCE(o.rejection_code, 'OUT_OF_STOCK'), 'details', COALESCE(o.rejection, '[]'::jsonb))
         -- As before: the shortages, for a worker of the previous release during a rolling deploy.
         || CASE WHEN COALESCE(o.rejection_code, 'OUT_OF_STOCK') = 'OUT_OF_STOCK' THEN jsonb_build_object('shortages', COALESCE(o.rejection, '[]'::jsonb)) ELSE '{}'::jsonb END
    -- Closed by the reclaim long past its deadline before any hold: nothing may be held now.
    WHEN NOT EXISTS (SELECT 1 FROM stock_movements m WHERE m.order_id = o.id AND m.kind = 'RESERVE')
      THEN jsonb_build_object('outcome', 'EXPIRED_UNHELD')
    ELSE jsonb_build_object(
      'outcome', 'HELD',
      'lines', COALESCE((SELECT jsonb_agg(jsonb_build_object('sku', i.sku, 'quantity', i.quantity, 'unitPriceCents', i.unit_price_cents) ORDER BY i.sku COLLATE "C")
                           FROM order_items i WHERE i.order_id = o.id), '[]'::jsonb),
      'totalCents', o.total_cents)
    END
    FROM orders o WHERE o.id = p_order_id);
END
$$;

-- The order as GET /orders/:orderId and every event show it: the same document as in
-- 20261207000000_one_rule, as PL/pgSQL. A LANGUAGE sql function like it is planned again on every
-- call (~0.6 ms here, most of a refusal's cost); PL/pgSQL caches the plan (~0.07 ms).
CREATE OR REPLACE FUNCTION order_document(p_order_id UUID) RETURNS JSONB
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (
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
             'paymentPending', CASE WHEN order_payment_pending(o) THEN true END))
      FROM orders o WHERE o.id = p_order_id);
END
$$;

-- The hold (the rest as in 20261207000000_one_rule), now also:
--   - under the customer's lock (taken first, as admit_order takes it), the purchase limits are
--     checked again, counting the customer's other orders: an order whose admission lapsed, or
--     that the API never admitted (its row was withdrawn), cannot pass a limit either;
--   - the order's admission is given back in the same transaction, whatever the outcome: held, it
--     is held stock now; rejected, its units are free for the next buyer at once.
-- Answers as before, and for a rejection {"outcome":"REJECTED","code","details"} (+ "shortages" for
-- OUT_OF_STOCK).
DROP FUNCTION hold_order(UUID, TEXT, JSONB, TIMESTAMPTZ, TIMESTAMPTZ, TEXT, TEXT, TEXT, INTEGER, TEXT[]);
CREATE FUNCTION hold_order(
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
BEGIN
  -- A hold waits for other holds of the same skus; past this budget it fails and the activity retries.
  PERFORM set_config('lock_timeout', p_lock_timeout_ms || 'ms', true);
  PERFORM lock_customer(p_customer_id);
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
  v_refusal := COALESCE(v_refusal, purchase_limit_refusal(p_order_id, p_customer_id, p_items, p_max_open_orders));

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

-- The previous signature, for a worker of the previous release during a rolling deploy: the same
-- hold, without a cap on open orders (the per-product limits still apply).
CREATE FUNCTION hold_order(
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
LANGUAGE sql AS $$
  SELECT hold_order(p_order_id, p_customer_id, p_items, p_created_at, p_expires_at, p_currency, p_idempotency_key,
                    p_request_hash, 0, p_lock_timeout_ms, p_endpoints)
$$;

-- For the inventory check: products whose admitted counter disagrees with their admitted lines,
-- and admitted lines of orders no longer PENDING (an admission the hold did not give back).
CREATE FUNCTION admission_disagreements()
RETURNS TABLE (sku TEXT, admitted INTEGER, admitted_lines INTEGER, admitted_of_decided_orders INTEGER)
LANGUAGE sql STABLE AS $$
  SELECT p.sku, p.admitted, COALESCE(l.units, 0)::int, COALESCE(l.decided, 0)::int
    FROM products p
    LEFT JOIN (SELECT i.sku, SUM(i.quantity) AS units, SUM(i.quantity) FILTER (WHERE o.status <> 'PENDING') AS decided
                 FROM order_items i JOIN orders o ON o.id = i.order_id
                WHERE i.admitted_at IS NOT NULL
                GROUP BY i.sku) l ON l.sku = p.sku
   WHERE p.admitted <> COALESCE(l.units, 0) OR COALESCE(l.decided, 0) <> 0
$$;
