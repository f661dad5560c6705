-- The ledger checkpoint (issue 30; docs/operations.md, "The inventory check"). Per sku and kind, the
-- sum of the opening balances and of every ledger row up to through_id, so the inventory check reads
-- the checkpoint plus the rows written since (a range of the primary key) instead of the whole
-- ledger. Every worker's retention loop moves it forward (advance_ledger_checkpoint), and retention
-- prunes only ledger rows it already counts, so pruning changes neither side of
--   checkpoint + rows with id > through_id  =  opening balances + all rows.
CREATE TABLE "stock_ledger_checkpoints" (
    "sku" TEXT NOT NULL,
    "kind" "StockMovementKind" NOT NULL,
    "quantity" BIGINT NOT NULL DEFAULT 0,
    "movements" BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT "stock_ledger_checkpoints_pkey" PRIMARY KEY ("sku", "kind"),
    CONSTRAINT "stock_ledger_checkpoints_sku_fkey" FOREIGN KEY ("sku") REFERENCES "products"("sku") ON DELETE RESTRICT ON UPDATE CASCADE
);

-- One row: the last ledger id the checkpoint counts (null until it is first built), and the
-- candidate for the next advance: the highest id committed when it was recorded, and the id of the
-- transaction that recorded it (pg_current_xact_id() as a number, like order_events.tx_id).
CREATE TABLE "stock_ledger_checkpoint_position" (
    "singleton" BOOLEAN NOT NULL DEFAULT true,
    "through_id" BIGINT,
    "candidate_id" BIGINT,
    "candidate_xid" BIGINT,
    "advanced_at" TIMESTAMPTZ(3),
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "stock_ledger_checkpoint_position_pkey" PRIMARY KEY ("singleton"),
    CONSTRAINT "stock_ledger_checkpoint_position_singleton_check" CHECK ("singleton")
);
INSERT INTO "stock_ledger_checkpoint_position" DEFAULT VALUES;

-- A ledger row's id, drawn only once the writing transaction has a transaction id of its own, so
-- that a snapshot can tell when every transaction that may still commit a row at or below a given
-- id has ended (advance_ledger_checkpoint). An id drawn first could sit, for a moment, in a
-- transaction that no snapshot lists yet.
CREATE FUNCTION stock_movement_id()
RETURNS BIGINT
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_current_xact_id();
  RETURN nextval('stock_movements_id_seq'::regclass);
END
$$;

-- A catalog change only, but it takes the ledger's table lock for a moment: it waits for the
-- transactions writing the ledger at the time, and holds new ones behind it while it waits.
ALTER TABLE "stock_movements" ALTER COLUMN "id" SET DEFAULT stock_movement_id();

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
CREATE FUNCTION advance_ledger_checkpoint(p_max_span BIGINT)
RETURNS TABLE (through_id BIGINT, candidate_id BIGINT, advanced BOOLEAN)
LANGUAGE plpgsql AS $$
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
$$;
