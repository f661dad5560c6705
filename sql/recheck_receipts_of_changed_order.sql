-- Trigger function (orders, AFTER INSERT OR UPDATE, only when the row's status enters or leaves
-- PAID, its payment_id changes or its id does: what the predicates read of an order): names the
-- order for the receipts' recheck.

CREATE OR REPLACE FUNCTION public.recheck_receipts_of_changed_order()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
  INSERT INTO receipt_rechecks (order_id) VALUES (NEW.id);
  RETURN NULL;
END
$function$;
