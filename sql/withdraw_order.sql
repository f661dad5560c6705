-- Takes back a PENDING order whose workflow could not be started, with its admission; false when
-- the order is not PENDING (its hold has decided it). Order row first, then the products in byte
-- order, as the hold locks them.

CREATE OR REPLACE FUNCTION public.withdraw_order(p_order_id uuid)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
BEGIN
  PERFORM 1 FROM orders WHERE id = p_order_id AND status = 'PENDING' FOR UPDATE;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM 1 FROM products p WHERE p.sku IN (SELECT i.sku FROM order_items i WHERE i.order_id = p_order_id)
   ORDER BY p.sku COLLATE "C" FOR NO KEY UPDATE;
  PERFORM release_admission(p_order_id);
  DELETE FROM orders WHERE id = p_order_id;
  RETURN true;
END
$function$;
