-- What the purchase limits say about order p_order_id of this channel's customer; NULL when they allow it.
--   {"code":"TOO_MANY_OPEN_ORDERS","details":{"limit","openOrders"}}: p_max_open_orders > 0 and the
--     customer already has that many orders open (awaiting payment, or admitted and in flight);
--   {"code":"PURCHASE_LIMIT_EXCEEDED","details":[{sku,limit,alreadyHeld,requested}]}: the items whose
--     product has max_per_customer and whose units in the customer's orders awaiting payment, paid
--     or admitted, plus those requested, would exceed it.
-- Only the customer's orders of this channel count, never p_order_id itself. The caller holds lock_customer.

CREATE OR REPLACE FUNCTION public.purchase_limit_refusal(p_channel text, p_order_id uuid, p_customer_id text, p_items jsonb, p_max_open_orders integer)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE
AS $function$
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
$function$;
