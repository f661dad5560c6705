-- A ledger row's id, drawn only once the writing transaction has a transaction id of its own, so
-- that a snapshot can tell when every transaction that may still commit a row at or below a given
-- id has ended (advance_ledger_checkpoint). An id drawn first could sit, for a moment, in a
-- transaction that no snapshot lists yet.

CREATE OR REPLACE FUNCTION public.stock_movement_id()
 RETURNS bigint
 LANGUAGE plpgsql
AS $function$
BEGIN
  PERFORM pg_current_xact_id();
  RETURN nextval('stock_movements_id_seq'::regclass);
END
$function$;
