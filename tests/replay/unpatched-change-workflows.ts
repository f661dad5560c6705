/**
 * A deliberately incompatible change, for tests/replay.test.ts and tests/ship-a-change.test.ts:
 * orderWorkflow gains a step (a one-second pause, started before it reserves and waited for
 * before it returns) WITHOUT patched(), as a careless edit would. Its first command is now a
 * timer where the recorded histories have the reservation, so replaying any of them must fail
 * with a DeterminismViolationError. (The order itself starts at once, so its handlers are there
 * for the update that waits for its hold.)
 */
import { sleep } from '@temporalio/workflow';
import type { OrderView, OrderWorkflowInput } from '../../workflows/messages';
import { orderWorkflow as currentOrderWorkflow } from '../../workflows/order-workflow';

export { latePaymentWorkflow } from '../../workflows/late-payment-workflow';

export async function orderWorkflow(input: OrderWorkflowInput): Promise<OrderView> {
  const pause = sleep('1 second');
  const view = await currentOrderWorkflow(input);
  await pause;
  return view;
}
