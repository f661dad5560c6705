/**
 * The order workflow's choice of its next step, as plain functions (workflows/order-steps.ts):
 * no server, no database. What the steps lead to on the real stack is the lifecycle tests' job;
 * that the workflow issues the same commands as before is tests/replay.test.ts's.
 */
import { FailureType, type CommitAnswer, type OrderStatus, type SettledOrder } from '../activities/types';
import {
  afterCommit,
  deadlineChange,
  extensionOutcome,
  holdRefusal,
  isHoldDecided,
  isOpen,
  isPaymentSettled,
  nextStep,
  type Wakeup,
} from '../workflows/order-steps';

const QUIET: Wakeup = { decided: false, cancelRequested: false, holdEnded: false, timerFired: false };
const ALL_STATUSES: OrderStatus[] = ['PENDING', 'AWAITING_PAYMENT', 'PAID', 'EXPIRED', 'CANCELLED', 'REJECTED'];

const settled = (status: SettledOrder['status']): SettledOrder => ({
  status,
  decidedNow: true,
  closedAt: '2026-12-07T10:00:00.000Z',
  expiresAt: '2026-12-07T10:00:00.000Z',
});

describe('nextStep after the wait for a payment, a cancel or the deadline', () => {
  test('an order the database decided closes, whatever else woke the wait', () => {
    for (const cancelRequested of [false, true]) {
      for (const holdEnded of [false, true]) {
        for (const timerFired of [false, true]) {
          expect(nextStep({ decided: true, cancelRequested, holdEnded, timerFired })).toEqual({ step: 'CLOSE' });
        }
      }
    }
  });

  test('a cancel is proposed before an expiry, even when the timer fired too', () => {
    expect(nextStep({ ...QUIET, cancelRequested: true })).toEqual({ step: 'PROPOSE_RELEASE', reason: 'CANCELLED' });
    expect(nextStep({ ...QUIET, cancelRequested: true, timerFired: true, holdEnded: true })).toEqual({ step: 'PROPOSE_RELEASE', reason: 'CANCELLED' });
  });

  test('the timer running out, or a processing hold ending, proposes the expiry', () => {
    expect(nextStep({ ...QUIET, timerFired: true })).toEqual({ step: 'PROPOSE_RELEASE', reason: 'EXPIRED' });
    expect(nextStep({ ...QUIET, holdEnded: true })).toEqual({ step: 'PROPOSE_RELEASE', reason: 'EXPIRED' });
  });

  test('a wake-up for nothing but a moved deadline waits again', () => {
    expect(nextStep(QUIET)).toEqual({ step: 'WAIT' });
  });
});

describe('what is open, and when the hold has run', () => {
  test('only a placed order or one awaiting payment is open (a cancel is taken, a hold ending matters)', () => {
    expect(ALL_STATUSES.filter(isOpen)).toEqual(['PENDING', 'AWAITING_PAYMENT']);
  });

  test('payments and extensions wait only while the order is placed and not yet held or refused', () => {
    expect(ALL_STATUSES.filter((s) => !isHoldDecided(s))).toEqual(['PENDING']);
  });
});

describe("afterCommit: a payment's handler after the database answered its commit", () => {
  test('an applied payment is done, a refused one is refunded with the reason it was refused for', () => {
    expect(afterCommit('APPLIED', false)).toEqual({ step: 'DONE', outcome: 'APPLIED' });
    for (const refusal of ['AMOUNT_MISMATCH', 'CURRENCY_MISMATCH', 'ORDER_EXPIRED', 'ORDER_CANCELLED', 'ORDER_REJECTED', 'ORDER_ALREADY_PAID'] as const) {
      expect(afterCommit(refusal, false)).toEqual({ step: 'REFUND', outcome: refusal });
      expect(afterCommit(refusal, true)).toEqual({ step: 'REFUND', outcome: refusal });
    }
  });

  test('a payment no verified receipt of this order backs is forgotten, or proposed again if it was delivered again meanwhile', () => {
    const unbacked: CommitAnswer['payment'][] = ['UNVERIFIED', 'PAYMENT_ALREADY_USED'];
    for (const answer of unbacked) {
      expect(afterCommit(answer, false)).toEqual({ step: 'FORGET' });
      expect(afterCommit(answer, true)).toEqual({ step: 'PROPOSE_AGAIN' });
    }
  });
});

describe("isPaymentSettled: when a payment's caller gets its answer", () => {
  test('an applied payment once the order is closed (its stock committed)', () => {
    expect(isPaymentSettled({ outcome: 'APPLIED', refunded: false }, false)).toBe(false);
    expect(isPaymentSettled({ outcome: 'APPLIED', refunded: false }, true)).toBe(true);
  });

  test('a refused payment once it is refunded, whether or not the order is closed', () => {
    expect(isPaymentSettled({ outcome: 'ORDER_EXPIRED', refunded: false }, true)).toBe(false);
    expect(isPaymentSettled({ outcome: 'ORDER_EXPIRED', refunded: true }, false)).toBe(true);
  });

  test('a payment not decided yet, never', () => {
    expect(isPaymentSettled({ refunded: false }, true)).toBe(false);
  });
});

describe("extensionOutcome: what an extension's caller gets", () => {
  test("the database's answer when it extended or refused the extension", () => {
    expect(extensionOutcome({ outcome: 'EXTENDED', expiresAt: '2026-12-07T10:00:00.000Z', dueInMs: 1000 })).toBe('EXTENDED');
    expect(extensionOutcome({ outcome: 'EXTENSION_TOO_LONG', expiresAt: '2026-12-07T10:00:00.000Z', dueInMs: 1000 })).toBe('EXTENSION_TOO_LONG');
  });

  test('the refusal of the final state when the extension found the order decided', () => {
    expect(extensionOutcome({ outcome: 'DECIDED', order: settled('EXPIRED') })).toBe('ORDER_EXPIRED');
    expect(extensionOutcome({ outcome: 'DECIDED', order: settled('PAID') })).toBe('ORDER_ALREADY_PAID');
    expect(extensionOutcome({ outcome: 'DECIDED', order: settled('CANCELLED') })).toBe('ORDER_CANCELLED');
  });
});

describe("deadlineChange: whether the database's answer moves the deadline the workflow waits for", () => {
  const now = { expiresAt: '2026-12-07T10:00:00.000Z', processingHoldUntil: undefined };

  test('the same deadline and no hold moves nothing', () => {
    expect(deadlineChange(now, { ...now })).toEqual({ moved: false, expiresAtMoved: false });
  });

  test('a new expiresAt moves it, and the search attribute with it', () => {
    expect(deadlineChange(now, { ...now, expiresAt: '2026-12-07T11:00:00.000Z' })).toEqual({ moved: true, expiresAtMoved: true });
  });

  test('a processing hold starting or ending moves it, expiresAt staying', () => {
    const held = { ...now, processingHoldUntil: '2026-12-07T10:05:00.000Z' };
    expect(deadlineChange(now, held)).toEqual({ moved: true, expiresAtMoved: false });
    expect(deadlineChange(held, now)).toEqual({ moved: true, expiresAtMoved: false });
  });
});

describe("holdRefusal: how the hold's refusal closes the order", () => {
  test('out of stock is REJECTED with the shortages the activity passed', () => {
    const shortages = [{ sku: 'SKU-1', requested: 3, available: 1 }];
    expect(holdRefusal(FailureType.OutOfStock, [shortages])).toEqual({ status: 'REJECTED', shortages });
    expect(holdRefusal(FailureType.OutOfStock, undefined)).toEqual({ status: 'REJECTED', shortages: [] });
  });

  test('an unknown sku or a limit is REJECTED without shortages', () => {
    for (const type of [FailureType.UnknownSku, FailureType.PurchaseLimitExceeded, FailureType.TooManyOpenOrders]) {
      expect(holdRefusal(type, null)).toEqual({ status: 'REJECTED', shortages: [] });
    }
  });

  test('a hold that ran after the reclaim closed the order unheld is EXPIRED', () => {
    expect(holdRefusal(FailureType.ExpiredBeforeHold, undefined)).toEqual({ status: 'EXPIRED' });
  });

  test('any other failure is no refusal of the hold: the workflow does not take it as one', () => {
    expect(holdRefusal(FailureType.UnverifiedPayment, undefined)).toBeUndefined();
    expect(holdRefusal('Error', undefined)).toBeUndefined();
  });
});
