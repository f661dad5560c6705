-- The age in seconds of the oldest row retention will prune: the longest-closed order and the
-- longest-finished delivery (0 when there is none). Each is the first entry of its index.

CREATE OR REPLACE FUNCTION public.retention_oldest_ages()
 RETURNS TABLE(table_name text, age_seconds double precision)
 LANGUAGE sql
 STABLE
AS $function$
  SELECT 'orders', COALESCE(EXTRACT(EPOCH FROM now() - (
           SELECT o.closed_at FROM orders o
            WHERE o.status IN ('PAID', 'EXPIRED', 'CANCELLED', 'REJECTED') AND o.closed_at IS NOT NULL
            ORDER BY o.closed_at LIMIT 1)), 0)::float8
  UNION ALL
  SELECT 'order_event_deliveries', COALESCE(EXTRACT(EPOCH FROM now() - (
           SELECT delivery_finished_at(d.delivered_at, d.last_attempt_at, d.created_at) FROM order_event_deliveries d
            WHERE d.state <> 'PENDING'
            ORDER BY delivery_finished_at(d.delivered_at, d.last_attempt_at, d.created_at) LIMIT 1)), 0)::float8
$function$;
