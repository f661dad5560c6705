-- One proposal for one order, decided under its row lock. p_proposal:
--   COMMIT  (p_payment_id): a paymentReceived signal, or a late payment whose workflow is gone;
--   EXPIRE: the workflow's timer;  CANCEL: cancelOrder;  EXTEND (p_extension_id, p_seconds,
--   p_max_window_seconds): an operator's extension.
-- Answers order_decision, plus for COMMIT `defect` (payment_defect of that payment) and for EXTEND
-- `extension` ({outcome, expiresAt}, recorded per extension id). `decidedNow` is true when this
-- call ended the hold. A retry finds the decision made and changes nothing.

CREATE OR REPLACE FUNCTION public.decide_order(p_order_id uuid, p_proposal text, p_payment_id text, p_extension_id text, p_seconds integer, p_max_window_seconds integer, p_lock_timeout_ms integer, p_endpoints text[])
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
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
$function$;
