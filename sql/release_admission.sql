-- Gives back the admission of the order's lines (its hold took them up, or it ends without stock,
-- or it is withdrawn). The caller holds the products' row locks.

CREATE OR REPLACE FUNCTION public.release_admission(p_order_id uuid)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
  WITH given AS (
    UPDATE order_items SET admitted_at = NULL
     WHERE order_id = p_order_id AND admitted_at IS NOT NULL
    RETURNING sku, quantity)
  UPDATE products p SET admitted = p.admitted - g.quantity FROM given g WHERE p.sku = g.sku;
END
$function$;
