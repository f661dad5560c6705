-- What the fast inventory check reports as receipts disagreeing with their orders: the
-- disagreements of the orders receipt_rechecks names. Once the table is seeded
-- (receipt_recheck_seeding), the same rows as receipt_disagreements(), at the cost of the rows
-- waiting in the table (about a retention tick of changes, plus the orders that disagree).

CREATE OR REPLACE FUNCTION public.rechecked_receipt_disagreements()
 RETURNS TABLE(order_id uuid, payment_id text, receipt_outcome text, order_status text, order_payment_id text)
 LANGUAGE sql
 STABLE
AS $function$
  SELECT d.* FROM receipt_disagreements_of(ARRAY(SELECT DISTINCT c.order_id FROM receipt_rechecks c)) d
$function$;
