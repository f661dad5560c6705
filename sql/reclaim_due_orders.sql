-- The reclaim: one batch of due orders, settled by the same rule (order_transition) without
-- waiting for their workflows. Claims rows FOR UPDATE SKIP LOCKED, so any number of workers share
-- the work and never wait on each other or on an order being decided; then locks the batch's
-- products in byte order, once for the whole batch, before settling any order (taking them order
-- by order would hold one order's products while waiting for the next one's, out of byte order).
-- A due order paid in time ends PAID here (its workflow, if any, finds that decided); every other
-- due order ends EXPIRED.
-- It also closes PENDING orders whose hold never ran (the API's start was lost, or no worker took
-- it): they hold no stock, and a minute past their deadline (longer than any placement waits:
-- ORDER_DECISION_WAIT_SECONDS is at most 60) they expire holding nothing, their admission given
-- back; a hold that runs later finds them EXPIRED (order_reservation) and holds nothing. Their
-- lag_seconds is NULL.

CREATE OR REPLACE FUNCTION public.reclaim_due_orders(p_batch_size integer, p_endpoints text[])
 RETURNS TABLE(order_id uuid, status text, lag_seconds double precision)
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_ids UUID[];
  v_unheld UUID[];
  o orders;
  v_status "OrderStatus";
BEGIN
  SELECT array_agg(c.id) INTO v_ids FROM (
    SELECT d.id FROM orders d
     WHERE d.status = 'AWAITING_PAYMENT' AND order_is_due(d)
     ORDER BY order_deadline(d.expires_at, d.payment_pending_until)
     LIMIT p_batch_size
       FOR UPDATE SKIP LOCKED) c;
  SELECT array_agg(c.id) INTO v_unheld FROM (
    SELECT d.id FROM orders d
     WHERE d.status = 'PENDING' AND d.expires_at <= now() - interval '1 minute'
     ORDER BY d.expires_at
     LIMIT p_batch_size
       FOR UPDATE SKIP LOCKED) c;
  IF v_ids IS NULL AND v_unheld IS NULL THEN
    RETURN;
  END IF;
  PERFORM 1 FROM products p
   WHERE p.sku IN (SELECT DISTINCT i.sku FROM order_items i
                    WHERE i.order_id = ANY(v_ids) OR i.order_id = ANY(v_unheld))
   ORDER BY p.sku COLLATE "C" FOR NO KEY UPDATE;

  FOR o IN SELECT * FROM orders d WHERE d.id = ANY(v_ids) ORDER BY order_deadline(d.expires_at, d.payment_pending_until) LOOP
    v_status := order_transition(o, 'RECLAIM');
    CONTINUE WHEN v_status IS NULL;
    PERFORM settle_order(o.id, v_status, order_paying_payment(o), p_endpoints);
    order_id := o.id;
    status := v_status::text;
    lag_seconds := EXTRACT(EPOCH FROM (clock_timestamp() - order_deadline(o.expires_at, o.payment_pending_until)));
    RETURN NEXT;
  END LOOP;

  FOR o IN SELECT * FROM orders d WHERE d.id = ANY(v_unheld) ORDER BY d.expires_at LOOP
    UPDATE orders SET status = 'EXPIRED', closed_at = clock_timestamp() WHERE id = o.id;
    PERFORM release_admission(o.id);
    PERFORM record_order_event(o.id, 'order.expired', NULL, p_endpoints);
    order_id := o.id;
    status := 'EXPIRED';
    lag_seconds := NULL;
    RETURN NEXT;
  END LOOP;
END
$function$;
