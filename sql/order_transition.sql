-- The transitions out of AWAITING_PAYMENT, one table. What the order becomes when `proposal`
-- reaches it now; NULL: it stays AWAITING_PAYMENT.
--   an applicable payment in time exists  -> PAID, whichever proposal gets here first
--   due (the effective deadline has come) -> EXPIRED, whichever proposal gets here
--   before the deadline: CANCEL           -> CANCELLED
--   before the deadline: COMMIT (a payment that does not apply), EXPIRE (a timer early by the
--     database's clock, or a deadline since moved later), EXTEND, RECLAIM -> stays

CREATE OR REPLACE FUNCTION public.order_transition(o orders, p_proposal text)
 RETURNS "OrderStatus"
 LANGUAGE sql
 STABLE
AS $function$
  SELECT (CASE
    WHEN order_paying_payment(o) IS NOT NULL THEN 'PAID'
    WHEN order_is_due(o) THEN 'EXPIRED'
    WHEN p_proposal = 'CANCEL' THEN 'CANCELLED'
  END)::"OrderStatus"
$function$;
