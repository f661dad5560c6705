-- Writes one event and one delivery per endpoint. The caller holds the order's row lock (or
-- created the row), so seq follows the order of the changes.

CREATE OR REPLACE FUNCTION public.record_order_event(p_order_id uuid, p_type text, p_extra jsonb, p_endpoints text[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_id UUID;
  v_seq INTEGER;
BEGIN
  SELECT COALESCE(MAX(seq), 0) + 1 INTO v_seq FROM order_events WHERE order_id = p_order_id;
  INSERT INTO order_events (order_id, seq, type, data)
  VALUES (p_order_id, v_seq, p_type, jsonb_build_object('order', order_document(p_order_id)) || COALESCE(p_extra, '{}'::jsonb))
  RETURNING id INTO v_id;
  INSERT INTO order_event_deliveries (event_id, endpoint, order_id, seq)
  SELECT v_id, e, p_order_id, v_seq FROM unnest(p_endpoints) AS e;
END
$function$;
