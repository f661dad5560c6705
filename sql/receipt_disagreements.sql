-- For the inventory check: receipts whose outcome disagrees with their order. A receipt APPLIED
-- to an order that no longer names it as its payment, a paid order whose payment's receipt is not
-- APPLIED (or absent), and a refused receipt that its order names as paid (the predicates:
-- receipt_contradicts_order, paid_order_contradicts_receipt). Each row names, first, the order it is
-- about: the receipt's own order, or the paid order. Every receipt and every paid order, so linear in
-- the history: a full check (and a check before receipt_rechecks is seeded) reads this; a normal
-- one reads rechecked_receipt_disagreements(), the same rows for the orders receipt_rechecks names.

CREATE OR REPLACE FUNCTION public.receipt_disagreements()
 RETURNS TABLE(order_id uuid, payment_id text, receipt_outcome text, order_status text, order_payment_id text)
 LANGUAGE sql
 STABLE
AS $function$
  SELECT r.order_id, r.payment_id, r.outcome::text, o.status::text, o.payment_id
    FROM payment_receipts r JOIN orders o ON o.id = r.order_id
   WHERE receipt_contradicts_order(r.outcome, r.payment_id, o.status, o.payment_id)
  UNION ALL
  SELECT o.id, o.payment_id, r.outcome::text, o.status::text, o.payment_id
    FROM orders o LEFT JOIN payment_receipts r ON r.payment_id = o.payment_id
   WHERE paid_order_contradicts_receipt(o.id, o.status, r.payment_id, r.order_id, r.outcome)
$function$;
