-- The effective deadline: expiresAt, or later while a payment.processing hold runs
-- (GREATEST skips the NULL of an order without a hold).

CREATE OR REPLACE FUNCTION public.order_deadline(p_expires_at timestamp with time zone, p_payment_pending_until timestamp with time zone)
 RETURNS timestamp with time zone
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
  SELECT GREATEST(p_expires_at, p_payment_pending_until)
$function$;
