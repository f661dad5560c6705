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

export interface ReserveStockInput {
  orderId: OrderId;
  customerId: string;
  items: RequestedItem[];
  /** Decided by the workflow, so its view and the database agree. */
  createdAt: IsoTime;
  expiresAt: IsoTime;
  idempotencyKey?: string;
  requestHash?: string;
  /**
   * Set by workflows that follow the database's deadline (they re-arm their timer when it
   * moves); only their orders take processing holds and extensions. Absent in older histories.
   */
  deadlineMovable?: boolean;
}

export interface ReservedOrder {
  lines: OrderLine[];
  totalCents: Cents;
}

export type ReleaseReason = 'EXPIRED' | 'CANCELLED';

export interface ReleaseStockInput {
  orderId: OrderId;
  reason: ReleaseReason;
  /**
   * For EXPIRED from a workflow that follows the database's deadline: the deadline its timer
   * waited for. The release wins only if the database holds no later one (an extension, or a
   * processing hold the workflow did not know of); otherwise the answer is the later deadline.
   * Values are compared, not clocks, so a timer that fires a moment early on a skewed clock
   * still expires the order it was set for. Absent: the release wins while the order awaits payment.
   */
  deadline?: { expiresAt: IsoTime; paymentPendingUntil?: IsoTime };
}

/** The answer to an expiry the database refused: the order is held until this later deadline. */
export interface StillHeld {
  status: 'AWAITING_PAYMENT';
  expiresAt: IsoTime;
  /** The processing hold the order is under, if any. */
  paymentPendingUntil?: IsoTime;
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
 * recorded; DEADLINE_PASSED when the deadline won the race (the order is due and must expire);
 * DECIDED when the order no longer awaits payment.
 */
export type ExtensionAnswer =
  | { outcome: 'EXTENDED' | 'EXTENSION_TOO_LONG'; expiresAt: IsoTime }
  | { outcome: 'DEADLINE_PASSED' }
  | { outcome: 'DECIDED'; status: SettledStatus | 'REJECTED' };

export interface CommitStockInput {
  orderId: OrderId;
  paymentId: string;
  amountCents: Cents;
}

export interface LatePaymentInput {
  orderId: OrderId;
  paymentId: string;
  /** Absent from late-payment workflows started before it was passed. */
  amountCents?: Cents;
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

export interface RefundPaymentInput {
  orderId: OrderId;
  paymentId: string;
  amountCents: Cents;
  reason: PaymentRefusal;
}

export type RefundStatus = 'REFUNDED';

export interface RefundResult {
  paymentId: string;
  status: RefundStatus;
}

/** What a proposed payment got, given the outcome the database decided. */
export function paymentOutcomeOf(settled: Pick<SettledOrder, 'status' | 'paymentId'>, paymentId: string): PaymentOutcome {
  switch (settled.status) {
    case 'PAID':
      return settled.paymentId === paymentId ? 'APPLIED' : 'ORDER_ALREADY_PAID';
    case 'EXPIRED':
      return 'ORDER_EXPIRED';
    case 'CANCELLED':
      return 'ORDER_CANCELLED';
  }
}

/** The failure types activities raise for business outcomes; never retried. */
export const FailureType = {
  OutOfStock: 'OutOfStock',
  UnknownSku: 'UnknownSku',
} as const;
