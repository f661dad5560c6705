/**
 * A payment delivered after its order's workflow has closed (or was terminated) cannot reach
 * that workflow. This short workflow decides it from the database: the outcome recorded, or,
 * for an order still awaiting payment, the same compare-and-set the order's workflow proposes
 * (paid before the deadline, else released). A refused payment is refunded exactly once (the
 * refund is keyed by order + payment).
 */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { PaymentDecisionOfClosedOrder, PaymentReceived } from './messages';

const { decideLatePayment, refundPayment } = proxyActivities<Activities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '200 ms', backoffCoefficient: 2, maximumInterval: '5 seconds' },
});

export async function latePaymentWorkflow(
  input: PaymentReceived & { orderId: string },
): Promise<PaymentDecisionOfClosedOrder> {
  const { orderId, paymentId, amountCents } = input;
  const outcome = await decideLatePayment({ orderId, paymentId, amountCents });
  if (outcome === 'APPLIED') return { paymentId: input.paymentId, outcome };
  const refund = await refundPayment({ ...input, reason: outcome });
  return { paymentId: input.paymentId, outcome, refund };
}
