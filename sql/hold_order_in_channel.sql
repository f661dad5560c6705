-- hold_order for an order of a channel. The API records the PENDING row, with its channel, before
-- the workflow starts; when it withdrew that row (a start that seemed to fail reached Temporal after
-- all), hold_order would make the row itself in the default channel. So the row is made here first,
-- in the order's channel, under the channel's customer's lock (taken first, as admit_order takes
-- it), as hold_order would make it (not for an unknown sku: it answers that without a row); then held.

CREATE OR REPLACE FUNCTION public.hold_order_in_channel(p_channel text, p_order_id uuid, p_customer_id text, p_items jsonb, p_created_at timestamp with time zone, p_expires_at timestamp with time zone, p_currency text, p_idempotency_key text, p_request_hash text, p_max_open_orders integer, p_lock_timeout_ms integer, p_endpoints text[])
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
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
$function$;
