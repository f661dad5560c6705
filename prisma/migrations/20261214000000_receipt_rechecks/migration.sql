-- The receipts' part of the inventory check, bounded by what changed (issue 30; docs/operations.md,
-- "The inventory check"). Triggers name every order whose receipts' agreement with it may have
-- changed in receipt_rechecks; the fast check evaluates the disagreement predicate for those orders
-- only, and every worker's retention loop drains the rows of orders that agree. A receipt that
-- disagrees is always named through its own order (its order_id), a PAID order that disagrees
-- through itself, so a row per such order is all the fast check needs
-- (sql/drain_receipt_rechecks.sql says why the triggers below name every one).

-- One row per change, never upserted, so a write that commits while a drain runs is never lost: the
-- drain deletes only the rows it read, by id.
CREATE TABLE "receipt_rechecks" (
    "id" BIGSERIAL NOT NULL,
    "order_id" UUID NOT NULL,
    CONSTRAINT "receipt_rechecks_pkey" PRIMARY KEY ("id")
);
-- No foreign key: a row naming an order retention pruned names no disagreement, and a drain or a
-- trigger never waits on, nor fails for, an order being pruned. Retention deletes them by this index.
CREATE INDEX "receipt_rechecks_order_id_idx" ON "receipt_rechecks"("order_id");

-- One row: how far the orders that existed when this migration ran have been evaluated once
-- (through_order_id, in id order; null: not started) and when all were (seeded_at). Until then the
-- check joins every receipt, as before. A database without orders is seeded at once (below).
CREATE TABLE "receipt_recheck_seeding" (
    "singleton" BOOLEAN NOT NULL DEFAULT true,
    "through_order_id" UUID,
    "seeded_at" TIMESTAMPTZ(3),
    CONSTRAINT "receipt_recheck_seeding_pkey" PRIMARY KEY ("singleton"),
    CONSTRAINT "receipt_recheck_seeding_singleton_check" CHECK ("singleton")
);

-- A receipt's outcome contradicts its own order: APPLIED to an order that is not PAID with it, or
-- REFUSED while its order names it as its payment. One half of receipt_disagreements (inlined).
CREATE FUNCTION receipt_contradicts_order(p_outcome "ReceiptOutcome", p_payment_id TEXT, p_order_status "OrderStatus", p_order_payment_id TEXT)
RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE AS $$
  SELECT (p_outcome = 'APPLIED' AND (p_order_status <> 'PAID' OR p_order_payment_id IS DISTINCT FROM p_payment_id))
      OR (p_outcome = 'REFUSED' AND p_order_payment_id = p_payment_id)
$$;

-- A PAID order whose payment's receipt (found by the order's payment_id; null columns: none) is
-- missing, belongs to another order or is not APPLIED. The other half of receipt_disagreements (inlined).
CREATE FUNCTION paid_order_contradicts_receipt(p_order_id UUID, p_order_status "OrderStatus", p_receipt_payment_id TEXT, p_receipt_order_id UUID, p_receipt_outcome "ReceiptOutcome")
RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE AS $$
  SELECT p_order_status = 'PAID'
     AND (p_receipt_payment_id IS NULL OR p_receipt_order_id <> p_order_id OR p_receipt_outcome IS DISTINCT FROM 'APPLIED')
$$;

CREATE OR REPLACE FUNCTION receipt_disagreements()
RETURNS TABLE (order_id UUID, payment_id TEXT, receipt_outcome TEXT, order_status TEXT, order_payment_id TEXT)
LANGUAGE sql STABLE AS $$
  SELECT r.order_id, r.payment_id, r.outcome::text, o.status::text, o.payment_id
    FROM payment_receipts r JOIN orders o ON o.id = r.order_id
   WHERE receipt_contradicts_order(r.outcome, r.payment_id, o.status, o.payment_id)
  UNION ALL
  SELECT o.id, o.payment_id, r.outcome::text, o.status::text, o.payment_id
    FROM orders o LEFT JOIN payment_receipts r ON r.payment_id = o.payment_id
   WHERE paid_order_contradicts_receipt(o.id, o.status, r.payment_id, r.order_id, r.outcome)
$$;

-- The rows of receipt_disagreements() that name one of p_order_ids (their first column): the
-- receipts of those orders that contradict them, and those of the orders that are PAID without
-- their receipt agreeing. Read by key, whatever the history kept.
CREATE FUNCTION receipt_disagreements_of(p_order_ids UUID[])
RETURNS TABLE (order_id UUID, payment_id TEXT, receipt_outcome TEXT, order_status TEXT, order_payment_id TEXT)
LANGUAGE sql STABLE AS $$
  SELECT r.order_id, r.payment_id, r.outcome::text, o.status::text, o.payment_id
    FROM payment_receipts r JOIN orders o ON o.id = r.order_id
   WHERE r.order_id = ANY(p_order_ids)
     AND receipt_contradicts_order(r.outcome, r.payment_id, o.status, o.payment_id)
  UNION ALL
  SELECT o.id, o.payment_id, r.outcome::text, o.status::text, o.payment_id
    FROM orders o LEFT JOIN payment_receipts r ON r.payment_id = o.payment_id
   WHERE o.id = ANY(p_order_ids)
     AND paid_order_contradicts_receipt(o.id, o.status, r.payment_id, r.order_id, r.outcome)
$$;

-- What the fast inventory check reports as receipts disagreeing with their orders: the
-- disagreements of the orders receipt_rechecks names. Once the table is seeded
-- (receipt_recheck_seeding), the same rows as receipt_disagreements(), at the cost of the rows
-- waiting in the table (about a retention tick of changes, plus the orders that disagree).
CREATE FUNCTION rechecked_receipt_disagreements()
RETURNS TABLE (order_id UUID, payment_id TEXT, receipt_outcome TEXT, order_status TEXT, order_payment_id TEXT)
LANGUAGE sql STABLE AS $$
  SELECT d.* FROM receipt_disagreements_of(ARRAY(SELECT DISTINCT c.order_id FROM receipt_rechecks c)) d
$$;

-- Trigger function (orders, AFTER INSERT OR UPDATE, only when the row's status enters or leaves
-- PAID, its payment_id changes or its id does: what the predicates read of an order): names the
-- order for the receipts' recheck.
CREATE FUNCTION recheck_receipts_of_changed_order()
RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO receipt_rechecks (order_id) VALUES (NEW.id);
  RETURN NULL;
END
$$;

-- Trigger function (payment_receipts, AFTER INSERT, UPDATE or DELETE, only when what the
-- predicates read of a receipt changed): names the receipt's order for the recheck, and on an
-- update that moves it to another order, or a delete, the order it belonged to.
CREATE FUNCTION recheck_orders_of_changed_receipt()
RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND OLD.order_id = NEW.order_id) THEN
    INSERT INTO receipt_rechecks (order_id) VALUES (NEW.order_id);
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO receipt_rechecks (order_id) VALUES (NEW.order_id), (OLD.order_id);
  ELSE
    INSERT INTO receipt_rechecks (order_id) VALUES (OLD.order_id);
  END IF;
  RETURN NULL;
END
$$;

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
CREATE FUNCTION drain_receipt_rechecks(p_max_rows INTEGER, p_seed_orders INTEGER)
RETURNS TABLE (drained BIGINT, kept BIGINT, seeded BOOLEAN)
LANGUAGE plpgsql AS $$
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
$$;

-- Retention's batch also deletes the pruned orders' rows of receipt_rechecks (after their
-- receipts, whose delete trigger names them), skipping any a drain is reading (that drain deletes
-- them, or leaves a row naming an order that no longer exists, which the next drain deletes).
CREATE OR REPLACE FUNCTION prune_closed_orders(p_retention_seconds integer, p_batch_size integer)
 RETURNS TABLE(table_name text, deleted bigint)
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_ids UUID[];
  v_count BIGINT;
  v_through BIGINT;
BEGIN
  v_through := COALESCE((SELECT p.through_id FROM stock_ledger_checkpoint_position p), 0);
  SELECT array_agg(c.id) INTO v_ids FROM (
    SELECT o.id FROM orders o
     WHERE o.status IN ('PAID', 'EXPIRED', 'CANCELLED', 'REJECTED')
       AND o.closed_at < now() - make_interval(secs => p_retention_seconds)
       -- Through its events (by order) to their deliveries (by event): two primary-key-like probes.
       AND NOT EXISTS (SELECT 1 FROM order_events e JOIN order_event_deliveries d ON d.event_id = e.id
                        WHERE e.order_id = o.id AND d.state = 'PENDING')
       -- Through the ledger's (order_id, sku, kind) key: a few rows per order.
       AND NOT EXISTS (SELECT 1 FROM stock_movements m WHERE m.order_id = o.id AND m.id > v_through)
     ORDER BY o.closed_at
     LIMIT p_batch_size
       FOR UPDATE SKIP LOCKED) c;
  IF v_ids IS NULL THEN
    RETURN;
  END IF;

  -- Per sku and kind in a fixed order, so two pruners adding to one balance never deadlock.
  WITH gone AS (
    -- A closed order gets no ledger row after the one that closed it; the bound is kept anyway, so
    -- that even then no row leaves unless the checkpoint counts it.
    DELETE FROM stock_movements m WHERE m.order_id = ANY(v_ids) AND m.id <= v_through RETURNING m.sku, m.kind, m.quantity
  ), summed AS (
    SELECT g.sku, g.kind, SUM(g.quantity)::bigint AS quantity, count(*)::bigint AS movements FROM gone g GROUP BY g.sku, g.kind
  ), carried AS (
    INSERT INTO stock_opening_balances AS b (sku, kind, quantity, movements)
    SELECT s.sku, s.kind, s.quantity, s.movements FROM summed s ORDER BY s.sku COLLATE "C", s.kind
    ON CONFLICT (sku, kind) DO UPDATE
      SET quantity = b.quantity + EXCLUDED.quantity, movements = b.movements + EXCLUDED.movements, updated_at = now()
    RETURNING 1
  )
  SELECT COALESCE(SUM(s.movements), 0)::bigint INTO v_count FROM summed s;
  table_name := 'stock_movements'; deleted := v_count; RETURN NEXT;

  DELETE FROM refunds WHERE order_id = ANY(v_ids);
  GET DIAGNOSTICS v_count = ROW_COUNT;
  table_name := 'refunds'; deleted := v_count; RETURN NEXT;

  DELETE FROM payments WHERE order_id = ANY(v_ids);
  GET DIAGNOSTICS v_count = ROW_COUNT;
  table_name := 'payments'; deleted := v_count; RETURN NEXT;

  DELETE FROM payment_receipts WHERE order_id = ANY(v_ids);
  GET DIAGNOSTICS v_count = ROW_COUNT;
  table_name := 'payment_receipts'; deleted := v_count; RETURN NEXT;

  -- The receipts' rechecks of these orders (those their receipts' deletion just wrote among them).
  DELETE FROM receipt_rechecks c
   WHERE c.id IN (SELECT k.id FROM receipt_rechecks k WHERE k.order_id = ANY(v_ids) FOR UPDATE SKIP LOCKED);

  DELETE FROM order_extensions WHERE order_id = ANY(v_ids);
  GET DIAGNOSTICS v_count = ROW_COUNT;
  table_name := 'order_extensions'; deleted := v_count; RETURN NEXT;

  -- Their deliveries (all delivered or given up), found through the events (by order) and
  -- deleted first, so they are counted.
  WITH deliveries AS (
    DELETE FROM order_event_deliveries d USING order_events e
     WHERE e.order_id = ANY(v_ids) AND d.event_id = e.id
    RETURNING 1
  )
  SELECT count(*) INTO v_count FROM deliveries;
  table_name := 'order_event_deliveries'; deleted := v_count; RETURN NEXT;

  DELETE FROM order_events WHERE order_id = ANY(v_ids);
  GET DIAGNOSTICS v_count = ROW_COUNT;
  table_name := 'order_events'; deleted := v_count; RETURN NEXT;

  DELETE FROM order_items WHERE order_id = ANY(v_ids);
  GET DIAGNOSTICS v_count = ROW_COUNT;
  table_name := 'order_items'; deleted := v_count; RETURN NEXT;

  DELETE FROM orders WHERE id = ANY(v_ids);
  GET DIAGNOSTICS v_count = ROW_COUNT;
  table_name := 'orders'; deleted := v_count; RETURN NEXT;
END
$function$;

-- The triggers. Creating them waits for the transactions writing orders or receipts at the time
-- and holds new ones behind it until this migration commits; every change after it is named.
CREATE TRIGGER orders_receipt_recheck_on_insert AFTER INSERT ON orders FOR EACH ROW
  WHEN (NEW.status = 'PAID' OR NEW.payment_id IS NOT NULL)
  EXECUTE FUNCTION recheck_receipts_of_changed_order();
-- Unpaid orders' ordinary transitions (placed, held, expired, cancelled) pass this WHEN and pay nothing.
CREATE TRIGGER orders_receipt_recheck_on_update AFTER UPDATE ON orders FOR EACH ROW
  WHEN ((OLD.status = 'PAID') <> (NEW.status = 'PAID') OR OLD.payment_id IS DISTINCT FROM NEW.payment_id OR OLD.id <> NEW.id)
  EXECUTE FUNCTION recheck_receipts_of_changed_order();
-- A receipt recorded without an outcome (as the webhooks record it) contradicts nothing yet.
CREATE TRIGGER payment_receipts_recheck_on_insert AFTER INSERT ON payment_receipts FOR EACH ROW
  WHEN (NEW.outcome IS NOT NULL)
  EXECUTE FUNCTION recheck_orders_of_changed_receipt();
CREATE TRIGGER payment_receipts_recheck_on_update AFTER UPDATE ON payment_receipts FOR EACH ROW
  WHEN (OLD.outcome IS DISTINCT FROM NEW.outcome OR OLD.order_id <> NEW.order_id OR OLD.payment_id <> NEW.payment_id)
  EXECUTE FUNCTION recheck_orders_of_changed_receipt();
-- Only an APPLIED receipt can be the one a PAID order agrees with; deleting another removes rows only.
CREATE TRIGGER payment_receipts_recheck_on_delete AFTER DELETE ON payment_receipts FOR EACH ROW
  WHEN (OLD.outcome = 'APPLIED')
  EXECUTE FUNCTION recheck_orders_of_changed_receipt();

-- Seeded at once when there is nothing to evaluate (no writer of orders can run until this commits).
INSERT INTO "receipt_recheck_seeding" (seeded_at) SELECT CASE WHEN EXISTS (SELECT 1 FROM orders) THEN NULL ELSE CURRENT_TIMESTAMP END;
