/**
 * The only code that changes stock. Every activity is idempotent: a retry after a crash
 * finds its own earlier work (order row, ledger rows keyed by order + sku + kind, payment
 * rows keyed by order + payment) and does nothing twice.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { PrismaClient } from '../prisma/generated/client';
import { recordOrderEvent } from './order-events';
import type { PaymentProvider } from './payment-provider';
import { LOCK_TIMEOUT_MS, TRANSACTION_OPTIONS } from './timeouts';
import {
  DEFAULT_CHANNEL,
  FailureType,
  paymentOutcomeOf,
  type CommitAnswer,
  type CommitStockInput,
  type IsoTime,
  type OrderId,
  type OrderStatus,
  type PaymentDefect,
  type ExtendPaymentWindowInput,
  type ExtensionAnswer,
  type LatePaymentInput,
  type OrderLine,
  type PaymentOutcome,
  type PaymentRefusal,
  type RefundPaymentInput,
  type RefundResult,
  type ReleaseStockInput,
  type ReservedOrder,
  type ReserveStockInput,
  type SettledOrder,
  type Shortage,
  type StillHeld,
} from './types';

export interface ActivityDependencies {
  prisma: PrismaClient;
  payments: PaymentProvider;
  /** MAX_PAYMENT_WINDOW_SECONDS: no extension moves expiresAt further than this from createdAt. */
  maxPaymentWindowSeconds: number;
  /** ORDER_EVENTS_URL: each event written with a change gets a delivery to each of these. */
  eventEndpoints?: readonly string[];
  /** MAX_OPEN_ORDERS_PER_CUSTOMER, checked again by the hold; 0 (the default): no cap. */
  maxOpenOrdersPerCustomer?: number;
}

/** What hold_order (sql/hold_order.sql) answers; for a retry, the earlier decision. */
type HoldAnswer =
  | { outcome: 'HELD'; lines: OrderLine[]; totalCents: number }
  | { outcome: 'REJECTED'; code: 'OUT_OF_STOCK'; details: Shortage[] }
  | { outcome: 'REJECTED'; code: 'PURCHASE_LIMIT_EXCEEDED' | 'TOO_MANY_OPEN_ORDERS'; details: unknown }
  | { outcome: 'UNKNOWN_SKU'; sku: string }
  | { outcome: 'EXPIRED_UNHELD' };

export function createActivities({ prisma, payments, maxPaymentWindowSeconds, eventEndpoints = [], maxOpenOrdersPerCustomer = 0 }: ActivityDependencies) {
  const decide = (orderId: OrderId, proposal: Proposal) => decideOrder(prisma, orderId, proposal, maxPaymentWindowSeconds, eventEndpoints);
  return {
    /**
     * Holds every item of the order or none, in one statement (hold_order, in the order's
     * channel: sql/hold_order_in_channel.sql):
     * the products locked in sku order so concurrent orders never deadlock, the customer's
     * purchase limits (per channel) checked under the customer's lock, the order's admission
     * given back either way. Out of stock and a limit are business outcomes: the order is
     * recorded as REJECTED and a non-retryable failure of that type is raised.
     * The API records the order as PENDING before starting its workflow; this moves that row
     * on (PENDING → AWAITING_PAYMENT / REJECTED), or creates the row when there is none. A
     * retry (or a concurrent attempt) gets the decision already made.
     */
    async reserveStock(input: ReserveStockInput): Promise<ReservedOrder> {
      const items = JSON.stringify(input.items.map(({ sku, quantity }) => ({ sku, quantity })));
      const [row] = await prisma.$queryRaw<{ answer: HoldAnswer }[]>`
        SELECT hold_order_in_channel(${input.channel ?? DEFAULT_CHANNEL}, ${input.orderId}::uuid, ${input.customerId}, ${items}::jsonb,
                          ${input.createdAt}::timestamptz, ${input.expiresAt}::timestamptz, ${input.currency},
                          ${input.idempotencyKey ?? null}, ${input.requestHash ?? null}, ${maxOpenOrdersPerCustomer}::int,
                          ${LOCK_TIMEOUT_MS}::int, ${[...eventEndpoints]}::text[]) AS answer`;
      const answer = row?.answer;
      switch (answer?.outcome) {
        case 'HELD':
          // BIGINT in the database; every total the contract allows (at most 5e11) is a safe number.
          return { lines: answer.lines, totalCents: Number(answer.totalCents) };
        case 'REJECTED':
          if (answer.code === 'OUT_OF_STOCK') throw outOfStock(answer.details);
          throw ApplicationFailure.nonRetryable('the customer\'s purchase limits refuse the order', refusalFailureType(answer.code), answer.details);
        case 'UNKNOWN_SKU':
          throw ApplicationFailure.nonRetryable(`unknown sku ${answer.sku}`, FailureType.UnknownSku, [answer.sku]);
        case 'EXPIRED_UNHELD':
          // The reclaim closed this PENDING order long past its deadline: nothing may be held now.
          throw ApplicationFailure.nonRetryable('the order expired before its stock was held', FailureType.ExpiredBeforeHold);
        default:
          throw new Error(`hold_order answered ${JSON.stringify(answer)}`);
      }
    },

    /**
     * Proposes the payment's commit to the database, which decides by the rule (decide_order):
     * the answer is the order as decided (PAID by this payment, or whatever won instead, or still
     * awaiting payment when this payment cannot pay it) and what became of this payment. Never
     * throws for a lost race, so nothing retries forever. A payment that no verified receipt of
     * this order backs (a forged or misdirected signal) moves nothing: UNVERIFIED or
     * PAYMENT_ALREADY_USED (the worker logs it as a security event).
     */
    async commitStock({ orderId, paymentId }: CommitStockInput): Promise<CommitAnswer> {
      const decision = await decide(orderId, { kind: 'COMMIT', paymentId });
      return commitAnswerOf(decision, paymentId);
    },

    /**
     * Proposes putting the order's held stock back on sale (the timer, or a cancel); the answer is
     * the outcome the database holds, which may be another party's (the reclaim, a payment in
     * time). An expiry the database finds not due (a deadline moved later, or a timer early by the
     * database's clock) is refused: StillHeld, with the deadline to wait for.
     */
    async releaseStock({ orderId, reason }: ReleaseStockInput): Promise<SettledOrder | StillHeld> {
      const decision = await decide(orderId, { kind: reason === 'EXPIRED' ? 'EXPIRE' : 'CANCEL' });
      return heldOrSettled(decision);
    },

    /**
     * Moves the order's expiresAt later by `seconds`, decided by the rule under the order's row
     * lock: before the deadline it is extended, up to MAX_PAYMENT_WINDOW_SECONDS from createdAt;
     * once due (or paid in time) the order is decided instead. Recorded per extensionId, so a
     * retry answers the same.
     */
    async extendPaymentWindow({ orderId, extensionId, seconds }: ExtendPaymentWindowInput): Promise<ExtensionAnswer> {
      const decision = await decide(orderId, { kind: 'EXTEND', extensionId, seconds });
      const order = heldOrSettled(decision);
      if (order.status !== 'AWAITING_PAYMENT') return { outcome: 'DECIDED', order };
      if (!decision.extension) throw new Error(`order ${orderId} awaits payment and its extension ${extensionId} was not decided`);
      return { outcome: decision.extension.outcome, expiresAt: isoTime(decision.extension.expiresAt), dueInMs: order.dueInMs };
    },

    /**
     * Records a payment that was not applied and refunds it, once per (order, payment). The
     * refund is of the amount its verified receipt recorded, whatever a signal or a redelivery
     * says; a payment with no receipt of this order is refunded by no one. Once the provider
     * confirms, the refund row and its `payment.refunded` event are written together, once.
     */
    async refundPayment({ orderId, paymentId, reason }: RefundPaymentInput): Promise<RefundResult> {
      const receipt = await prisma.paymentReceipt.findUnique({ where: { paymentId }, select: { orderId: true, amountCents: true } });
      if (receipt?.orderId !== orderId) {
        throw ApplicationFailure.nonRetryable(`payment ${paymentId} has no verified receipt of order ${orderId}`, FailureType.UnverifiedPayment);
      }
      await prisma.payment.createMany({
        data: [{ orderId, paymentId, amountCents: receipt.amountCents, outcome: reason }],
        skipDuplicates: true,
      });
      const recorded = await prisma.payment.findUniqueOrThrow({ where: { orderId_paymentId: { orderId, paymentId } } });
      const refunded = Number(recorded.amountCents);
      const result = await payments.refund({ orderId, paymentId, amountCents: refunded });
      await prisma.$transaction(async (tx) => {
        // The order's row lock orders this event after the decision that refused the payment.
        await tx.$queryRaw`SELECT 1 FROM orders WHERE id = ${orderId}::uuid FOR UPDATE`;
        const { count } = await tx.refund.createMany({
          data: [{ orderId, paymentId, amountCents: refunded, status: result.status }],
          skipDuplicates: true,
        });
        if (count > 0) {
          const refund = { paymentId, status: result.status, amountCents: refunded, reason: recorded.outcome as PaymentRefusal };
          await recordOrderEvent(tx, orderId, 'payment.refunded', eventEndpoints, refund);
        }
      }, TRANSACTION_OPTIONS);
      return result;
    },

    /**
     * Decides a payment whose order's workflow is gone (closed, or terminated while the order
     * still awaited payment): the same proposal as the workflow's commit, decided by the same rule.
     * Only a verified payment of this order gets here (the API recorded its receipt first).
     */
    async decideLatePayment({ orderId, paymentId }: LatePaymentInput): Promise<PaymentOutcome> {
      const answer = commitAnswerOf(await decide(orderId, { kind: 'COMMIT', paymentId }), paymentId);
      if (answer.payment === 'UNVERIFIED' || answer.payment === 'PAYMENT_ALREADY_USED') {
        throw ApplicationFailure.nonRetryable(`payment ${paymentId} is not a verified payment of order ${orderId}`, FailureType.UnverifiedPayment);
      }
      return answer.payment;
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;

type Proposal =
  | { kind: 'COMMIT'; paymentId: string }
  | { kind: 'EXPIRE' }
  | { kind: 'CANCEL' }
  | { kind: 'EXTEND'; extensionId: string; seconds: number };

/** decide_order's answer (sql/decide_order.sql): the order as decided. */
interface OrderDecision {
  status: OrderStatus;
  decidedNow: boolean;
  expiresAt: string;
  closedAt?: string;
  paidAt?: string;
  paymentId?: string;
  paymentPendingUntil?: string;
  /** For an order still awaiting payment: how long until the database finds it due. */
  dueInMs?: number;
  /** COMMIT: what keeps the proposed payment from paying this order, whatever its time. */
  defect?: PaymentDefect;
  /** EXTEND: the extension's recorded answer. */
  extension?: { outcome: 'EXTENDED' | 'EXTENSION_TOO_LONG'; expiresAt: string };
}

/**
 * Every proposal to end (or extend) an order's hold goes through here to decide_order, the one
 * definition of the rule. One statement, so no transaction is held open across round trips.
 */
async function decideOrder(
  prisma: PrismaClient,
  orderId: OrderId,
  proposal: Proposal,
  maxPaymentWindowSeconds: number,
  eventEndpoints: readonly string[],
): Promise<OrderDecision> {
  const paymentId = proposal.kind === 'COMMIT' ? proposal.paymentId : null;
  const extensionId = proposal.kind === 'EXTEND' ? proposal.extensionId : null;
  const seconds = proposal.kind === 'EXTEND' ? proposal.seconds : null;
  const [row] = await prisma.$queryRaw<{ decision: OrderDecision | null }[]>`
    SELECT decide_order(${orderId}::uuid, ${proposal.kind}, ${paymentId}, ${extensionId}, ${seconds}::int,
                        ${maxPaymentWindowSeconds}::int, ${LOCK_TIMEOUT_MS}::int, ${[...eventEndpoints]}::text[]) AS decision`;
  if (!row?.decision) throw new Error(`decide_order answered nothing for order ${orderId}`);
  return row.decision;
}

/** The order as a proposal left it: decided (final), or still held until a deadline. */
function heldOrSettled(decision: OrderDecision): SettledOrder | StillHeld {
  const { status } = decision;
  if (status === 'AWAITING_PAYMENT') {
    return {
      status,
      expiresAt: isoTime(decision.expiresAt),
      ...(decision.paymentPendingUntil !== undefined && { paymentPendingUntil: isoTime(decision.paymentPendingUntil) }),
      dueInMs: decision.dueInMs ?? 0,
    };
  }
  // PENDING or REJECTED here would be a bug elsewhere; retrying lets an operator see and mend it.
  if (!isSettledStatus(status)) throw new Error(`order is ${status}: there is no held stock to settle`);
  const closedAt = decision.closedAt ?? decision.paidAt ?? decision.expiresAt;
  return {
    status,
    decidedNow: decision.decidedNow,
    closedAt: isoTime(closedAt),
    expiresAt: isoTime(decision.expiresAt),
    ...(decision.paidAt !== undefined && { paidAt: isoTime(decision.paidAt) }),
    ...(decision.paymentId !== undefined && { paymentId: decision.paymentId }),
  };
}

/** What became of a proposed payment, given the order as the database decided it. */
function commitAnswerOf(decision: OrderDecision, paymentId: string): CommitAnswer {
  const { defect, status } = decision;
  if (defect === 'UNVERIFIED' || defect === 'PAYMENT_ALREADY_USED') return { payment: defect, order: undefined };
  if (status === 'REJECTED') return { payment: 'ORDER_REJECTED', order: undefined };
  const order = heldOrSettled(decision);
  if (order.status !== 'AWAITING_PAYMENT') return { payment: paymentOutcomeOf(order, paymentId), order };
  // Still awaiting payment after a verified payment of it: only a payment that can never pay it.
  if (defect === undefined) throw new Error(`payment ${paymentId} left its order awaiting payment without a reason`);
  return { payment: defect, order };
}

function isoTime(value: string): IsoTime {
  return new Date(value).toISOString();
}

function isSettledStatus(status: string): status is SettledOrder['status'] {
  return status === 'PAID' || status === 'EXPIRED' || status === 'CANCELLED';
}

function refusalFailureType(code: 'PURCHASE_LIMIT_EXCEEDED' | 'TOO_MANY_OPEN_ORDERS'): string {
  return code === 'PURCHASE_LIMIT_EXCEEDED' ? FailureType.PurchaseLimitExceeded : FailureType.TooManyOpenOrders;
}

function outOfStock(shortages: Shortage[]): ApplicationFailure {
  return ApplicationFailure.nonRetryable('not enough stock for the order', FailureType.OutOfStock, shortages);
}
