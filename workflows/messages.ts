/**
 * Everything the outside world (API, Web UI, other clients) needs to talk to an order's
 * workflow: its id, messages, view and search attributes. The API imports only this module
 * from workflows/.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type {
  Cents,
  IsoTime,
  OrderId,
  OrderLine,
  OrderStatus,
  PaymentOutcome,
  RefundResult,
  RequestedItem,
  Shortage,
} from '../activities/types';

export type {
  Cents,
  ClosedOrderRefusal,
  IsoTime,
  OrderId,
  OrderLine,
  OrderStatus,
  PaymentOutcome,
  PaymentRefusal,
  RefundResult,
  RequestedItem,
  Shortage,
} from '../activities/types';
export { closedOrderRefusal } from '../activities/types';

export const ORDER_WORKFLOW_TYPE = 'orderWorkflow';
export const LATE_PAYMENT_WORKFLOW_TYPE = 'latePaymentWorkflow';

export const orderWorkflowId = (orderId: OrderId): string => `order-${orderId}`;
export const latePaymentWorkflowId = (orderId: OrderId, paymentId: string): string =>
  `late-payment-${orderId}-${paymentId}`;

export const FINAL_STATUSES: readonly OrderStatus[] = ['PAID', 'EXPIRED', 'CANCELLED', 'REJECTED'];

export interface OrderWorkflowInput {
  orderId: OrderId;
  /** The channel of the storefront key that placed it; absent in histories from before channels. */
  channel?: string;
  customerId: string;
  items: RequestedItem[];
  paymentTimeoutSeconds: number;
  /** The checkout currency (lowercase ISO 4217) the order is priced in. */
  currency: string;
  /** Present when the order was placed with an Idempotency-Key. */
  idempotencyKey?: string;
  requestHash?: string;
}

/** The order as the workflow knows it; mirrors the contract's `order`. */
export interface OrderView {
  orderId: OrderId;
  customerId: string;
  status: OrderStatus;
  items: OrderLine[];
  totalCents: Cents;
  createdAt: IsoTime;
  expiresAt: IsoTime;
  paidAt?: IsoTime;
  closedAt?: IsoTime;
  paymentId?: string;
  /** Only for REJECTED orders: what was missing. */
  shortages?: Shortage[];
}

export interface PaymentReceived {
  paymentId: string;
  amountCents: Cents;
  /** Lowercase ISO 4217, as the provider reported it; absent in older histories. */
  currency?: string;
}

export interface PaymentDecision {
  paymentId: string;
  outcome: PaymentOutcome;
  /** Present for every refused payment once its refund is done. */
  refund?: RefundResult;
  order: OrderView;
}

/** The decision on a payment for an order whose workflow has already closed. */
export type PaymentDecisionOfClosedOrder = Omit<PaymentDecision, 'order'>;

export const paymentReceivedSignal = defineSignal<[PaymentReceived]>('paymentReceived');
export const cancelOrderSignal = defineSignal('cancelOrder');

/** A payment.failed delivery ended a payment: a processing hold it had is over. */
export interface PaymentFailed {
  paymentId: string;
}
export const paymentFailedSignal = defineSignal<[PaymentFailed]>('paymentFailed');

/** An operator's request to move the order's expiresAt later (POST /admin/orders/:orderId/extend). */
export interface ExtensionRequest {
  /** Names the request: the same id (from an Idempotency-Key) extends once. */
  extensionId: string;
  seconds: number;
}
export const extendPaymentWindowSignal = defineSignal<[ExtensionRequest]>('extendPaymentWindow');

/**
 * How an extension ended: EXTENDED, refused as too long, refused because the order no longer
 * awaits payment (the deadline may have won the race), or not supported by this order's
 * workflow (started before extensions existed).
 */
export type ExtensionOutcome =
  | 'EXTENDED'
  | 'EXTENSION_TOO_LONG'
  | 'EXTENSION_NOT_SUPPORTED'
  | 'ORDER_EXPIRED'
  | 'ORDER_ALREADY_PAID'
  | 'ORDER_CANCELLED'
  | 'ORDER_REJECTED';

export interface ExtensionDecision {
  extensionId: string;
  outcome: ExtensionOutcome;
  order: OrderView;
}
export const getOrderQuery = defineQuery<OrderView>('getOrder');

/**
 * Updates that let a caller wait for a decision the workflow makes. They change nothing
 * themselves: the signals above stay the way to deliver payments and cancellations.
 */
export const awaitReservationUpdate = defineUpdate<OrderView, [{ requestHash?: string }]>('awaitReservation');
export const awaitPaymentDecisionUpdate = defineUpdate<PaymentDecision, [{ paymentId: string }]>(
  'awaitPaymentDecision',
);
export const awaitClosedUpdate = defineUpdate<OrderView>('awaitClosed');
/** Waits for an extension's outcome; `seconds` must match the request's (else IdempotencyKeyReused). */
export const awaitExtensionUpdate = defineUpdate<ExtensionDecision, [ExtensionRequest]>('awaitExtension');

/** Failure types the workflow raises to callers of its updates. */
export const UpdateFailureType = {
  IdempotencyKeyReused: 'IdempotencyKeyReused',
  UnknownPayment: 'UnknownPayment',
  UnknownExtension: 'UnknownExtension',
} as const;

export const orderStatusKey = defineSearchAttributeKey('OrderStatus', SearchAttributeType.KEYWORD);
export const customerIdKey = defineSearchAttributeKey('CustomerId', SearchAttributeType.KEYWORD);
export const paymentDeadlineKey = defineSearchAttributeKey('PaymentDeadline', SearchAttributeType.DATETIME);

/** Registration for dev servers: `name=Type` as the Temporal CLI takes them. */
export const SEARCH_ATTRIBUTES: Record<string, 'Keyword' | 'Datetime'> = {
  OrderStatus: 'Keyword',
  CustomerId: 'Keyword',
  PaymentDeadline: 'Datetime',
};

/** The shape an extendPaymentWindow signal must have; anything else is ignored (and logged), never fails the order. */
export function isExtensionRequest(value: unknown): value is ExtensionRequest {
  if (typeof value !== 'object' || value === null) return false;
  const { extensionId, seconds } = value as Record<string, unknown>;
  return typeof extensionId === 'string' && extensionId.length > 0 && Number.isSafeInteger(seconds) && (seconds as number) > 0;
}

/** The shape a paymentReceived signal must have; anything else is ignored (and logged), never fails the order. */
export function isPaymentReceived(value: unknown): value is PaymentReceived {
  if (typeof value !== 'object' || value === null) return false;
  const { paymentId, amountCents, currency } = value as Record<string, unknown>;
  return (
    typeof paymentId === 'string' &&
    paymentId.length > 0 &&
    Number.isSafeInteger(amountCents) &&
    (currency === undefined || typeof currency === 'string')
  );
}
