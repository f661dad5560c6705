-- For the inventory check: receipts whose outcome disagrees with their order. A receipt APPLIED
-- to an order that no longer names it as its payment, a paid order whose payment's receipt is not
-- APPLIED (or absent), and a refused receipt that its order names as paid.

CREATE OR REPLACE FUNCTION public.receipt_disagreements()
 RETURNS TABLE(order_id uuid, payment_id text, receipt_outcome text, order_status text, order_payment_id text)
 LANGUAGE sql
 STABLE
AS $function$
  SELECT r.order_id, r.payment_id, r.outcome::text, o.status::text, o.payment_id
    FROM payment_receipts r JOIN orders o ON o.id = r.order_id
   WHERE (r.outcome = 'APPLIED' AND (o.status <> 'PAID' OR o.payment_id IS DISTINCT FROM r.payment_id))
      OR (r.outcome = 'REFUSED' AND o.payment_id = r.payment_id)
  UNION ALL
  SELECT o.id, o.payment_id, r.outcome::text, o.status::text, o.payment_id
    FROM orders o LEFT JOIN payment_receipts r ON r.payment_id = o.payment_id
   WHERE o.status = 'PAID' AND (r.payment_id IS NULL OR r.order_id <> o.id OR r.outcome IS DISTINCT FROM 'APPLIED')
$function$;
