/**
 * The order's shape with nothing of ours in it, for the engine's floor: what the Temporal SDK
 * and dev server cost on this machine when the hold and the release do nothing. Bundled by
 * the bench's own worker; never part of the service.
 */
import { condition, defineSignal, defineUpdate, proxyLocalActivities, setHandler } from '@temporalio/workflow';
import type { FloorActivities } from './floor-activities';

const { hold, release } = proxyLocalActivities<FloorActivities>({ startToCloseTimeout: '10 seconds' });

export const heldUpdate = defineUpdate<string>('held');
export const paidSignal = defineSignal('paid');

/** Update-with-start, a local no-op hold, a timer racing a signal, then a local no-op release. */
export async function floorOrderWorkflow(dueAtMs: number): Promise<string> {
  let held = false;
  let paid = false;
  setHandler(heldUpdate, async () => {
    await condition(() => held);
    return 'held';
  });
  setHandler(paidSignal, () => {
    paid = true;
  });
  await hold();
  held = true;
  // At least 1 ms: a zero timeout would wait forever.
  const paidInTime = await condition(() => paid, Math.max(1, dueAtMs - Date.now()));
  if (paidInTime) return 'PAID';
  await release(dueAtMs);
  return 'EXPIRED';
}
