-- A receipt's outcome contradicts its own order: APPLIED to an order that is not PAID with it, or
-- REFUSED while its order names it as its payment. One half of receipt_disagreements and
-- receipt_disagreements_of, inlined into both.

CREATE OR REPLACE FUNCTION public.receipt_contradicts_order(p_outcome "ReceiptOutcome", p_payment_id text, p_order_status "OrderStatus", p_order_payment_id text)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT (p_outcome = 'APPLIED' AND (p_order_status <> 'PAID' OR p_order_payment_id IS DISTINCT FROM p_payment_id))
      OR (p_outcome = 'REFUSED' AND p_order_payment_id = p_payment_id)
$function$;
