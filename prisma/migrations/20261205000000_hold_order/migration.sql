-- The hold (reserveStock) as one statement: one round trip instead of about twelve, and the
-- whole decision under the order's and the products' row locks. Returns
--   {"outcome":"HELD","lines":[{sku,quantity,unitPriceCents}],"totalCents":n}
--   {"outcome":"REJECTED","shortages":[{sku,requested,available}]}
--   {"outcome":"UNKNOWN_SKU","sku":s}            (nothing changed)
-- and for an order already decided (a retried attempt), that decision, changing nothing.

-- What an order that is no longer PENDING was decided as.
CREATE FUNCTION order_reservation(p_order_id UUID) RETURNS JSONB
LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN o.status = 'REJECTED'
    THEN jsonb_build_object('outcome', 'REJECTED', 'shortages', COALESCE(o.rejection, '[]'::jsonb))
    ELSE jsonb_build_object(
      'outcome', 'HELD',
      'lines', COALESCE((SELECT jsonb_agg(jsonb_build_object('sku', i.sku, 'quantity', i.quantity, 'unitPriceCents', i.unit_price_cents) ORDER BY i.sku COLLATE "C")
                           FROM order_items i WHERE i.order_id = o.id), '[]'::jsonb),
      'totalCents', o.total_cents)
    END
    FROM orders o WHERE o.id = p_order_id
$$;

-- p_items: [{sku, quantity}] with distinct skus (the API validates both).
CREATE FUNCTION hold_order(
  p_order_id UUID,
  p_customer_id TEXT,
  p_items JSONB,
  p_created_at TIMESTAMPTZ,
  p_expires_at TIMESTAMPTZ,
  p_deadline_movable BOOLEAN,
  p_idempotency_key TEXT,
  p_request_hash TEXT,
  p_endpoints TEXT[]
) RETURNS JSONB
LANGUAGE plpgsql
-- A hold waits for other holds of the same skus; past this it fails and the activity retries,
-- inside its 10 s start-to-close timeout.
SET lock_timeout = '8s'
AS $$
DECLARE
  v_status TEXT;
  v_unknown TEXT;
  v_shortages JSONB;
  v_lines JSONB;
  v_total BIGINT;
BEGIN
  -- The API's PENDING row, locked; or the decision of an earlier attempt.
  SELECT status::text INTO v_status FROM orders WHERE id = p_order_id FOR UPDATE;
  IF FOUND AND v_status <> 'PENDING' THEN
    RETURN order_reservation(p_order_id);
  END IF;

  -- In sku order (byte order, as every other writer of products sorts), so holds never deadlock.
  PERFORM 1 FROM products p WHERE p.sku IN (SELECT h.sku FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER)) ORDER BY p.sku COLLATE "C" FOR UPDATE;

  SELECT h.sku INTO v_unknown FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER)
   WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.sku = h.sku) ORDER BY h.sku COLLATE "C" LIMIT 1;
  IF v_unknown IS NOT NULL THEN
    RETURN jsonb_build_object('outcome', 'UNKNOWN_SKU', 'sku', v_unknown);
  END IF;

  IF v_status IS NULL THEN
    -- No PENDING row: the order was started by an API from before PENDING rows, or its start
    -- failed and the API withdrew the row. A concurrent attempt of this same hold may insert it first.
    INSERT INTO orders (id, customer_id, status, total_cents, created_at, expires_at, idempotency_key, request_hash)
    VALUES (p_order_id, p_customer_id, 'PENDING', 0, p_created_at, p_expires_at, p_idempotency_key, p_request_hash)
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

  SELECT jsonb_agg(jsonb_build_object('sku', h.sku, 'requested', h.quantity, 'available', p.available) ORDER BY h.sku COLLATE "C")
    INTO v_shortages
    FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) JOIN products p ON p.sku = h.sku
   WHERE p.available < h.quantity;

  -- The lines at the catalog's prices (a rejection records them too).
  SELECT jsonb_agg(jsonb_build_object('sku', h.sku, 'quantity', h.quantity, 'unitPriceCents', p.price_cents) ORDER BY h.sku COLLATE "C"),
         SUM(h.quantity::bigint * p.price_cents)
    INTO v_lines, v_total
    FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) JOIN products p ON p.sku = h.sku;

  DELETE FROM order_items WHERE order_id = p_order_id;
  INSERT INTO order_items (order_id, sku, quantity, unit_price_cents)
  SELECT p_order_id, h.sku, h.quantity, p.price_cents FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) JOIN products p ON p.sku = h.sku;

  IF v_shortages IS NOT NULL THEN
    UPDATE orders
       SET status = 'REJECTED', total_cents = v_total, created_at = p_created_at, expires_at = p_expires_at,
           closed_at = now(), rejection = v_shortages
     WHERE id = p_order_id;
    PERFORM record_order_event(p_order_id, 'order.rejected', NULL, p_endpoints);
    RETURN jsonb_build_object('outcome', 'REJECTED', 'shortages', v_shortages);
  END IF;

  UPDATE products p
     SET available = p.available - h.quantity, reserved = p.reserved + h.quantity, updated_at = now()
    FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) WHERE p.sku = h.sku;
  INSERT INTO stock_movements (sku, order_id, kind, quantity)
  SELECT h.sku, p_order_id, 'RESERVE', h.quantity FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) ORDER BY h.sku COLLATE "C";
  UPDATE orders
     SET status = 'AWAITING_PAYMENT', total_cents = v_total, created_at = p_created_at, expires_at = p_expires_at,
         deadline_movable = p_deadline_movable
   WHERE id = p_order_id;
  PERFORM record_order_event(p_order_id, 'order.placed', NULL, p_endpoints);
  RETURN jsonb_build_object('outcome', 'HELD', 'lines', v_lines, 'totalCents', v_total);
END
$$;
