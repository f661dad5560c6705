/**
 * How the API calls Temporal: each call has a gRPC deadline, and its failures are classified
 * here (past the deadline, the workflow not ready for an update now, an update refused with a
 * type). A call that waits for a decision the workflow makes either gets it within the decision
 * wait or answers "not decided yet" (202); one that must answer by itself past
 * TEMPORAL_CALL_DEADLINE_MS counts as Temporal unreachable (503).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  isGrpcServiceError,
  ServiceError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  type Client,
  type WorkflowHandle,
} from '@temporalio/client';
import { ApplicationFailure, type SignalDefinition } from '@temporalio/common';

/**
 * The deadline of a Temporal call that must answer by itself, without a worker (starting a
 * workflow, sending a signal): past it, Temporal counts as unreachable (503).
 */
export const TEMPORAL_CALL_DEADLINE_MS = 5_000;

/**
 * One update id per wait and order (per payment), whatever the number of requests: a repeated
 * request joins the update in flight, or gets the result of the one completed, rather than
 * piling up new ones while no worker runs (Temporal caps updates in flight per workflow at 10).
 */
export const AWAIT_RESERVATION_ID = 'await-reservation';
export const AWAIT_CLOSED_ID = 'await-closed';
export const awaitPaymentDecisionId = (paymentId: string): string => `await-payment-decision-${paymentId}`;
export const awaitExtensionId = (extensionId: string): string => `await-extension-${extensionId}`;

export type Waited<T> = { decided: true; value: T } | { decided: false };

/**
 * Runs `wait` (Temporal calls that wait for a decision the workflow makes) with a gRPC deadline
 * `waitMs` away. When the deadline passes first, or the workflow cannot take the update now, the
 * answer is "not decided yet": the workflow decides anyway, and the caller says so (202)
 * instead of hanging. Any other failure is thrown.
 */
export async function withinDecisionWait<T>(temporal: Client, waitMs: number, wait: () => Promise<T>): Promise<Waited<T>> {
  try {
    return { decided: true, value: await temporal.withDeadline(Date.now() + Math.max(waitMs, 0), wait) };
  } catch (error) {
    // Not ready: the workflow's task keeps failing or timing out (e.g. on a frozen worker), so
    // the server takes no update now; the decision comes once a worker runs the task.
    if (isDeadlineExceeded(error) || isWorkflowNotReady(error)) return { decided: false };
    throw error;
  }
}

/** A call that needs no worker (describe, signal), bounded by TEMPORAL_CALL_DEADLINE_MS. */
export function withinCallDeadline<T>(temporal: Client, call: () => Promise<T>): Promise<T> {
  return temporal.withDeadline(Date.now() + TEMPORAL_CALL_DEADLINE_MS, call);
}

/** Sends a signal within TEMPORAL_CALL_DEADLINE_MS. */
export function signalWithinDeadline<Args extends unknown[]>(
  temporal: Client,
  handle: WorkflowHandle,
  signal: SignalDefinition<Args>,
  ...args: Args
): Promise<void> {
  return withinCallDeadline(temporal, () => handle.signal(signal, ...args));
}

const UPDATE_ATTEMPTS = 5;
const GRPC_FAILED_PRECONDITION = 9;
const GRPC_DEADLINE_EXCEEDED = 4;

/**
 * Sends an update again when the workflow task it was delivered in failed before the update ran:
 * the server then aborts it with WorkflowNotReady (FAILED_PRECONDITION). That happens when the
 * task would close the workflow but a signal arrived while it ran, so the server asks for a new
 * one. Our updates only wait for a decision and read it, so sending one twice is harmless.
 */
export async function resendingUpdate<T>(send: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (error) {
      if (attempt >= UPDATE_ATTEMPTS || !isWorkflowNotReady(error)) throw error;
      await sleep(attempt * 50);
    }
  }
}

function isDeadlineExceeded(error: unknown): boolean {
  if (error instanceof WorkflowUpdateRPCTimeoutOrCancelledError) return true;
  const cause = error instanceof ServiceError ? error.cause : error;
  return isGrpcServiceError(cause) && cause.code === GRPC_DEADLINE_EXCEEDED;
}

function isWorkflowNotReady(error: unknown): boolean {
  const cause = error instanceof ServiceError ? error.cause : error;
  return isGrpcServiceError(cause) && cause.code === GRPC_FAILED_PRECONDITION;
}

/** The type of the ApplicationFailure an update's handler or validator refused with, if that is how it failed. */
export function updateFailureType(error: unknown): string | undefined {
  if (!(error instanceof WorkflowUpdateFailedError)) return undefined;
  return error.cause instanceof ApplicationFailure ? error.cause.type ?? undefined : undefined;
}
