-- A PAID order whose payment's receipt (found by the order's payment_id; null columns: none) is
-- missing, belongs to another order or is not APPLIED. The other half of receipt_disagreements and
-- receipt_disagreements_of, inlined into both.

CREATE OR REPLACE FUNCTION public.paid_order_contradicts_receipt(p_order_id uuid, p_order_status "OrderStatus", p_receipt_payment_id text, p_receipt_order_id uuid, p_receipt_outcome "ReceiptOutcome")
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT p_order_status = 'PAID'
     AND (p_receipt_payment_id IS NULL OR p_receipt_order_id <> p_order_id OR p_receipt_outcome IS DISTINCT FROM 'APPLIED')
$function$;
