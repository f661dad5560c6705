/**
 * A deliberately incompatible change, for tests/replay.test.ts only: orderWorkflow gains a
 * step (a pause before it reserves) WITHOUT patched(), as a careless edit would. Its first
 * command is now a timer where the recorded histories have the reservation, so replaying
 * any of them must fail with a DeterminismViolationError.
 */
import { sleep } from '@temporalio/workflow';
import type { OrderView, OrderWorkflowInput } from '../../workflows/messages';
import { orderWorkflow as currentOrderWorkflow } from '../../workflows/order-workflow';

export { latePaymentWorkflow } from '../../workflows/late-payment-workflow';

export async function orderWorkflow(input: OrderWorkflowInput): Promise<OrderView> {
  await sleep('1 second');
  return currentOrderWorkflow(input);
}
