-- One batch of closed orders older than p_retention_seconds (by closedAt), pruned with everything
-- that hangs off them, in one short transaction. An order with an event still to be delivered
-- (PENDING to some endpoint) is kept until it is delivered or given up. The order rows are claimed
-- FOR UPDATE SKIP LOCKED; nothing else is locked but those orders' own rows (and, the first time a
-- sku gets an opening balance, a key-share lock on its product, which no hold conflicts with).
-- The ledger rows' sums move into stock_opening_balances in the same statement that deletes them.
-- Only orders whose every ledger row the ledger checkpoint already counts (id <= through_id;
-- sql/advance_ledger_checkpoint.sql) are pruned: moving such rows into the opening balances changes
-- neither side of the checkpoint's invariant (checkpoint + rows above through_id = opening balances
-- + all rows), where a row above through_id would leave the left side without being counted in the
-- checkpoint. Until the checkpoint is first built only orders without ledger rows go.
-- Their rows of receipt_rechecks go too, after their receipts (whose deletion writes some), skipping
-- rows a drain holds (a row naming an order that no longer exists names nothing; the next drain
-- deletes it). Answers the rows deleted per table (none when there was nothing to prune;
-- receipt_rechecks, bookkeeping, is not counted).

CREATE OR REPLACE FUNCTION public.prune_closed_orders(p_retention_seconds integer, p_batch_size integer)
 RETURNS TABLE(table_name text, deleted bigint)
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_ids UUID[];
  v_count BIGINT;
  v_through BIGINT;
BEGIN
  v_through := COALESCE((SELECT p.through_id FROM stock_ledger_checkpoint_position p), 0);
  SELECT array_agg(c.id) INTO v_ids FROM (
    SELECT o.id FROM orders o
     WHERE o.status IN ('PAID', 'EXPIRED', 'CANCELLED', 'REJECTED')
       AND o.closed_at < now() - make_interval(secs => p_retention_seconds)
       -- Through its events (by order) to their deliveries (by event): two primary-key-like probes.
       AND NOT EXISTS (SELECT 1 FROM order_events e JOIN order_event_deliveries d ON d.event_id = e.id
                        WHERE e.order_id = o.id AND d.state = 'PENDING')
       -- Through the ledger's (order_id, sku, kind) key: a few rows per order.
       AND NOT EXISTS (SELECT 1 FROM stock_movements m WHERE m.order_id = o.id AND m.id > v_through)
     ORDER BY o.closed_at
     LIMIT p_batch_size
       FOR UPDATE SKIP LOCKED) c;
  IF v_ids IS NULL THEN
    RETURN;
  END IF;

  -- Per sku and kind in a fixed order, so two pruners adding to one balance never deadlock.
  WITH gone AS (
    -- A closed order gets no ledger row after the one that closed it; the bound is kept anyway, so
    -- that even then no row leaves unless the checkpoint counts it.
    DELETE FROM stock_movements m WHERE m.order_id = ANY(v_ids) AND m.id <= v_through RETURNING m.sku, m.kind, m.quantity
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

  -- The receipts' rechecks of these orders (those their receipts' deletion just wrote among them).
  DELETE FROM receipt_rechecks c
   WHERE c.id IN (SELECT k.id FROM receipt_rechecks k WHERE k.order_id = ANY(v_ids) FOR UPDATE SKIP LOCKED);

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
$function$;
