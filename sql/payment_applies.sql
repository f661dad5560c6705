-- Invariant 7: receipt r pays order o in time. A payment.succeeded received before the effective
-- deadline, for the order's amount and currency, not used elsewhere, and not refused.

CREATE OR REPLACE FUNCTION public.payment_applies(o orders, r payment_receipts)
 RETURNS boolean
 LANGUAGE sql
 STABLE
AS $function$
  SELECT payment_defect(o, r) IS NULL
     AND r.succeeded_at < order_deadline(o.expires_at, o.payment_pending_until)
     AND r.outcome IS DISTINCT FROM 'REFUSED'
$function$;
