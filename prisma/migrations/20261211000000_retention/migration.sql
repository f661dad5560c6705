-- Retention (docs/operations.md, "Retention"): closed orders go RETENTION_DAYS after they closed,
-- with their lines, payments, refunds, receipts, extensions, ledger rows and events; delivered or
-- failed event deliveries go EVENT_RETENTION_DAYS after they finished. Every worker prunes in
-- small batches (src/retention.ts), claiming rows FOR UPDATE SKIP LOCKED, so workers share the
-- work, never wait on one another, and never on a row anyone else holds.

-- What the pruned ledger rows explained, per sku and kind: the sum of their quantities and how
-- many they were. The inventory check reads this table and stock_movements as one ledger, so
-- conservation (invariant 2) is checked against the whole story after pruning too.
CREATE TABLE "stock_opening_balances" (
    "sku" TEXT NOT NULL,
    "kind" "StockMovementKind" NOT NULL,
    "quantity" BIGINT NOT NULL DEFAULT 0,
    "movements" BIGINT NOT NULL DEFAULT 0,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "stock_opening_balances_pkey" PRIMARY KEY ("sku", "kind"),
    CONSTRAINT "stock_opening_balances_sku_fkey" FOREIGN KEY ("sku") REFERENCES "products"("sku") ON DELETE RESTRICT ON UPDATE CASCADE
);

-- The pruner finds the oldest closed orders through this index (and the oldest-row gauge reads its
-- first entry); open orders are not in it.
CREATE INDEX "orders_closed_at_idx" ON "orders" ("closed_at")
  WHERE "status" IN ('PAID', 'EXPIRED', 'CANCELLED', 'REJECTED');

-- When a delivery stopped being tried: delivered, or given up (its last attempt). Called with the
-- row's columns, so the index below and the queries share one expression.
CREATE FUNCTION delivery_finished_at(p_delivered_at TIMESTAMPTZ, p_last_attempt_at TIMESTAMPTZ, p_created_at TIMESTAMPTZ)
RETURNS TIMESTAMPTZ
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT COALESCE(p_delivered_at, p_last_attempt_at, p_created_at)
$$;

CREATE INDEX "order_event_deliveries_finished_idx"
  ON "order_event_deliveries" (delivery_finished_at("delivered_at", "last_attempt_at", "created_at"))
  WHERE "state" <> 'PENDING';

-- One batch of closed orders older than p_retention_seconds (by closedAt), pruned with everything
-- that hangs off them, in one short transaction. An order with an event still to be delivered
-- (PENDING to some endpoint) is kept until it is delivered or given up. The order rows are claimed
-- FOR UPDATE SKIP LOCKED; nothing else is locked but those orders' own rows (and, the first time a
-- sku gets an opening balance, a key-share lock on its product, which no hold conflicts with).
-- The ledger rows' sums move into stock_opening_balances in the same statement that deletes them.
-- Answers the rows deleted per table (none when there was nothing to prune).
CREATE FUNCTION prune_closed_orders(p_retention_seconds INTEGER, p_batch_size INTEGER)
RETURNS TABLE (table_name TEXT, deleted BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
  v_ids UUID[];
  v_count BIGINT;
BEGIN
  SELECT array_agg(c.id) INTO v_ids FROM (
    SELECT o.id FROM orders o
     WHERE o.status IN ('PAID', 'EXPIRED', 'CANCELLED', 'REJECTED')
       AND o.closed_at < now() - make_interval(secs => p_retention_seconds)
       -- Through its events (by order) to their deliveries (by event): two primary-key-like probes.
       AND NOT EXISTS (SELECT 1 FROM order_events e JOIN order_event_deliveries d ON d.event_id = e.id
                        WHERE e.order_id = o.id AND d.state = 'PENDING')
     ORDER BY o.closed_at
     LIMIT p_batch_size
       FOR UPDATE SKIP LOCKED) c;
  IF v_ids IS NULL THEN
    RETURN;
  END IF;

  -- Per sku and kind in a fixed order, so two pruners adding to one balance never deadlock.
  WITH gone AS (
    DELETE FROM stock_movements m WHERE m.order_id = ANY(v_ids) RETURNING m.sku, m.kind, m.quantity
  ), summed AS (
    SELECT g.sku, g.kind, SUM(g.quantity)::bigint AS quantity, count(*)::bigint AS movements FROM gone g GROUP BY g.sku, g.kind
  ), carried AS (
    INSERT INTO stock_opening_balances AS b (sku, kind, quantity, movements)
    SELECT s.sku, s.kind, s.quantity, s.movements FROM summed s ORDER BY s.sku COLLATE "C", s.kind
    ON CONFLICT (sku, kind) DO UPDATE
      SET quantity = b.quantity + EXCLUDED.quantity, movements = b.movements + EXCLUDED.movements, updated_at = now()
    RETURNING 1
  )
  SELECT COALESCE(SUM(s.movements), 0)::bigint INTO v_count FROM summed s;
  table_name := 'stock_movements'; deleted := v_count; RETURN NEXT;

  DELETE FROM refunds WHERE order_id = ANY(v_ids);
  GET DIAGNOSTICS v_count = ROW_COUNT;
  table_name := 'refunds'; deleted := v_count; RETURN NEXT;

  DELETE FROM payments WHERE order_id = ANY(v_ids);
  GET DIAGNOSTICS v_count = ROW_COUNT;
  table_name := 'payments'; deleted := v_count; RETURN NEXT;

  DELETE FROM payment_receipts WHERE order_id = ANY(v_ids);
  GET DIAGNOSTICS v_count = ROW_COUNT;
  table_name := 'payment_receipts'; deleted := v_count; RETURN NEXT;

  DELETE FROM order_extensions WHERE order_id = ANY(v_ids);
  GET DIAGNOSTICS v_count = ROW_COUNT;
  table_name := 'order_extensions'; deleted := v_count; RETURN NEXT;

  -- Their deliveries (all delivered or given up), found through the events (by order) and
  -- deleted first, so they are counted.
  WITH deliveries AS (
    DELETE FROM order_event_deliveries d USING order_events e
     WHERE e.order_id = ANY(v_ids) AND d.event_id = e.id
    RETURNING 1
  )
  SELECT count(*) INTO v_count FROM deliveries;
  table_name := 'order_event_deliveries'; deleted := v_count; RETURN NEXT;

  DELETE FROM order_events WHERE order_id = ANY(v_ids);
  GET DIAGNOSTICS v_count = ROW_COUNT;
  table_name := 'order_events'; deleted := v_count; RETURN NEXT;

  DELETE FROM order_items WHERE order_id = ANY(v_ids);
  GET DIAGNOSTICS v_count = ROW_COUNT;
  table_name := 'order_items'; deleted := v_count; RETURN NEXT;

  DELETE FROM orders WHERE id = ANY(v_ids);
  GET DIAGNOSTICS v_count = ROW_COUNT;
  table_name := 'orders'; deleted := v_count; RETURN NEXT;
END
$$;

-- One batch of event deliveries delivered or given up more than p_retention_seconds ago (of orders
-- still kept: the events themselves stay with their order). Answers how many went.
CREATE FUNCTION prune_finished_deliveries(p_retention_seconds INTEGER, p_batch_size INTEGER)
RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
  v_count BIGINT;
BEGIN
  WITH claimed AS (
    SELECT d.event_id, d.endpoint FROM order_event_deliveries d
     WHERE d.state <> 'PENDING'
       AND delivery_finished_at(d.delivered_at, d.last_attempt_at, d.created_at) < now() - make_interval(secs => p_retention_seconds)
     ORDER BY delivery_finished_at(d.delivered_at, d.last_attempt_at, d.created_at)
     LIMIT p_batch_size
       FOR UPDATE SKIP LOCKED
  ), gone AS (
    DELETE FROM order_event_deliveries d USING claimed c
     WHERE d.event_id = c.event_id AND d.endpoint = c.endpoint
    RETURNING 1
  )
  SELECT count(*) INTO v_count FROM gone;
  RETURN v_count;
END
$$;

-- The age in seconds of the oldest row retention will prune: the longest-closed order and the
-- longest-finished delivery (0 when there is none). Each is the first entry of its index.
CREATE FUNCTION retention_oldest_ages()
RETURNS TABLE (table_name TEXT, age_seconds FLOAT8)
LANGUAGE sql STABLE AS $$
  SELECT 'orders', COALESCE(EXTRACT(EPOCH FROM now() - (
           SELECT o.closed_at FROM orders o
            WHERE o.status IN ('PAID', 'EXPIRED', 'CANCELLED', 'REJECTED') AND o.closed_at IS NOT NULL
            ORDER BY o.closed_at LIMIT 1)), 0)::float8
  UNION ALL
  SELECT 'order_event_deliveries', COALESCE(EXTRACT(EPOCH FROM now() - (
           SELECT delivery_finished_at(d.delivered_at, d.last_attempt_at, d.created_at) FROM order_event_deliveries d
            WHERE d.state <> 'PENDING'
            ORDER BY delivery_finished_at(d.delivered_at, d.last_attempt_at, d.created_at) LIMIT 1)), 0)::float8
$$;
