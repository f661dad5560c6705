/**
 * POST /orders: admission in PostgreSQL, then the order's workflow started and waited on for its
 * hold (update-with-start), within the decision wait. An order with an Idempotency-Key has an id
 * derived from it, so every replica and every retry names the same order; keyed requests in
 * flight at once on this replica share one answer.
 */
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { WithStartWorkflowOperation, type Client } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/common';
import type { PrismaClient } from '../../prisma/generated/client';
import { DEFAULTS } from '../config';
import {
  awaitReservationUpdate,
  customerIdKey,
  ORDER_WORKFLOW_TYPE,
  orderStatusKey,
  orderWorkflowId,
  UpdateFailureType,
  type OrderWorkflowInput,
} from '../../workflows/messages';
import { orderDetails, orderSummary } from '../../workflows/summaries';
import { admitOrder, refusalOf, withdrawOrder, type Refusal } from './admission';
import { idempotencyKeyReused, serviceUnavailable } from './errors';
import type { OrderRecord, OrderRecords } from './order-records';
import type { CreateOrderBody, OrderResponse } from './schemas';
import { AWAIT_RESERVATION_ID, updateFailureType, withinCallDeadline, withinDecisionWait } from './temporal-calls';
import { isPostgresUnreachable, isTemporalUnreachable } from './unavailable';

/**
 * What a placement decided: HELD when the stock was held (whatever happened since), REJECTED
 * with why, UNDECIDED when neither was decided within the decision wait (it will be; the order
 * is PENDING). `decidedBy` says who refused it, when this very request did: the API at
 * admission (the order has no workflow) or the order's hold; absent for a refusal recorded
 * earlier (a replay).
 */
export type PlacedOrder =
  | { outcome: 'HELD' | 'UNDECIDED'; order: OrderResponse }
  | { outcome: 'REJECTED'; order: OrderResponse; refusal: Refusal; decidedBy?: 'api' | 'hold' };

export interface PlacementDependencies {
  prisma: PrismaClient;
  temporal: Client;
  taskQueue: string;
  defaultPaymentTimeoutSeconds: number;
  /** Lowercase ISO 4217 (CHECKOUT_CURRENCY): orders are priced in it, payments must be in it. */
  checkoutCurrency: string;
  /** ORDER_ID_SECRET: keys the ids derived from an Idempotency-Key, so no one can guess them. */
  orderIdSecret: string;
  /** MAX_OPEN_ORDERS_PER_CUSTOMER: 0 (the default) for no cap. */
  maxOpenOrdersPerCustomer?: number;
  /** ORDER_ADMISSION_SECONDS: how long an order admitted but not yet held keeps its units from others. */
  admissionSeconds?: number;
  /** ORDER_EVENTS_URL: the events the API writes itself (a refusal's `order.rejected`) get a delivery to each. */
  eventEndpoints?: readonly string[];
}

export class Placement {
  /**
   * Keyed requests for the same order and body that arrive while one is in flight share its
   * answer: Temporal caps the updates in flight per workflow (10 by default), and a burst of
   * retries from one client should not queue behind that cap.
   */
  private readonly placing = new Map<string, Promise<PlacedOrder>>();

  constructor(
    private readonly deps: PlacementDependencies,
    private readonly records: OrderRecords,
    private readonly decisionWaitMs: number,
  ) {}

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
    /** The order as recorded before its start: the answer if it cannot be read again. */
    let beforeStart: OrderResponse;
    if (admission.outcome === 'ADMITTED') {
      beforeStart = admission.order;
    } else {
      // With a key, the order may exist already (a retry, or a request racing this one), found by
      // its channel, customer and key: under an id derived before ORDER_ID_SECRET was changed, too.
      const recorded = keyed ? await this.records.findKeyedOrder(derivedId, channel, body.customerId, keyed.idempotencyKey) : await this.records.findOrder(orderId, channel);
      orderId = recorded.order.orderId;
      // A replay of a decided order is answered from the record, without Temporal: this also holds
      // once the order's workflow history is gone, when starting the workflow again would be wrong.
      if (recorded.order.status !== 'PENDING') return placedFromRecord(recorded, requestHash);
      assertSameRequest(recorded, requestHash);
      beforeStart = recorded.order;
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
          updateId: `${AWAIT_RESERVATION_ID}-${beforeStart.createdAt}`,
          startWorkflowOperation: startOrder,
        }),
      );
      if (waited.decided) {
        // The record answers, as order_document shows it (the one definition of an order: any GET
        // shows the same); a refusal by its hold (the stock went after admission, or a limit) says why.
        const placed = await this.placedAsRecorded(orderId, channel, requestHash, beforeStart);
        return placed.outcome === 'REJECTED' ? { ...placed, decidedBy: 'hold' } : placed;
      }
      // Not decided in time (no worker took the task): 202 if the order was started, which
      // only the Temporal server has to answer; otherwise nothing was started (503).
      await withinCallDeadline(this.deps.temporal, () => this.deps.temporal.workflow.getHandle(orderWorkflowId(orderId)).describe());
    } catch (error) {
      if (updateFailureType(error) === UpdateFailureType.IdempotencyKeyReused) throw idempotencyKeyReused();
      if (error instanceof WorkflowExecutionAlreadyStartedError) {
        // The order with this key has finished its workflow: answer from the record.
        return placedFromRecord(await this.records.findOrder(orderId, channel), requestHash);
      }
      // Not started: the PENDING row this request made goes again, so nothing is left behind
      // (it never held stock). If the start did reach Temporal after all (a lost answer),
      // reserveStock creates the row itself (docs/failure-modes.md).
      if (recordedHere && (error instanceof WorkflowNotFoundError || isTemporalUnreachable(error))) await this.withdrawUnstarted(orderId);
      if (error instanceof WorkflowNotFoundError) throw serviceUnavailable('temporal');
      throw error;
    }
    return this.placedAsRecorded(orderId, channel, requestHash, beforeStart);
  }

  /** A started order as its record shows it now; unreadable, it is still PENDING as far as this request can tell. */
  private async placedAsRecorded(orderId: string, channel: string, requestHash: string | undefined, beforeStart: OrderResponse): Promise<PlacedOrder> {
    try {
      return placedFromRecord(await this.records.findOrder(orderId, channel), requestHash);
    } catch (error) {
      if (!isPostgresUnreachable(error)) throw error;
      return { outcome: 'UNDECIDED', order: beforeStart };
    }
  }

  /** Takes back a PENDING row whose workflow could not be started (never one the hold claimed), with its admission. */
  private async withdrawUnstarted(orderId: string): Promise<void> {
    try {
      await withdrawOrder(this.deps.prisma, orderId);
    } catch {
      // The database is gone too: the row stays PENDING, holding nothing; a retry with the same
      // key starts it, and its admission lapses after ORDER_ADMISSION_SECONDS (docs/failure-modes.md).
    }
  }
}

function placedFromRecord(record: OrderRecord, requestHash: string | undefined): PlacedOrder {
  assertSameRequest(record, requestHash);
  const { order } = record;
  if (order.status === 'PENDING') return { outcome: 'UNDECIDED', order };
  if (order.status !== 'REJECTED') return { outcome: 'HELD', order };
  return { outcome: 'REJECTED', order, refusal: refusalOf(record.rejectionCode, record.rejection) };
}

function assertSameRequest(order: OrderRecord, requestHash: string | undefined): void {
  if (order.requestHash !== (requestHash ?? null)) throw idempotencyKeyReused();
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

