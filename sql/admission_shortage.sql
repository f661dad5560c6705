-- The items that the products' units on sale and not yet admitted to other orders cannot cover:
-- {"code":"OUT_OF_STOCK","details":[{sku,requested,available}]} (`available` = that remainder),
-- NULL when every item is covered.

CREATE OR REPLACE FUNCTION public.admission_shortage(p_items jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE
AS $function$
BEGIN
  RETURN (
    SELECT jsonb_build_object('code', 'OUT_OF_STOCK', 'details',
             jsonb_agg(jsonb_build_object('sku', h.sku, 'requested', h.quantity, 'available', GREATEST(p.available - p.admitted, 0))
                       ORDER BY h.sku COLLATE "C"))
      FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) JOIN products p ON p.sku = h.sku
     WHERE p.available - p.admitted < h.quantity
    HAVING count(*) > 0);
END
$function$;
