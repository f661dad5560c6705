-- Gives back the admissions of lines of these skus admitted more than p_seconds ago and still not
-- held: their workflow never started, or no worker took it. Such an order may still be held later,
-- if its stock is there then; it just stops keeping others out. The caller holds the products'
-- row locks. Answers how many lines lapsed.

CREATE OR REPLACE FUNCTION public.lapse_admissions(p_skus text[], p_seconds integer)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_lapsed INTEGER;
BEGIN
  WITH lapsed AS (
    UPDATE order_items SET admitted_at = NULL
     WHERE sku = ANY(p_skus) AND admitted_at IS NOT NULL AND admitted_at <= now() - make_interval(secs => p_seconds)
    RETURNING sku, quantity),
  per_sku AS (SELECT sku, SUM(quantity)::int AS units FROM lapsed GROUP BY sku),
  counted AS (UPDATE products p SET admitted = p.admitted - s.units FROM per_sku s WHERE p.sku = s.sku RETURNING 1)
  SELECT count(*)::int INTO v_lapsed FROM lapsed;
  RETURN v_lapsed;
END
$function$;
