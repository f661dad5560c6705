-- The API's first step for every order, in the caller's channel (p_items: [{sku, quantity}],
-- distinct skus). Answers
--   {"outcome":"UNKNOWN_SKU","skus":[...]}             nothing recorded;
--   {"outcome":"EXISTS"}                                an order with this id (or the channel's customer's key)
--                                                       exists: the API reads it (a replay, or a racing request);
--   {"outcome":"REFUSED","code","details","order"}      recorded REJECTED, with its event: no workflow;
--   {"outcome":"ADMITTED","order"}                      recorded PENDING, its units admitted: the API starts
--                                                       its workflow.
-- Sold out as the database already shows it is refused without taking any lock a hold takes, so a
-- drop's sold-out buyers never queue behind the holds. Everything else is decided under the
-- channel's customer's lock and the products' row locks (byte order, FOR NO KEY UPDATE: the
-- strength an UPDATE of the counters takes anyway, which does not conflict with the key-share lock
-- that inserting a refused order's lines takes), after lapsed admissions of its skus are given back.

CREATE OR REPLACE FUNCTION public.admit_order(p_channel text, p_order_id uuid, p_customer_id text, p_items jsonb, p_created_at timestamp with time zone, p_expires_at timestamp with time zone, p_currency text, p_idempotency_key text, p_request_hash text, p_max_open_orders integer, p_admission_seconds integer, p_lock_timeout_ms integer, p_endpoints text[])
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
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
    IF NOT insert_order(p_channel, p_order_id, p_customer_id, p_items, p_created_at, p_expires_at, p_currency, p_idempotency_key,
                        p_request_hash, v_refusal, p_endpoints) THEN
      RETURN jsonb_build_object('outcome', 'EXISTS');
    END IF;
    RETURN v_refusal || jsonb_build_object('outcome', 'REFUSED', 'order', order_document(p_order_id));
  END IF;

  PERFORM lock_customer(p_channel, p_customer_id);
  -- The products before the lines: inserting a line takes a key-share lock on its product (the
  -- foreign key), and two admissions upgrading theirs would deadlock.
  PERFORM 1 FROM products p WHERE p.sku = ANY(v_skus) ORDER BY p.sku COLLATE "C" FOR NO KEY UPDATE;
  IF NOT insert_order(p_channel, p_order_id, p_customer_id, p_items, p_created_at, p_expires_at, p_currency, p_idempotency_key,
                      p_request_hash, NULL, p_endpoints) THEN
    RETURN jsonb_build_object('outcome', 'EXISTS');
  END IF;
  PERFORM lapse_admissions(v_skus, p_admission_seconds);
  v_refusal := COALESCE(admission_shortage(p_items), purchase_limit_refusal(p_channel, p_order_id, p_customer_id, p_items, p_max_open_orders));
  IF v_refusal IS NOT NULL THEN
    PERFORM reject_order(p_order_id, v_refusal, p_endpoints);
    RETURN v_refusal || jsonb_build_object('outcome', 'REFUSED', 'order', order_document(p_order_id));
  END IF;
  UPDATE order_items SET admitted_at = now() WHERE order_id = p_order_id;
  UPDATE products p SET admitted = p.admitted + h.quantity
    FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) WHERE p.sku = h.sku;
  RETURN jsonb_build_object('outcome', 'ADMITTED', 'order', order_document(p_order_id));
END
$function$;
