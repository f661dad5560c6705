/**
 * Only a verified payment pays, and the rule holds whatever became of the order's workflow: on
 * the real stack (HTTP app, worker, dev server, PostgreSQL). A paymentReceived signal sent
 * straight to Temporal moves nothing; a refused payment holds nothing after its workflow is
 * terminated; a payment received in time wins even when its signal reaches the workflow after
 * the timer; a paid order costs one workflow.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import type { WorkflowHandle } from '@temporalio/client';
import { checkInventory } from '../src/db/inventory-check';
import { latePaymentWorkflowId, orderWorkflowId, paymentReceivedSignal } from '../workflows/messages';
import { addProduct, stockOf } from './support/database';
import { orderIdOf, orderOf, outcomeOf, payOrder, placeOrder } from './support/api-calls';
import { tracesOf } from './support/order-traces';
import { startWorker, useStack } from './support/stack';
import { eventually, sleep } from './support/wait';

const stack = useStack();

let skus = 0;
async function newProduct(available: number): Promise<string> {
  const sku = `FORGE-${++skus}`;
  await addProduct(stack.db.prisma, sku, available, 1000);
  return sku;
}

function handleOf(orderId: string): WorkflowHandle {
  return stack.client.workflow.getHandle(orderWorkflowId(orderId));
}

async function statusOf(orderId: string): Promise<string> {
  return (await stack.db.prisma.order.findUniqueOrThrow({ where: { id: orderId }, select: { status: true } })).status;
}

async function workflowExists(workflowId: string): Promise<boolean> {
  try {
    await stack.client.workflow.getHandle(workflowId).describe();
    return true;
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return false;
    throw error;
  }
}

describe('a paymentReceived signal without a verified receipt', () => {
  test.each([
    ['before the deadline', 30],
    ['at the deadline', 2],
  ])('%s moves nothing: the order stays AWAITING_PAYMENT and then expires as usual', async (_when, windowSeconds) => {
    const sku = await newProduct(2);
    const placed = await placeOrder(stack.app, { customerId: 'victim', items: [{ sku, quantity: 1 }], paymentTimeoutSeconds: windowSeconds });
    const orderId = orderIdOf(placed);
    expect(placed.status).toBe(201);
    if (windowSeconds <= 2) await sleep(Math.max(0, Date.parse(placed.body.expiresAt as string) - Date.now()));

    await handleOf(orderId).signal(paymentReceivedSignal, { paymentId: 'forged-1', amountCents: 1000 });
    // The workflow takes the signal and proposes it: the database answers UNVERIFIED.
    await eventually(() => handleOf(orderId).fetchHistory(), (h) => (h.events ?? []).some((e) => e.markerRecordedEventAttributes), 15_000);
    await sleep(500);

    const traces = await tracesOf(stack.db.prisma, orderId);
    expect(traces.movements).not.toContain('COMMIT');
    expect(traces.payments).toEqual([]);
    expect(traces.refunds).toEqual([]);
    if (windowSeconds > 2) {
      expect(await statusOf(orderId)).toBe('AWAITING_PAYMENT');
      await handleOf(orderId).signal('cancelOrder');
    }
    await eventually(() => statusOf(orderId), (s) => s === 'EXPIRED' || s === 'CANCELLED', 20_000);
    expect(await stockOf(stack.db.prisma, sku)).toEqual({ available: 2, reserved: 0, sold: 0 });
  });

  test("with a paymentId that paid another order, moves nothing and refunds nothing", async () => {
    const sku = await newProduct(3);
    const paid = await placeOrder(stack.app, { customerId: 'payer', items: [{ sku, quantity: 1 }] });
    expect(outcomeOf(await payOrder(stack.app, orderIdOf(paid), { paymentId: 'pay-real', amountCents: 1000 }))).toBe('APPLIED');
    const victim = await placeOrder(stack.app, { customerId: 'victim', items: [{ sku, quantity: 1 }] });
    const victimId = orderIdOf(victim);

    await handleOf(victimId).signal(paymentReceivedSignal, { paymentId: 'pay-real', amountCents: 1000 });
    await sleep(1_500);

    expect(await statusOf(victimId)).toBe('AWAITING_PAYMENT');
    expect(await tracesOf(stack.db.prisma, victimId)).toMatchObject({ movements: ['RESERVE'], payments: [], refunds: [] });
    await handleOf(victimId).signal('cancelOrder');
    await eventually(() => statusOf(victimId), (s) => s === 'CANCELLED', 20_000);
    expect(await stockOf(stack.db.prisma, sku)).toEqual({ available: 2, reserved: 0, sold: 1 });
  });
});

describe('whatever became of the workflow', () => {
  test.each([
    ['AMOUNT_MISMATCH', { amountCents: 999 }],
    ['CURRENCY_MISMATCH', { amountCents: 1000, currency: 'usd' }],
  ])('a payment refused as %s holds nothing: with its workflow terminated, the reclaim returns the stock on time', async (outcome, payment) => {
    const sku = await newProduct(2);
    const placed = await placeOrder(stack.app, { customerId: 'refused', items: [{ sku, quantity: 1 }], paymentTimeoutSeconds: 3 });
    const orderId = orderIdOf(placed);
    expect(outcomeOf(await payOrder(stack.app, orderId, { paymentId: `pay-${outcome}`, ...payment }))).toBe(outcome);
    await handleOf(orderId).terminate('an operator cleaning up');

    await eventually(() => statusOf(orderId), (s) => s === 'EXPIRED', 15_000);
    expect(await stockOf(stack.db.prisma, sku)).toEqual({ available: 2, reserved: 0, sold: 0 });
    const receipt = await stack.db.prisma.paymentReceipt.findUniqueOrThrow({ where: { paymentId: `pay-${outcome}` } });
    expect(receipt.outcome).toBe('REFUSED');
  });

  test('an order paid in time whose workflow is gone ends PAID (the reclaim settles it at its deadline)', async () => {
    const sku = await newProduct(2);
    const placed = await placeOrder(stack.app, { customerId: 'orphan', items: [{ sku, quantity: 1 }], paymentTimeoutSeconds: 3 });
    const orderId = orderIdOf(placed);
    await handleOf(orderId).terminate('lost');
    // The receipt as the API records it, with no workflow left to signal.
    await stack.db.prisma.$executeRaw`
      INSERT INTO payment_receipts (payment_id, order_id, amount_cents, currency, succeeded_at)
      VALUES ('pay-orphan', ${orderId}::uuid, 1000, 'eur', now())`;

    await eventually(() => statusOf(orderId), (s) => s !== 'AWAITING_PAYMENT', 15_000);
    expect(await tracesOf(stack.db.prisma, orderId)).toMatchObject({ status: 'PAID', movements: ['RESERVE', 'COMMIT'] });
    expect(await stockOf(stack.db.prisma, sku)).toEqual({ available: 1, reserved: 0, sold: 1 });
  });
});

test('a payment received in time whose signal reaches the workflow after its timer wins (worker stopped across the deadline)', async () => {
  const sku = await newProduct(2);
  const placed = await placeOrder(stack.app, { customerId: 'slow-signal', items: [{ sku, quantity: 1 }], paymentTimeoutSeconds: 4 });
  const orderId = orderIdOf(placed);
  // The worker and the reclaim stop: the receipt is recorded in time, but nothing decides until after the deadline.
  await stack.worker.stop();
  try {
    const answer = await payOrder(stack.app, orderId, { paymentId: 'pay-in-time', amountCents: 1000 });
    expect([200, 202]).toContain(answer.status);
    await sleep(Math.max(0, Date.parse(placed.body.expiresAt as string) - Date.now()) + 1_000);
  } finally {
    stack.worker = await startWorker(stack.env, stack.db, stack.taskQueue);
  }
  await eventually(() => statusOf(orderId), (s) => s !== 'AWAITING_PAYMENT', 30_000);
  expect(await tracesOf(stack.db.prisma, orderId)).toMatchObject({ status: 'PAID', movements: ['RESERVE', 'COMMIT'], refunds: [] });
  // The redelivery is answered APPLIED.
  const again = await payOrder(stack.app, orderId, { paymentId: 'pay-in-time', amountCents: 1000 });
  expect(outcomeOf(again)).toBe('APPLIED');
  expect(orderOf(again).status).toBe('PAID');
});

test('a paid order starts exactly one workflow: the answer comes from where the payment was decided', async () => {
  const sku = await newProduct(10);
  for (let i = 0; i < 5; i++) {
    const placed = await placeOrder(stack.app, { customerId: 'one-workflow', items: [{ sku, quantity: 1 }] });
    const orderId = orderIdOf(placed);
    const paymentId = `pay-once-${i}`;
    const answer = await payOrder(stack.app, orderId, { paymentId, amountCents: 1000 });
    expect(outcomeOf(answer)).toBe('APPLIED');
    // A redelivery after the order's workflow closed is answered from PostgreSQL too.
    await handleOf(orderId).result();
    expect(outcomeOf(await payOrder(stack.app, orderId, { paymentId, amountCents: 1000 }))).toBe('APPLIED');
    expect(await workflowExists(latePaymentWorkflowId(orderId, paymentId))).toBe(false);
  }
  expect(await checkInventory(stack.db.prisma)).toEqual({ ok: true, violations: [] });
});
