-- A payment.processing delivery in time holds the order until p_until, or later if another does.

CREATE OR REPLACE FUNCTION public.hold_for_processing(p_order_id uuid, p_until timestamp with time zone)
 RETURNS void
 LANGUAGE sql
AS $function$
  UPDATE orders SET payment_pending_until = GREATEST(payment_pending_until, p_until) WHERE id = p_order_id
$function$;
