/**
 * The database decides each order's outcome once, and the reclaim puts stock past its deadline
 * back on sale without waiting for the workflow. Every party that loses (a payment's commit, the
 * workflow's timer, a cancel after the deadline) reads the outcome that won and follows it. The
 * reclaim's moment is forced by moving an order's deadline in the database (the workflow keeps
 * its own timer), so each race here has a known winner.
 */
import { randomUUID } from 'node:crypto';
import { orderWorkflowId, type OrderView } from '../workflows/messages';
import { addProduct, stockOf } from './support/database';
import { cancelOrder, errorCode, orderIdOf, outcomeOf, payOrder, placeOrder, statusAndBody } from './support/api-calls';
import { releasedRefunding, tracesOf } from './support/order-traces';
import { useStack } from './support/stack';
import { eventually } from './support/wait';

const SKU = 'EXPIRY-1';
const PRICE_CENTS = 900;
const STOCK = 200;

const stack = useStack();

beforeAll(async () => {
  await addProduct(stack.db.prisma, SKU, STOCK, PRICE_CENTS);
});

async function place(paymentTimeoutSeconds: number, quantity = 1): Promise<{ orderId: string; expiresAt: string }> {
  const placed = await placeOrder(stack.app, { customerId: 'expiry', items: [{ sku: SKU, quantity }], paymentTimeoutSeconds });
  if (placed.status !== 201) throw new Error(`placing failed: ${placed.status} ${JSON.stringify(placed.body)}`);
  return { orderId: orderIdOf(placed), expiresAt: placed.body.expiresAt as string };
}

/** Moves the order's deadline in the database only: the reclaim sees it due, the workflow's timer is still far off. */
async function dueNowInDatabase(orderId: string): Promise<void> {
  await stack.db.prisma.$executeRaw`UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = ${orderId}::uuid`;
}

const orderRow = (orderId: string) => stack.db.prisma.order.findUniqueOrThrow({ where: { id: orderId } });

const untilReclaimed = (orderId: string) => eventually(() => orderRow(orderId), (o) => o.status === 'EXPIRED');

const workflowView = (orderId: string) => stack.client.workflow.getHandle(orderWorkflowId(orderId)).query<OrderView>('getOrder');

const workflowResult = (orderId: string) => stack.client.workflow.getHandle(orderWorkflowId(orderId)).result() as Promise<OrderView>;

test('the reclaim puts the stock of orders past their deadline back on sale, and each workflow then records EXPIRED with the closedAt the database decided', async () => {
  const before = await stockOf(stack.db.prisma, SKU);
  const orders = await Promise.all(Array.from({ length: 10 }, () => place(2, 2)));

  const results = await Promise.all(orders.map((o) => workflowResult(o.orderId)));

  for (const [i, { orderId, expiresAt }] of orders.entries()) {
    const row = await orderRow(orderId);
    expect(row.status).toBe('EXPIRED');
    expect(row.expiresAt.toISOString()).toBe(expiresAt);
    expect(results[i]).toMatchObject({ status: 'EXPIRED', closedAt: row.closedAt?.toISOString() });
    expect((await tracesOf(stack.db.prisma, orderId)).movements).toEqual(['RESERVE', 'RELEASE']);
  }
  expect(await stockOf(stack.db.prisma, SKU)).toEqual(before);
}, 120_000);

test('a payment whose commit finds the order reclaimed is refunded once and answered ORDER_EXPIRED; the workflow records EXPIRED', async () => {
  const { orderId } = await place(900);
  await dueNowInDatabase(orderId);
  const reclaimed = await untilReclaimed(orderId);
  expect((await workflowView(orderId)).status).toBe('AWAITING_PAYMENT');

  const answer = await payOrder(stack.app, orderId, { paymentId: 'pay-lost-to-reclaim', amountCents: PRICE_CENTS });

  expect({ status: answer.status, outcome: outcomeOf(answer) }).toEqual({ status: 200, outcome: 'ORDER_EXPIRED' });
  expect(answer.body).toMatchObject({ refund: { paymentId: 'pay-lost-to-reclaim', status: 'REFUNDED' } });
  const again = await payOrder(stack.app, orderId, { paymentId: 'pay-lost-to-reclaim', amountCents: PRICE_CENTS });
  expect(statusAndBody(again)).toEqual(statusAndBody(answer));
  expect(await tracesOf(stack.db.prisma, orderId)).toEqual(
    releasedRefunding('EXPIRED', { paymentId: 'pay-lost-to-reclaim', amountCents: PRICE_CENTS, outcome: 'ORDER_EXPIRED' }),
  );
  expect(await workflowResult(orderId)).toMatchObject({ status: 'EXPIRED', closedAt: reclaimed.closedAt?.toISOString() });
});

test('a cancel that comes after the deadline is answered ORDER_EXPIRED: the deadline won', async () => {
  const { orderId } = await place(900);
  await dueNowInDatabase(orderId);

  const answer = await cancelOrder(stack.app, orderId);

  expect({ status: answer.status, code: errorCode(answer) }).toEqual({ status: 409, code: 'ORDER_EXPIRED' });
  expect((await workflowResult(orderId)).status).toBe('EXPIRED');
  expect((await tracesOf(stack.db.prisma, orderId)).movements).toEqual(['RESERVE', 'RELEASE']);
});

test('a cancel before the deadline still wins', async () => {
  const { orderId } = await place(900);
  const answer = await cancelOrder(stack.app, orderId);
  expect(answer.status).toBe(200);
  expect(answer.body).toMatchObject({ status: 'CANCELLED' });
  expect((await tracesOf(stack.db.prisma, orderId)).movements).toEqual(['RESERVE', 'RELEASE']);
});

test('an order whose payment succeeded before its deadline is settled PAID after it, by the reclaim, and the payment\'s delivery answers APPLIED', async () => {
  const { orderId } = await place(900);
  const paymentId = `pay-in-time-${randomUUID()}`;
  await stack.db.prisma.$executeRaw`
    INSERT INTO payment_receipts (payment_id, order_id, amount_cents, currency, succeeded_at)
    VALUES (${paymentId}, ${orderId}::uuid, ${PRICE_CENTS}, 'eur', now() - interval '2 seconds')`;
  await dueNowInDatabase(orderId);
  // The reclaim, not waiting for the workflow (which never heard of the payment), settles it as paid.
  expect((await eventually(() => orderRow(orderId), (o) => o.status !== 'AWAITING_PAYMENT')).status).toBe('PAID');

  const answer = await payOrder(stack.app, orderId, { paymentId, amountCents: PRICE_CENTS });

  expect(answer.status).toBe(200);
  expect(answer.body).toMatchObject({ outcome: 'APPLIED', order: { status: 'PAID', paymentId } });
  expect((await tracesOf(stack.db.prisma, orderId)).movements).toEqual(['RESERVE', 'COMMIT']);
});

test('a receipt that succeeded only after the deadline does not keep the order from the reclaim', async () => {
  const { orderId } = await place(900);
  await dueNowInDatabase(orderId);
  await stack.db.prisma.$executeRaw`
    INSERT INTO payment_receipts (payment_id, order_id, amount_cents, currency, succeeded_at)
    VALUES (${`pay-late-${randomUUID()}`}, ${orderId}::uuid, ${PRICE_CENTS}, 'eur', now())`;
  expect((await untilReclaimed(orderId)).status).toBe('EXPIRED');
});
