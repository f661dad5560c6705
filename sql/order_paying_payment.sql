-- The payment that pays the order in time, if any: the first applicable receipt.

CREATE OR REPLACE FUNCTION public.order_paying_payment(o orders)
 RETURNS text
 LANGUAGE sql
 STABLE
AS $function$
  SELECT r.payment_id FROM payment_receipts r
   WHERE r.order_id = o.id AND payment_applies(o, r)
   ORDER BY r.succeeded_at, r.payment_id
   LIMIT 1
$function$;
