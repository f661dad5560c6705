-- Due: the effective deadline has come (database clock). At the deadline itself the deadline has
-- won; a processing hold still running keeps the order from being due (it is in the deadline).

CREATE OR REPLACE FUNCTION public.order_is_due(o orders)
 RETURNS boolean
 LANGUAGE sql
 STABLE
AS $function$
  SELECT order_deadline(o.expires_at, o.payment_pending_until) <= now()
$function$;
