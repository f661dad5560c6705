/**
 * Observes activities where they run, in the worker: every activity log line gets the
 * orderId, and the outcomes that matter to an operator (stock held, order paid, expired,
 * cancelled, rejected, payment refunded, how late an expiry ran) are counted and logged.
 * A retried attempt of an activity whose earlier completion was lost is counted again:
 * metrics are for watching, the ledger is the exact record.
 */
import type { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { Activities } from '../activities';
import type { InventoryActivities } from '../activities/inventory';
import { FailureType, type SettledOrder } from '../activities/types';
import { orderIdOfWorkflow } from './logger';
import type { WorkerMetrics } from './metrics';

type AllActivities = Activities & InventoryActivities;
type Input<Name extends keyof AllActivities> = Parameters<AllActivities[Name]>[0];
type Output<Name extends keyof AllActivities> = Awaited<ReturnType<AllActivities[Name]>>;

export function activityTelemetry(metrics?: WorkerMetrics): ActivityInterceptorsFactory {
  return (ctx) => {
    let orderId = orderIdOfWorkflow(ctx.info.workflowExecution?.workflowId);
    return {
      inbound: {
        async execute(input, next) {
          orderId = orderIdOf(input.args[0]) ?? orderId;
          try {
            const result = await next(input);
            recordSuccess(ctx, metrics, input.args[0], result);
            return result;
          } catch (error) {
            recordFailure(ctx, metrics, input.args[0], error);
            throw error;
          }
        },
      },
      outbound: {
        getLogAttributes: (attributes, next) => next(orderId === undefined ? attributes : { ...attributes, orderId }),
      },
    };
  };
}

function orderIdOf(arg: unknown): string | undefined {
  const orderId = (arg as { orderId?: unknown } | null | undefined)?.orderId;
  return typeof orderId === 'string' ? orderId : undefined;
}

// The activity function itself defines its input and output, so narrowing by activity type is exact.
function recordSuccess(ctx: Context, metrics: WorkerMetrics | undefined, arg: unknown, result: unknown): void {
  switch (ctx.info.activityType as keyof AllActivities) {
    case 'reserveStock': {
      const { totalCents } = result as Output<'reserveStock'>;
      metrics?.stockHolds.inc();
      ctx.log.info('stock held; awaiting payment', { totalCents });
      return;
    }
    case 'commitStock': {
      const { payment, order } = result as Output<'commitStock'>;
      if (payment === 'UNVERIFIED' || payment === 'PAYMENT_ALREADY_USED') {
        recordUnverifiedPayment(ctx, metrics, (arg as Input<'commitStock'>).paymentId, payment);
        return;
      }
      if (order !== undefined && order.status !== 'AWAITING_PAYMENT') recordSettled(ctx, metrics, order);
      return;
    }
    case 'releaseStock': {
      const answer = result as Output<'releaseStock'>;
      if (answer.status !== 'AWAITING_PAYMENT') recordSettled(ctx, metrics, answer);
      return;
    }
    case 'refundPayment': {
      const { paymentId, reason } = arg as Input<'refundPayment'>;
      metrics?.refunds.inc({ reason });
      ctx.log.info('payment refused and refunded', { paymentId, reason });
      return;
    }
    case 'putProduct': {
      const { outcome, product } = result as Output<'putProduct'>;
      ctx.log.info(outcome === 'CREATED' ? 'product created' : 'product updated', { ...product });
      return;
    }
    case 'restockProduct': {
      const restock = result as Output<'restockProduct'>;
      ctx.log.info('restock', { quantity: (arg as Input<'restockProduct'>).quantity, ...restock });
      return;
    }
    default:
      return;
  }
}

/**
 * A payment proposed for an order that no verified delivery of that order backs: a signal sent
 * straight to Temporal. Nothing moved; logged as a security event with no amounts (the order's
 * own record shows what it costs), and counted.
 */
function recordUnverifiedPayment(ctx: Context, metrics: WorkerMetrics | undefined, paymentId: string, reason: string): void {
  metrics?.unverifiedPayments.inc({ reason });
  ctx.log.warn('security: a payment without a verified receipt of this order was proposed; nothing moved', {
    securityEvent: 'unverified_payment',
    paymentId,
    reason,
  });
}

/** Counts an outcome only where it was decided (not where a proposal found it decided). */
function recordSettled(ctx: Context, metrics: WorkerMetrics | undefined, settled: SettledOrder): void {
  const { status, decidedNow, closedAt, expiresAt, paymentId } = settled;
  if (!decidedNow) {
    ctx.log.info('order already decided; following the database', { status, closedAt });
    return;
  }
  metrics?.ordersClosed.inc({ outcome: status });
  if (status === 'PAID') {
    ctx.log.info('order paid; stock moved reserved → sold', { paymentId });
    return;
  }
  if (status === 'CANCELLED') {
    ctx.log.info('order cancelled; stock back on sale', { closedAt });
    return;
  }
  const expiryLagSeconds = (Date.parse(closedAt) - Date.parse(expiresAt)) / 1000;
  metrics?.expiries.inc();
  metrics?.expiryLag.observe(Math.max(0, expiryLagSeconds));
  ctx.log.info('order expired; stock back on sale', { expiresAt, closedAt, expiryLagSeconds });
}

function recordFailure(ctx: Context, metrics: WorkerMetrics | undefined, arg: unknown, error: unknown): void {
  if (error instanceof ApplicationFailure && error.type === FailureType.UnverifiedPayment) {
    const { paymentId } = arg as Input<'decideLatePayment' | 'refundPayment'>;
    recordUnverifiedPayment(ctx, metrics, paymentId, 'UNVERIFIED');
    return;
  }
  if (ctx.info.activityType !== 'reserveStock') return;
  if (!(error instanceof ApplicationFailure)) return;
  if (error.type === FailureType.OutOfStock) {
    metrics?.ordersClosed.inc({ outcome: 'REJECTED' });
    ctx.log.info('order rejected: not enough stock; nothing held', { shortages: error.details?.[0] });
  } else if (error.type === FailureType.PurchaseLimitExceeded || error.type === FailureType.TooManyOpenOrders) {
    metrics?.ordersClosed.inc({ outcome: 'REJECTED' });
    ctx.log.info('order rejected: a purchase limit; nothing held', { reason: error.type, details: error.details?.[0] });
  }
}
