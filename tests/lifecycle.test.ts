/**
 * Every path of an order's life, through the HTTP app and the real worker, dev server and
 * PostgreSQL: what the caller is told, what the database holds, what the workflow shows.
 */
import { randomUUID } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import { createLocalPaymentProvider, type PaymentProvider } from '../activities/payment-provider';
import { createOrderWorker } from '../src/worker';
import {
  cancelOrderSignal,
  customerIdKey,
  getOrderQuery,
  latePaymentWorkflowId,
  ORDER_WORKFLOW_TYPE,
  orderStatusKey,
  orderWorkflowId,
  paymentDeadlineKey,
  paymentReceivedSignal,
  type OrderView,
  type OrderWorkflowInput,
  type PaymentReceived,
} from '../workflows/messages';
import { addProduct, stockOf } from './support/database';
import { cancelOrder, errorCode, type HttpAnswer, orderIdOf, orderOf, outcomeOf, payOrder, placeOrder, statusAndBody } from './support/api-calls';
import { paidRefundingOne, releasedRefunding, tracesOf } from './support/order-traces';
import { createTestApi, workflowBundle, useStack } from './support/stack';
import { eventually } from './support/wait';
import { EVERY_CHANNEL } from '../src/api/order-records';
import { DEFAULT_CHANNEL } from '../activities/types';

const stack = useStack();

let skuCounter = 0;
/** A product of its own for each test, so stock assertions see only that test's orders. */
async function newProduct(available: number, priceCents = 1000): Promise<string> {
  const sku = `LIFE-${++skuCounter}`;
  await addProduct(stack.db.prisma, sku, available, priceCents);
  return sku;
}

function orderHandle(orderId: string): WorkflowHandle {
  return stack.client.workflow.getHandle(orderWorkflowId(orderId));
}

async function searchAttributesOf(orderId: string) {
  const { typedSearchAttributes } = await orderHandle(orderId).describe();
  return {
    status: typedSearchAttributes.get(orderStatusKey),
    customerId: typedSearchAttributes.get(customerIdKey),
    deadline: typedSearchAttributes.get(paymentDeadlineKey)?.toISOString(),
  };
}

/** Starts the order's workflow with a payment (or, without one, a cancel) already in its history, before any reservation. */
function startWithSignal(input: OrderWorkflowInput, payment?: PaymentReceived): Promise<WorkflowHandle> {
  const start = { workflowId: orderWorkflowId(input.orderId), taskQueue: stack.taskQueue, args: [input] };
  return payment
    ? stack.client.workflow.signalWithStart(ORDER_WORKFLOW_TYPE, { ...start, signal: paymentReceivedSignal, signalArgs: [payment] })
    : stack.client.workflow.signalWithStart(ORDER_WORKFLOW_TYPE, { ...start, signal: cancelOrderSignal, signalArgs: [] });
}

function refundOf(answer: HttpAnswer): unknown {
  return answer.body.refund;
}

describe('paid', () => {
  test('the webhook answers 200 APPLIED with the PAID order, the stock moves reserved → sold, and the query and search attributes follow', async () => {
    const sku = await newProduct(5, 1250);
    const placed = await placeOrder(stack.app, { customerId: 'paid-1', items: [{ sku, quantity: 2 }] });
    expect(placed.status).toBe(201);
    const orderId = orderIdOf(placed);
    const expiresAt = placed.body.expiresAt as string;
    expect(await searchAttributesOf(orderId)).toEqual({ status: 'AWAITING_PAYMENT', customerId: 'paid-1', deadline: expiresAt });
    expect(await orderHandle(orderId).query(getOrderQuery)).toMatchObject({ status: 'AWAITING_PAYMENT', totalCents: 2500, expiresAt });

    const paid = await payOrder(stack.app, orderId, { paymentId: 'pay-paid-1', amountCents: 2500 });

    expect(paid.status).toBe(200);
    expect(paid.body).toMatchObject({ outcome: 'APPLIED', order: { orderId, status: 'PAID', paymentId: 'pay-paid-1', totalCents: 2500 } });
    expect(paid.body).toEqual({ outcome: 'APPLIED', order: await stack.checkout.getOrder(orderId, EVERY_CHANNEL) });
    expect(await stockOf(stack.db.prisma, sku)).toEqual({ available: 3, reserved: 0, sold: 2 });
    expect(await tracesOf(stack.db.prisma, orderId)).toEqual({
      status: 'PAID',
      movements: ['RESERVE', 'COMMIT'],
      payments: [{ paymentId: 'pay-paid-1', amountCents: 2500, outcome: 'APPLIED' }],
      refunds: [],
    });
    const view = (await orderHandle(orderId).result()) as OrderView;
    expect(view).toMatchObject({ status: 'PAID', paymentId: 'pay-paid-1' });
    expect(await searchAttributesOf(orderId)).toEqual({ status: 'PAID', customerId: 'paid-1', deadline: expiresAt });
  });

  test('the same paymentId delivered again, at once or after the order closed, answers the same 200 and changes nothing', async () => {
    const sku = await newProduct(5);
    const orderId = orderIdOf(await placeOrder(stack.app, { customerId: 'paid-2', items: [{ sku, quantity: 1 }] }));
    const payment = { paymentId: 'pay-paid-2', amountCents: 1000 };

    const together = await Promise.all(Array.from({ length: 6 }, () => payOrder(stack.app, orderId, payment)));
    await orderHandle(orderId).result();
    const afterClose = await payOrder(stack.app, orderId, payment);

    for (const answer of [...together, afterClose]) {
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual(together[0]?.body);
    }
    expect(await stockOf(stack.db.prisma, sku)).toEqual({ available: 4, reserved: 0, sold: 1 });
    expect(await tracesOf(stack.db.prisma, orderId)).toMatchObject({ movements: ['RESERVE', 'COMMIT'], refunds: [] });
  });

  test('a payment that arrives while the order is still PENDING waits for the price and then pays it', async () => {
    const sku = await newProduct(3, 400);
    const input: OrderWorkflowInput = { orderId: randomUUID(), customerId: 'early-payer', items: [{ sku, quantity: 3 }], paymentTimeoutSeconds: 900, currency: 'eur' };
    // As the API does: the order's PENDING row, then the verified delivery's receipt, then the signal.
    await stack.db.prisma.$executeRaw`
      INSERT INTO orders (id, customer_id, status, total_cents, created_at, expires_at, currency)
      VALUES (${input.orderId}::uuid, 'early-payer', 'PENDING', 1200, now(), now() + interval '15 minutes', 'eur')`;
    await stack.db.prisma.$executeRaw`
      INSERT INTO payment_receipts (payment_id, order_id, amount_cents, currency, succeeded_at)
      VALUES ('pay-early', ${input.orderId}::uuid, 1200, 'eur', now())`;

    // The signal is in the history before the reservation has even been scheduled.
    const handle = await startWithSignal(input, { paymentId: 'pay-early', amountCents: 1200 });

    expect((await handle.result()) as OrderView).toMatchObject({ status: 'PAID', paymentId: 'pay-early', totalCents: 1200 });
    expect(await tracesOf(stack.db.prisma, input.orderId)).toMatchObject({ status: 'PAID', movements: ['RESERVE', 'COMMIT'] });
    expect(await stockOf(stack.db.prisma, sku)).toEqual({ available: 0, reserved: 0, sold: 3 });
  });

  test('payment ids that are also names of object properties (constructor, __proto__, toString) are decided like any other', async () => {
    const sku = await newProduct(5);
    const first = await placeOrder(stack.app, { customerId: 'odd-ids', items: [{ sku, quantity: 1 }] });
    const second = await placeOrder(stack.app, { customerId: 'odd-ids', items: [{ sku, quantity: 1 }] });
    const secondId = orderIdOf(second);

    const paidByConstructor = await payOrder(stack.app, orderIdOf(first), { paymentId: 'constructor', amountCents: 1000 });
    const wrongByProto = await payOrder(stack.app, secondId, { paymentId: '__proto__', amountCents: 1 });
    const paidByToString = await payOrder(stack.app, secondId, { paymentId: 'toString', amountCents: 1000 });

    expect(orderOf(paidByConstructor)).toMatchObject({ status: 'PAID', paymentId: 'constructor' });
    expect(outcomeOf(wrongByProto)).toBe('AMOUNT_MISMATCH');
    expect(orderOf(paidByToString)).toMatchObject({ status: 'PAID', paymentId: 'toString' });
    expect((await tracesOf(stack.db.prisma, secondId)).refunds).toEqual([{ paymentId: '__proto__', amountCents: 1, status: 'REFUNDED' }]);
  });

  test('a malformed paymentReceived signal is ignored and the order still takes a valid payment', async () => {
    const sku = await newProduct(2);
    const orderId = orderIdOf(await placeOrder(stack.app, { customerId: 'malformed', items: [{ sku, quantity: 1 }] }));

    // Sent straight to the workflow, past the API's validation, as another client could.
    await orderHandle(orderId).signal(paymentReceivedSignal, { paymentId: 42, amountCents: 'lots' } as unknown as { paymentId: string; amountCents: number });
    const paid = await payOrder(stack.app, orderId, { paymentId: 'pay-valid', amountCents: 1000 });

    expect(orderOf(paid)).toMatchObject({ status: 'PAID', paymentId: 'pay-valid' });
    expect((await tracesOf(stack.db.prisma, orderId)).payments).toEqual([{ paymentId: 'pay-valid', amountCents: 1000, outcome: 'APPLIED' }]);
  });
});

describe('refused payments', () => {
  test('a wrong amount is refused with 200 AMOUNT_MISMATCH and refunded; the order still awaits payment and the right amount then pays it', async () => {
    const sku = await newProduct(4, 900);
    const orderId = orderIdOf(await placeOrder(stack.app, { customerId: 'wrong-amount', items: [{ sku, quantity: 2 }] }));

    const wrong = await payOrder(stack.app, orderId, { paymentId: 'pay-short', amountCents: 1700 });

    expect(wrong.status).toBe(200);
    expect(wrong.body).toEqual({
      outcome: 'AMOUNT_MISMATCH',
      refund: { paymentId: 'pay-short', status: 'REFUNDED' },
      order: expect.objectContaining({ orderId, status: 'AWAITING_PAYMENT' }),
    });
    expect(await stack.checkout.getOrder(orderId, EVERY_CHANNEL)).toMatchObject({ status: 'AWAITING_PAYMENT' });
    expect(await stockOf(stack.db.prisma, sku)).toEqual({ available: 2, reserved: 2, sold: 0 });
    expect(await searchAttributesOf(orderId)).toMatchObject({ status: 'AWAITING_PAYMENT' });

    const redelivered = await payOrder(stack.app, orderId, { paymentId: 'pay-short', amountCents: 1800 });
    const right = await payOrder(stack.app, orderId, { paymentId: 'pay-right', amountCents: 1800 });
    const redeliveredAfterPaid = await payOrder(stack.app, orderId, { paymentId: 'pay-short', amountCents: 1700 });

    // The first decision on a paymentId stands, whatever a redelivery carries (the order it
    // shows is the order as it is now).
    for (const again of [redelivered, redeliveredAfterPaid]) {
      expect(again).toMatchObject({ status: 200, body: { outcome: 'AMOUNT_MISMATCH', refund: { paymentId: 'pay-short', status: 'REFUNDED' } } });
    }
    expect(orderOf(redeliveredAfterPaid)).toMatchObject({ status: 'PAID', paymentId: 'pay-right' });
    expect(orderOf(right)).toMatchObject({ status: 'PAID', paymentId: 'pay-right' });
    expect(await tracesOf(stack.db.prisma, orderId)).toEqual(
      paidRefundingOne({ paymentId: 'pay-right', amountCents: 1800 }, { paymentId: 'pay-short', amountCents: 1700, outcome: 'AMOUNT_MISMATCH' }),
    );
  });

  test('a second paymentId for a paid order answers 200 ORDER_ALREADY_PAID and, redelivered at once and after the order closed, is refunded exactly once', async () => {
    const sku = await newProduct(3);
    const orderId = orderIdOf(await placeOrder(stack.app, { customerId: 'double-payer', items: [{ sku, quantity: 1 }] }));
    await payOrder(stack.app, orderId, { paymentId: 'pay-first', amountCents: 1000 });

    const together = await Promise.all(
      Array.from({ length: 8 }, () => payOrder(stack.app, orderId, { paymentId: 'pay-second', amountCents: 1000 })),
    );
    await orderHandle(orderId).result();
    const afterClose = await payOrder(stack.app, orderId, { paymentId: 'pay-second', amountCents: 1000 });

    for (const answer of [...together, afterClose]) {
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual(together[0]?.body);
    }
    expect(outcomeOf(afterClose)).toBe('ORDER_ALREADY_PAID');
    expect(refundOf(afterClose)).toEqual({ paymentId: 'pay-second', status: 'REFUNDED' });
    expect(await tracesOf(stack.db.prisma, orderId)).toEqual(
      paidRefundingOne({ paymentId: 'pay-first', amountCents: 1000 }, { paymentId: 'pay-second', amountCents: 1000, outcome: 'ORDER_ALREADY_PAID' }),
    );
    expect(await stockOf(stack.db.prisma, sku)).toEqual({ available: 2, reserved: 0, sold: 1 });
  });

  test('two different payments racing for one order: exactly one is applied, the other refunded', async () => {
    const sku = await newProduct(3);
    const orderId = orderIdOf(await placeOrder(stack.app, { customerId: 'racing-payers', items: [{ sku, quantity: 1 }] }));

    const answers = await Promise.all(
      ['pay-a', 'pay-b', 'pay-c'].map((paymentId) => payOrder(stack.app, orderId, { paymentId, amountCents: 1000 })),
    );

    const applied = answers.filter((a) => outcomeOf(a) === 'APPLIED');
    const refused = answers.filter((a) => outcomeOf(a) === 'ORDER_ALREADY_PAID');
    expect(applied).toHaveLength(1);
    expect(refused).toHaveLength(2);
    const traces = await tracesOf(stack.db.prisma, orderId);
    expect(traces.movements).toEqual(['RESERVE', 'COMMIT']);
    expect(traces.payments.filter((p) => p.outcome === 'APPLIED').map((p) => p.paymentId)).toEqual([applied[0] && orderOf(applied[0]).paymentId]);
    expect(traces.refunds.map((r) => r.paymentId).sort()).toEqual(refused.map((a) => (refundOf(a) as { paymentId: string }).paymentId).sort());
  });

  test('a payment after expiry answers 200 ORDER_EXPIRED and, redelivered ten times at once and again later, is refunded exactly once', async () => {
    const sku = await newProduct(2);
    const placed = await placeOrder(stack.app, { customerId: 'too-late', items: [{ sku, quantity: 2 }], paymentTimeoutSeconds: 1 });
    const orderId = orderIdOf(placed);
    const view = (await orderHandle(orderId).result()) as OrderView;
    expect(view.status).toBe('EXPIRED');
    expect(await searchAttributesOf(orderId)).toEqual({ status: 'EXPIRED', customerId: 'too-late', deadline: placed.body.expiresAt });
    expect(await stockOf(stack.db.prisma, sku)).toEqual({ available: 2, reserved: 0, sold: 0 });

    const payment = { paymentId: 'pay-late', amountCents: 2000 };
    const together = await Promise.all(Array.from({ length: 10 }, () => payOrder(stack.app, orderId, payment)));
    const later = await payOrder(stack.app, orderId, payment);

    for (const answer of [...together, later]) {
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({
        outcome: 'ORDER_EXPIRED',
        refund: { paymentId: 'pay-late', status: 'REFUNDED' },
        order: expect.objectContaining({ orderId, status: 'EXPIRED' }),
      });
    }
    expect(await tracesOf(stack.db.prisma, orderId)).toEqual(
      releasedRefunding('EXPIRED', { paymentId: 'pay-late', amountCents: 2000, outcome: 'ORDER_EXPIRED' }),
    );
    // The order's workflow had closed, so the late payment was decided by its own workflow.
    const late = await stack.client.workflow.getHandle(latePaymentWorkflowId(orderId, 'pay-late')).describe();
    expect(late.status.name).toBe('COMPLETED');
    expect(await stockOf(stack.db.prisma, sku)).toEqual({ available: 2, reserved: 0, sold: 0 });
  });
});

describe('cancelled', () => {
  test('cancelling returns the stock at once; cancelling again, even concurrently, answers the same 200 and moves nothing', async () => {
    const sku = await newProduct(4);
    const orderId = orderIdOf(await placeOrder(stack.app, { customerId: 'canceller', items: [{ sku, quantity: 3 }] }));

    const cancelled = await cancelOrder(stack.app, orderId);

    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ orderId, status: 'CANCELLED', closedAt: expect.any(String) });
    // "At once": the answer comes only when the stock is back.
    expect(await stockOf(stack.db.prisma, sku)).toEqual({ available: 4, reserved: 0, sold: 0 });
    expect(await searchAttributesOf(orderId)).toMatchObject({ status: 'CANCELLED' });

    const again = await Promise.all(Array.from({ length: 4 }, () => cancelOrder(stack.app, orderId)));
    for (const answer of again) expect(statusAndBody(answer)).toEqual(statusAndBody(cancelled));
    expect(await tracesOf(stack.db.prisma, orderId)).toEqual({ status: 'CANCELLED', movements: ['RESERVE', 'RELEASE'], payments: [], refunds: [] });
  });

  test('a payment after cancellation answers 200 ORDER_CANCELLED and is refunded once', async () => {
    const sku = await newProduct(1);
    const orderId = orderIdOf(await placeOrder(stack.app, { customerId: 'changed-mind', items: [{ sku, quantity: 1 }] }));
    await cancelOrder(stack.app, orderId);

    const first = await payOrder(stack.app, orderId, { paymentId: 'pay-after-cancel', amountCents: 1000 });
    const again = await payOrder(stack.app, orderId, { paymentId: 'pay-after-cancel', amountCents: 1000 });

    expect(first.status).toBe(200);
    expect(outcomeOf(first)).toBe('ORDER_CANCELLED');
    expect(refundOf(first)).toEqual({ paymentId: 'pay-after-cancel', status: 'REFUNDED' });
    expect(statusAndBody(again)).toEqual(statusAndBody(first));
    expect(await tracesOf(stack.db.prisma, orderId)).toMatchObject({
      status: 'CANCELLED',
      movements: ['RESERVE', 'RELEASE'],
      refunds: [{ paymentId: 'pay-after-cancel', amountCents: 1000, status: 'REFUNDED' }],
    });
  });

  test('a cancelOrder that arrives while the order is PENDING cancels it as soon as its stock is held', async () => {
    const sku = await newProduct(2);
    const input: OrderWorkflowInput = { orderId: randomUUID(), customerId: 'quick-cancel', items: [{ sku, quantity: 2 }], paymentTimeoutSeconds: 900, currency: 'eur' };

    const handle = await startWithSignal(input);

    expect(((await handle.result()) as OrderView).status).toBe('CANCELLED');
    expect(await tracesOf(stack.db.prisma, input.orderId)).toMatchObject({ status: 'CANCELLED', movements: ['RESERVE', 'RELEASE'] });
    expect(await stockOf(stack.db.prisma, sku)).toEqual({ available: 2, reserved: 0, sold: 0 });
  });

  test('a Temporal cancellation request (Web UI, CLI) cancels an unpaid order like cancelOrder, and its stock comes back', async () => {
    const sku = await newProduct(3);
    const orderId = orderIdOf(await placeOrder(stack.app, { customerId: 'ui-cancel', items: [{ sku, quantity: 2 }] }));

    await orderHandle(orderId).cancel();

    const view = (await orderHandle(orderId).result()) as OrderView;
    expect(view.status).toBe('CANCELLED');
    expect(await tracesOf(stack.db.prisma, orderId)).toMatchObject({ status: 'CANCELLED', movements: ['RESERVE', 'RELEASE'] });
    expect(await stockOf(stack.db.prisma, sku)).toEqual({ available: 3, reserved: 0, sold: 0 });
    const late = await payOrder(stack.app, orderId, { paymentId: 'pay-after-ui-cancel', amountCents: 2000 });
    expect(outcomeOf(late)).toBe('ORDER_CANCELLED');
  });

  test('cancelling a paid, an expired or a rejected order answers 409 with its state and changes nothing', async () => {
    const sku = await newProduct(3);
    const paid = await placeOrder(stack.app, { customerId: 'no-cancel', items: [{ sku, quantity: 1 }] });
    const paidId = orderIdOf(paid);
    await payOrder(stack.app, paidId, { paymentId: 'pay-no-cancel', amountCents: 1000 });
    const expired = await placeOrder(stack.app, { customerId: 'no-cancel', items: [{ sku, quantity: 1 }], paymentTimeoutSeconds: 1 });
    const expiredId = orderIdOf(expired);
    await orderHandle(expiredId).result();
    const rejected = await placeOrder(stack.app, { customerId: 'no-cancel', items: [{ sku, quantity: 5 }] });

    expect(errorCode(await cancelOrder(stack.app, paidId))).toBe('ORDER_ALREADY_PAID');
    expect(errorCode(await cancelOrder(stack.app, expiredId))).toBe('ORDER_EXPIRED');
    expect(errorCode(await cancelOrder(stack.app, orderIdOf(rejected)))).toBe('ORDER_REJECTED');
    expect((await tracesOf(stack.db.prisma, paidId)).status).toBe('PAID');
    expect((await tracesOf(stack.db.prisma, expiredId)).status).toBe('EXPIRED');
    expect(await stockOf(stack.db.prisma, sku)).toEqual({ available: 2, reserved: 0, sold: 1 });
  });
});

describe('rejected', () => {
  test('an order short of one item holds none of them, shows REJECTED without a workflow, and a payment for it is refused ORDER_REJECTED and refunded', async () => {
    const plenty = await newProduct(10);
    const scarce = await newProduct(1);
    const rejected = await placeOrder(stack.app, {
      customerId: 'greedy',
      items: [
        { sku: plenty, quantity: 2 },
        { sku: scarce, quantity: 2 },
      ],
    });
    const rejectedId = orderIdOf(rejected);

    expect(rejected.status).toBe(409);
    expect((rejected.body.error as { details: unknown }).details).toEqual([{ sku: scarce, requested: 2, available: 1 }]);
    expect(await stockOf(stack.db.prisma, plenty)).toEqual({ available: 10, reserved: 0, sold: 0 });
    expect(await stockOf(stack.db.prisma, scarce)).toEqual({ available: 1, reserved: 0, sold: 0 });
    // The database showed the shortage: the API refused it at HTTP speed and started nothing.
    await expect(orderHandle(rejectedId).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);

    const payment = await payOrder(stack.app, rejectedId, { paymentId: 'pay-rejected', amountCents: 4000 });

    expect(payment.status).toBe(200);
    expect(outcomeOf(payment)).toBe('ORDER_REJECTED');
    expect(await tracesOf(stack.db.prisma, rejectedId)).toEqual({
      status: 'REJECTED',
      movements: [],
      payments: [{ paymentId: 'pay-rejected', amountCents: 4000, outcome: 'ORDER_REJECTED' }],
      refunds: [{ paymentId: 'pay-rejected', amountCents: 4000, status: 'REFUNDED' }],
    });
  });
});

describe('rejected by the hold', () => {
  test('an order whose hold finds too little stock (it went after the order was admitted) ends REJECTED in its workflow too', async () => {
    const scarce = await newProduct(1);
    const orderId = randomUUID();
    const input: OrderWorkflowInput = { orderId, customerId: 'hold-refused', items: [{ sku: scarce, quantity: 2 }], paymentTimeoutSeconds: 60, currency: 'eur' };

    // Started as the API starts an admitted order, without the API's row (as when its start was retried).
    const view = await stack.client.workflow.execute<(i: OrderWorkflowInput) => Promise<OrderView>>(ORDER_WORKFLOW_TYPE, {
      workflowId: orderWorkflowId(orderId),
      taskQueue: stack.taskQueue,
      args: [input],
      typedSearchAttributes: [{ key: customerIdKey, value: 'hold-refused' }, { key: orderStatusKey, value: 'PENDING' }],
    });

    expect(view).toMatchObject({ status: 'REJECTED', shortages: [{ sku: scarce, requested: 2, available: 1 }] });
    expect(await searchAttributesOf(orderId)).toMatchObject({ status: 'REJECTED', customerId: 'hold-refused' });
    const placed = await placeOrder(stack.app, { customerId: 'hold-refused', items: [{ sku: scarce, quantity: 1 }] });
    expect(placed.status).toBe(201);
    expect(await stockOf(stack.db.prisma, scarce)).toEqual({ available: 0, reserved: 1, sold: 0 });
  });
});

describe('closing', () => {
  /** A provider whose refunds wait until the test opens the gate, so a refund can be caught in flight. */
  function gatedProvider(inner: PaymentProvider): { provider: PaymentProvider; open(): void } {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    return {
      provider: {
        async refund(refund) {
          await gate;
          return inner.refund(refund);
        },
      },
      open,
    };
  }

  test('the workflow does not close while a refund it started is still running, and answers the payment once it is done', async () => {
    const gated = gatedProvider(createLocalPaymentProvider());
    const taskQueue = `gated-${randomUUID()}`;
    const worker = await createOrderWorker({
      connection: stack.env.nativeConnection,
      namespace: stack.env.namespace ?? 'default',
      taskQueue,
      prisma: stack.db.prisma,
      payments: gated.provider,
      workflowBundle: workflowBundle(),
    });
    const running = worker.run();
    try {
      const { app } = createTestApi({ prisma: stack.db.prisma, temporal: stack.client, taskQueue, defaultPaymentTimeoutSeconds: 900 });
      const sku = await newProduct(2);
      const orderId = orderIdOf(await placeOrder(app, { customerId: 'slow-refund', items: [{ sku, quantity: 1 }] }));

      const answer = payOrder(app, orderId, { paymentId: 'pay-wrong', amountCents: 1 });
      // The refund has recorded the payment and now waits at the gate; meanwhile the order is cancelled.
      await eventually(() => tracesOf(stack.db.prisma, orderId), (t) => t.payments.length === 1);
      const cancelled = await cancelOrder(app, orderId);

      expect(cancelled.body).toMatchObject({ status: 'CANCELLED' });
      expect(await stockOf(stack.db.prisma, sku)).toEqual({ available: 2, reserved: 0, sold: 0 });
      expect((await orderHandle(orderId).describe()).status.name).toBe('RUNNING');
      expect((await tracesOf(stack.db.prisma, orderId)).refunds).toEqual([]);

      gated.open();
      const refused = await answer;
      expect(refused).toMatchObject({ status: 200, body: { outcome: 'AMOUNT_MISMATCH' } });
      expect(refundOf(refused)).toEqual({ paymentId: 'pay-wrong', status: 'REFUNDED' });
      expect(((await orderHandle(orderId).result()) as OrderView).status).toBe('CANCELLED');
      expect((await tracesOf(stack.db.prisma, orderId)).refunds).toEqual([{ paymentId: 'pay-wrong', amountCents: 1, status: 'REFUNDED' }]);
    } finally {
      gated.open();
      worker.shutdown();
      await running;
    }
  });
});

// The order path through CheckoutService alone, without HTTP.
describe('without HTTP', () => {
  test('an order paid before its window closes is PAID and its stock moves reserved → sold', async () => {
    await addProduct(stack.db.prisma, 'PAY-1', 10, 1500);
    await addProduct(stack.db.prisma, 'PAY-2', 5, 250);

    const placed = await stack.checkout.placeOrder({
      customerId: 'alice',
      items: [{ sku: 'PAY-1', quantity: 2 }, { sku: 'PAY-2', quantity: 3 }],
    }, undefined, DEFAULT_CHANNEL);
    expect(placed.outcome).toBe('HELD');
    expect(placed.order.status).toBe('AWAITING_PAYMENT');
    expect(placed.order.totalCents).toBe(2 * 1500 + 3 * 250);
    expect(await stockOf(stack.db.prisma, 'PAY-1')).toEqual({ available: 8, reserved: 2, sold: 0 });

    const paid = await stack.checkout.pay(placed.order.orderId, { paymentId: 'pay-abc', amountCents: 3750 });

    expect(paid.outcome).toBe('APPLIED');
    expect(paid.order).toMatchObject({ status: 'PAID', paymentId: 'pay-abc' });
    expect(paid.order.paidAt).toBeDefined();
    expect(await stockOf(stack.db.prisma, 'PAY-1')).toEqual({ available: 8, reserved: 0, sold: 2 });
    expect(await stockOf(stack.db.prisma, 'PAY-2')).toEqual({ available: 2, reserved: 0, sold: 3 });
  });

  test('an order left unpaid expires and its stock is available again within seconds of expiresAt', async () => {
    await addProduct(stack.db.prisma, 'EXP-1', 4);

    const placed = await stack.checkout.placeOrder({
      customerId: 'bob',
      items: [{ sku: 'EXP-1', quantity: 3 }],
      paymentTimeoutSeconds: 2,
    }, undefined, DEFAULT_CHANNEL);
    expect(placed.order.status).toBe('AWAITING_PAYMENT');
    expect(await stockOf(stack.db.prisma, 'EXP-1')).toEqual({ available: 1, reserved: 3, sold: 0 });

    const expired = await eventually(
      () => stack.checkout.getOrder(placed.order.orderId, EVERY_CHANNEL),
      (order) => order.status === 'EXPIRED',
    );
    expect(await stockOf(stack.db.prisma, 'EXP-1')).toEqual({ available: 4, reserved: 0, sold: 0 });
    const release = await stack.db.prisma.stockMovement.findFirstOrThrow({
      where: { orderId: placed.order.orderId, kind: 'RELEASE' },
    });
    const lagMs = release.createdAt.getTime() - Date.parse(placed.order.expiresAt);
    expect(lagMs).toBeGreaterThanOrEqual(0);
    expect(lagMs).toBeLessThan(5_000);
    expect(expired.closedAt).toBe(release.createdAt.toISOString());
  });

  test('an order for more than is available is REJECTED and holds nothing', async () => {
    await addProduct(stack.db.prisma, 'REJ-1', 2);
    await addProduct(stack.db.prisma, 'REJ-2', 10);

    const placed = await stack.checkout.placeOrder({
      customerId: 'carol',
      items: [{ sku: 'REJ-1', quantity: 3 }, { sku: 'REJ-2', quantity: 1 }],
    }, undefined, DEFAULT_CHANNEL);

    expect(placed.outcome).toBe('REJECTED');
    expect(placed).toEqual({
      outcome: 'REJECTED',
      order: placed.order,
      refusal: { code: 'OUT_OF_STOCK', details: [{ sku: 'REJ-1', requested: 3, available: 2 }] },
      decidedBy: 'api',
    });
    expect((await stack.checkout.getOrder(placed.order.orderId, EVERY_CHANNEL)).status).toBe('REJECTED');
    expect(await stockOf(stack.db.prisma, 'REJ-1')).toEqual({ available: 2, reserved: 0, sold: 0 });
    expect(await stockOf(stack.db.prisma, 'REJ-2')).toEqual({ available: 10, reserved: 0, sold: 0 });
  });
});
