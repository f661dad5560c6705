/**
 * A payment delivered after its order's workflow has closed (or was terminated) cannot reach
 * that workflow. This short workflow proposes it to the database, which decides by the same rule
 * as the order's workflow (docs/expiry.md, "The rule"): it pays an order still awaiting payment
 * when it came in time, else it is refused. A refused payment is refunded exactly once (the
 * refund is keyed by order + payment).
 */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { ACTIVITY_ATTEMPT_MS } from '../activities/timeouts';
import type { PaymentDecisionOfClosedOrder, PaymentReceived } from './messages';

const { decideLatePayment, refundPayment } = proxyActivities<Activities>({
  startToCloseTimeout: ACTIVITY_ATTEMPT_MS,
  retry: { initialInterval: '200 ms', backoffCoefficient: 2, maximumInterval: '5 seconds' },
});

export async function latePaymentWorkflow(input: PaymentReceived & { orderId: string }): Promise<PaymentDecisionOfClosedOrder> {
  const { orderId, paymentId } = input;
  const outcome = await decideLatePayment({ orderId, paymentId });
  if (outcome === 'APPLIED') return { paymentId, outcome };
  const refund = await refundPayment({ orderId, paymentId, reason: outcome });
  return { paymentId, outcome, refund };
}
