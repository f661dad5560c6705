-- The order as a decision's answer: its state, and how long until it is due (for a timer that
-- asked early).

CREATE OR REPLACE FUNCTION public.order_decision(p_order_id uuid)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
  SELECT jsonb_strip_nulls(jsonb_build_object(
           'status', o.status::text,
           'closedAt', o.closed_at,
           'expiresAt', o.expires_at,
           'paidAt', o.paid_at,
           'paymentId', o.payment_id,
           'paymentPendingUntil', CASE WHEN order_payment_pending(o) THEN o.payment_pending_until END,
           'dueInMs', CASE WHEN o.status = 'AWAITING_PAYMENT' THEN
             GREATEST(0, ceil(EXTRACT(EPOCH FROM (order_deadline(o.expires_at, o.payment_pending_until) - now())) * 1000))::bigint END))
    FROM orders o WHERE o.id = p_order_id
$function$;
