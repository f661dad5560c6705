-- One batch of event deliveries delivered or given up more than p_retention_seconds ago (of orders
-- still kept: the events themselves stay with their order). Answers how many went.

CREATE OR REPLACE FUNCTION public.prune_finished_deliveries(p_retention_seconds integer, p_batch_size integer)
 RETURNS bigint
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_count BIGINT;
BEGIN
  WITH claimed AS (
    SELECT d.event_id, d.endpoint FROM order_event_deliveries d
     WHERE d.state <> 'PENDING'
       AND delivery_finished_at(d.delivered_at, d.last_attempt_at, d.created_at) < now() - make_interval(secs => p_retention_seconds)
     ORDER BY delivery_finished_at(d.delivered_at, d.last_attempt_at, d.created_at)
     LIMIT p_batch_size
       FOR UPDATE SKIP LOCKED
  ), gone AS (
    DELETE FROM order_event_deliveries d USING claimed c
     WHERE d.event_id = c.event_id AND d.endpoint = c.endpoint
    RETURNING 1
  )
  SELECT count(*) INTO v_count FROM gone;
  RETURN v_count;
END
$function$;
