-- When a delivery stopped being tried: delivered, or given up (its last attempt). Called with the
-- row's columns, so the index below and the queries share one expression.

CREATE OR REPLACE FUNCTION public.delivery_finished_at(p_delivered_at timestamp with time zone, p_last_attempt_at timestamp with time zone, p_created_at timestamp with time zone)
 RETURNS timestamp with time zone
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
  SELECT COALESCE(p_delivered_at, p_last_attempt_at, p_created_at)
$function$;
