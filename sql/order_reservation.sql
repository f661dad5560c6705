-- What an order that is no longer PENDING was decided as: HELD with its lines and total, REJECTED
-- with why (code, details), or EXPIRED_UNHELD (closed by the reclaim before any hold: nothing may be
-- held now). PL/pgSQL, so that its plan is cached.

CREATE OR REPLACE FUNCTION public.order_reservation(p_order_id uuid)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE
AS $function$
BEGIN
  RETURN (SELECT CASE WHEN o.status = 'REJECTED'
    THEN jsonb_build_object('outcome', 'REJECTED', 'code', COALESCE(o.rejection_code, 'OUT_OF_STOCK'), 'details', COALESCE(o.rejection, '[]'::jsonb))
         -- As before: the shortages, for a worker of the previous release during a rolling deploy.
         || CASE WHEN COALESCE(o.rejection_code, 'OUT_OF_STOCK') = 'OUT_OF_STOCK' THEN jsonb_build_object('shortages', COALESCE(o.rejection, '[]'::jsonb)) ELSE '{}'::jsonb END
    -- Closed by the reclaim long past its deadline before any hold: nothing may be held now.
    WHEN NOT EXISTS (SELECT 1 FROM stock_movements m WHERE m.order_id = o.id AND m.kind = 'RESERVE')
      THEN jsonb_build_object('outcome', 'EXPIRED_UNHELD')
    ELSE jsonb_build_object(
      'outcome', 'HELD',
      'lines', COALESCE((SELECT jsonb_agg(jsonb_build_object('sku', i.sku, 'quantity', i.quantity, 'unitPriceCents', i.unit_price_cents) ORDER BY i.sku COLLATE "C")
                           FROM order_items i WHERE i.order_id = o.id), '[]'::jsonb),
      'totalCents', o.total_cents)
    END
    FROM orders o WHERE o.id = p_order_id);
END
$function$;
