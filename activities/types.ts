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
