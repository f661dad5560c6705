-- One step of the receipts' recheck; every worker's retention loop calls it each tick, in a READ
-- COMMITTED transaction of its own (a caller finding another one at it skips). In one statement,
-- so one snapshot: it reads the oldest p_max_rows rows of receipt_rechecks (skipping rows a prune is
-- deleting), evaluates the orders they name (receipt_disagreements_of), deletes the rows it read,
-- by id, and writes one new row for each of those orders that disagrees, so every later check
-- still names it and the next steps read past it. A row committed after that snapshot (a change
-- the evaluation did not see) is never deleted: a disagreement can leave the table only by a
-- change that writes a row after the evaluation that found it gone.
-- Why a row for the disagreeing order itself is always written: a receipt's row of
-- receipt_disagreements names its own order and depends only on the receipt and that order; a
-- PAID order's row names the order and depends on it and on the receipt of its payment_id. The
-- triggers name an order whenever its status enters or leaves PAID or its payment_id changes, and
-- a receipt's order (old and new) whenever its outcome, order or payment changes (insert: only
-- with an outcome; delete: only an APPLIED one). A PAID order that agrees has a receipt of its
-- own, APPLIED, so no change to that receipt goes unnamed; one that disagrees already has a row.
-- Until the table is seeded (a database that had orders when migrated), each step first
-- evaluates the next p_seed_orders orders in id order and writes a row for each that disagrees;
-- every change after the migration is named by the triggers, so when the last step sets
-- seeded_at, the table names every disagreement. Answers the rows deleted, the orders kept and
-- whether the table is seeded; nothing when another caller was at it.

CREATE OR REPLACE FUNCTION public.drain_receipt_rechecks(p_max_rows integer, p_seed_orders integer)
 RETURNS TABLE(drained bigint, kept bigint, seeded boolean)
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_seeding receipt_recheck_seeding%ROWTYPE;
  v_ids UUID[];
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'drain_receipt_rechecks() must run in a READ COMMITTED transaction';
  END IF;
  -- Two-key advisory lock class 31 (lock_customer uses 27, advance_ledger_checkpoint 30).
  IF NOT pg_try_advisory_xact_lock(31, 0) THEN
    RETURN;
  END IF;
  SELECT * INTO v_seeding FROM receipt_recheck_seeding s;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'receipt_recheck_seeding has no row';
  END IF;

  IF v_seeding.seeded_at IS NULL THEN
    SELECT array_agg(c.id ORDER BY c.id) INTO v_ids FROM (
      SELECT o.id FROM orders o
       WHERE o.id > COALESCE(v_seeding.through_order_id, '00000000-0000-0000-0000-000000000000'::uuid)
       ORDER BY o.id LIMIT p_seed_orders) c;
    INSERT INTO receipt_rechecks (order_id)
    SELECT DISTINCT d.order_id FROM receipt_disagreements_of(COALESCE(v_ids, '{}')) d;
    UPDATE receipt_recheck_seeding s
       SET through_order_id = COALESCE(v_ids[cardinality(v_ids)], s.through_order_id),
           seeded_at = CASE WHEN COALESCE(cardinality(v_ids), 0) < p_seed_orders THEN now() END
    RETURNING s.* INTO v_seeding;
  END IF;

  WITH batch AS MATERIALIZED (
    SELECT c.id, c.order_id FROM receipt_rechecks c ORDER BY c.id LIMIT p_max_rows FOR UPDATE SKIP LOCKED
  ), disagreeing AS (
    SELECT DISTINCT d.order_id FROM receipt_disagreements_of(ARRAY(SELECT DISTINCT b.order_id FROM batch b)) d
  ), removed AS (
    DELETE FROM receipt_rechecks c WHERE c.id IN (SELECT b.id FROM batch b) RETURNING c.id
  ), requeued AS (
    INSERT INTO receipt_rechecks (order_id) SELECT g.order_id FROM disagreeing g RETURNING 1
  )
  SELECT (SELECT count(*) FROM removed), (SELECT count(*) FROM requeued) INTO drained, kept;
  seeded := v_seeding.seeded_at IS NOT NULL;
  RETURN NEXT;
END
$function$;
