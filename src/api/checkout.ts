/**
 * What the HTTP routes ask of the system: decisions go to the order's workflow, reads come
 * from the database (the read model). Every answer is a decided outcome, never a guess.
 */
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  isGrpcServiceError,
  ServiceError,
  WithStartWorkflowOperation,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  type Client,
} from '@temporalio/client';
import { ApplicationFailure, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/common';
import { Prisma, type PrismaClient, type Product } from '../../prisma/generated/client';
import { DEFAULTS } from '../config';
import {
  awaitClosedUpdate,
  awaitExtensionUpdate,
  awaitPaymentDecisionUpdate,
  awaitReservationUpdate,
  cancelOrderSignal,
  customerIdKey,
  extendPaymentWindowSignal,
  LATE_PAYMENT_WORKFLOW_TYPE,
  latePaymentWorkflowId,
  ORDER_WORKFLOW_TYPE,
  orderStatusKey,
  orderWorkflowId,
  closedOrderRefusal,
  paymentFailedSignal,
  paymentReceivedSignal,
  UpdateFailureType,
  type ExtensionOutcome,
  type OrderView,
  type OrderWorkflowInput,
  type PaymentDecisionOfClosedOrder,
  type PaymentOutcome,
  type PaymentReceived,
  type RefundResult,
} from '../../workflows/messages';
import { orderDetails, orderSummary } from '../../workflows/summaries';
import { admitOrder, refusalOf, withdrawOrder, type Refusal } from './admission';
import { ApiError, serviceUnavailable } from './errors';
import type { CreateOrderBody, OrderResponse, ProductResponse } from './schemas';
import { isPostgresUnreachable, isTemporalUnreachable } from './unavailable';
import type { PaymentEvent } from './webhooks';

export type { OrderResponse, ProductResponse } from './schemas';

/**
 * What a placement decided: HELD when the stock was held (whatever happened since), REJECTED
 * with why, PENDING when neither was decided within the decision wait (it will be).
 * `decidedBy` says who refused it, when this very request did: the API at admission (the order
 * has no workflow) or the order's hold; absent for a refusal recorded earlier (a replay).
 */
export type PlacedOrder =
  | { outcome: 'HELD' | 'PENDING'; order: OrderResponse }
  | { outcome: 'REJECTED'; order: OrderResponse; refusal: Refusal; decidedBy?: 'api' | 'hold' };

export interface CheckoutDependencies {
  prisma: PrismaClient;
  temporal: Client;
  taskQueue: string;
  defaultPaymentTimeoutSeconds: number;
  /** Lowercase ISO 4217 (CHECKOUT_CURRENCY): orders are priced in it, payments must be in it. */
  checkoutCurrency: string;
  /** How long a request waits for a decision before answering "pending" (default 10 s). */
  decisionWaitSeconds?: number;
  /** PAYMENT_PROCESSING_HOLD_SECONDS: how long payment.processing may hold an order past its deadline. */
  paymentProcessingHoldSeconds?: number;
  /** RECLAIM_BOUND_SECONDS: the inventory check flags holds kept longer than this past their deadline. */
  reclaimBoundSeconds?: number;
  /** ORDER_ID_SECRET: keys the ids derived from an Idempotency-Key, so no one can guess them. */
  orderIdSecret: string;
  /** MAX_OPEN_ORDERS_PER_CUSTOMER: 0 (the default) for no cap. */
  maxOpenOrdersPerCustomer?: number;
  /** ORDER_ADMISSION_SECONDS: how long an order admitted but not yet held keeps its units from others. */
  admissionSeconds?: number;
  /** ORDER_EVENTS_URL: the events the API writes itself (a refusal's `order.rejected`) get a delivery to each. */
  eventEndpoints?: readonly string[];
}

/** Which orders a caller may see: those of one channel (a storefront key), or every channel. */
export type ChannelScope = string | typeof EVERY_CHANNEL;
/** An operator and the payment provider see every channel's orders. */
export const EVERY_CHANNEL = null;

/**
 * What an extension got: EXTENDED (expiresAt moved), PENDING (not decided within the decision
 * wait; it will be), or why it was refused.
 */
export interface ExtendedOrder {
  outcome: 'EXTENDED' | 'PENDING' | ExtensionRefusal;
  order: OrderResponse;
}

export type ExtensionRefusal = Exclude<ExtensionOutcome, 'EXTENDED'>;

/**
 * What a cancel got: CANCELLED once the stock is back, PENDING while that is not done yet, or
 * the final state that refuses it (paid, expired, rejected).
 */
export interface CancelledOrder {
  outcome: 'CANCELLED' | 'PENDING' | CancelRefusal;
  order: OrderResponse;
}

export type CancelRefusal = 'ORDER_ALREADY_PAID' | 'ORDER_EXPIRED' | 'ORDER_REJECTED';

/** The Retry-After of a 202: when asking again (GET /orders/:orderId, or the same request) is worth it. */
export const PENDING_RETRY_AFTER_SECONDS = 2;

/**
 * The deadline of a Temporal call that must answer by itself, without a worker (starting a
 * workflow, sending a signal): past it, Temporal counts as unreachable (503).
 */
export const TEMPORAL_CALL_DEADLINE_MS = 5_000;

/**
 * One update id per wait and order (per payment), whatever the number of requests: a repeated
 * request joins the update in flight, or gets the result of the one completed, rather than
 * piling up new ones while no worker runs (Temporal caps updates in flight per workflow at 10).
 */
const AWAIT_RESERVATION_ID = 'await-reservation';
const AWAIT_CLOSED_ID = 'await-closed';
const awaitPaymentDecisionId = (paymentId: string) => `await-payment-decision-${paymentId}`;

export type Waited<T> = { decided: true; value: T } | { decided: false };

/**
 * Runs `wait` (Temporal calls that wait for a decision the workflow makes) with a gRPC deadline
 * `waitMs` away. When the deadline passes first, or the workflow cannot take the update now, the
 * answer is "not decided yet": the workflow decides anyway, and the caller says so (202)
 * instead of hanging. Any other failure is thrown.
 */
export async function withinDecisionWait<T>(temporal: Client, waitMs: number, wait: () => Promise<T>): Promise<Waited<T>> {
  try {
    return { decided: true, value: await temporal.withDeadline(Date.now() + Math.max(waitMs, 0), wait) };
  } catch (error) {
    // Not ready: the workflow's task keeps failing or timing out (e.g. on a frozen worker), so
    // the server takes no update now; the decision comes once a worker runs the task.
    if (isDeadlineExceeded(error) || isWorkflowNotReady(error)) return { decided: false };
    throw error;
  }
}

function isDeadlineExceeded(error: unknown): boolean {
  if (error instanceof WorkflowUpdateRPCTimeoutOrCancelledError) return true;
  const cause = error instanceof ServiceError ? error.cause : error;
  return isGrpcServiceError(cause) && cause.code === GRPC_DEADLINE_EXCEEDED;
}

/** What a verified delivery gets: 200 with its outcome, so the provider stops redelivering. */
export interface PaymentAnswer {
  /** PENDING: received and recorded, not decided within the decision wait (202). */
  outcome: PaymentOutcome | 'PAYMENT_ALREADY_USED' | 'PROCESSING' | 'FAILED' | 'PENDING';
  refund?: RefundResult;
  order: OrderResponse;
}

const CLOSED_BY_ANOTHER_DECISION: ReadonlySet<PaymentOutcome> = new Set(['ORDER_EXPIRED', 'ORDER_CANCELLED', 'ORDER_ALREADY_PAID']);

/** Receipts are one short transaction; a busy machine should not fail it spuriously. */
const RECEIPT_TRANSACTION_OPTIONS = { maxWait: 5_000, timeout: 8_000 } as const;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether a string has the form of an orderId (a UUID); anything else names no order. */
export const isOrderId = (value: string): boolean => UUID.test(value);

export class CheckoutService {
  /**
   * Keyed requests for the same order and body that arrive while one is in flight share its
   * answer: Temporal caps the updates in flight per workflow (10 by default), and a burst of
   * retries from one client should not queue behind that cap.
   */
  private readonly placing = new Map<string, Promise<PlacedOrder>>();

  private readonly decisionWaitMs: number;
  private readonly processingHoldSeconds: number;

  constructor(private readonly deps: CheckoutDependencies) {
    this.decisionWaitMs = (deps.decisionWaitSeconds ?? DEFAULTS.orderDecisionWaitSeconds) * 1000;
    this.processingHoldSeconds = deps.paymentProcessingHoldSeconds ?? DEFAULTS.paymentProcessingHoldSeconds;
  }

  async placeOrder(body: CreateOrderBody, idempotencyKey: string | undefined, channel: string): Promise<PlacedOrder> {
    if (idempotencyKey === undefined) return this.place(body, randomUUID(), channel);
    const orderId = orderIdFor(this.deps.orderIdSecret, channel, body.customerId, idempotencyKey);
    const requestHash = hashRequest(body);
    const sharedKey = `${orderId}:${requestHash}`;
    const inFlight = this.placing.get(sharedKey);
    if (inFlight) return inFlight;
    const placing = this.place(body, orderId, channel, { idempotencyKey, requestHash }).finally(() => this.placing.delete(sharedKey));
    this.placing.set(sharedKey, placing);
    return placing;
  }

  private async place(
    body: CreateOrderBody,
    derivedId: string,
    channel: string,
    keyed?: { idempotencyKey: string; requestHash: string },
  ): Promise<PlacedOrder> {
    let orderId = derivedId;
    const decideBy = Date.now() + this.decisionWaitMs;
    const idempotencyKey = keyed?.idempotencyKey;
    const requestHash = keyed?.requestHash;
    const paymentTimeoutSeconds = body.paymentTimeoutSeconds ?? this.deps.defaultPaymentTimeoutSeconds;
    // The order is readable (PENDING, holding nothing) before its workflow exists; one the database
    // already shows it cannot have is refused here, with no workflow.
    const admission = await admitOrder(this.deps.prisma, {
      orderId,
      channel,
      body,
      paymentTimeoutSeconds,
      currency: this.deps.checkoutCurrency,
      idempotencyKey: idempotencyKey ?? null,
      requestHash: requestHash ?? null,
      maxOpenOrders: this.deps.maxOpenOrdersPerCustomer ?? DEFAULTS.maxOpenOrdersPerCustomer,
      admissionSeconds: this.deps.admissionSeconds ?? DEFAULTS.orderAdmissionSeconds,
      eventEndpoints: this.deps.eventEndpoints ?? [],
    });
    if (admission.outcome === 'REFUSED') {
      return { outcome: 'REJECTED', order: admission.order, refusal: admission.refusal, decidedBy: 'api' };
    }
    const recordedHere = admission.outcome === 'ADMITTED';
    let pendingRecord: OrderRecord;
    if (admission.outcome === 'ADMITTED') {
      pendingRecord = { order: admission.order, requestHash: requestHash ?? null, rejection: null, rejectionCode: null };
    } else {
      // With a key, the order may exist already (a retry, or a request racing this one), found by
      // its channel, customer and key: under an id derived before ORDER_ID_SECRET was changed, too.
      const recorded = keyed ? await this.findKeyedOrder(derivedId, channel, body.customerId, keyed.idempotencyKey) : await this.findOrder(orderId, channel);
      orderId = recorded.order.orderId;
      // A replay of a decided order is answered from the record, without Temporal: this also holds
      // once the order's workflow history is gone, when starting the workflow again would be wrong.
      if (recorded.order.status !== 'PENDING') return placedFromRecord(recorded, requestHash);
      assertSameRequest(recorded, requestHash);
      pendingRecord = recorded;
    }
    const input: OrderWorkflowInput = {
      orderId,
      channel,
      customerId: body.customerId,
      items: body.items,
      paymentTimeoutSeconds,
      currency: this.deps.checkoutCurrency,
      ...(idempotencyKey !== undefined && { idempotencyKey, requestHash }),
    };
    // Update-with-start: the start and the wait for the hold in one call, answered from the
    // workflow's first task (a separate update would cost a second workflow task per order).
    const startOrder = new WithStartWorkflowOperation(ORDER_WORKFLOW_TYPE, {
      workflowId: orderWorkflowId(orderId),
      taskQueue: this.deps.taskQueue,
      args: [input],
      // A racing request with the same Idempotency-Key joins the running workflow.
      workflowIdConflictPolicy: 'USE_EXISTING',
      // A closed workflow of this id is another order's only when this request just recorded the
      // order: the earlier order of its Idempotency-Key was pruned (docs/api.md, "Retention").
      workflowIdReusePolicy: recordedHere ? 'ALLOW_DUPLICATE' : 'REJECT_DUPLICATE',
      staticSummary: orderSummary(orderId, body.customerId, body.items),
      staticDetails: orderDetails(input),
      typedSearchAttributes: [
        { key: customerIdKey, value: body.customerId },
        { key: orderStatusKey, value: 'PENDING' },
      ],
    });
    try {
      const waited = await withinDecisionWait(this.deps.temporal, decideBy - Date.now(), () =>
        this.deps.temporal.workflow.executeUpdateWithStart(awaitReservationUpdate, {
          args: [requestHash === undefined ? {} : { requestHash }],
          // Per order record: a key whose earlier order was pruned must not be answered with that
          // order's completed update from its closed run (Temporal dedups update-with-start by id).
          updateId: `${AWAIT_RESERVATION_ID}-${pendingRecord.order.createdAt}`,
          startWorkflowOperation: startOrder,
        }),
      );
      if (waited.decided) {
        if (waited.value.status !== 'REJECTED') return { outcome: 'HELD', order: withChannel(waited.value, channel) };
        // Refused by its hold (the stock went between admission and hold, or a limit): the record says why.
        const placed = placedFromRecord(await this.findOrder(orderId, channel), requestHash);
        return placed.outcome === 'REJECTED' ? { ...placed, decidedBy: 'hold' } : placed;
      }
      // Not decided in time (no worker took the task): 202 if the order was started, which
      // only the Temporal server has to answer; otherwise nothing was started (503).
      await this.deps.temporal.withDeadline(Date.now() + TEMPORAL_CALL_DEADLINE_MS, () =>
        this.deps.temporal.workflow.getHandle(orderWorkflowId(orderId)).describe(),
      );
    } catch (error) {
      if (updateFailureType(error) === UpdateFailureType.IdempotencyKeyReused) throw keyReused();
      if (error instanceof WorkflowExecutionAlreadyStartedError) {
        // The order with this key has finished its workflow: answer from the record.
        return placedFromRecord(await this.findOrder(orderId, channel), requestHash);
      }
      // Not started: the PENDING row this request made goes again, so nothing is left behind
      // (it never held stock). If the start did reach Temporal after all (a lost answer),
      // reserveStock creates the row itself (docs/failure-modes.md).
      if (recordedHere && (error instanceof WorkflowNotFoundError || isTemporalUnreachable(error))) await this.withdrawPending(orderId);
      if (error instanceof WorkflowNotFoundError) throw serviceUnavailable('temporal');
      throw error;
    }
    try {
      return placedFromRecord(await this.findOrder(orderId, channel), requestHash);
    } catch (error) {
      // Started but unreadable now: it is still PENDING as far as this request can tell.
      if (!isPostgresUnreachable(error)) throw error;
      return { outcome: 'PENDING', order: pendingRecord.order };
    }
  }

  /** Takes back a PENDING row whose workflow could not be started (never one the hold claimed), with its admission. */
  private async withdrawPending(orderId: string): Promise<void> {
    try {
      await withdrawOrder(this.deps.prisma, orderId);
    } catch {
      // The database is gone too: the row stays PENDING, holding nothing; a retry with the same
      // key starts it, and its admission lapses after ORDER_ADMISSION_SECONDS (docs/failure-modes.md).
    }
  }

  /** The order, if `channel` may see it; another channel's order is ORDER_NOT_FOUND, as an unknown id. */
  async getOrder(orderId: string, channel: ChannelScope): Promise<OrderResponse> {
    return (await this.findOrder(orderId, channel)).order;
  }

  /**
   * A verified delivery: recorded as a receipt first (which claims its paymentId for the order
   * it names), then, for payment.succeeded, decided by the order's workflow.
   */
  async receivePayment(event: PaymentEvent): Promise<PaymentAnswer> {
    const currency = event.currency ?? this.deps.checkoutCurrency;
    const { claimedBy, endedHold } = await this.recordReceipt(event, currency);
    if (claimedBy !== event.orderId) return { outcome: 'PAYMENT_ALREADY_USED', order: await this.getOrder(event.orderId, EVERY_CHANNEL) };
    switch (event.type) {
      case 'payment.processing':
        return { outcome: 'PROCESSING', order: await this.getOrder(event.orderId, EVERY_CHANNEL) };
      case 'payment.failed':
        if (endedHold) await this.tellHoldEnded(event.orderId, event.paymentId);
        return { outcome: 'FAILED', order: await this.getOrder(event.orderId, EVERY_CHANNEL) };
      case 'payment.succeeded':
        return this.decidePayment(event.orderId, { paymentId: event.paymentId, amountCents: event.amountCents, currency });
    }
  }

  /** A verified payment.succeeded for the order (the fault tests and scripts pay through here). */
  async pay(orderId: string, payment: { paymentId: string; amountCents: number; currency?: string }): Promise<PaymentAnswer> {
    return this.receivePayment({ type: 'payment.succeeded', orderId, ...payment });
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
      await this.deps.temporal.withDeadline(Date.now() + TEMPORAL_CALL_DEADLINE_MS, () => handle.signal(paymentFailedSignal, { paymentId }));
    } catch (error) {
      if (!(error instanceof WorkflowNotFoundError) && !isTemporalUnreachable(error)) throw error;
    }
  }

  /**
   * Moves the order's expiresAt later by `seconds` (POST /admin/orders/:orderId/extend). The
   * order's workflow proposes it to the database, which decides it against the deadline, and
   * then sets its timer for the new one. The same Idempotency-Key extends once.
   */
  async extend(orderId: string, seconds: number, idempotencyKey?: string): Promise<ExtendedOrder> {
    const decideBy = Date.now() + this.decisionWaitMs;
    const record = await this.findOrder(orderId, EVERY_CHANNEL);
    const extensionId = idempotencyKey === undefined ? randomUUID() : `key-${createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 32)}`;
    if (idempotencyKey !== undefined) {
      const earlier = await this.deps.prisma.orderExtension.findUnique({ where: { orderId_extensionId: { orderId, extensionId } } });
      if (earlier && earlier.seconds !== seconds) throw keyReused();
      if (earlier) return { outcome: earlier.outcome, order: record.order };
    }
    const refusal = closedOrderRefusal(record.order.status);
    if (refusal) return { outcome: refusal, order: record.order };
    const handle = this.deps.temporal.workflow.getHandle(orderWorkflowId(orderId));
    const request = { extensionId, seconds };
    let waited: Waited<ExtensionOutcome>;
    try {
      await this.deps.temporal.withDeadline(Date.now() + TEMPORAL_CALL_DEADLINE_MS, () => handle.signal(extendPaymentWindowSignal, request));
      waited = await withinDecisionWait(this.deps.temporal, decideBy - Date.now(), async () => {
        const decision = await resendingUpdate(() =>
          handle.executeUpdate(awaitExtensionUpdate, { args: [request], updateId: `await-extension-${extensionId}` }),
        );
        return decision.outcome;
      });
    } catch (error) {
      if (updateFailureType(error) === UpdateFailureType.IdempotencyKeyReused) throw keyReused();
      if (!(error instanceof WorkflowNotFoundError)) throw error;
      // No workflow follows this order's deadline any more (it closed, or was terminated).
      const order = await this.getOrder(orderId, EVERY_CHANNEL);
      return { outcome: closedOrderRefusal(order.status) ?? 'EXTENSION_NOT_SUPPORTED', order };
    }
    const order = await this.getOrder(orderId, EVERY_CHANNEL);
    if (!waited.decided) return { outcome: 'PENDING', order };
    return { outcome: waited.value, order };
  }

  private async decidePayment(orderId: string, payment: PaymentReceived): Promise<PaymentAnswer> {
    const decideBy = Date.now() + this.decisionWaitMs;
    const handle = this.deps.temporal.workflow.getHandle(orderWorkflowId(orderId));
    let waited: Waited<PaymentDecisionOfClosedOrder>;
    try {
      await this.deps.temporal.withDeadline(Date.now() + TEMPORAL_CALL_DEADLINE_MS, () => handle.signal(paymentReceivedSignal, payment));
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
        : await withinDecisionWait(this.deps.temporal, decideBy - Date.now(), () => this.decideLatePayment(orderId, late));
    }
    const order = await this.getOrder(orderId, EVERY_CHANNEL);
    // Received, not decided in time: the workflow decides it; a redelivery gets the decision.
    if (!waited.decided) return { outcome: 'PENDING', order };
    const decision = waited.value;
    return { outcome: decision.outcome, ...(decision.refund && { refund: decision.refund }), order };
  }

  async cancel(orderId: string, channel: ChannelScope): Promise<CancelledOrder> {
    const decideBy = Date.now() + this.decisionWaitMs;
    await this.findOrder(orderId, channel);
    const handle = this.deps.temporal.workflow.getHandle(orderWorkflowId(orderId));
    try {
      await this.deps.temporal.withDeadline(Date.now() + TEMPORAL_CALL_DEADLINE_MS, () => handle.signal(cancelOrderSignal));
      await withinDecisionWait(this.deps.temporal, decideBy - Date.now(), () =>
        resendingUpdate(() => handle.executeUpdate(awaitClosedUpdate, { updateId: AWAIT_CLOSED_ID })),
      );
    } catch (error) {
      if (!(error instanceof WorkflowNotFoundError)) throw error;
    }
    // The record decides the answer: a final state, or still open (the release not done yet).
    const order = await this.getOrder(orderId, channel);
    return { outcome: cancelOutcome(order.status), order };
  }

  async listProducts(): Promise<ProductResponse[]> {
    const products = await this.deps.prisma.product.findMany({ orderBy: { sku: 'asc' } });
    return products.map(toProductResponse);
  }

  async getProduct(sku: string): Promise<ProductResponse> {
    const product = await this.deps.prisma.product.findUnique({ where: { sku } });
    if (!product) throw new ApiError('PRODUCT_NOT_FOUND', `no product ${sku}`);
    return toProductResponse(product);
  }

  private async decideLatePayment(orderId: string, payment: { paymentId: string; amountCents: number }): Promise<PaymentDecisionOfClosedOrder> {
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

  private async findOrder(orderId: string, channel: ChannelScope): Promise<OrderRecord> {
    const order = isOrderId(orderId) ? await this.findOrderRecord(Prisma.sql`id = ${orderId}::uuid`, channel) : null;
    if (!order) throw orderNotFound(orderId);
    return order;
  }

  /** The order a channel's customer placed with an Idempotency-Key; gone only if a racing request withdrew it. */
  private async findKeyedOrder(derivedId: string, channel: string, customerId: string, idempotencyKey: string): Promise<OrderRecord> {
    const order = await this.findOrderRecord(Prisma.sql`customer_id = ${customerId} AND idempotency_key = ${idempotencyKey}`, channel);
    if (!order) throw orderNotFound(derivedId);
    return order;
  }

  /** The order as order_document shows it (the one definition that events use too), with what placement checks. */
  private async findOrderRecord(where: Prisma.Sql, channel: ChannelScope): Promise<OrderRecord | null> {
    const ofChannel = channel === EVERY_CHANNEL ? Prisma.empty : Prisma.sql`AND channel = ${channel}`;
    const [row] = await this.deps.prisma.$queryRaw<{ order: OrderResponse; request_hash: string | null; rejection: unknown; rejection_code: string | null }[]>`
      SELECT order_document(id) AS order, request_hash, rejection, rejection_code FROM orders WHERE ${where} ${ofChannel}`;
    return row ? { order: row.order, requestHash: row.request_hash, rejection: row.rejection, rejectionCode: row.rejection_code } : null;
  }


}

export function orderNotFound(orderId: string): ApiError {
  return new ApiError('ORDER_NOT_FOUND', `no order ${orderId}`);
}

function cancelOutcome(status: OrderResponse['status']): CancelledOrder['outcome'] {
  if (status === 'CANCELLED') return 'CANCELLED';
  const refusal = closedOrderRefusal(status);
  return refusal === undefined || refusal === 'ORDER_CANCELLED' ? 'PENDING' : refusal;
}

/** An order as the API answers it, with what a repeated placement is checked against. */
interface OrderRecord {
  order: OrderResponse;
  requestHash: string | null;
  /** A rejection's details and reason (orders.rejection, orders.rejection_code). */
  rejection: unknown;
  rejectionCode: string | null;
}

function placedFromRecord(record: OrderRecord, requestHash: string | undefined): PlacedOrder {
  assertSameRequest(record, requestHash);
  const { order } = record;
  if (order.status === 'PENDING') return { outcome: 'PENDING', order };
  if (order.status !== 'REJECTED') return { outcome: 'HELD', order };
  return { outcome: 'REJECTED', order, refusal: refusalOf(record.rejectionCode, record.rejection) };
}

/**
 * The workflow's view as the API answers it: shortages go in a refusal's details, never in the
 * order; and the view does not carry the channel (the caller's).
 */
function withChannel(view: OrderView, channel: string): OrderResponse {
  const order: OrderView = { ...view };
  delete order.shortages;
  return { ...order, channel };
}

function assertSameRequest(order: OrderRecord, requestHash: string | undefined): void {
  if (order.requestHash !== (requestHash ?? null)) throw keyReused();
}

function keyReused(): ApiError {
  return new ApiError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used with a different request');
}

const UPDATE_ATTEMPTS = 5;
const GRPC_FAILED_PRECONDITION = 9;
const GRPC_DEADLINE_EXCEEDED = 4;

/**
 * Sends an update again when the workflow task it was delivered in failed before the update ran:
 * the server then aborts it with WorkflowNotReady (FAILED_PRECONDITION). That happens when the
 * task would close the workflow but a signal arrived while it ran, so the server asks for a new
 * one. Our updates only wait for a decision and read it, so sending one twice is harmless.
 */
async function resendingUpdate<T>(send: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (error) {
      if (attempt >= UPDATE_ATTEMPTS || !isWorkflowNotReady(error)) throw error;
      await sleep(attempt * 50);
    }
  }
}

function isWorkflowNotReady(error: unknown): boolean {
  const cause = error instanceof ServiceError ? error.cause : error;
  return isGrpcServiceError(cause) && cause.code === GRPC_FAILED_PRECONDITION;
}

function updateFailureType(error: unknown): string | undefined {
  if (!(error instanceof WorkflowUpdateFailedError)) return undefined;
  return error.cause instanceof ApplicationFailure ? error.cause.type ?? undefined : undefined;
}

/**
 * The same channel, customer and key always name the same order, on every replica and after a
 * restart; without the server's secret no one can work the id out from what the caller sent.
 */
export function orderIdFor(secret: string, channel: string, customerId: string, idempotencyKey: string): string {
  // NUL cannot occur in a channel or a customer id, so the parts cannot run into each other.
  const hex = createHmac('sha256', secret).update(`${channel}\u0000${customerId}\u0000${idempotencyKey}`).digest('hex');
  // Shape it as an RFC 9562 version-8 (custom) UUID.
  const variant = ((parseInt(hex[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** Two requests are "the same body" when their validated content is the same. */
export function hashRequest(body: CreateOrderBody): string {
  const canonical = {
    customerId: body.customerId,
    items: [...body.items].sort((a, b) => Buffer.compare(Buffer.from(a.sku), Buffer.from(b.sku))).map((i) => [i.sku, i.quantity]),
    paymentTimeoutSeconds: body.paymentTimeoutSeconds ?? null,
  };
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}

export function toProductResponse(product: Product): ProductResponse {
  const { sku, name, priceCents, available, reserved, sold, maxPerCustomer } = product;
  return { sku, name, priceCents, available, reserved, sold, ...(maxPerCustomer !== null && { maxPerCustomer }) };
}

