-- What is wrong with receipt r as a payment of order o, whatever its time; NULL when nothing is.
--   UNVERIFIED: no succeeded delivery was verified and recorded for it (a signal without a receipt);
--   PAYMENT_ALREADY_USED: the payment id belongs to another order;
--   CURRENCY_MISMATCH / AMOUNT_MISMATCH: not the order's currency / total.

CREATE OR REPLACE FUNCTION public.payment_defect(o orders, r payment_receipts)
 RETURNS text
 LANGUAGE sql
 STABLE
AS $function$
  SELECT CASE
    WHEN r.payment_id IS NULL THEN 'UNVERIFIED'
    WHEN r.order_id <> o.id
      OR EXISTS (SELECT 1 FROM orders other WHERE other.payment_id = r.payment_id AND other.id <> o.id) THEN 'PAYMENT_ALREADY_USED'
    WHEN r.succeeded_at IS NULL THEN 'UNVERIFIED'
    WHEN lower(r.currency) <> lower(o.currency) THEN 'CURRENCY_MISMATCH'
    WHEN r.amount_cents <> o.total_cents THEN 'AMOUNT_MISMATCH'
  END
$function$;
