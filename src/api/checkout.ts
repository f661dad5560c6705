/**
 * What the HTTP routes ask of the system: decisions go to the order's workflow, reads come
 * from the database (the read model). Every answer is a decided outcome, never a guess.
 */
import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  isGrpcServiceError,
  ServiceError,
  WithStartWorkflowOperation,
  WorkflowUpdateFailedError,
  type Client,
} from '@temporalio/client';
import { ApplicationFailure, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/common';
import type { Order, OrderItem, PrismaClient, Product } from '../../prisma/generated/client';
import {
  awaitClosedUpdate,
  awaitPaymentDecisionUpdate,
  awaitReservationUpdate,
  cancelOrderSignal,
  customerIdKey,
  LATE_PAYMENT_WORKFLOW_TYPE,
  latePaymentWorkflowId,
  ORDER_WORKFLOW_TYPE,
  orderStatusKey,
  orderWorkflowId,
  paymentReceivedSignal,
  UpdateFailureType,
  type OrderView,
  type OrderWorkflowInput,
  type PaymentDecisionOfClosedOrder,
  type PaymentOutcome,
  type PaymentReceived,
  type RefundResult,
  type Shortage,
} from '../../workflows/messages';
import { orderDetails, orderSummary } from '../../workflows/summaries';
import { ApiError } from './errors';
import type { CreateOrderBody, OrderResponse, ProductResponse } from './schemas';
import type { PaymentEvent } from './webhooks';

export type { OrderResponse, ProductResponse } from './schemas';

export interface PlacedOrder {
  /** 201 when the stock was held (whatever happened since), 409 when it was rejected. */
  httpStatus: 201 | 409;
  order: OrderResponse;
  shortages?: Shortage[];
}

export interface CheckoutDependencies {
  prisma: PrismaClient;
  temporal: Client;
  taskQueue: string;
  defaultPaymentTimeoutSeconds: number;
  /** Lowercase ISO 4217 (CHECKOUT_CURRENCY): orders are priced in it, payments must be in it. */
  checkoutCurrency: string;
}

/** What a verified delivery gets: 200 with its outcome, so the provider stops redelivering. */
export interface PaymentAnswer {
  outcome: PaymentOutcome | 'PAYMENT_ALREADY_USED' | 'PROCESSING' | 'FAILED';
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

  constructor(private readonly deps: CheckoutDependencies) {}

  async placeOrder(body: CreateOrderBody, idempotencyKey?: string): Promise<PlacedOrder> {
    if (idempotencyKey === undefined) return this.place(body, randomUUID());
    const orderId = orderIdFor(body.customerId, idempotencyKey);
    const requestHash = hashRequest(body);
    const sharedKey = `${orderId}:${requestHash}`;
    const inFlight = this.placing.get(sharedKey);
    if (inFlight) return inFlight;
    const placing = this.place(body, orderId, { idempotencyKey, requestHash }).finally(() => this.placing.delete(sharedKey));
    this.placing.set(sharedKey, placing);
    return placing;
  }

  private async place(
    body: CreateOrderBody,
    orderId: string,
    keyed?: { idempotencyKey: string; requestHash: string },
  ): Promise<PlacedOrder> {
    const idempotencyKey = keyed?.idempotencyKey;
    const requestHash = keyed?.requestHash;
    // With a key, the order may exist already: look it up alongside the skus (no extra latency).
    const [, recorded] = await Promise.all([
      this.assertSkusExist(body.items.map((i) => i.sku)),
      idempotencyKey === undefined ? undefined : this.findOrderRecord(orderId),
    ]);
    // A replay is answered from the record, without Temporal: this also holds once the
    // order's workflow history is gone, when starting the workflow again would be wrong.
    if (recorded) return placedFromRecord(recorded, requestHash);
    const input: OrderWorkflowInput = {
      orderId,
      customerId: body.customerId,
      items: body.items,
      paymentTimeoutSeconds: body.paymentTimeoutSeconds ?? this.deps.defaultPaymentTimeoutSeconds,
      currency: this.deps.checkoutCurrency,
      ...(idempotencyKey !== undefined && { idempotencyKey, requestHash }),
    };
    // A WithStartWorkflowOperation is good for one call: each attempt gets its own.
    const startOrder = () => new WithStartWorkflowOperation(ORDER_WORKFLOW_TYPE, {
      workflowId: orderWorkflowId(orderId),
      taskQueue: this.deps.taskQueue,
      args: [input],
      // A racing request with the same Idempotency-Key joins the running workflow.
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      staticSummary: orderSummary(orderId, body.customerId, body.items),
      staticDetails: orderDetails(input),
      typedSearchAttributes: [
        { key: customerIdKey, value: body.customerId },
        { key: orderStatusKey, value: 'PENDING' },
      ],
    });
    try {
      const view = await resendingUpdate(() =>
        this.deps.temporal.workflow.executeUpdateWithStart(awaitReservationUpdate, {
          args: [requestHash === undefined ? {} : { requestHash }],
          startWorkflowOperation: startOrder(),
        }),
      );
      return placedFromView(view);
    } catch (error) {
      if (updateFailureType(error) === UpdateFailureType.IdempotencyKeyReused) throw keyReused();
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
      // The order with this key has finished its workflow: answer from the record.
      return placedFromRecord(await this.findOrder(orderId), requestHash);
    }
  }

  async getOrder(orderId: string): Promise<OrderResponse> {
    return toOrderResponse(await this.findOrder(orderId));
  }

  /**
   * A verified delivery: recorded as a receipt first (which claims its paymentId for the order
   * it names), then, for payment.succeeded, decided by the order's workflow.
   */
  async receivePayment(event: PaymentEvent): Promise<PaymentAnswer> {
    const currency = event.currency ?? this.deps.checkoutCurrency;
    const claimedBy = await this.recordReceipt(event, currency);
    if (claimedBy !== event.orderId) return { outcome: 'PAYMENT_ALREADY_USED', order: await this.getOrder(event.orderId) };
    switch (event.type) {
      case 'payment.processing':
        return { outcome: 'PROCESSING', order: await this.getOrder(event.orderId) };
      case 'payment.failed':
        return { outcome: 'FAILED', order: await this.getOrder(event.orderId) };
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
   * paymentId belongs to. The order row is share-locked first: the reclaim of overdue orders
   * claims rows FOR UPDATE SKIP LOCKED, so it either sees this receipt or passes the order by.
   */
  private async recordReceipt(event: PaymentEvent, currency: string): Promise<string> {
    if (!isOrderId(event.orderId)) throw orderNotFound(event.orderId);
    const succeeded = event.type === 'payment.succeeded';
    return this.deps.prisma.$transaction(async (tx) => {
      const [order] = await tx.$queryRaw<{ id: string }[]>`
        SELECT id::text FROM orders WHERE id = ${event.orderId}::uuid FOR SHARE`;
      if (!order) throw orderNotFound(event.orderId);
      await tx.$executeRaw`
        INSERT INTO payment_receipts (payment_id, order_id, amount_cents, currency, succeeded_at)
        VALUES (${event.paymentId}, ${event.orderId}::uuid, ${BigInt(event.amountCents)}, ${currency},
                CASE WHEN ${succeeded} THEN now() END)
        ON CONFLICT (payment_id) DO NOTHING`;
      const [receipt] = await tx.$queryRaw<{ order_id: string }[]>`
        SELECT order_id::text FROM payment_receipts WHERE payment_id = ${event.paymentId}`;
      if (!receipt) throw new Error(`the receipt of payment ${event.paymentId} vanished`);
      if (succeeded && receipt.order_id === event.orderId) {
        await tx.$executeRaw`
          UPDATE payment_receipts SET succeeded_at = COALESCE(succeeded_at, now())
           WHERE payment_id = ${event.paymentId} AND succeeded_at IS NULL`;
      }
      return receipt.order_id;
    }, RECEIPT_TRANSACTION_OPTIONS);
  }

  private async decidePayment(orderId: string, payment: PaymentReceived): Promise<PaymentAnswer> {
    const handle = this.deps.temporal.workflow.getHandle(orderWorkflowId(orderId));
    let decision: PaymentDecisionOfClosedOrder;
    try {
      await handle.signal(paymentReceivedSignal, payment);
      decision = await resendingUpdate(() => handle.executeUpdate(awaitPaymentDecisionUpdate, { args: [{ paymentId: payment.paymentId }] }));
      // A payment refused because the order was decided otherwise is answered with the order as
      // it ends (its stock moved), so a redelivery later shows the same order.
      if (CLOSED_BY_ANOTHER_DECISION.has(decision.outcome)) await resendingUpdate(() => handle.executeUpdate(awaitClosedUpdate));
    } catch (error) {
      if (!(error instanceof WorkflowNotFoundError)) throw error;
      decision = await this.decideLatePayment(orderId, { paymentId: payment.paymentId, amountCents: payment.amountCents });
    }
    const order = await this.getOrder(orderId);
    return { outcome: decision.outcome, ...(decision.refund && { refund: decision.refund }), order };
  }

  async cancel(orderId: string): Promise<OrderResponse> {
    await this.findOrder(orderId);
    const handle = this.deps.temporal.workflow.getHandle(orderWorkflowId(orderId));
    try {
      await handle.signal(cancelOrderSignal);
      await resendingUpdate(() => handle.executeUpdate(awaitClosedUpdate));
    } catch (error) {
      if (!(error instanceof WorkflowNotFoundError)) throw error;
    }
    const order = await this.getOrder(orderId);
    const refusal = cancelRefusal(order.status);
    if (refusal) throw refusal;
    return order;
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

  private async findOrder(orderId: string): Promise<OrderRecord> {
    const order = isOrderId(orderId) ? await this.findOrderRecord(orderId) : null;
    if (!order) throw orderNotFound(orderId);
    return order;
  }

  private findOrderRecord(orderId: string): Promise<OrderRecord | null> {
    return this.deps.prisma.order.findUnique({ where: { id: orderId }, include: { items: { orderBy: { sku: 'asc' } } } });
  }

  private async assertSkusExist(skus: string[]): Promise<void> {
    const found = await this.deps.prisma.product.findMany({ where: { sku: { in: skus } }, select: { sku: true } });
    const known = new Set(found.map((p) => p.sku));
    const unknown = skus.filter((sku) => !known.has(sku));
    if (unknown.length > 0) throw new ApiError('UNKNOWN_SKU', 'some skus name no product', unknown);
  }
}

function orderNotFound(orderId: string): ApiError {
  return new ApiError('ORDER_NOT_FOUND', `no order ${orderId}`);
}

function cancelRefusal(status: OrderResponse['status']): ApiError | undefined {
  switch (status) {
    case 'PAID':
      return new ApiError('ORDER_ALREADY_PAID', 'the order is paid and cannot be cancelled');
    case 'EXPIRED':
      return new ApiError('ORDER_EXPIRED', 'the order has expired');
    case 'REJECTED':
      return new ApiError('ORDER_REJECTED', 'the order was rejected');
    default:
      return undefined;
  }
}

type OrderRecord = Order & { items: OrderItem[] };

function placedFromRecord(order: OrderRecord, requestHash: string | undefined): PlacedOrder {
  if (order.requestHash !== (requestHash ?? null)) throw keyReused();
  if (order.status !== 'REJECTED') return { httpStatus: 201, order: toOrderResponse(order) };
  return { httpStatus: 409, order: toOrderResponse(order), shortages: (order.rejection ?? []) as unknown as Shortage[] };
}

function placedFromView(view: OrderView): PlacedOrder {
  const { shortages, ...order } = view;
  if (view.status === 'REJECTED') return { httpStatus: 409, order, shortages: shortages ?? [] };
  return { httpStatus: 201, order };
}

function keyReused(): ApiError {
  return new ApiError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used with a different request');
}

const UPDATE_ATTEMPTS = 5;
const GRPC_FAILED_PRECONDITION = 9;

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

/** The same customer and key always name the same order (a name-based UUID). */
export function orderIdFor(customerId: string, idempotencyKey: string): string {
  const hex = createHash('sha256').update(`${customerId}\u0000${idempotencyKey}`).digest('hex');
  // Shape it as an RFC 9562 version-8 (custom) UUID.
  const variant = ((parseInt(hex[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** Two requests are "the same body" when their validated content is the same. */
export function hashRequest(body: CreateOrderBody): string {
  const canonical = {
    customerId: body.customerId,
    items: [...body.items].sort((a, b) => (a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : 0)).map((i) => [i.sku, i.quantity]),
    paymentTimeoutSeconds: body.paymentTimeoutSeconds ?? null,
  };
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}

export function toOrderResponse(order: OrderRecord): OrderResponse {
  return {
    orderId: order.id,
    customerId: order.customerId,
    status: order.status,
    items: order.items.map(({ sku, quantity, unitPriceCents }) => ({ sku, quantity, unitPriceCents })),
    // BIGINT in the database; every total the contract allows (at most 5e11) is a safe number.
    totalCents: Number(order.totalCents),
    createdAt: order.createdAt.toISOString(),
    expiresAt: order.expiresAt.toISOString(),
    ...(order.paidAt && { paidAt: order.paidAt.toISOString() }),
    ...(order.closedAt && { closedAt: order.closedAt.toISOString() }),
    ...(order.paymentId && { paymentId: order.paymentId }),
  };
}

export function toProductResponse(product: Product): ProductResponse {
  const { sku, name, priceCents, available, reserved, sold } = product;
  return { sku, name, priceCents, available, reserved, sold };
}

