/**
 * Retention as a caller sees it (docs/api.md, "Retention"), on a real dev server: a pruned order
 * is gone (404, like an id that names no order), and its Idempotency-Key places a new order, with
 * a workflow of its own, while the pruned order's closed workflow is still in Temporal. The dev
 * server keeps closed workflows as long as the database keeps closed orders.
 */
import { catchUpLedgerCheckpoint } from '../src/db/ledger-checkpoint';
import { pruneClosedOrders } from '../src/db/retention';
import { DEFAULTS } from '../src/config';
import { orderWorkflowId } from '../workflows/messages';
import { namespaceRetentionSeconds } from '../scripts/temporal-namespace';
import { addProduct, stockOf } from './support/database';
import { cancelOrder, getOrder, orderIdOf, payOrder, placeOrder } from './support/api-calls';
import { useStack } from './support/stack';
import { eventually } from './support/wait';

const SKU = 'RETAINED-1';
const stack = useStack();

beforeAll(async () => {
  await addProduct(stack.db.prisma, SKU, 100);
});

function place(key: string, quantity: number) {
  return placeOrder(stack.app, { customerId: 'returning-buyer', items: [{ sku: SKU, quantity }] }, { idempotencyKey: key });
}

/** Every closed order goes: as if RETENTION_DAYS had passed since each closed. */
async function pruneEveryClosedOrder(): Promise<number> {
  // Only ledger rows the checkpoint counts are pruned; the worker's loop would get there within a tick or two.
  await catchUpLedgerCheckpoint(stack.db.prisma);
  let pruned = 0;
  for (;;) {
    const batch = (await pruneClosedOrders(stack.db.prisma, 0, 100)).orders ?? 0;
    if (batch === 0) return pruned;
    pruned += batch;
  }
}

async function workflowRuns(orderId: string): Promise<string[]> {
  const runs: string[] = [];
  for await (const run of stack.client.workflow.list({ query: `WorkflowId = "${orderWorkflowId(orderId)}"` })) runs.push(run.status.name);
  return runs;
}

test('the dev server keeps closed workflows RETENTION_DAYS, as long as closed orders are kept', async () => {
  expect(await namespaceRetentionSeconds(stack.client.connection, 'default')).toBe(DEFAULTS.retentionDays * 86_400);
});

test('a pruned order reads 404 ORDER_NOT_FOUND, and a payment naming it is answered 404 too', async () => {
  const placed = await place('retention-gone', 1);
  const orderId = orderIdOf(placed);
  expect((await cancelOrder(stack.app, orderId)).status).toBe(200);

  expect(await pruneEveryClosedOrder()).toBeGreaterThanOrEqual(1);

  const read = await getOrder(stack.app, orderId);
  expect({ status: read.status, code: (read.body as { error: { code: string } }).error.code }).toEqual({ status: 404, code: 'ORDER_NOT_FOUND' });
  const late = await payOrder(stack.app, orderId, { paymentId: 'pay-for-a-pruned-order', amountCents: 1000 });
  expect(late.status).toBe(404);
});

test('the Idempotency-Key of a pruned order places a new order, with any body, beside the old order\'s closed workflow', async () => {
  const first = await place('cart-of-last-season', 2);
  expect(first.status).toBe(201);
  const { orderId, createdAt } = first.body as { orderId: string; createdAt: string };
  expect((await cancelOrder(stack.app, orderId)).status).toBe(200);
  await eventually(() => workflowRuns(orderId), (runs) => runs.length === 1 && runs[0] === 'COMPLETED');
  await pruneEveryClosedOrder();

  // The same key again, with another body: a new order, held by a new run of the workflow.
  const again = await place('cart-of-last-season', 3);

  expect(again.status).toBe(201);
  expect(again.body).toMatchObject({ status: 'AWAITING_PAYMENT', items: [{ sku: SKU, quantity: 3 }] });
  expect((again.body as { createdAt: string }).createdAt).not.toBe(createdAt);
  expect((await stockOf(stack.db.prisma, SKU)).reserved).toBe(3);
  expect((await eventually(() => workflowRuns(orderId), (runs) => runs.length === 2)).sort()).toEqual(['COMPLETED', 'RUNNING']);
  // From here on the key names the new order, as any key does.
  const repeated = await place('cart-of-last-season', 3);
  expect({ status: repeated.status, orderId: (repeated.body as { orderId: string }).orderId }).toEqual({ status: 201, orderId: (again.body as { orderId: string }).orderId });
  expect((await place('cart-of-last-season', 1)).status).toBe(422);
  expect((await cancelOrder(stack.app, orderIdOf(again))).status).toBe(200);
});
