-- Trigger function (payment_receipts, AFTER INSERT, UPDATE or DELETE, only when what the
-- predicates read of a receipt changed): names the receipt's order for the recheck, and on an
-- update that moves it to another order, or a delete, the order it belonged to.

CREATE OR REPLACE FUNCTION public.recheck_orders_of_changed_receipt()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
  IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND OLD.order_id = NEW.order_id) THEN
    INSERT INTO receipt_rechecks (order_id) VALUES (NEW.order_id);
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO receipt_rechecks (order_id) VALUES (NEW.order_id), (OLD.order_id);
  ELSE
    INSERT INTO receipt_rechecks (order_id) VALUES (OLD.order_id);
  END IF;
  RETURN NULL;
END
$function$;
