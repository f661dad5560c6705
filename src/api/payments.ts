/**
 * The payment webhooks' work once a delivery is verified: its receipt recorded in PostgreSQL
 * (which claims the paymentId for its order, and starts or ends a processing hold), then, for
 * payment.succeeded, the payment decided by the order's workflow (or by a late-payment workflow
 * when the order's is gone) and answered with the decided outcome.
 */
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import { Prisma, type PrismaClient } from '../../prisma/generated/client';
import {
  awaitClosedUpdate,
  awaitPaymentDecisionUpdate,
  LATE_PAYMENT_WORKFLOW_TYPE,
  latePaymentWorkflowId,
  orderWorkflowId,
  paymentFailedSignal,
  paymentReceivedSignal,
  type PaymentDecisionOfClosedOrder,
  type PaymentOutcome,
  type PaymentReceived,
  type RefundResult,
} from '../../workflows/messages';
import { EVERY_CHANNEL, isOrderId, orderNotFound, type OrderRecords } from './order-records';
import type { OrderResponse } from './schemas';
import { AWAIT_CLOSED_ID, awaitPaymentDecisionId, resendingUpdate, signalWithinDeadline, withinDecisionWait, type Waited } from './temporal-calls';
import { isTemporalUnreachable } from './unavailable';
import type { PaymentEvent } from './webhooks';

/** What a verified delivery gets: 200 with its outcome, so the provider stops redelivering. */
export interface PaymentAnswer {
  /** UNDECIDED: received and recorded, not decided within the decision wait (202; the contract's outcome PENDING). */
  outcome: PaymentOutcome | 'PAYMENT_ALREADY_USED' | 'PROCESSING' | 'FAILED' | 'UNDECIDED';
  refund?: RefundResult;
  order: OrderResponse;
}

export interface PaymentsDependencies {
  prisma: PrismaClient;
  temporal: Client;
  taskQueue: string;
  /** Lowercase ISO 4217 (CHECKOUT_CURRENCY): a delivery that names no currency is in it. */
  checkoutCurrency: string;
}

const CLOSED_BY_ANOTHER_DECISION: ReadonlySet<PaymentOutcome> = new Set(['ORDER_EXPIRED', 'ORDER_CANCELLED', 'ORDER_ALREADY_PAID']);

/** Receipts are one short transaction; a busy machine should not fail it spuriously. */
const RECEIPT_TRANSACTION_OPTIONS = { maxWait: 5_000, timeout: 8_000 } as const;

export class Payments {
  constructor(
    private readonly deps: PaymentsDependencies,
    private readonly records: OrderRecords,
    private readonly decisionWaitMs: number,
    /** PAYMENT_PROCESSING_HOLD_SECONDS: how long payment.processing may hold an order past its deadline. */
    private readonly processingHoldSeconds: number,
  ) {}

  /**
   * A verified delivery: recorded as a receipt first (which claims its paymentId for the order
   * it names), then, for payment.succeeded, decided by the order's workflow.
   */
  async receivePayment(event: PaymentEvent): Promise<PaymentAnswer> {
    const currency = event.currency ?? this.deps.checkoutCurrency;
    const { claimedBy, endedHold } = await this.recordReceipt(event, currency);
    if (claimedBy !== event.orderId) return { outcome: 'PAYMENT_ALREADY_USED', order: await this.records.getOrder(event.orderId, EVERY_CHANNEL) };
    switch (event.type) {
      case 'payment.processing':
        return { outcome: 'PROCESSING', order: await this.records.getOrder(event.orderId, EVERY_CHANNEL) };
      case 'payment.failed':
        if (endedHold) await this.tellHoldEnded(event.orderId, event.paymentId);
        return { outcome: 'FAILED', order: await this.records.getOrder(event.orderId, EVERY_CHANNEL) };
      case 'payment.succeeded':
        return this.decidePayment(event.orderId, { paymentId: event.paymentId, amountCents: event.amountCents, currency });
    }
  }

  /**
   * Inserts the delivery's receipt unless its paymentId has one, and returns the order that
   * paymentId belongs to. The order row is locked first (shared for a success, exclusive when the
   * delivery may change the order's hold): the reclaim of overdue orders claims rows FOR UPDATE
   * SKIP LOCKED, so it either sees this receipt or passes the order by.
   * - payment.succeeded stamps succeeded_at (the first time);
   * - payment.processing, for an order awaiting payment before its deadline, holds it until
   *   now + PAYMENT_PROCESSING_HOLD_SECONDS: on the payment's first delivery, or on one after it
   *   failed (a retried payment); a redelivery never lengthens a hold;
   * - payment.failed ends that payment (and its hold): the order's hold becomes the latest hold
   *   of its other payments, if any (`endedHold`).
   */
  private async recordReceipt(event: PaymentEvent, currency: string): Promise<{ claimedBy: string; endedHold: boolean }> {
    if (!isOrderId(event.orderId)) throw orderNotFound(event.orderId);
    const { type, orderId, paymentId } = event;
    const succeeded = type === 'payment.succeeded';
    const lock = succeeded ? Prisma.sql`FOR SHARE` : Prisma.sql`FOR UPDATE`;
    return this.deps.prisma.$transaction(async (tx) => {
      const [order] = await tx.$queryRaw<{ holdable: boolean; pending_until: Date | null }[]>`
        SELECT (status = 'AWAITING_PAYMENT' AND deadline_movable AND NOT order_is_due(orders)) AS holdable,
               payment_pending_until AS pending_until
          FROM orders WHERE id = ${orderId}::uuid ${lock}`;
      if (!order) throw orderNotFound(orderId);
      await tx.$executeRaw`
        INSERT INTO payment_receipts (payment_id, order_id, amount_cents, currency, succeeded_at, failed_at)
        VALUES (${paymentId}, ${orderId}::uuid, ${BigInt(event.amountCents)}, ${currency},
                CASE WHEN ${succeeded} THEN now() END, CASE WHEN ${type === 'payment.failed'} THEN now() END)
        ON CONFLICT (payment_id) DO NOTHING`;
      const [receipt] = await tx.$queryRaw<{ order_id: string }[]>`
        SELECT order_id::text FROM payment_receipts WHERE payment_id = ${paymentId}`;
      if (!receipt) throw new Error(`the receipt of payment ${paymentId} vanished`);
      const claimedBy = receipt.order_id;
      if (claimedBy !== orderId) return { claimedBy, endedHold: false };
      switch (type) {
        case 'payment.succeeded':
          await tx.$executeRaw`
            UPDATE payment_receipts SET succeeded_at = now() WHERE payment_id = ${paymentId} AND succeeded_at IS NULL`;
          return { claimedBy, endedHold: false };
        case 'payment.processing': {
          if (!order.holdable) return { claimedBy, endedHold: false };
          const holdSeconds = this.processingHoldSeconds;
          const [held] = await tx.$queryRaw<{ held_until: Date }[]>`
            UPDATE payment_receipts SET held_until = now() + make_interval(secs => ${holdSeconds}), failed_at = NULL
             WHERE payment_id = ${paymentId} AND succeeded_at IS NULL AND (held_until IS NULL OR failed_at IS NOT NULL)
            RETURNING held_until`;
          if (held) {
            await tx.$executeRaw`SELECT hold_for_processing(${orderId}::uuid, ${held.held_until})`;
          }
          return { claimedBy, endedHold: false };
        }
        case 'payment.failed': {
          await tx.$executeRaw`
            UPDATE payment_receipts SET failed_at = now()
             WHERE payment_id = ${paymentId} AND failed_at IS NULL AND succeeded_at IS NULL`;
          if (order.pending_until === null) return { claimedBy, endedHold: false };
          const [after] = await tx.$queryRaw<{ pending_until: Date | null }[]>`
            UPDATE orders o SET payment_pending_until = (
                SELECT max(r.held_until) FROM payment_receipts r WHERE r.order_id = o.id AND r.failed_at IS NULL)
             WHERE o.id = ${orderId}::uuid
            RETURNING o.payment_pending_until AS pending_until`;
          return { claimedBy, endedHold: after?.pending_until?.getTime() !== order.pending_until.getTime() };
        }
      }
    }, RECEIPT_TRANSACTION_OPTIONS);
  }

  /**
   * Tells the order's workflow that a hold it may be waiting out has ended, so it expires the
   * order now rather than at the hold's end. Only a nudge: the reclaim returns the stock on time
   * either way, so a workflow that cannot be reached now is left to its timer.
   */
  private async tellHoldEnded(orderId: string, paymentId: string): Promise<void> {
    const handle = this.deps.temporal.workflow.getHandle(orderWorkflowId(orderId));
    try {
      await signalWithinDeadline(this.deps.temporal, handle, paymentFailedSignal, { paymentId });
    } catch (error) {
      if (!(error instanceof WorkflowNotFoundError) && !isTemporalUnreachable(error)) throw error;
    }
  }

  /**
   * Moves the order's expiresAt later by `seconds` (POST /admin/orders/:orderId/extend). The
   * order's workflow proposes it to the database, which decides it against the deadline, and
   * then sets its timer for the new one. The same Idempotency-Key extends once.
   */
  private async decidePayment(orderId: string, payment: PaymentReceived): Promise<PaymentAnswer> {
    const decideBy = Date.now() + this.decisionWaitMs;
    const handle = this.deps.temporal.workflow.getHandle(orderWorkflowId(orderId));
    let waited: Waited<PaymentDecisionOfClosedOrder>;
    try {
      await signalWithinDeadline(this.deps.temporal, handle, paymentReceivedSignal, payment);
      waited = await withinDecisionWait(this.deps.temporal, decideBy - Date.now(), async () => {
        const decision = await resendingUpdate(() =>
          handle.executeUpdate(awaitPaymentDecisionUpdate, {
            args: [{ paymentId: payment.paymentId }],
            updateId: awaitPaymentDecisionId(payment.paymentId),
          }),
        );
        // A payment refused because the order was decided otherwise is answered with the order as
        // it ends (its stock moved), so a redelivery later shows the same order.
        if (CLOSED_BY_ANOTHER_DECISION.has(decision.outcome)) {
          await resendingUpdate(() => handle.executeUpdate(awaitClosedUpdate, { updateId: AWAIT_CLOSED_ID }));
        }
        return decision;
      });
    } catch (error) {
      if (!(error instanceof WorkflowNotFoundError)) throw error;
      // The order's workflow is closed: usually it closed in the very task that took this signal,
      // because this payment decided the order. Then the decision is in PostgreSQL already; only a
      // payment still undecided there (its workflow terminated, or closed before the signal) needs
      // a late-payment workflow.
      const recorded = await this.recordedPaymentDecision(orderId, payment.paymentId);
      const late = { paymentId: payment.paymentId, amountCents: payment.amountCents };
      waited = recorded
        ? { decided: true, value: recorded }
        : await withinDecisionWait(this.deps.temporal, decideBy - Date.now(), () => this.runLatePaymentWorkflow(orderId, late));
    }
    const order = await this.records.getOrder(orderId, EVERY_CHANNEL);
    // Received, not decided in time: the workflow decides it; a redelivery gets the decision.
    if (!waited.decided) return { outcome: 'UNDECIDED', order };
    const decision = waited.value;
    return { outcome: decision.outcome, ...(decision.refund && { refund: decision.refund }), order };
  }

  private async runLatePaymentWorkflow(orderId: string, payment: { paymentId: string; amountCents: number }): Promise<PaymentDecisionOfClosedOrder> {
    return this.deps.temporal.workflow.execute(LATE_PAYMENT_WORKFLOW_TYPE, {
      workflowId: latePaymentWorkflowId(orderId, payment.paymentId),
      taskQueue: this.deps.taskQueue,
      args: [{ orderId, ...payment }],
      // Redeliveries join the running decision, or decide again (idempotently) after it closed.
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    });
  }

  /** A payment's decision as its order's workflow recorded it: applied, or refused and refunded. */
  private async recordedPaymentDecision(orderId: string, paymentId: string): Promise<PaymentDecisionOfClosedOrder | undefined> {
    const recorded = await this.deps.prisma.payment.findUnique({
      where: { orderId_paymentId: { orderId, paymentId } },
      select: { outcome: true, refund: { select: { status: true } } },
    });
    if (recorded?.outcome === 'APPLIED') return { paymentId, outcome: 'APPLIED' };
    if (!recorded?.refund) return undefined;
    return { paymentId, outcome: recorded.outcome, refund: { paymentId, status: recorded.refund.status } };
  }

}
