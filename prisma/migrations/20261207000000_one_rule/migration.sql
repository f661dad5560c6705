-- The rule that decides an order, in one place (docs/expiry.md, "The rule").
--
-- Every party that may end an order's hold calls decide_order (one order) or reclaim_due_orders
-- (a batch of due orders): the workflow's commit, its timer's release, a cancel, an extension,
-- a late payment whose workflow is gone, and the reclaim. Nothing else compares a time with a
-- deadline: the effective deadline, "due" and "a payment in time that applies" are the
-- functions below, and the TypeScript only passes proposals and reads answers.

-- The currency an order is priced in: a payment in another one never pays it.
ALTER TABLE "orders" ADD COLUMN "currency" TEXT;
UPDATE "orders" o SET "currency" = COALESCE(
  (SELECT lower(r.currency) FROM payment_receipts r WHERE r.payment_id = o.payment_id AND r.order_id = o.id), 'eur');
ALTER TABLE "orders" ALTER COLUMN "currency" SET NOT NULL;

-- What became of a succeeded payment: APPLIED (it paid its order) or REFUSED (it holds nothing).
-- NULL while undecided. A refused receipt never pays, whatever its time.
CREATE TYPE "ReceiptOutcome" AS ENUM ('APPLIED', 'REFUSED');
ALTER TABLE "payment_receipts" ADD COLUMN "outcome" "ReceiptOutcome";
UPDATE payment_receipts r SET outcome = 'APPLIED'
  FROM orders o WHERE o.id = r.order_id AND o.status = 'PAID' AND o.payment_id = r.payment_id;
UPDATE payment_receipts r SET outcome = 'REFUSED'
  FROM payments p WHERE p.order_id = r.order_id AND p.payment_id = r.payment_id AND p.outcome <> 'APPLIED' AND r.outcome IS NULL;

-- "Pays no other order" is looked up by payment id.
CREATE INDEX "orders_payment_id_idx" ON "orders"("payment_id") WHERE "payment_id" IS NOT NULL;

-- The effective deadline: expiresAt, or later while a payment.processing hold runs
-- (GREATEST skips the NULL of an order without a hold).
CREATE FUNCTION order_deadline(p_expires_at TIMESTAMPTZ, p_payment_pending_until TIMESTAMPTZ) RETURNS TIMESTAMPTZ
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT GREATEST(p_expires_at, p_payment_pending_until)
$$;

-- The reclaim finds due orders through this index (the same expression as order_is_due).
CREATE INDEX "orders_awaiting_deadline_idx" ON "orders" (order_deadline(expires_at, payment_pending_until))
  WHERE status = 'AWAITING_PAYMENT';

-- Due: the effective deadline has come (database clock). At the deadline itself the deadline has
-- won; a processing hold still running keeps the order from being due (it is in the deadline).
CREATE FUNCTION order_is_due(o orders) RETURNS BOOLEAN
LANGUAGE sql STABLE AS $$
  SELECT order_deadline(o.expires_at, o.payment_pending_until) <= now()
$$;

-- A payment.processing hold keeps the order's stock now (the order shows paymentPending).
CREATE FUNCTION order_payment_pending(o orders) RETURNS BOOLEAN
LANGUAGE sql STABLE AS $$
  SELECT o.status = 'AWAITING_PAYMENT' AND o.payment_pending_until IS NOT NULL AND o.payment_pending_until > now()
$$;

-- The order as GET /orders/:orderId shows it, for the API and for events alike (one definition).
CREATE OR REPLACE FUNCTION order_document(p_order_id UUID) RETURNS JSONB
LANGUAGE sql STABLE AS $$
  SELECT jsonb_strip_nulls(jsonb_build_object(
           'orderId', o.id::text,
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
    FROM orders o WHERE o.id = p_order_id
$$;

-- A payment.processing delivery in time holds the order until p_until, or later if another does.
CREATE FUNCTION hold_for_processing(p_order_id UUID, p_until TIMESTAMPTZ) RETURNS VOID
LANGUAGE sql AS $$
  UPDATE orders SET payment_pending_until = GREATEST(payment_pending_until, p_until) WHERE id = p_order_id
$$;

-- What is wrong with receipt r as a payment of order o, whatever its time; NULL when nothing is.
--   UNVERIFIED: no succeeded delivery was verified and recorded for it (a signal without a receipt);
--   PAYMENT_ALREADY_USED: the payment id belongs to another order;
--   CURRENCY_MISMATCH / AMOUNT_MISMATCH: not the order's currency / total.
CREATE FUNCTION payment_defect(o orders, r payment_receipts) RETURNS TEXT
LANGUAGE sql STABLE AS $$
  SELECT CASE
    WHEN r.payment_id IS NULL THEN 'UNVERIFIED'
    WHEN r.order_id <> o.id
      OR EXISTS (SELECT 1 FROM orders other WHERE other.payment_id = r.payment_id AND other.id <> o.id) THEN 'PAYMENT_ALREADY_USED'
    WHEN r.succeeded_at IS NULL THEN 'UNVERIFIED'
    WHEN lower(r.currency) <> lower(o.currency) THEN 'CURRENCY_MISMATCH'
    WHEN r.amount_cents <> o.total_cents THEN 'AMOUNT_MISMATCH'
  END
$$;

-- Invariant 7: receipt r pays order o in time. A payment.succeeded received before the effective
-- deadline, for the order's amount and currency, not used elsewhere, and not refused.
CREATE FUNCTION payment_applies(o orders, r payment_receipts) RETURNS BOOLEAN
LANGUAGE sql STABLE AS $$
  SELECT payment_defect(o, r) IS NULL
     AND r.succeeded_at < order_deadline(o.expires_at, o.payment_pending_until)
     AND r.outcome IS DISTINCT FROM 'REFUSED'
$$;

-- The payment that pays the order in time, if any: the first applicable receipt.
CREATE FUNCTION order_paying_payment(o orders) RETURNS TEXT
LANGUAGE sql STABLE AS $$
  SELECT r.payment_id FROM payment_receipts r
   WHERE r.order_id = o.id AND payment_applies(o, r)
   ORDER BY r.succeeded_at, r.payment_id
   LIMIT 1
$$;

-- The transitions out of AWAITING_PAYMENT, one table. What the order becomes when `proposal`
-- reaches it now; NULL: it stays AWAITING_PAYMENT.
--   an applicable payment in time exists  -> PAID, whichever proposal gets here first
--   due (the effective deadline has come) -> EXPIRED, whichever proposal gets here
--   before the deadline: CANCEL           -> CANCELLED
--   before the deadline: COMMIT (a payment that does not apply), EXPIRE (a timer early by the
--     database's clock, or a deadline since moved later), EXTEND, RECLAIM -> stays
CREATE FUNCTION order_transition(o orders, p_proposal TEXT) RETURNS "OrderStatus"
LANGUAGE sql STABLE AS $$
  SELECT (CASE
    WHEN order_paying_payment(o) IS NOT NULL THEN 'PAID'
    WHEN order_is_due(o) THEN 'EXPIRED'
    WHEN p_proposal = 'CANCEL' THEN 'CANCELLED'
  END)::"OrderStatus"
$$;

-- Moves an AWAITING_PAYMENT order (its row locked by the caller) to its final status, and its
-- held stock with it: to sold for PAID, back on sale otherwise. Products are locked in byte order
-- (COLLATE "C"), as every writer of products locks them, so no two transactions deadlock
-- whatever the database's collation; FOR NO KEY UPDATE, the strength of the UPDATE itself, so the
-- key-share locks of new order lines (foreign keys to products) never wait on a settlement. The ledger row goes first; only a new one moves counters.
CREATE FUNCTION settle_order(p_order_id UUID, p_status "OrderStatus", p_payment_id TEXT, p_endpoints TEXT[])
RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
  v_kind "StockMovementKind" := CASE WHEN p_status = 'PAID' THEN 'COMMIT' ELSE 'RELEASE' END;
  -- One instant for the order and its ledger rows: closedAt is when the stock moved.
  v_at TIMESTAMPTZ := clock_timestamp();
BEGIN
  UPDATE orders
     SET status = p_status, closed_at = v_at,
         paid_at = CASE WHEN p_status = 'PAID' THEN v_at END,
         payment_id = CASE WHEN p_status = 'PAID' THEN p_payment_id END
   WHERE id = p_order_id;
  PERFORM 1 FROM products p
   WHERE p.sku IN (SELECT i.sku FROM order_items i WHERE i.order_id = p_order_id)
   ORDER BY p.sku COLLATE "C" FOR NO KEY UPDATE;
  WITH moved AS (
    INSERT INTO stock_movements (sku, order_id, kind, quantity, created_at)
    SELECT i.sku, i.order_id, v_kind, i.quantity, v_at FROM order_items i WHERE i.order_id = p_order_id
    ON CONFLICT (order_id, sku, kind) DO NOTHING
    RETURNING sku, quantity
  )
  UPDATE products p
     SET reserved = p.reserved - m.quantity,
         available = p.available + CASE WHEN v_kind = 'RELEASE' THEN m.quantity ELSE 0 END,
         sold = p.sold + CASE WHEN v_kind = 'COMMIT' THEN m.quantity ELSE 0 END,
         updated_at = now()
    FROM moved m WHERE p.sku = m.sku;
  IF p_status = 'PAID' THEN
    INSERT INTO payments (order_id, payment_id, amount_cents, outcome)
    SELECT p_order_id, r.payment_id, r.amount_cents, 'APPLIED' FROM payment_receipts r WHERE r.payment_id = p_payment_id
    ON CONFLICT DO NOTHING;
  END IF;
  -- Every succeeded payment of the order is now decided: the one that paid it, or refused.
  UPDATE payment_receipts
     SET outcome = (CASE WHEN payment_id = p_payment_id THEN 'APPLIED' ELSE 'REFUSED' END)::"ReceiptOutcome"
   WHERE order_id = p_order_id AND succeeded_at IS NOT NULL AND outcome IS NULL;
  PERFORM record_order_event(p_order_id,
    CASE p_status WHEN 'PAID' THEN 'order.paid' WHEN 'EXPIRED' THEN 'order.expired' ELSE 'order.cancelled' END,
    NULL, p_endpoints);
END
$$;

-- The order as a decision's answer: its state, and how long until it is due (for a timer that
-- asked early).
CREATE FUNCTION order_decision(p_order_id UUID) RETURNS JSONB
LANGUAGE sql STABLE AS $$
  SELECT jsonb_strip_nulls(jsonb_build_object(
           'status', o.status::text,
           'closedAt', o.closed_at,
           'expiresAt', o.expires_at,
           'paidAt', o.paid_at,
           'paymentId', o.payment_id,
           'paymentPendingUntil', CASE WHEN order_payment_pending(o) THEN o.payment_pending_until END,
           'dueInMs', CASE WHEN o.status = 'AWAITING_PAYMENT' THEN
             GREATEST(0, ceil(EXTRACT(EPOCH FROM (order_deadline(o.expires_at, o.payment_pending_until) - now())) * 1000))::bigint END))
    FROM orders o WHERE o.id = p_order_id
$$;

-- One proposal for one order, decided under its row lock. p_proposal:
--   COMMIT  (p_payment_id): a paymentReceived signal, or a late payment whose workflow is gone;
--   EXPIRE: the workflow's timer;  CANCEL: cancelOrder;  EXTEND (p_extension_id, p_seconds,
--   p_max_window_seconds): an operator's extension.
-- Answers order_decision, plus for COMMIT `defect` (payment_defect of that payment) and for EXTEND
-- `extension` ({outcome, expiresAt}, recorded per extension id). `decidedNow` is true when this
-- call ended the hold. A retry finds the decision made and changes nothing.
CREATE FUNCTION decide_order(
  p_order_id UUID,
  p_proposal TEXT,
  p_payment_id TEXT,
  p_extension_id TEXT,
  p_seconds INTEGER,
  p_max_window_seconds INTEGER,
  p_lock_timeout_ms INTEGER,
  p_endpoints TEXT[]
) RETURNS JSONB
LANGUAGE plpgsql AS $$
DECLARE
  o orders;
  r payment_receipts;
  v_status "OrderStatus";
  v_defect TEXT;
  v_extension JSONB;
  v_extended TIMESTAMPTZ;
  v_outcome "ExtensionOutcome";
  v_decided BOOLEAN := false;
BEGIN
  IF p_proposal NOT IN ('COMMIT', 'EXPIRE', 'CANCEL', 'EXTEND') THEN
    RAISE EXCEPTION 'unknown proposal %', p_proposal;
  END IF;
  -- The caller's budget for waiting on locks (below its transaction's and activity's timeouts).
  PERFORM set_config('lock_timeout', p_lock_timeout_ms || 'ms', true);
  SELECT * INTO o FROM orders WHERE id = p_order_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'order % does not exist', p_order_id;
  END IF;

  IF p_proposal = 'COMMIT' THEN
    SELECT * INTO r FROM payment_receipts WHERE payment_id = p_payment_id;
    v_defect := payment_defect(o, r);
    -- Not a verified payment of this order: it cannot move anything.
    IF v_defect IN ('UNVERIFIED', 'PAYMENT_ALREADY_USED') THEN
      RETURN order_decision(p_order_id) || jsonb_build_object('defect', v_defect, 'decidedNow', false);
    END IF;
  END IF;

  IF p_proposal = 'EXTEND' THEN
    SELECT jsonb_build_object('outcome', e.outcome::text, 'expiresAt', e.expires_at) INTO v_extension
      FROM order_extensions e WHERE e.order_id = p_order_id AND e.extension_id = p_extension_id;
    IF FOUND THEN
      RETURN order_decision(p_order_id) || jsonb_build_object('extension', v_extension, 'decidedNow', false);
    END IF;
  END IF;

  IF o.status = 'PENDING' THEN
    -- Its hold is not decided yet: the caller retries.
    RAISE EXCEPTION 'order % is PENDING: it holds no stock yet', p_order_id;
  END IF;

  IF o.status = 'AWAITING_PAYMENT' THEN
    v_status := order_transition(o, p_proposal);
    IF v_status IS NOT NULL THEN
      PERFORM settle_order(p_order_id, v_status, order_paying_payment(o), p_endpoints);
      v_decided := true;
    ELSIF p_proposal = 'COMMIT' AND v_defect IS NOT NULL THEN
      -- A verified payment that can never pay this order (wrong amount or currency): it holds nothing.
      UPDATE payment_receipts SET outcome = 'REFUSED' WHERE payment_id = p_payment_id AND outcome IS NULL;
    ELSIF p_proposal = 'EXTEND' THEN
      -- Only workflows that re-arm their timer ask; an older one would expire the order regardless.
      IF NOT o.deadline_movable THEN
        RAISE EXCEPTION 'order % is held by a workflow that does not follow its deadline', p_order_id;
      END IF;
      v_extended := o.expires_at + make_interval(secs => p_seconds);
      IF v_extended > o.created_at + make_interval(secs => p_max_window_seconds) THEN
        v_outcome := 'EXTENSION_TOO_LONG';
        v_extended := o.expires_at;
      ELSE
        v_outcome := 'EXTENDED';
        UPDATE orders SET expires_at = v_extended WHERE id = p_order_id;
        PERFORM record_order_event(p_order_id, 'order.extended', NULL, p_endpoints);
      END IF;
      INSERT INTO order_extensions (order_id, extension_id, seconds, outcome, expires_at)
      VALUES (p_order_id, p_extension_id, p_seconds, v_outcome, v_extended);
      v_extension := jsonb_build_object('outcome', v_outcome::text, 'expiresAt', v_extended);
    END IF;
  END IF;

  RETURN order_decision(p_order_id) || jsonb_strip_nulls(jsonb_build_object(
    'decidedNow', v_decided, 'defect', v_defect, 'extension', v_extension));
END
$$;

-- The reclaim: one batch of due orders, settled by the same rule (order_transition) without
-- waiting for their workflows. Claims rows FOR UPDATE SKIP LOCKED, so any number of workers share
-- the work and never wait on each other or on an order being decided; then locks the batch's
-- products in byte order before settling any order. A due order paid in time ends PAID here (its
-- workflow, if any, finds that decided); every other due order ends EXPIRED.
-- It also closes PENDING orders whose hold never ran (the API's start was lost, or no worker took
-- it): they hold no stock, and a minute past their deadline (longer than any placement waits:
-- ORDER_DECISION_WAIT_SECONDS is at most 60) they expire holding nothing; a hold that runs later
-- finds them EXPIRED (order_reservation) and holds nothing. Their lag_seconds is NULL.
CREATE FUNCTION reclaim_due_orders(p_batch_size INTEGER, p_endpoints TEXT[])
RETURNS TABLE (order_id UUID, status TEXT, lag_seconds FLOAT8)
LANGUAGE plpgsql AS $$
DECLARE
  v_ids UUID[];
  o orders;
  v_status "OrderStatus";
BEGIN
  SELECT array_agg(c.id) INTO v_ids FROM (
    SELECT d.id FROM orders d
     WHERE d.status = 'AWAITING_PAYMENT' AND order_is_due(d)
     ORDER BY order_deadline(d.expires_at, d.payment_pending_until)
     LIMIT p_batch_size
       FOR UPDATE SKIP LOCKED) c;
  IF v_ids IS NOT NULL THEN
    PERFORM 1 FROM products p
     WHERE p.sku IN (SELECT DISTINCT i.sku FROM order_items i WHERE i.order_id = ANY(v_ids))
     ORDER BY p.sku COLLATE "C" FOR NO KEY UPDATE;
    FOR o IN SELECT * FROM orders d WHERE d.id = ANY(v_ids) ORDER BY order_deadline(d.expires_at, d.payment_pending_until) LOOP
      v_status := order_transition(o, 'RECLAIM');
      CONTINUE WHEN v_status IS NULL;
      PERFORM settle_order(o.id, v_status, order_paying_payment(o), p_endpoints);
      order_id := o.id;
      status := v_status::text;
      lag_seconds := EXTRACT(EPOCH FROM (clock_timestamp() - order_deadline(o.expires_at, o.payment_pending_until)));
      RETURN NEXT;
    END LOOP;
  END IF;
  FOR o IN SELECT * FROM orders d
            WHERE d.status = 'PENDING' AND d.expires_at <= now() - interval '1 minute'
            ORDER BY d.expires_at LIMIT p_batch_size
              FOR UPDATE SKIP LOCKED LOOP
    UPDATE orders SET status = 'EXPIRED', closed_at = clock_timestamp() WHERE id = o.id;
    PERFORM record_order_event(o.id, 'order.expired', NULL, p_endpoints);
    order_id := o.id;
    status := 'EXPIRED';
    lag_seconds := NULL;
    RETURN NEXT;
  END LOOP;
END
$$;

-- What an order that is no longer PENDING was decided as (for a hold that runs again, or late):
-- REJECTED with its shortages, EXPIRED when it expired before any hold (nothing held), else HELD.
CREATE OR REPLACE FUNCTION order_reservation(p_order_id UUID) RETURNS JSONB
LANGUAGE sql STABLE AS $$
  SELECT CASE
    WHEN o.status = 'REJECTED'
      THEN jsonb_build_object('outcome', 'REJECTED', 'shortages', COALESCE(o.rejection, '[]'::jsonb))
    WHEN NOT EXISTS (SELECT 1 FROM stock_movements m WHERE m.order_id = o.id AND m.kind = 'RESERVE')
      THEN jsonb_build_object('outcome', 'EXPIRED_UNHELD')
    ELSE jsonb_build_object(
      'outcome', 'HELD',
      'lines', COALESCE((SELECT jsonb_agg(jsonb_build_object('sku', i.sku, 'quantity', i.quantity, 'unitPriceCents', i.unit_price_cents) ORDER BY i.sku COLLATE "C")
                           FROM order_items i WHERE i.order_id = o.id), '[]'::jsonb),
      'totalCents', o.total_cents)
    END
    FROM orders o WHERE o.id = p_order_id
$$;

-- The hold records the order's currency (the rest as in 20261205000000_hold_order).
DROP FUNCTION hold_order(UUID, TEXT, JSONB, TIMESTAMPTZ, TIMESTAMPTZ, BOOLEAN, TEXT, TEXT, TEXT[]);
CREATE FUNCTION hold_order(
  p_order_id UUID,
  p_customer_id TEXT,
  p_items JSONB,
  p_created_at TIMESTAMPTZ,
  p_expires_at TIMESTAMPTZ,
  p_currency TEXT,
  p_idempotency_key TEXT,
  p_request_hash TEXT,
  p_lock_timeout_ms INTEGER,
  p_endpoints TEXT[]
) RETURNS JSONB
LANGUAGE plpgsql
AS $$
DECLARE
  v_status TEXT;
  v_unknown TEXT;
  v_shortages JSONB;
  v_lines JSONB;
  v_total BIGINT;
BEGIN
  -- A hold waits for other holds of the same skus; past this budget it fails and the activity retries.
  PERFORM set_config('lock_timeout', p_lock_timeout_ms || 'ms', true);
  -- The API's PENDING row, locked; or the decision of an earlier attempt.
  SELECT status::text INTO v_status FROM orders WHERE id = p_order_id FOR UPDATE;
  IF FOUND AND v_status <> 'PENDING' THEN
    RETURN order_reservation(p_order_id);
  END IF;

  -- In sku order (byte order, as every other writer of products sorts), so holds never deadlock.
  PERFORM 1 FROM products p WHERE p.sku IN (SELECT h.sku FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER)) ORDER BY p.sku COLLATE "C" FOR UPDATE;

  SELECT h.sku INTO v_unknown FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER)
   WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.sku = h.sku) ORDER BY h.sku COLLATE "C" LIMIT 1;
  IF v_unknown IS NOT NULL THEN
    RETURN jsonb_build_object('outcome', 'UNKNOWN_SKU', 'sku', v_unknown);
  END IF;

  IF v_status IS NULL THEN
    -- No PENDING row: its start failed and the API withdrew the row (the start reached Temporal
    -- after all). A concurrent attempt of this same hold may insert it first.
    INSERT INTO orders (id, customer_id, status, total_cents, created_at, expires_at, currency, idempotency_key, request_hash)
    VALUES (p_order_id, p_customer_id, 'PENDING', 0, p_created_at, p_expires_at, p_currency, p_idempotency_key, p_request_hash)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      SELECT status::text INTO v_status FROM orders WHERE id = p_order_id FOR UPDATE;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'order % conflicts with another order of customer % under the same idempotency key', p_order_id, p_customer_id;
      END IF;
      IF v_status <> 'PENDING' THEN
        RETURN order_reservation(p_order_id);
      END IF;
    END IF;
  END IF;

  SELECT jsonb_agg(jsonb_build_object('sku', h.sku, 'requested', h.quantity, 'available', p.available) ORDER BY h.sku COLLATE "C")
    INTO v_shortages
    FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) JOIN products p ON p.sku = h.sku
   WHERE p.available < h.quantity;

  -- The lines at the catalog's prices (a rejection records them too).
  SELECT jsonb_agg(jsonb_build_object('sku', h.sku, 'quantity', h.quantity, 'unitPriceCents', p.price_cents) ORDER BY h.sku COLLATE "C"),
         SUM(h.quantity::bigint * p.price_cents)
    INTO v_lines, v_total
    FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) JOIN products p ON p.sku = h.sku;

  DELETE FROM order_items WHERE order_id = p_order_id;
  INSERT INTO order_items (order_id, sku, quantity, unit_price_cents)
  SELECT p_order_id, h.sku, h.quantity, p.price_cents FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) JOIN products p ON p.sku = h.sku;

  IF v_shortages IS NOT NULL THEN
    UPDATE orders
       SET status = 'REJECTED', total_cents = v_total, created_at = p_created_at, expires_at = p_expires_at,
           currency = p_currency, closed_at = now(), rejection = v_shortages
     WHERE id = p_order_id;
    PERFORM record_order_event(p_order_id, 'order.rejected', NULL, p_endpoints);
    RETURN jsonb_build_object('outcome', 'REJECTED', 'shortages', v_shortages);
  END IF;

  UPDATE products p
     SET available = p.available - h.quantity, reserved = p.reserved + h.quantity, updated_at = now()
    FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) WHERE p.sku = h.sku;
  INSERT INTO stock_movements (sku, order_id, kind, quantity)
  SELECT h.sku, p_order_id, 'RESERVE', h.quantity FROM jsonb_to_recordset(p_items) AS h(sku TEXT, quantity INTEGER) ORDER BY h.sku COLLATE "C";
  UPDATE orders
     SET status = 'AWAITING_PAYMENT', total_cents = v_total, created_at = p_created_at, expires_at = p_expires_at,
         currency = p_currency, deadline_movable = true
   WHERE id = p_order_id;
  PERFORM record_order_event(p_order_id, 'order.placed', NULL, p_endpoints);
  RETURN jsonb_build_object('outcome', 'HELD', 'lines', v_lines, 'totalCents', v_total);
END
$$;

-- For the inventory check: orders still holding stock more than p_bound_seconds past their
-- effective deadline (the reclaim should have settled them within its bound).
CREATE FUNCTION overdue_holds(p_bound_seconds INTEGER)
RETURNS TABLE (order_id UUID, deadline TIMESTAMPTZ, overdue_seconds FLOAT8)
LANGUAGE sql STABLE AS $$
  SELECT o.id, order_deadline(o.expires_at, o.payment_pending_until),
         EXTRACT(EPOCH FROM (now() - order_deadline(o.expires_at, o.payment_pending_until)))::float8
    FROM orders o
   WHERE o.status = 'AWAITING_PAYMENT'
     AND order_deadline(o.expires_at, o.payment_pending_until) <= now() - make_interval(secs => p_bound_seconds)
   ORDER BY 2
$$;

-- For the inventory check: receipts whose outcome disagrees with their order. A receipt APPLIED
-- to an order that no longer names it as its payment, a paid order whose payment's receipt is not
-- APPLIED (or absent), and a refused receipt that its order names as paid.
CREATE FUNCTION receipt_disagreements()
RETURNS TABLE (order_id UUID, payment_id TEXT, receipt_outcome TEXT, order_status TEXT, order_payment_id TEXT)
LANGUAGE sql STABLE AS $$
  SELECT r.order_id, r.payment_id, r.outcome::text, o.status::text, o.payment_id
    FROM payment_receipts r JOIN orders o ON o.id = r.order_id
   WHERE (r.outcome = 'APPLIED' AND (o.status <> 'PAID' OR o.payment_id IS DISTINCT FROM r.payment_id))
      OR (r.outcome = 'REFUSED' AND o.payment_id = r.payment_id)
  UNION ALL
  SELECT o.id, o.payment_id, r.outcome::text, o.status::text, o.payment_id
    FROM orders o LEFT JOIN payment_receipts r ON r.payment_id = o.payment_id
   WHERE o.status = 'PAID' AND (r.payment_id IS NULL OR r.order_id <> o.id OR r.outcome IS DISTINCT FROM 'APPLIED')
$$;
