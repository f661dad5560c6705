-- The order as GET /orders/:orderId, every answer of the API that carries an order, and every
-- event show it: the one definition of the contract's `order` (the API answers this document as
-- it is). PL/pgSQL, so that its plan is cached.

CREATE OR REPLACE FUNCTION public.order_document(p_order_id uuid)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE
AS $function$
BEGIN
  RETURN (
    SELECT jsonb_strip_nulls(jsonb_build_object(
             'orderId', o.id::text,
             'channel', o.channel,
             'customerId', o.customer_id,
             'status', o.status::text,
             'items', COALESCE((SELECT jsonb_agg(jsonb_build_object('sku', i.sku, 'quantity', i.quantity, 'unitPriceCents', i.unit_price_cents) ORDER BY i.sku COLLATE "C")
                                  FROM order_items i WHERE i.order_id = o.id), '[]'::jsonb),
             'totalCents', o.total_cents,
             'createdAt', to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
             'expiresAt', to_char(o.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
             'paidAt', to_char(o.paid_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
             'closedAt', to_char(o.closed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
             'paymentId', o.payment_id,
             'paymentPending', CASE WHEN order_payment_pending(o) THEN true END))
      FROM orders o WHERE o.id = p_order_id);
END
$function$;
