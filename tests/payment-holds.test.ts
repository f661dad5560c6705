/**
 * Holds that follow the payment (contract v2), in real time on the real stack: a
 * payment.processing delivery keeps the stock held past expiresAt until that payment succeeds
 * or fails, for at most PAYMENT_PROCESSING_HOLD_SECONDS; an operator's extension moves
 * expiresAt and the workflow's timer follows. Races with the deadline have one outcome, which
 * the HTTP answer, the order, its workflow, the ledger and the refunds all agree on.
 */
import request from 'supertest';
import { workflowMetadataQuery } from '@temporalio/workflow';
import { orderWorkflowId, paymentDeadlineKey, type OrderView } from '../workflows/messages';
import { formatTime } from '../workflows/summaries';
import { addProduct } from './support/database';
import { deliverPayment, errorCode, extendOrder, getOrder, orderIdOf, orderOf, outcomeOf, payOrder, placeOrder } from './support/api-calls';
import { tracesOf } from './support/order-traces';
import { useStack } from './support/stack';
import { eventually, sleep } from './support/wait';

const HOLD_SECONDS = 4;
const MAX_WINDOW_SECONDS = 30;
const PRICE_CENTS = 900;
const SKU = 'HOLD-1';

const stack = useStack({ paymentProcessingHoldSeconds: HOLD_SECONDS, maxPaymentWindowSeconds: MAX_WINDOW_SECONDS });

beforeAll(async () => {
  await addProduct(stack.db.prisma, SKU, 500, PRICE_CENTS);
});

interface Placed {
  orderId: string;
  expiresAt: number;
}

async function place(paymentTimeoutSeconds: number): Promise<Placed> {
  const placed = await placeOrder(stack.app, { customerId: 'holder', items: [{ sku: SKU, quantity: 1 }], paymentTimeoutSeconds });
  if (placed.status !== 201) throw new Error(`placing failed: ${placed.status} ${JSON.stringify(placed.body)}`);
  return { orderId: orderIdOf(placed), expiresAt: Date.parse(placed.body.expiresAt as string) };
}

const payment = (paymentId: string) => ({ paymentId, amountCents: PRICE_CENTS });

async function orderRow(orderId: string) {
  return stack.db.prisma.order.findUniqueOrThrow({ where: { id: orderId } });
}

async function workflowResult(orderId: string): Promise<OrderView> {
  return (await stack.client.workflow.getHandle(orderWorkflowId(orderId)).result()) as OrderView;
}

async function paymentDeadlineAttribute(orderId: string): Promise<number | undefined> {
  const described = await stack.client.workflow.getHandle(orderWorkflowId(orderId)).describe();
  const value = described.typedSearchAttributes.get(paymentDeadlineKey);
  return value?.getTime();
}

const expiredTraces = { status: 'EXPIRED', movements: ['RESERVE', 'RELEASE'], payments: [], refunds: [] };

describe('payment.processing holds the stock past the deadline', () => {
  test('a processing payment that succeeds after expiresAt pays the order: nothing expires, nothing is refunded', async () => {
    const { orderId, expiresAt } = await place(2);
    const processing = await deliverPayment(stack.app, 'payment.processing', orderId, payment('pay-slow-bank'));
    expect(processing.status).toBe(200);
    expect(outcomeOf(processing)).toBe('PROCESSING');
    expect(orderOf(processing)).toMatchObject({ status: 'AWAITING_PAYMENT', paymentPending: true });

    // Well past expiresAt and several reclaim ticks: still held.
    await sleep(expiresAt + 1500 - Date.now());
    expect((await getOrder(stack.app, orderId)).body).toMatchObject({ status: 'AWAITING_PAYMENT', paymentPending: true });
    expect((await orderRow(orderId)).status).toBe('AWAITING_PAYMENT');

    const paid = await payOrder(stack.app, orderId, payment('pay-slow-bank'));
    expect(paid.status).toBe(200);
    expect(outcomeOf(paid)).toBe('APPLIED');
    expect(orderOf(paid)).toMatchObject({ status: 'PAID', paymentId: 'pay-slow-bank' });
    expect(orderOf(paid).paymentPending).toBeUndefined();
    expect((await workflowResult(orderId)).status).toBe('PAID');
    expect(await tracesOf(stack.db.prisma, orderId)).toEqual({
      status: 'PAID',
      movements: ['RESERVE', 'COMMIT'],
      payments: [{ paymentId: 'pay-slow-bank', amountCents: PRICE_CENTS, outcome: 'APPLIED' }],
      refunds: [],
    });
  });

  test('payment.failed after expiresAt ends the hold: the order expires at once', async () => {
    const { orderId, expiresAt } = await place(1);
    const holdStarted = Date.now();
    expect(outcomeOf(await deliverPayment(stack.app, 'payment.processing', orderId, payment('pay-declined')))).toBe('PROCESSING');
    await sleep(expiresAt + 800 - Date.now());
    expect((await orderRow(orderId)).status).toBe('AWAITING_PAYMENT');

    const failedAt = Date.now();
    const failed = await deliverPayment(stack.app, 'payment.failed', orderId, payment('pay-declined'));
    expect(failed.status).toBe(200);
    expect(outcomeOf(failed)).toBe('FAILED');
    const expired = await eventually(() => orderRow(orderId), (row) => row.status === 'EXPIRED');
    // Back on sale within the reclaim's reach of the failure, not at the hold's end.
    expect(expired.closedAt!.getTime() - failedAt).toBeLessThan(1000);
    // That payment's hold is gone; the order had no other.
    expect(expired.paymentPendingUntil).toBeNull();
    const view = await workflowResult(orderId);
    expect(view.status).toBe('EXPIRED');
    // The workflow, nudged by the failure, closed before the hold would have run out.
    const closedAt = (await stack.client.workflow.getHandle(orderWorkflowId(orderId)).describe()).closeTime!.getTime();
    expect(closedAt).toBeLessThan(holdStarted + HOLD_SECONDS * 1000);
    expect(await tracesOf(stack.db.prisma, orderId)).toEqual(expiredTraces);
  });

  test('a hold runs out after PAYMENT_PROCESSING_HOLD_SECONDS; a success after that is refunded once', async () => {
    const { orderId } = await place(1);
    expect(outcomeOf(await deliverPayment(stack.app, 'payment.processing', orderId, payment('pay-stuck')))).toBe('PROCESSING');
    const { paymentPendingUntil } = await orderRow(orderId);
    expect(paymentPendingUntil).not.toBeNull();
    const holdEnds = paymentPendingUntil!.getTime();

    // A redelivery of the same processing event does not lengthen the hold.
    await sleep(500);
    expect(outcomeOf(await deliverPayment(stack.app, 'payment.processing', orderId, payment('pay-stuck')))).toBe('PROCESSING');
    expect((await orderRow(orderId)).paymentPendingUntil!.getTime()).toBe(holdEnds);

    const expired = await eventually(() => orderRow(orderId), (row) => row.status === 'EXPIRED', (HOLD_SECONDS + 5) * 1000);
    expect(expired.closedAt!.getTime()).toBeGreaterThanOrEqual(holdEnds);
    expect(expired.closedAt!.getTime() - holdEnds).toBeLessThan(1000);
    expect((await getOrder(stack.app, orderId)).body.paymentPending).toBeUndefined();

    const late = await Promise.all([1, 2].map(() => payOrder(stack.app, orderId, payment('pay-stuck'))));
    for (const answer of late) {
      expect(answer.status).toBe(200);
      expect(outcomeOf(answer)).toBe('ORDER_EXPIRED');
    }
    expect(await tracesOf(stack.db.prisma, orderId)).toEqual({
      status: 'EXPIRED',
      movements: ['RESERVE', 'RELEASE'],
      payments: [{ paymentId: 'pay-stuck', amountCents: PRICE_CENTS, outcome: 'ORDER_EXPIRED' }],
      refunds: [{ paymentId: 'pay-stuck', amountCents: PRICE_CENTS, status: 'REFUNDED' }],
    });
  });

  test('processing arriving around the deadline: held exactly when it was recorded before the deadline', async () => {
    // From 400 ms before to 300 ms after expiresAt, 100 ms apart; the first surely holds, the last surely not.
    const offsets = [-400, -300, -200, -100, 0, 100, 200, 300];
    const results = await Promise.all(
      offsets.map(async (offset, i) => {
        const { orderId, expiresAt } = await place(2);
        await sleep(expiresAt + offset - Date.now());
        const answer = await deliverPayment(stack.app, 'payment.processing', orderId, payment(`pay-edge-${i}`));
        return { orderId, expiresAt, answer };
      }),
    );
    let held = 0;
    for (const { orderId, expiresAt, answer } of results) {
      expect(answer.status).toBe(200);
      expect(outcomeOf(answer)).toBe('PROCESSING');
      const receipt = await stack.db.prisma.paymentReceipt.findFirstOrThrow({ where: { orderId } });
      const recordedInTime = receipt.receivedAt.getTime() < expiresAt;
      // The receipt's own clock and the order's deadline decide; the answer says the same.
      expect(receipt.heldUntil !== null).toBe(recordedInTime);
      expect(orderOf(answer).paymentPending === true).toBe(recordedInTime);
      if (recordedInTime) held++;
      // Held or not, the order ends without its payment succeeding: EXPIRED, once, nothing refunded.
      expect((await workflowResult(orderId)).status).toBe('EXPIRED');
      const row = await orderRow(orderId);
      expect(row.closedAt!.getTime()).toBeGreaterThanOrEqual((recordedInTime ? receipt.heldUntil! : row.expiresAt).getTime());
      expect(await tracesOf(stack.db.prisma, orderId)).toEqual(expiredTraces);
    }
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThan(offsets.length);
  }, 60_000);
});

describe('POST /admin/orders/:orderId/extend', () => {
  test('moves expiresAt, the search attribute and the timer: the order outlives its first deadline and can be paid', async () => {
    const { orderId, expiresAt } = await place(2);
    const extended = await extendOrder(stack.app, orderId, { seconds: 3 });
    expect(extended.status).toBe(200);
    expect(Date.parse(extended.body.expiresAt as string)).toBe(expiresAt + 3000);
    expect(extended.body.status).toBe('AWAITING_PAYMENT');
    await eventually(() => paymentDeadlineAttribute(orderId), (deadline) => deadline === expiresAt + 3000);
    // The Web UI's details name the new deadline.
    const metadata = await stack.client.workflow.getHandle(orderWorkflowId(orderId)).query(workflowMetadataQuery);
    expect(metadata.currentDetails).toContain(`due by ${formatTime(new Date(expiresAt + 3000).toISOString())}`);

    await sleep(expiresAt + 1200 - Date.now());
    expect((await orderRow(orderId)).status).toBe('AWAITING_PAYMENT');
    const paid = await payOrder(stack.app, orderId, payment('pay-extended'));
    expect(outcomeOf(paid)).toBe('APPLIED');
    expect((await workflowResult(orderId)).status).toBe('PAID');
  });

  test('an extended order that is not paid expires at its new deadline', async () => {
    const { orderId, expiresAt } = await place(1);
    expect((await extendOrder(stack.app, orderId, { seconds: 2 })).status).toBe(200);
    const view = await workflowResult(orderId);
    expect(view.status).toBe('EXPIRED');
    expect(Date.parse(view.expiresAt)).toBe(expiresAt + 2000);
    const row = await orderRow(orderId);
    expect(row.closedAt!.getTime()).toBeGreaterThanOrEqual(expiresAt + 2000);
    expect(row.closedAt!.getTime() - (expiresAt + 2000)).toBeLessThan(1000);
    expect(await tracesOf(stack.db.prisma, orderId)).toEqual(expiredTraces);
  });

  test('an extension racing the deadline has one outcome: 200 and a later deadline, or 409 ORDER_EXPIRED', async () => {
    const offsets = [-1000, -300, -200, -100, 0, 100, 200, 300, 1500];
    const races = await Promise.all(
      offsets.map(async (offset) => {
        const { orderId, expiresAt } = await place(2);
        await sleep(expiresAt + offset - Date.now());
        return { orderId, expiresAt, offset, answer: await extendOrder(stack.app, orderId, { seconds: 1 }) };
      }),
    );
    const outcomes = new Set<string>();
    for (const { orderId, expiresAt, answer } of races) {
      const view = await workflowResult(orderId);
      const row = await orderRow(orderId);
      expect(view.status).toBe('EXPIRED');
      expect(await tracesOf(stack.db.prisma, orderId)).toEqual(expiredTraces);
      const extensions = await stack.db.prisma.orderExtension.findMany({ where: { orderId } });
      if (answer.status === 200) {
        outcomes.add('EXTENDED');
        expect(Date.parse(answer.body.expiresAt as string)).toBe(expiresAt + 1000);
        expect(row.expiresAt.getTime()).toBe(expiresAt + 1000);
        expect(row.closedAt!.getTime()).toBeGreaterThanOrEqual(expiresAt + 1000);
        expect(extensions).toHaveLength(1);
      } else {
        outcomes.add('LOST');
        expect(answer.status).toBe(409);
        expect(errorCode(answer)).toBe('ORDER_EXPIRED');
        expect(row.expiresAt.getTime()).toBe(expiresAt);
        expect(extensions).toHaveLength(0);
      }
    }
    // The earliest surely won and the latest surely lost.
    expect(races[0]!.answer.status).toBe(200);
    expect(races[races.length - 1]!.answer.status).toBe(409);
    expect(outcomes).toEqual(new Set(['EXTENDED', 'LOST']));
  }, 60_000);

  test('past MAX_PAYMENT_WINDOW_SECONDS from createdAt: 422 EXTENSION_TOO_LONG, nothing moves', async () => {
    const { orderId, expiresAt } = await place(10);
    const tooLong = await extendOrder(stack.app, orderId, { seconds: MAX_WINDOW_SECONDS - 10 + 1 });
    expect(tooLong.status).toBe(422);
    expect(errorCode(tooLong)).toBe('EXTENSION_TOO_LONG');
    expect((await orderRow(orderId)).expiresAt.getTime()).toBe(expiresAt);
    // Exactly up to the limit is allowed.
    const upToLimit = await extendOrder(stack.app, orderId, { seconds: MAX_WINDOW_SECONDS - 10 });
    expect(upToLimit.status).toBe(200);
    expect(Date.parse(upToLimit.body.expiresAt as string)).toBe(expiresAt + (MAX_WINDOW_SECONDS - 10) * 1000);
    expect(outcomeOf(await payOrder(stack.app, orderId, payment('pay-limit')))).toBe('APPLIED');
  });

  test('the same Idempotency-Key extends once; with other seconds it is refused', async () => {
    const { orderId, expiresAt } = await place(10);
    const answers = await Promise.all([1, 2, 3].map(() => extendOrder(stack.app, orderId, { seconds: 5 }, { idempotencyKey: 'bank-transfer-42' })));
    for (const answer of answers) expect(answer.status).toBe(200);
    expect((await orderRow(orderId)).expiresAt.getTime()).toBe(expiresAt + 5000);
    const again = await extendOrder(stack.app, orderId, { seconds: 5 }, { idempotencyKey: 'bank-transfer-42' });
    expect(again.status).toBe(200);
    expect(Date.parse(again.body.expiresAt as string)).toBe(expiresAt + 5000);
    const reused = await extendOrder(stack.app, orderId, { seconds: 6 }, { idempotencyKey: 'bank-transfer-42' });
    expect(reused.status).toBe(422);
    expect(errorCode(reused)).toBe('IDEMPOTENCY_KEY_REUSED');
    // Without a key, each request extends.
    expect((await extendOrder(stack.app, orderId, { seconds: 1 })).status).toBe(200);
    expect((await orderRow(orderId)).expiresAt.getTime()).toBe(expiresAt + 6000);
    expect(outcomeOf(await payOrder(stack.app, orderId, payment('pay-keyed')))).toBe('APPLIED');
  });

  test('refusals change nothing: bad bodies, no token, unknown orders, decided orders', async () => {
    const { orderId, expiresAt } = await place(10);
    for (const body of [{}, { seconds: 0 }, { seconds: 604_801 }, { seconds: 1.5 }, { seconds: '10' }, { seconds: 10, extra: 1 }]) {
      const answer = await extendOrder(stack.app, orderId, body);
      expect(answer.status).toBe(400);
      expect(errorCode(answer)).toBe('VALIDATION_FAILED');
    }
    const anonymous = await request(stack.bareApp).post(`/admin/orders/${orderId}/extend`).send({ seconds: 10 });
    expect(anonymous.status).toBe(401);
    for (const id of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid', "1' OR '1'='1"]) {
      const answer = await extendOrder(stack.app, encodeURIComponent(id), { seconds: 10 });
      expect(answer.status).toBe(404);
      expect(errorCode(answer)).toBe('ORDER_NOT_FOUND');
    }
    expect((await orderRow(orderId)).expiresAt.getTime()).toBe(expiresAt);

    expect(outcomeOf(await payOrder(stack.app, orderId, payment('pay-first')))).toBe('APPLIED');
    const paid = await extendOrder(stack.app, orderId, { seconds: 10 });
    expect(paid.status).toBe(409);
    expect(errorCode(paid)).toBe('ORDER_ALREADY_PAID');
    expect((await orderRow(orderId)).expiresAt.getTime()).toBe(expiresAt);
    expect(await stack.db.prisma.orderExtension.count({ where: { orderId } })).toBe(0);
  });
});
