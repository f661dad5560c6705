/**
 * How a change to orderWorkflow ships once orders are in flight (docs/development.md, "Once orders
 * are in flight in production"), done on a real server: orders are placed on the code as it is,
 * the worker is replaced by one running a changed build while they wait, and they go on.
 *
 * The change is the one tests/replay.test.ts replays: a pause before reserving. Behind patched(),
 * the orders that started before it finish on the path they started on and new orders take the
 * new one. Without patched(), the open orders' workflows cannot go on (each workflow task fails on
 * nondeterminism), yet their stock still comes back at the deadline (the reclaim needs no
 * workflow), and shipping the patched build instead lets them close.
 */
import { randomUUID } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import { bundleWorkflowCode, type WorkerOptions } from '@temporalio/worker';
import type { OrderResponse } from '../src/api/schemas';
import { orderWorkflowId } from '../workflows/messages';
import { cancelOrder, payOrder, placeOrder, withStatus } from './support/api-calls';
import { addProduct, stockOf } from './support/database';
import { oneSettlementPerItem, settlementsOf, workflowsCompleted } from './support/fault-checks';
import { startWorker, TEST_RECLAIM, useStack } from './support/stack';
import { eventually } from './support/wait';

type HistoryEvent = NonNullable<Awaited<ReturnType<WorkflowHandle['fetchHistory']>>['events']>[number];

const PATCH_ID = 'pause-before-reserving';
const stack = useStack();

async function changedBuild(file: string): Promise<WorkerOptions['workflowBundle']> {
  const noop = () => undefined;
  const logger = { trace: noop, debug: noop, info: noop, warn: noop, error: console.error, log: noop };
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve(file), logger });
  return { code };
}

/** Replaces the stack's worker (as a deploy does: the old one drains and stops, the new one polls). */
async function deploy(workflowBundle: WorkerOptions['workflowBundle']): Promise<void> {
  await stack.worker.stop();
  stack.worker = await startWorker(stack.env, stack.db, stack.taskQueue, TEST_RECLAIM, { workflowBundle });
}

async function place(sku: string, paymentTimeoutSeconds = 900): Promise<OrderResponse> {
  const answer = withStatus(201, await placeOrder(stack.app, { customerId: `ship-${randomUUID()}`, items: [{ sku, quantity: 1 }], paymentTimeoutSeconds }));
  return answer.body as unknown as OrderResponse;
}

async function historyOf(orderId: string): Promise<HistoryEvent[]> {
  return (await stack.client.workflow.getHandle(orderWorkflowId(orderId)).fetchHistory()).events ?? [];
}

/** Whether the order's workflow recorded the patch, and whether it ran the change's one-second pause. */
async function pathOf(orderId: string): Promise<{ patched: boolean; paused: boolean }> {
  const events = await historyOf(orderId);
  const patchMarker = Buffer.from(JSON.stringify(PATCH_ID)).toString('base64');
  const patched = events.some((e) => e.markerRecordedEventAttributes && JSON.stringify(e.markerRecordedEventAttributes).includes(patchMarker));
  const paused = events.some((e) => {
    const timeout = e.timerStartedEventAttributes?.startToFireTimeout;
    return timeout !== undefined && timeout !== null && String(timeout.seconds) === '1' && !timeout.nanos;
  });
  return { patched, paused };
}

function failedWorkflowTasks(events: HistoryEvent[]): number {
  return events.filter((e) => e.workflowTaskFailedEventAttributes).length;
}

test('a change behind patched() ships while orders are open: they finish on the path they started on, new orders take the new one', async () => {
  await addProduct(stack.db.prisma, 'SHIP-P', 10, 700);
  const [toPay, toCancel] = [await place('SHIP-P'), await place('SHIP-P')];
  const toExpire = await place('SHIP-P', 4);

  await deploy(await changedBuild('./replay/patched-change-workflows'));

  expect(withStatus(200, await payOrder(stack.app, toPay.orderId, { paymentId: `pay-${randomUUID()}`, amountCents: 700 })).body).toMatchObject({ outcome: 'APPLIED' });
  expect(withStatus(200, await cancelOrder(stack.app, toCancel.orderId)).body).toMatchObject({ status: 'CANCELLED' });
  const placedAfter = await place('SHIP-P');
  expect(withStatus(200, await payOrder(stack.app, placedAfter.orderId, { paymentId: `pay-${randomUUID()}`, amountCents: 700 })).body).toMatchObject({ outcome: 'APPLIED' });
  await workflowsCompleted(stack.client, [toPay, toCancel, toExpire, placedAfter]);

  for (const old of [toPay, toCancel, toExpire]) expect(await pathOf(old.orderId)).toEqual({ patched: false, paused: false });
  expect(await pathOf(placedAfter.orderId)).toEqual({ patched: true, paused: true });
  for (const order of [toPay, toCancel, toExpire, placedAfter]) expect(failedWorkflowTasks(await historyOf(order.orderId))).toBe(0);
  expect(await settlementsOf(stack.db.prisma, [toPay.orderId, placedAfter.orderId])).toEqual(oneSettlementPerItem([toPay, placedAfter], 'COMMIT'));
  expect(await settlementsOf(stack.db.prisma, [toCancel.orderId, toExpire.orderId])).toEqual(oneSettlementPerItem([toCancel, toExpire], 'RELEASE'));
  expect(await stockOf(stack.db.prisma, 'SHIP-P')).toEqual({ available: 8, reserved: 0, sold: 2 });
}, 120_000);

test('the same change without patched() stops the open orders\' workflows, their stock still comes back at the deadline, and the patched build lets them close', async () => {
  await addProduct(stack.db.prisma, 'SHIP-U', 10, 300);
  const waiting = await place('SHIP-U', 5);

  await deploy(await changedBuild('./replay/unpatched-change-workflows'));

  // The deadline's timer gives the workflow a task; the changed code cannot replay its history.
  await eventually(async () => failedWorkflowTasks(await historyOf(waiting.orderId)), (failed) => failed > 0, 60_000);
  const failure = (await historyOf(waiting.orderId)).find((e) => e.workflowTaskFailedEventAttributes)?.workflowTaskFailedEventAttributes;
  expect(failure?.failure?.message ?? '').toMatch(/nondetermin/i);
  // The reclaim decides the order in PostgreSQL, whatever became of its workflow (invariant 5).
  await eventually(() => stockOf(stack.db.prisma, 'SHIP-U'), (stock) => stock.available === 10, 30_000);
  expect(await settlementsOf(stack.db.prisma, [waiting.orderId])).toEqual(oneSettlementPerItem([waiting], 'RELEASE'));

  await deploy(await changedBuild('./replay/patched-change-workflows'));

  await workflowsCompleted(stack.client, [waiting]);
  expect(await stack.client.workflow.getHandle(orderWorkflowId(waiting.orderId)).result()).toMatchObject({ status: 'EXPIRED' });
  expect(await settlementsOf(stack.db.prisma, [waiting.orderId])).toEqual(oneSettlementPerItem([waiting], 'RELEASE'));
  expect(await stockOf(stack.db.prisma, 'SHIP-U')).toEqual({ available: 10, reserved: 0, sold: 0 });
}, 120_000);
