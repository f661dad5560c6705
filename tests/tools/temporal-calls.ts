/**
 * Records every call the API's Temporal client makes that may cost a Temporal Cloud action
 * (starts, updates, signals, queries) with what the server answered, through a client
 * interceptor. Rejected updates leave no history event, so only the caller can count them.
 */
import { isGrpcServiceError, ServiceError, WorkflowUpdateRPCTimeoutOrCancelledError, type WorkflowClientInterceptor } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/common';

export type TemporalCallKind = 'start' | 'updateWithStart' | 'update' | 'signal' | 'signalWithStart' | 'query';

/**
 * What the server answered: `ok`; `failed` (an update whose outcome is a failure: rejected by
 * its validator, or failed after it was accepted); or an error before any worker saw the call.
 */
export type TemporalCallOutcome = 'ok' | 'failed' | 'notFound' | 'notReady' | 'alreadyStarted' | 'deadline' | 'error';

export interface TemporalCall {
  kind: TemporalCallKind;
  workflowId: string;
  /** The run the server routed an update to (absent when it answered with an error). */
  runId?: string;
  /** The signal, update, query or workflow type. */
  name: string;
  updateId?: string;
  outcome: TemporalCallOutcome;
}

const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_FAILED_PRECONDITION = 9;

export class TemporalCallLog {
  readonly calls: TemporalCall[] = [];

  /** Every call that named this workflow id, or one starting with this prefix. */
  callsTo(match: (workflowId: string) => boolean): TemporalCall[] {
    return this.calls.filter((call) => match(call.workflowId));
  }

  interceptor(): WorkflowClientInterceptor {
    const log = this.calls;
    const record = async <T>(call: Omit<TemporalCall, 'outcome'>, send: () => Promise<T>, outcomeOf: (value: T) => Partial<TemporalCall> = () => ({})) => {
      try {
        const value = await send();
        log.push({ ...call, outcome: 'ok', ...outcomeOf(value) });
        return value;
      } catch (error) {
        log.push({ ...call, outcome: errorOutcome(error) });
        throw error;
      }
    };
    return {
      startWithDetails: (input, next) =>
        record({ kind: 'start', workflowId: input.options.workflowId, name: input.workflowType }, () => next(input), (out) => ({ runId: out.runId })),
      startUpdateWithStart: (input, next) =>
        record(
          { kind: 'updateWithStart', workflowId: input.workflowStartOptions.workflowId, name: input.updateName, ...updateIdOf(input.updateOptions) },
          () => next(input),
          (out) => ({ runId: out.workflowExecution.runId ?? undefined, updateId: out.updateId, ...(out.updateOutcome?.failure ? { outcome: 'failed' as const } : {}) }),
        ),
      startUpdate: (input, next) =>
        record(
          { kind: 'update', workflowId: input.workflowExecution.workflowId, name: input.updateName, ...updateIdOf(input.options) },
          () => next(input),
          (out) => ({ runId: out.workflowRunId, updateId: out.updateId, ...(out.outcome?.failure ? { outcome: 'failed' as const } : {}) }),
        ),
      signal: (input, next) => record({ kind: 'signal', workflowId: input.workflowExecution.workflowId, name: input.signalName }, () => next(input)),
      signalWithStart: (input, next) =>
        record({ kind: 'signalWithStart', workflowId: input.options.workflowId, name: input.signalName }, () => next(input)),
      query: (input, next) => record({ kind: 'query', workflowId: input.workflowExecution.workflowId, name: input.queryType }, () => next(input)),
    };
  }
}

function updateIdOf(options: { updateId?: string }): { updateId?: string } {
  return options.updateId === undefined ? {} : { updateId: options.updateId };
}

function errorOutcome(error: unknown): TemporalCallOutcome {
  if (error instanceof WorkflowNotFoundError) return 'notFound';
  if (error instanceof WorkflowExecutionAlreadyStartedError) return 'alreadyStarted';
  if (error instanceof WorkflowUpdateRPCTimeoutOrCancelledError) return 'deadline';
  const cause = error instanceof ServiceError ? error.cause : error;
  if (isGrpcServiceError(cause) && cause.code === GRPC_FAILED_PRECONDITION) return 'notReady';
  if (isGrpcServiceError(cause) && cause.code === GRPC_DEADLINE_EXCEEDED) return 'deadline';
  return 'error';
}
