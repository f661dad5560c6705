/**
 * The same change as unpatched-change-workflows.ts, made the safe way, for
 * tests/replay.test.ts only: the new step runs only where patched() says the execution
 * started on the new code, so every recorded history still replays.
 */
import { patched, sleep } from '@temporalio/workflow';
import type { OrderView, OrderWorkflowInput } from '../../workflows/messages';
import { orderWorkflow as currentOrderWorkflow } from '../../workflows/order-workflow';

export { latePaymentWorkflow } from '../../workflows/late-payment-workflow';

export async function orderWorkflow(input: OrderWorkflowInput): Promise<OrderView> {
  if (patched('pause-before-reserving')) await sleep('1 second');
  return currentOrderWorkflow(input);
}
