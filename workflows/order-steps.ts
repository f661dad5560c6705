/**
 * What the order's workflow does next, given what it knows: plain functions of plain data, with
 * no Temporal and no I/O, so tests/order-steps.test.ts checks them without a server. They decide
 * the workflow's next step, never the order: the database decides the order by its one rule
 * (docs/expiry.md, "The rule"), and no function here compares a time with a deadline.
 */
import {
  closedOrderRefusal,
  FailureType,
  type CommitAnswer,
  type ExtensionAnswer,
  type IsoTime,
  type OrderStatus,
  type PaymentOutcome,
  type PaymentRefusal,
  type ReleaseReason,
  type Shortage,
} from '../activities/types';
import type { ExtensionOutcome } from './messages';

/** What the main path knows when its wait for a payment, a cancel or the deadline ends. */
export interface Wakeup {
  /** The database decided the order (a payment's commit, or an extension that lost the race). */
  decided: boolean;
  /** cancelOrder, or a Temporal cancellation request, came while the order was open. */
  cancelRequested: boolean;
  /** A payment.failed ended a processing hold: the order may be due now. */
  holdEnded: boolean;
  /** The timer ran out: the order is due as far as the database last said. */
  timerFired: boolean;
}

/**
 * The main path's next step: close (the order is decided), propose a release to the database
 * (which may still find the order held, when the timer is set again), or wait again (the
 * deadline moved). A cancel goes before an expiry: the database decides which one holds.
 */
export type NextStep = { step: 'CLOSE' } | { step: 'PROPOSE_RELEASE'; reason: ReleaseReason } | { step: 'WAIT' };

export function nextStep(w: Wakeup): NextStep {
  if (w.decided) return { step: 'CLOSE' };
  if (w.cancelRequested) return { step: 'PROPOSE_RELEASE', reason: 'CANCELLED' };
  if (w.timerFired || w.holdEnded) return { step: 'PROPOSE_RELEASE', reason: 'EXPIRED' };
  return { step: 'WAIT' };
}

/** Whether the order can still end otherwise than it has: only while it is placed or awaiting payment. */
export function isOpen(status: OrderStatus): boolean {
  return closedOrderRefusal(status) === undefined;
}

/** Whether the hold has run (held, rejected or expired unheld): payments and extensions wait for it. */
export function isHoldDecided(status: OrderStatus): boolean {
  return status !== 'PENDING';
}

/**
 * What a payment's handler does with the database's answer to its commit. A payment that no
 * verified receipt of this order backs moved nothing: it is proposed again if it was delivered
 * again meanwhile (its genuine delivery may have been recorded since), else forgotten. A
 * payment that applied is done; one the database refused is refunded.
 */
export type AfterCommit =
  | { step: 'PROPOSE_AGAIN' }
  | { step: 'FORGET' }
  | { step: 'DONE'; outcome: 'APPLIED' }
  | { step: 'REFUND'; outcome: PaymentRefusal };

export function afterCommit(payment: CommitAnswer['payment'], deliveredAgain: boolean): AfterCommit {
  if (payment === 'UNVERIFIED' || payment === 'PAYMENT_ALREADY_USED') return deliveredAgain ? { step: 'PROPOSE_AGAIN' } : { step: 'FORGET' };
  return payment === 'APPLIED' ? { step: 'DONE', outcome: payment } : { step: 'REFUND', outcome: payment };
}

/**
 * Whether a payment's caller (awaitPaymentDecision) can have its answer: a payment that applied
 * once the order is closed (its stock committed), a refused one once it is refunded.
 */
export function isPaymentSettled(payment: { outcome?: PaymentOutcome; refunded: boolean }, orderClosed: boolean): boolean {
  if (payment.outcome === undefined) return false;
  return payment.outcome === 'APPLIED' ? orderClosed : payment.refunded;
}

/**
 * What an extension's caller gets from the database's answer. An extension that found the order
 * decided (the deadline, or a payment in time, won the race) decided it: the caller gets the
 * refusal of the order's final state.
 */
export function extensionOutcome(answer: ExtensionAnswer): ExtensionOutcome {
  if (answer.outcome !== 'DECIDED') return answer.outcome;
  return closedOrderRefusal(answer.order.status) ?? 'ORDER_EXPIRED';
}

/** The deadline the workflow waits for: the order's expiresAt and the processing hold it is under, if any. */
export interface Deadline {
  expiresAt: IsoTime;
  processingHoldUntil: IsoTime | undefined;
}

/**
 * How the database's answer moves the deadline: whether expiresAt changed (the search attribute
 * and the view follow it) and whether anything did (the waiting timer is set again). Equality
 * of the stamps the database answered, not a comparison of times.
 */
export function deadlineChange(current: Deadline, answered: Deadline): { moved: boolean; expiresAtMoved: boolean } {
  const expiresAtMoved = answered.expiresAt !== current.expiresAt;
  return { moved: expiresAtMoved || answered.processingHoldUntil !== current.processingHoldUntil, expiresAtMoved };
}

/** How a hold's refusal closes the order: REJECTED (with any shortages), or EXPIRED when it ran past the reclaim unheld. */
export type HoldRefusal = { status: 'REJECTED'; shortages: Shortage[] } | { status: 'EXPIRED' };

/** The hold's refusal named by a non-retryable failure's type and details; undefined for any other failure. */
export function holdRefusal(type: string, details: readonly unknown[] | null | undefined): HoldRefusal | undefined {
  switch (type) {
    case FailureType.OutOfStock:
      // The activity passes the shortages as the failure's single detail.
      return { status: 'REJECTED', shortages: (details?.[0] ?? []) as Shortage[] };
    case FailureType.UnknownSku:
    case FailureType.PurchaseLimitExceeded:
    case FailureType.TooManyOpenOrders:
      return { status: 'REJECTED', shortages: [] };
    case FailureType.ExpiredBeforeHold:
      return { status: 'EXPIRED' };
    default:
      return undefined;
  }
}
