/**
 * How the order's workflow calls its activities: their retry policies, and the summaries the
 * Web UI shows for each call. Each returns the activity's own promise (no async wrapper), so a
 * call keeps its place among the workflow's commands.
 */
import { proxyActivities, proxyLocalActivities, type ActivityOptions, type LocalActivityOptions } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { ACTIVITY_ATTEMPT_MS } from '../activities/timeouts';
import {
  FailureType,
  type CommitAnswer,
  type CommitStockInput,
  type ExtendPaymentWindowInput,
  type ExtensionAnswer,
  type RefundPaymentInput,
  type RefundResult,
  type ReleaseStockInput,
  type RequestedItem,
  type ReservedOrder,
  type ReserveStockInput,
  type SettledOrder,
  type StillHeld,
} from '../activities/types';
import { describeItems, formatDuration } from './summaries';

/**
 * Every activity here retries transient faults, backing off to a cap; commit, release and refund
 * must eventually happen, so they retry forever. Running out of stock is an answer, not a fault.
 */
const settleOptions: ActivityOptions = {
  startToCloseTimeout: ACTIVITY_ATTEMPT_MS,
  retry: { initialInterval: '200 ms', backoffCoefficient: 2, maximumInterval: '5 seconds' },
};
const reserveOptions: ActivityOptions = {
  ...settleOptions,
  retry: {
    ...settleOptions.retry,
    nonRetryableErrorTypes: [
      FailureType.OutOfStock,
      FailureType.UnknownSku,
      FailureType.PurchaseLimitExceeded,
      FailureType.TooManyOpenOrders,
      FailureType.ExpiredBeforeHold,
    ],
  },
};

const activitiesWith = (options: ActivityOptions, summary: string) => proxyActivities<Activities>({ ...options, summary });

// Commit, release and extension are local activities like the hold: the database decides, so a
// lost workflow task that runs one again can only propose again (docs/lifecycle.md).
const localActivitiesWith = (options: LocalActivityOptions, summary: string) => proxyLocalActivities<Activities>({ ...options, summary });

/** Holds the stock; a refusal is a non-retryable failure naming why. */
export function reserveStock(input: ReserveStockInput): Promise<ReservedOrder> {
  return localActivitiesWith(reserveOptions, `reserve ${describeItems(input.items)}`).reserveStock(input);
}

export function releaseStock(input: ReleaseStockInput, held: readonly RequestedItem[]): Promise<SettledOrder | StillHeld> {
  return localActivitiesWith(settleOptions, `release ${describeItems(held)} (${input.reason.toLowerCase()})`).releaseStock(input);
}

export function commitStock(input: CommitStockInput, held: readonly RequestedItem[]): Promise<CommitAnswer> {
  return localActivitiesWith(settleOptions, `commit ${describeItems(held)} (payment ${input.paymentId})`).commitStock(input);
}

export function extendPaymentWindow(input: ExtendPaymentWindowInput): Promise<ExtensionAnswer> {
  return localActivitiesWith(settleOptions, `extend the payment window by ${formatDuration(input.seconds)}`).extendPaymentWindow(input);
}

/** The one regular (not local) activity of the order. */
export function refundPayment(input: RefundPaymentInput): Promise<RefundResult> {
  return activitiesWith(settleOptions, `refund payment ${input.paymentId} (${input.reason})`).refundPayment(input);
}
