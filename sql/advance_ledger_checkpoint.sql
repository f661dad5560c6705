-- Moves the ledger checkpoint forward; run it first in a READ COMMITTED transaction of its own
-- (every worker's retention loop calls it each tick; a caller finding another one at it skips).
-- A candidate is recorded: the highest ledger id committed, then the recording transaction's own
-- id, taken after that read. A ledger row's id is drawn only after its transaction has an id
-- (stock_movement_id), so every transaction that could still commit a row at or below the
-- candidate has a smaller transaction id. (A snapshot's xmax would not do: a transaction still
-- running may have an id at or above it.) Once a later call's snapshot shows no transaction at or
-- below the recorded one running (its xmin is above it), the rows up to the candidate are final:
-- their sums per sku and kind go into the checkpoint, at most p_max_span ids per call, and
-- through_id follows; when it reaches the candidate, the next candidate is recorded. The first
-- final step starts the checkpoint from the opening balances at through_id 0, so building it over
-- an existing ledger is the same bounded steps. It locks nothing a hold, a payment or a prune waits
-- on: a transaction-level advisory lock and the checkpoint's own rows (and, when a sku is first
-- counted, a key-share lock on its product). Answers through_id (null: not started), the
-- candidate, and whether this call moved through_id.

CREATE OR REPLACE FUNCTION public.advance_ledger_checkpoint(p_max_span bigint)
 RETURNS TABLE(through_id bigint, candidate_id bigint, advanced boolean)
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_position stock_ledger_checkpoint_position%ROWTYPE;
  v_final BOOLEAN;
  v_target BIGINT;
  v_record BOOLEAN;
  v_candidate BIGINT;
  v_xid BIGINT;
BEGIN
  -- The transaction id taken below must be newer than the candidate's read, and each statement
  -- must see what committed before it.
  IF pg_current_xact_id_if_assigned() IS NOT NULL OR current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'advance_ledger_checkpoint() must run first in a READ COMMITTED transaction of its own';
  END IF;
  -- Two-key advisory lock class 30 (lock_customer uses 27); taking it assigns no transaction id.
  IF NOT pg_try_advisory_xact_lock(30, 0) THEN
    RETURN;
  END IF;
  SELECT * INTO v_position FROM stock_ledger_checkpoint_position p;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'stock_ledger_checkpoint_position has no row';
  END IF;
  v_final := v_position.candidate_xid IS NOT NULL
             AND pg_snapshot_xmin(pg_current_snapshot())::text::bigint > v_position.candidate_xid;
  IF v_final THEN
    v_target := CASE WHEN v_position.through_id IS NULL THEN 0
                     ELSE LEAST(v_position.candidate_id, v_position.through_id + p_max_span) END;
    v_record := v_target >= v_position.candidate_id;
  ELSE
    v_record := v_position.candidate_xid IS NULL;
  END IF;

  -- Read, then take the transaction id, before this transaction writes anything.
  IF v_record THEN
    SELECT GREATEST(COALESCE(max(m.id), 0), COALESCE(v_target, v_position.through_id, 0)) INTO v_candidate FROM stock_movements m;
    v_xid := pg_current_xact_id()::text::bigint;
  END IF;

  IF v_final AND v_position.through_id IS NULL THEN
    DELETE FROM stock_ledger_checkpoints;
    INSERT INTO stock_ledger_checkpoints (sku, kind, quantity, movements)
    SELECT b.sku, b.kind, b.quantity, b.movements FROM stock_opening_balances b;
  ELSIF v_final AND v_target > v_position.through_id THEN
    INSERT INTO stock_ledger_checkpoints AS c (sku, kind, quantity, movements)
    SELECT m.sku, m.kind, SUM(m.quantity)::bigint, count(*)::bigint FROM stock_movements m
     WHERE m.id > v_position.through_id AND m.id <= v_target
     GROUP BY m.sku, m.kind
    ON CONFLICT (sku, kind) DO UPDATE
      SET quantity = c.quantity + EXCLUDED.quantity, movements = c.movements + EXCLUDED.movements;
  END IF;

  -- Waiting for older transactions to end: nothing to write.
  IF v_final OR v_record THEN
    UPDATE stock_ledger_checkpoint_position p
       SET through_id = CASE WHEN v_final THEN v_target ELSE p.through_id END,
           candidate_id = CASE WHEN v_record THEN v_candidate ELSE p.candidate_id END,
           candidate_xid = CASE WHEN v_record THEN v_xid ELSE p.candidate_xid END,
           advanced_at = CASE WHEN v_final THEN now() ELSE p.advanced_at END,
           updated_at = now();
  END IF;
  through_id := CASE WHEN v_final THEN v_target ELSE v_position.through_id END;
  candidate_id := CASE WHEN v_record THEN v_candidate ELSE v_position.candidate_id END;
  advanced := v_final;
  RETURN NEXT;
END
$function$;
