-- Inserts the order, in its channel, and its lines at the catalog's prices: PENDING, or REJECTED by
-- p_refusal (with its event). False, changing nothing, when an order with this id, or this
-- channel's customer's idempotency key, exists already.

CREATE OR REPLACE FUNCTION public.insert_order(p_channel text, p_order_id uuid, p_customer_id text, p_items jsonb, p_created_at timestamp with time zone, p_expires_at timestamp with time zone, p_currency text, p_idempotency_key text, p_request_hash text, p_refusal jsonb, p_endpoints text[])
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
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
$function$;
