-- Records a refused order REJECTED (its status, its reason and details, closedAt) with its
-- `order.rejected` event. The caller holds the order's row.

CREATE OR REPLACE FUNCTION public.reject_order(p_order_id uuid, p_refusal jsonb, p_endpoints text[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
  UPDATE orders
     SET status = 'REJECTED', closed_at = now(), rejection = p_refusal -> 'details', rejection_code = p_refusal ->> 'code'
   WHERE id = p_order_id;
  PERFORM record_order_event(p_order_id, 'order.rejected', NULL, p_endpoints);
END
$function$;
