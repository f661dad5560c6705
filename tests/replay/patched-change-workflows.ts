/**
 * The same change as unpatched-change-workflows.ts, made the safe way, for tests/replay.test.ts
 * and tests/ship-a-change.test.ts: the new step runs only where patched() says the execution
 * started on the new code, so every recorded history, and every order already open when the
 * change ships, still replays.
 */
import { patched, sleep } from '@temporalio/workflow';
import type { OrderView, OrderWorkflowInput } from '../../workflows/messages';
import { orderWorkflow as currentOrderWorkflow } from '../../workflows/order-workflow';

export { latePaymentWorkflow } from '../../workflows/late-payment-workflow';

export async function orderWorkflow(input: OrderWorkflowInput): Promise<OrderView> {
  const pause = patched('pause-before-reserving') ? sleep('1 second') : undefined;
  const view = await currentOrderWorkflow(input);
  await pause;
  return view;
}
