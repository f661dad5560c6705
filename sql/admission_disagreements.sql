-- For the inventory check: products whose admitted counter disagrees with their admitted lines,
-- and admitted lines of orders no longer PENDING (an admission the hold did not give back).

CREATE OR REPLACE FUNCTION public.admission_disagreements()
 RETURNS TABLE(sku text, admitted integer, admitted_lines integer, admitted_of_decided_orders integer)
 LANGUAGE sql
 STABLE
AS $function$
  SELECT p.sku, p.admitted, COALESCE(l.units, 0)::int, COALESCE(l.decided, 0)::int
    FROM products p
    LEFT JOIN (SELECT i.sku, SUM(i.quantity) AS units, SUM(i.quantity) FILTER (WHERE o.status <> 'PENDING') AS decided
                 FROM order_items i JOIN orders o ON o.id = i.order_id
                WHERE i.admitted_at IS NOT NULL
                GROUP BY i.sku) l ON l.sku = p.sku
   WHERE p.admitted <> COALESCE(l.units, 0) OR COALESCE(l.decided, 0) <> 0
$function$;
