-- Trigger function of orders (AFTER INSERT of an order written PAID or with a payment; AFTER
-- UPDATE when its status enters or leaves PAID, its payment_id changes or its id does: all the
-- predicates read of an order): names the order for the receipts' recheck (receipt_rechecks).

CREATE OR REPLACE FUNCTION public.recheck_receipts_of_changed_order()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
  INSERT INTO receipt_rechecks (order_id) VALUES (NEW.id);
  RETURN NULL;
END
$function$;
