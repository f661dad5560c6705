/**
 * Plain data that crosses the workflow/activity boundary. Everything here must survive
 * JSON (Temporal's payload converter): no Dates, Maps or classes.
 */

export type OrderId = string;
export type Sku = string;
/** Money, in integer cents. */
export type Cents = number;
/** An ISO-8601 UTC timestamp. */
export type IsoTime = string;

export interface RequestedItem {
  sku: Sku;
  quantity: number;
}

export interface OrderLine extends RequestedItem {
  unitPriceCents: Cents;
}

export interface Shortage {
  sku: Sku;
  requested: number;
  available: number;
}

/**
 * The channel of orders placed before channels existed and of the bootstrap storefront key
 * (STOREFRONT_KEY); the migration that added channels gives old rows the same name.
 */
export const DEFAULT_CHANNEL = 'default';

export interface ReserveStockInput {
  orderId: OrderId;
  /** The channel of the key that placed it; absent in histories from before channels (the default one). */
  channel?: string;
  customerId: string;
  items: RequestedItem[];
  /** Decided by the workflow, so its view and the database agree. */
  createdAt: IsoTime;
  expiresAt: IsoTime;
  /** Lowercase ISO 4217: the currency the order is priced and must be paid in. */
  currency: string;
  idempotencyKey?: string;
  requestHash?: string;
}

export interface ReservedOrder {
  lines: OrderLine[];
  totalCents: Cents;
}

export type ReleaseReason = 'EXPIRED' | 'CANCELLED';

export interface ReleaseStockInput {
  orderId: OrderId;
  reason: ReleaseReason;
}

/** The answer to a proposal the database did not take: the order is held still, until its deadline. */
export interface StillHeld {
  status: 'AWAITING_PAYMENT';
  expiresAt: IsoTime;
  /** The processing hold the order is under, if any. */
  paymentPendingUntil?: IsoTime;
  /** How long until the database finds the order due (its clock decides, not the workflow's). */
  dueInMs: number;
}

export interface ExtendPaymentWindowInput {
  orderId: OrderId;
  /** Names the request: a retry with the same id gets the first answer. */
  extensionId: string;
  seconds: number;
}

/**
 * What the database made of an extension: EXTENDED (expiresAt is the new deadline) or
 * EXTENSION_TOO_LONG (past MAX_PAYMENT_WINDOW_SECONDS from createdAt; nothing moved), both
 * recorded; DECIDED when the order no longer awaits payment (the deadline, or a payment in time,
 * won the race: the extension decided it).
 */
export type ExtensionAnswer =
  | { outcome: 'EXTENDED' | 'EXTENSION_TOO_LONG'; expiresAt: IsoTime; /** until the order is due */ dueInMs: number }
  | { outcome: 'DECIDED'; order: SettledOrder };

/** The amount is the receipt's, as the API recorded it after verifying the delivery. */
export interface CommitStockInput {
  orderId: OrderId;
  paymentId: string;
}

export interface LatePaymentInput {
  orderId: OrderId;
  paymentId: string;
}

/** The final states an order that held stock can reach; the database decides which. */
export type SettledStatus = 'PAID' | 'EXPIRED' | 'CANCELLED';

/** An order's outcome as the database decided it, answered to whoever proposed one. */
export interface SettledOrder {
  status: SettledStatus;
  /** True when this very call made the decision (false: another party, or an earlier attempt, did). */
  decidedNow: boolean;
  /** When the order reached its final state; for EXPIRED and CANCELLED, when the stock was back on sale. */
  closedAt: IsoTime;
  expiresAt: IsoTime;
  paidAt?: IsoTime;
  paymentId?: string;
}

/** Why a payment was not applied to its order; each is refunded. */
export type PaymentRefusal =
  | 'AMOUNT_MISMATCH'
  | 'CURRENCY_MISMATCH'
  | 'ORDER_EXPIRED'
  | 'ORDER_CANCELLED'
  | 'ORDER_REJECTED'
  | 'ORDER_ALREADY_PAID';

export type PaymentOutcome = 'APPLIED' | PaymentRefusal;

export type OrderStatus = 'PENDING' | 'AWAITING_PAYMENT' | 'PAID' | 'EXPIRED' | 'CANCELLED' | 'REJECTED';

/**
 * What keeps a proposed payment from paying its order, whatever its time (payment_defect in the
 * database): UNVERIFIED (no verified succeeded delivery of it was recorded for this order),
 * PAYMENT_ALREADY_USED (it belongs to another order), or the two mismatches.
 */
export type PaymentDefect = 'UNVERIFIED' | 'PAYMENT_ALREADY_USED' | 'CURRENCY_MISMATCH' | 'AMOUNT_MISMATCH';

/**
 * What a proposed commit got: the payment's outcome, and the order as decided (absent when the
 * payment is not this order's to decide: UNVERIFIED, PAYMENT_ALREADY_USED, or a REJECTED order).
 */
export type CommitAnswer =
  | { payment: 'UNVERIFIED' | 'PAYMENT_ALREADY_USED' | 'ORDER_REJECTED'; order: undefined }
  | { payment: PaymentOutcome; order: SettledOrder | StillHeld };

/** The amount refunded is the verified receipt's, never what a signal claimed. */
export interface RefundPaymentInput {
  orderId: OrderId;
  paymentId: string;
  reason: PaymentRefusal;
}

export type RefundStatus = 'REFUNDED';

export interface RefundResult {
  paymentId: string;
  status: RefundStatus;
}

/** What a request to change an order gets once the order is closed, by its final status. */
export type ClosedOrderRefusal = 'ORDER_ALREADY_PAID' | 'ORDER_EXPIRED' | 'ORDER_CANCELLED' | 'ORDER_REJECTED';

/** The one table from an order's status to the refusal a payment, cancel or extension gets. */
const CLOSED_ORDER_REFUSAL: Readonly<Record<string, ClosedOrderRefusal>> = {
  PAID: 'ORDER_ALREADY_PAID',
  EXPIRED: 'ORDER_EXPIRED',
  CANCELLED: 'ORDER_CANCELLED',
  REJECTED: 'ORDER_REJECTED',
};

/** The refusal for a closed order; undefined while it is open (PENDING, AWAITING_PAYMENT). */
export function closedOrderRefusal(status: string | undefined): ClosedOrderRefusal | undefined {
  return status !== undefined && Object.hasOwn(CLOSED_ORDER_REFUSAL, status) ? CLOSED_ORDER_REFUSAL[status] : undefined;
}

/** What a proposed payment got, given the outcome the database decided. */
export function paymentOutcomeOf(settled: Pick<SettledOrder, 'status' | 'paymentId'>, paymentId: string): PaymentOutcome {
  if (settled.status === 'PAID' && settled.paymentId === paymentId) return 'APPLIED';
  const refusal = closedOrderRefusal(settled.status);
  if (refusal === undefined) throw new Error(`no payment outcome for an order ${settled.status}`);
  return refusal;
}

/** The failure types activities raise for business outcomes; never retried. */
export const FailureType = {
  OutOfStock: 'OutOfStock',
  UnknownSku: 'UnknownSku',
  /** The order's hold ran only after the reclaim had closed it, unheld (a lost or very late start). */
  ExpiredBeforeHold: 'ExpiredBeforeHold',
  /** The hold found the order past a product's maxPerCustomer for its customer (hold_order). */
  PurchaseLimitExceeded: 'PurchaseLimitExceeded',
  /** The hold found the customer at MAX_OPEN_ORDERS_PER_CUSTOMER already. */
  TooManyOpenOrders: 'TooManyOpenOrders',
  /** A payment proposed for an order that no verified receipt of that order backs. */
  UnverifiedPayment: 'UnverifiedPayment',
} as const;
