-- For the inventory check: orders still holding stock more than p_bound_seconds past their
-- effective deadline (the reclaim should have settled them within its bound).

CREATE OR REPLACE FUNCTION public.overdue_holds(p_bound_seconds integer)
 RETURNS TABLE(order_id uuid, deadline timestamp with time zone, overdue_seconds double precision)
 LANGUAGE sql
 STABLE
AS $function$
  SELECT o.id, order_deadline(o.expires_at, o.payment_pending_until),
         EXTRACT(EPOCH FROM (now() - order_deadline(o.expires_at, o.payment_pending_until)))::float8
    FROM orders o
   WHERE o.status = 'AWAITING_PAYMENT'
     AND order_deadline(o.expires_at, o.payment_pending_until) <= now() - make_interval(secs => p_bound_seconds)
   ORDER BY 2
$function$;
