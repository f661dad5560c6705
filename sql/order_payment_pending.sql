-- A payment.processing hold keeps the order's stock now (the order shows paymentPending).

CREATE OR REPLACE FUNCTION public.order_payment_pending(o orders)
 RETURNS boolean
 LANGUAGE sql
 STABLE
AS $function$
  SELECT o.status = 'AWAITING_PAYMENT' AND o.payment_pending_until IS NOT NULL AND o.payment_pending_until > now()
$function$;
