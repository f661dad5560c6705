-- The rows of receipt_disagreements() that name one of p_order_ids (their first column): the
-- receipts of those orders that contradict them, and those of the orders that are PAID without
-- their receipt agreeing. Read by key, whatever the history kept.

CREATE OR REPLACE FUNCTION public.receipt_disagreements_of(p_order_ids uuid[])
 RETURNS TABLE(order_id uuid, payment_id text, receipt_outcome text, order_status text, order_payment_id text)
 LANGUAGE sql
 STABLE
AS $function$
  SELECT r.order_id, r.payment_id, r.outcome::text, o.status::text, o.payment_id
    FROM payment_receipts r JOIN orders o ON o.id = r.order_id
   WHERE r.order_id = ANY(p_order_ids)
     AND receipt_contradicts_order(r.outcome, r.payment_id, o.status, o.payment_id)
  UNION ALL
  SELECT o.id, o.payment_id, r.outcome::text, o.status::text, o.payment_id
    FROM orders o LEFT JOIN payment_receipts r ON r.payment_id = o.payment_id
   WHERE o.id = ANY(p_order_ids)
     AND paid_order_contradicts_receipt(o.id, o.status, r.payment_id, r.order_id, r.outcome)
$function$;
