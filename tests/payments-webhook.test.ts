/**
 * What a genuine delivery does (invariant 6: a payment applies to the one order its signed
 * delivery names, once): the receipt claims its paymentId for that order before the workflow
 * hears of it, so the same paymentId pays no other order; redeliveries, concurrent or late,
 * apply once; processing and failed are recorded and answered; another currency is refunded
 * once; and money is 64-bit, up to the largest order the contract allows.
 */
import { execFile } from 'node:child_process';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { MAX_ITEMS, MAX_PRICE_CENTS, MAX_QUANTITY } from '../src/api/schemas';
import { orderWorkflowId } from '../workflows/messages';
import { addProduct, stockOf } from './support/database';
import { deliverPayment, getOrder, orderIdOf, orderOf, outcomeOf, payOrder, placeOrder, statusAndBody } from './support/api-calls';
import { paidRefundingOne, tracesOf } from './support/order-traces';
import { TEST_STOREFRONT_KEY, TEST_WEBHOOK_SECRET, useStack } from './support/stack';
import { signedHeaders } from './support/webhooks';

const run = promisify(execFile);
const stack = useStack();

let skuCounter = 0;
async function newOrder(priceCents = 1000, quantity = 1): Promise<{ orderId: string; sku: string }> {
  const sku = `PAYV2-${++skuCounter}`;
  await addProduct(stack.db.prisma, sku, 5, priceCents);
  const placed = await placeOrder(stack.app, { customerId: 'payments-v2', items: [{ sku, quantity }] });
  expect(placed.status).toBe(201);
  return { orderId: orderIdOf(placed), sku };
}

async function signalsTo(orderId: string): Promise<number> {
  const history = await stack.client.workflow.getHandle(orderWorkflowId(orderId)).fetchHistory();
  return (history.events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes).length;
}

function receiptOf(paymentId: string) {
  return stack.db.prisma.paymentReceipt.findUnique({ where: { paymentId } });
}

describe('processing and failed', () => {
  test('are recorded as receipts and answered 200 PROCESSING / FAILED; the hold starts and ends, the order still awaits payment', async () => {
    const { orderId, sku } = await newOrder();

    const processing = await deliverPayment(stack.app, 'payment.processing', orderId, { paymentId: 'pv-proc', amountCents: 1000 });
    const failed = await deliverPayment(stack.app, 'payment.failed', orderId, { paymentId: 'pv-proc', amountCents: 1000 });

    expect(processing).toMatchObject({
      status: 200,
      body: { outcome: 'PROCESSING', order: { orderId, status: 'AWAITING_PAYMENT', paymentPending: true } },
    });
    expect(failed).toMatchObject({ status: 200, body: { outcome: 'FAILED', order: { orderId, status: 'AWAITING_PAYMENT' } } });
    expect((failed.body.order as Record<string, unknown>).paymentPending).toBeUndefined();
    expect(await receiptOf('pv-proc')).toMatchObject({
      orderId,
      amountCents: 1000n,
      currency: 'eur',
      succeededAt: null,
      heldUntil: expect.any(Date),
      failedAt: expect.any(Date),
    });
    // The failure that ended a hold nudges the workflow (paymentFailed); nothing else reaches it.
    const history = await stack.client.workflow.getHandle(orderWorkflowId(orderId)).fetchHistory();
    const signals = (history.events ?? []).flatMap((e) => e.workflowExecutionSignaledEventAttributes?.signalName ?? []);
    expect(signals).toEqual(['paymentFailed']);
    expect(await stockOf(stack.db.prisma, sku)).toEqual({ available: 4, reserved: 1, sold: 0 });

    // The same payment succeeding later pays the order and marks the receipt once.
    const paid = await payOrder(stack.app, orderId, { paymentId: 'pv-proc', amountCents: 1000 });
    expect(outcomeOf(paid)).toBe('APPLIED');
    const succeededAt = (await receiptOf('pv-proc'))?.succeededAt;
    expect(succeededAt).toEqual(expect.any(Date));
    await payOrder(stack.app, orderId, { paymentId: 'pv-proc', amountCents: 1000 });
    expect((await receiptOf('pv-proc'))?.succeededAt).toEqual(succeededAt);
  });
});

test('deliveries out of order: processing and failed arriving after the payment succeeded are answered and recorded, and change nothing', async () => {
  const { orderId, sku } = await newOrder();
  const paid = await payOrder(stack.app, orderId, { paymentId: 'pv-late-events', amountCents: 1000 });
  const succeededAt = (await receiptOf('pv-late-events'))?.succeededAt;

  const processing = await deliverPayment(stack.app, 'payment.processing', orderId, { paymentId: 'pv-late-events', amountCents: 1000 });
  const failed = await deliverPayment(stack.app, 'payment.failed', orderId, { paymentId: 'pv-late-events', amountCents: 1000 });
  const again = await payOrder(stack.app, orderId, { paymentId: 'pv-late-events', amountCents: 1000 });

  expect(outcomeOf(processing)).toBe('PROCESSING');
  expect(outcomeOf(failed)).toBe('FAILED');
  expect(statusAndBody(again)).toEqual(statusAndBody(paid));
  expect(orderOf(failed)).toMatchObject({ status: 'PAID', paymentId: 'pv-late-events' });
  expect((await receiptOf('pv-late-events'))?.succeededAt).toEqual(succeededAt);
  expect(await tracesOf(stack.db.prisma, orderId)).toMatchObject({ status: 'PAID', movements: ['RESERVE', 'COMMIT'], refunds: [] });
  expect(await stockOf(stack.db.prisma, sku)).toEqual({ available: 4, reserved: 0, sold: 1 });
});

describe('one paymentId pays one order', () => {
  test('a paymentId that paid one order, delivered for another, answers 200 PAYMENT_ALREADY_USED: nothing applied, nothing refunded, no signal', async () => {
    const first = await newOrder();
    const second = await newOrder();
    expect(outcomeOf(await payOrder(stack.app, first.orderId, { paymentId: 'pv-reused', amountCents: 1000 }))).toBe('APPLIED');

    const reused = await payOrder(stack.app, second.orderId, { paymentId: 'pv-reused', amountCents: 1000 });
    const again = await payOrder(stack.app, second.orderId, { paymentId: 'pv-reused', amountCents: 1000 });

    expect(reused).toMatchObject({ status: 200, body: { outcome: 'PAYMENT_ALREADY_USED', order: { orderId: second.orderId, status: 'AWAITING_PAYMENT' } } });
    expect(reused.body).not.toHaveProperty('refund');
    expect(statusAndBody(again)).toEqual(statusAndBody(reused));
    expect(await tracesOf(stack.db.prisma, second.orderId)).toEqual({ status: 'AWAITING_PAYMENT', movements: ['RESERVE'], payments: [], refunds: [] });
    expect(await signalsTo(second.orderId)).toBe(0);
    expect(await stockOf(stack.db.prisma, second.sku)).toEqual({ available: 4, reserved: 1, sold: 0 });
    expect(await receiptOf('pv-reused')).toMatchObject({ orderId: first.orderId });
  });

  test('a paymentId refunded for one order cannot pay another (and is not refunded again)', async () => {
    const first = await newOrder();
    const second = await newOrder();
    expect(outcomeOf(await payOrder(stack.app, first.orderId, { paymentId: 'pv-refunded', amountCents: 999 }))).toBe('AMOUNT_MISMATCH');

    const reused = await payOrder(stack.app, second.orderId, { paymentId: 'pv-refunded', amountCents: 1000 });

    expect(outcomeOf(reused)).toBe('PAYMENT_ALREADY_USED');
    expect(await stack.db.prisma.refund.count({ where: { paymentId: 'pv-refunded' } })).toBe(1);
    expect(await tracesOf(stack.db.prisma, second.orderId)).toMatchObject({ status: 'AWAITING_PAYMENT', payments: [], refunds: [] });
  });

  test('one paymentId delivered for two orders at once, five times each, pays exactly one of them', async () => {
    const orders = [await newOrder(), await newOrder()];
    const answers = await Promise.all(
      orders.flatMap(({ orderId }) => Array.from({ length: 5 }, () => payOrder(stack.app, orderId, { paymentId: 'pv-race', amountCents: 1000 }))),
    );

    const winner = (await receiptOf('pv-race'))?.orderId;
    for (const [i, answer] of answers.entries()) {
      const orderId = orders[Math.floor(i / 5)]?.orderId;
      expect({ orderId, outcome: outcomeOf(answer) }).toEqual({ orderId, outcome: orderId === winner ? 'APPLIED' : 'PAYMENT_ALREADY_USED' });
    }
    const statuses = await Promise.all(orders.map(async ({ orderId }) => (await tracesOf(stack.db.prisma, orderId)).status));
    expect(statuses.sort()).toEqual(['AWAITING_PAYMENT', 'PAID']);
    expect(await stack.db.prisma.refund.count({ where: { paymentId: 'pv-race' } })).toBe(0);
    expect(await stack.db.prisma.payment.count({ where: { paymentId: 'pv-race' } })).toBe(1);
  });
});

test('ten concurrent redeliveries of one payment (each with its own webhook-id) apply once and answer the same', async () => {
  const { orderId, sku } = await newOrder(700, 2);
  const answers = await Promise.all(Array.from({ length: 10 }, () => payOrder(stack.app, orderId, { paymentId: 'pv-burst', amountCents: 1400 })));

  for (const answer of answers) expect(statusAndBody(answer)).toEqual(answers[0] && statusAndBody(answers[0]));
  expect(answers[0]).toMatchObject({ status: 200, body: { outcome: 'APPLIED', order: { status: 'PAID', paymentId: 'pv-burst' } } });
  expect(await tracesOf(stack.db.prisma, orderId)).toEqual({
    status: 'PAID',
    movements: ['RESERVE', 'COMMIT'],
    payments: [{ paymentId: 'pv-burst', amountCents: 1400, outcome: 'APPLIED' }],
    refunds: [],
  });
  expect(await stockOf(stack.db.prisma, sku)).toEqual({ available: 3, reserved: 0, sold: 2 });
  expect(await stack.db.prisma.paymentReceipt.count({ where: { orderId } })).toBe(1);
});

test('a payment in another currency answers 200 CURRENCY_MISMATCH, is refunded exactly once, and the order then takes one in eur (any case)', async () => {
  const { orderId, sku } = await newOrder();

  const answers = await Promise.all(
    Array.from({ length: 4 }, () => payOrder(stack.app, orderId, { paymentId: 'pv-usd', amountCents: 1000, currency: 'usd' })),
  );

  for (const answer of answers) {
    expect(answer).toMatchObject({
      status: 200,
      body: { outcome: 'CURRENCY_MISMATCH', refund: { paymentId: 'pv-usd', status: 'REFUNDED' }, order: { status: 'AWAITING_PAYMENT' } },
    });
  }
  expect(await stockOf(stack.db.prisma, sku)).toEqual({ available: 4, reserved: 1, sold: 0 });
  const paid = await payOrder(stack.app, orderId, { paymentId: 'pv-eur', amountCents: 1000, currency: 'EUR' });
  expect(orderOf(paid)).toMatchObject({ status: 'PAID', paymentId: 'pv-eur' });
  expect(await tracesOf(stack.db.prisma, orderId)).toEqual(
    paidRefundingOne({ paymentId: 'pv-eur', amountCents: 1000 }, { paymentId: 'pv-usd', amountCents: 1000, outcome: 'CURRENCY_MISMATCH' }),
  );
  expect(await receiptOf('pv-usd')).toMatchObject({ currency: 'usd' });
});

test('the largest order the contract allows (50 lines x 1000 units at the largest price, 5e11 cents) is placed, refused a cent short, and paid', async () => {
  const skus = Array.from({ length: MAX_ITEMS }, (_, i) => `BIG-${String(i).padStart(2, '0')}`);
  for (const sku of skus) await addProduct(stack.db.prisma, sku, MAX_QUANTITY, MAX_PRICE_CENTS);
  const total = MAX_ITEMS * MAX_QUANTITY * MAX_PRICE_CENTS;
  expect(total).toBe(500_000_000_000);

  const placed = await placeOrder(stack.app, { customerId: 'big-spender', items: skus.map((sku) => ({ sku, quantity: MAX_QUANTITY })) });
  expect(placed).toMatchObject({ status: 201, body: { status: 'AWAITING_PAYMENT', totalCents: total } });
  const orderId = orderIdOf(placed);
  const short = await payOrder(stack.app, orderId, { paymentId: 'pv-big-short', amountCents: total - 1 });
  const paid = await payOrder(stack.app, orderId, { paymentId: 'pv-big', amountCents: total });

  expect(short.body).toMatchObject({ outcome: 'AMOUNT_MISMATCH', refund: { paymentId: 'pv-big-short', status: 'REFUNDED' } });
  expect(paid.body).toMatchObject({ outcome: 'APPLIED', order: { status: 'PAID', totalCents: total } });
  const read = await getOrder(stack.app, orderId);
  expect(read.status).toBe(200);
  expect(read.body.totalCents).toBe(total);
  const [row] = await stack.db.prisma.$queryRaw<{ total_cents: bigint }[]>`SELECT total_cents FROM orders WHERE id = ${orderId}::uuid`;
  expect(row?.total_cents).toBe(500_000_000_000n);
  expect(await tracesOf(stack.db.prisma, orderId)).toMatchObject({
    payments: [
      { paymentId: 'pv-big', amountCents: total, outcome: 'APPLIED' },
      { paymentId: 'pv-big-short', amountCents: total - 1, outcome: 'AMOUNT_MISMATCH' },
    ],
    refunds: [{ paymentId: 'pv-big-short', amountCents: total - 1, status: 'REFUNDED' }],
  });
  expect(await receiptOf('pv-big')).toMatchObject({ amountCents: 500_000_000_000n });
  expect(await stockOf(stack.db.prisma, 'BIG-49')).toEqual({ available: 0, reserved: 0, sold: MAX_QUANTITY });
});

describe('a real receiver: the app listening on a port', () => {
  let server: Server;
  let url: string;

  beforeAll(async () => {
    server = await new Promise<Server>((resolve) => {
      const listening = stack.bareApp.listen(0, '127.0.0.1', () => resolve(listening));
    });
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  test('a delivery signed by standardwebhooks, sent over HTTP with fetch, pays the order; the same bytes to another order are refused', async () => {
    const { orderId } = await newOrder();
    const other = await newOrder();
    const raw = JSON.stringify({ type: 'payment.succeeded', data: { orderId, paymentId: 'pv-http', amountCents: 1000 } });
    const headers = { 'Content-Type': 'application/json', ...signedHeaders(raw) };

    const res = await fetch(`${url}/webhooks/payments`, { method: 'POST', headers, body: raw });
    const forged = await fetch(`${url}/webhooks/payments`, { method: 'POST', headers, body: raw.replace(orderId, other.orderId) });

    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ outcome: 'APPLIED', order: { orderId, status: 'PAID' } });
    expect(forged.status).toBe(401);
    expect(await tracesOf(stack.db.prisma, other.orderId)).toMatchObject({ status: 'AWAITING_PAYMENT', payments: [] });
  });

  test('npm run pay signs with PAYMENT_WEBHOOK_SECRET, reads the total from GET /orders/:id with STOREFRONT_KEY and pays; --type processing is answered PROCESSING', async () => {
    const { orderId } = await newOrder(1234, 2);
    const script = path.resolve(__dirname, '../scripts/pay.ts');
    const tsx = path.resolve(__dirname, '../node_modules/.bin/tsx');
    const env = { ...process.env, PAYMENT_WEBHOOK_SECRET: TEST_WEBHOOK_SECRET, STOREFRONT_KEY: TEST_STOREFRONT_KEY, LOG_LEVEL: 'silent' };

    const processing = await run(tsx, [script, orderId, '--type', 'processing', '--payment-id', 'pv-cli', '--url', url], { env });
    const paid = await run(tsx, [script, orderId, '--payment-id', 'pv-cli', '--url', url], { env });

    expect(processing.stdout).toMatch(/^200 /);
    expect(JSON.parse(processing.stdout.slice(4))).toMatchObject({ outcome: 'PROCESSING' });
    expect(JSON.parse(paid.stdout.slice(4))).toMatchObject({ outcome: 'APPLIED', order: { orderId, status: 'PAID', paymentId: 'pv-cli' } });
    expect(await receiptOf('pv-cli')).toMatchObject({ orderId, amountCents: 2468n });
  }, 60_000);
});
