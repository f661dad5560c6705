/**
 * Structured JSON logs (pino) for both processes. Every line about an order carries its
 * `orderId`, whether it comes from an API request, a workflow or an activity, so an order's
 * story is one filter away (`jq 'select(.orderId == "…")'`).
 */
import type { LogLevel as TemporalLogLevel, LogMetadata, Logger as TemporalLogger } from '@temporalio/common';
import pino, { type DestinationStream, type Level, type Logger } from 'pino';

export type { Logger };

export function createLogger(name: string, level: string, destination?: DestinationStream): Logger {
  const options = {
    name,
    level,
    base: { service: 'checkout', component: name },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return destination ? pino(options, destination) : pino(options);
}

const UUID_PATTERN = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
// `order-<orderId>` and `late-payment-<orderId>-<paymentId>` (workflows/messages.ts).
const ORDER_WORKFLOW_ID = new RegExp(`^(?:order|late-payment)-(${UUID_PATTERN})(?:$|-)`, 'i');

/** The order a workflow id belongs to, if it belongs to one. */
export function orderIdOfWorkflow(workflowId: string | undefined): string | undefined {
  return workflowId === undefined ? undefined : ORDER_WORKFLOW_ID.exec(workflowId)?.[1];
}

const PINO_LEVEL: Record<TemporalLogLevel, Level> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/**
 * The Temporal Runtime's logger, writing into pino: the SDK's own messages and the
 * `log` of workflows and activities, whose metadata carries the workflowId (and, for
 * activities, the orderId the telemetry interceptor adds).
 */
export function temporalLoggerFrom(logger: Logger): TemporalLogger {
  const write = (level: TemporalLogLevel, message: string, meta: LogMetadata = {}): void => {
    // The task token is an opaque blob; the workflow and activity ids already say which task.
    const rest: LogMetadata = Object.fromEntries(Object.entries(meta).filter(([key]) => key !== 'taskToken' && key !== 'error'));
    const error = meta.error;
    const workflowId = typeof rest.workflowId === 'string' ? rest.workflowId : undefined;
    const orderId = typeof rest.orderId === 'string' ? rest.orderId : orderIdOfWorkflow(workflowId);
    logger[PINO_LEVEL[level]]({ ...rest, ...(orderId && { orderId }), ...(error !== undefined && { err: error }) }, message);
  };
  return {
    log: write,
    trace: (message, meta) => write('TRACE', message, meta),
    debug: (message, meta) => write('DEBUG', message, meta),
    info: (message, meta) => write('INFO', message, meta),
    warn: (message, meta) => write('WARN', message, meta),
    error: (message, meta) => write('ERROR', message, meta),
  };
}
