-- Moves an AWAITING_PAYMENT order (its row locked by the caller) to its final status, and its
-- held stock with it: to sold for PAID, back on sale otherwise. Products are locked in byte order
-- (COLLATE "C"), as every writer of products locks them, so no two transactions deadlock
-- whatever the database's collation; FOR NO KEY UPDATE, the strength of the UPDATE itself, so the
-- key-share locks of new order lines (foreign keys to products) never wait on a settlement. The ledger row goes first; only a new one moves counters.

CREATE OR REPLACE FUNCTION public.settle_order(p_order_id uuid, p_status "OrderStatus", p_payment_id text, p_endpoints text[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_kind "StockMovementKind" := CASE WHEN p_status = 'PAID' THEN 'COMMIT' ELSE 'RELEASE' END;
  -- One instant for the order and its ledger rows: closedAt is when the stock moved.
  v_at TIMESTAMPTZ := clock_timestamp();
BEGIN
  UPDATE orders
     SET status = p_status, closed_at = v_at,
         paid_at = CASE WHEN p_status = 'PAID' THEN v_at END,
         payment_id = CASE WHEN p_status = 'PAID' THEN p_payment_id END
   WHERE id = p_order_id;
  PERFORM 1 FROM products p
   WHERE p.sku IN (SELECT i.sku FROM order_items i WHERE i.order_id = p_order_id)
   ORDER BY p.sku COLLATE "C" FOR NO KEY UPDATE;
  WITH moved AS (
    INSERT INTO stock_movements (sku, order_id, kind, quantity, created_at)
    SELECT i.sku, i.order_id, v_kind, i.quantity, v_at FROM order_items i WHERE i.order_id = p_order_id
    ON CONFLICT (order_id, sku, kind) DO NOTHING
    RETURNING sku, quantity
  )
  UPDATE products p
     SET reserved = p.reserved - m.quantity,
         available = p.available + CASE WHEN v_kind = 'RELEASE' THEN m.quantity ELSE 0 END,
         sold = p.sold + CASE WHEN v_kind = 'COMMIT' THEN m.quantity ELSE 0 END,
         updated_at = now()
    FROM moved m WHERE p.sku = m.sku;
  IF p_status = 'PAID' THEN
    INSERT INTO payments (order_id, payment_id, amount_cents, outcome)
    SELECT p_order_id, r.payment_id, r.amount_cents, 'APPLIED' FROM payment_receipts r WHERE r.payment_id = p_payment_id
    ON CONFLICT DO NOTHING;
  END IF;
  -- Every succeeded payment of the order is now decided: the one that paid it, or refused.
  UPDATE payment_receipts
     SET outcome = (CASE WHEN payment_id = p_payment_id THEN 'APPLIED' ELSE 'REFUSED' END)::"ReceiptOutcome"
   WHERE order_id = p_order_id AND succeeded_at IS NOT NULL AND outcome IS NULL;
  PERFORM record_order_event(p_order_id,
    CASE p_status WHEN 'PAID' THEN 'order.paid' WHEN 'EXPIRED' THEN 'order.expired' ELSE 'order.cancelled' END,
    NULL, p_endpoints);
END
$function$;
