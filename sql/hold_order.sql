-- The hold (reserveStock) as one statement, under the order's and the products' row locks
-- (p_items: [{sku, quantity}], distinct skus). Answers
--   {"outcome":"HELD","lines":[{sku,quantity,unitPriceCents}],"totalCents":n}
--   {"outcome":"REJECTED","code","details"} (+ "shortages" for OUT_OF_STOCK)
--   {"outcome":"UNKNOWN_SKU","sku":s}            (nothing changed)
-- and for an order already decided (a retried attempt), that decision, changing nothing.
-- Under the customer's lock of the order's channel (read from its row; taken first, as admit_order
-- takes it) the purchase limits are checked again, so an order whose admission lapsed cannot pass
-- a limit either; the order's admission is given back in the same transaction, whatever the outcome.
-- The first overload is the previous signature, for a worker of the previous release during a
-- rolling deploy: the same hold without a cap on open orders.

CREATE OR REPLACE FUNCTION public.hold_order(p_order_id uuid, p_customer_id text, p_items jsonb, p_created_at timestamp with time zone, p_expires_at timestamp with time zone, p_currency text, p_idempotency_key text, p_request_hash text, p_lock_timeout_ms integer, p_endpoints text[])
 RETURNS jsonb
 LANGUAGE sql
AS $function$
  SELECT hold_order(p_order_id, p_customer_id, p_items, p_created_at, p_expires_at, p_currency, p_idempotency_key,
                    p_request_hash, 0, p_lock_timeout_ms, p_endpoints)
$function$;

CREATE OR REPLACE FUNCTION public.hold_order(p_order_id uuid, p_customer_id text, p_items jsonb, p_created_at timestamp with time zone, p_expires_at timestamp with time zone, p_currency text, p_idempotency_key text, p_request_hash text, p_max_open_orders integer, p_lock_timeout_ms integer, p_endpoints text[])
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
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
$function$;
