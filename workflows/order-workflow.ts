/**
 * One workflow per order: reserve → wait for a payment, a cancel or the deadline → settle →
 * refund what lost → close. It decides nothing itself: each event becomes a proposal to the
 * database, which decides by one rule (docs/expiry.md, "The rule") and answers the order as
 * decided, or held still with how long until it is due; the workflow follows the answer. The
 * order's state and its handlers are in order.ts, the moving deadline in payment-deadline.ts,
 * the choice of the next step in order-steps.ts (plain functions, tested without a server).
 *
 * Nothing here may be cut short by a Temporal cancellation request (Web UI, CLI): the main
 * path and every handler run in one non-cancellable scope, and such a request is taken as a
 * cancelOrder, so the order still ends in a final state holding no stock.
 */
import { allHandlersFinished, CancellationScope, condition } from '@temporalio/workflow';
import type { OrderView, OrderWorkflowInput } from './messages';
import { Order } from './order';
import { nextStep } from './order-steps';

export async function orderWorkflow(input: OrderWorkflowInput): Promise<OrderView> {
  // One scope for the main path and every handler, not one per call: nothing ever cancels it,
  // and each new scope costs promises that the SDK's stack-trace hook records.
  const nonCancellable = new CancellationScope({ cancellable: false });
  const order = new Order(input, nonCancellable);
  order.registerHandlers();
  void CancellationScope.current().cancelRequested.catch(() => order.requestCancel());
  return nonCancellable.run(async () => {
    // The API sets OrderStatus PENDING and CustomerId when it starts the order: no upsert needed.
    if (await order.reserve()) {
      // Settle: payments are proposed by their handlers as they come (and may decide the order);
      // the deadline and a cancel are proposed here. The database's answer decides, or moves the deadline.
      while (!order.decided) {
        const woken = await order.deadline.wait(() => order.wantsAWakeup());
        const next = nextStep(order.takeWakeup(!woken));
        if (next.step === 'PROPOSE_RELEASE') await order.proposeRelease(next.reason);
      }
    }
    // Refunds of payments that lost (their handlers run them) and callers waiting on updates
    // finish before the workflow closes.
    order.close();
    await condition(allHandlersFinished);
    return order.snapshot();
  });
}
