/**
 * With the reclaim switched off, the workflow alone expires orders (its timer proposes the
 * release), and the database's deadline still decides: a payment or a cancel that comes after
 * it loses. A late payment for an order whose workflow was terminated is decided from the
 * database: before the deadline it pays, after it the order is released and the payment refunded.
 */
import { orderWorkflowId, type OrderView } from '../workflows/messages';
import { addProduct, stockOf } from './support/database';
import { cancelOrder, errorCode, orderIdOf, outcomeOf, payOrder, placeOrder, statusAndBody } from './support/api-calls';
import { releasedRefunding, tracesOf } from './support/order-traces';
import { TEST_RECLAIM, useStack } from './support/stack';

const SKU = 'NO-RECLAIM-1';
const PRICE_CENTS = 1100;
const STOCK = 50;

const stack = useStack({ reclaim: { ...TEST_RECLAIM, enabled: false } });

beforeAll(async () => {
  await addProduct(stack.db.prisma, SKU, STOCK, PRICE_CENTS);
});

async function place(paymentTimeoutSeconds: number): Promise<string> {
  const placed = await placeOrder(stack.app, { customerId: 'no-reclaim', items: [{ sku: SKU, quantity: 1 }], paymentTimeoutSeconds });
  if (placed.status !== 201) throw new Error(`placing failed: ${placed.status} ${JSON.stringify(placed.body)}`);
  return orderIdOf(placed);
}

const handle = (orderId: string) => stack.client.workflow.getHandle(orderWorkflowId(orderId));

async function moveDeadlineIntoThePast(orderId: string): Promise<void> {
  await stack.db.prisma.$executeRaw`UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = ${orderId}::uuid`;
}

test('the workflow timer alone expires an order: stock back on sale, EXPIRED in the workflow and the database alike', async () => {
  const before = await stockOf(stack.db.prisma, SKU);
  const orderId = await place(1);

  const view = (await handle(orderId).result()) as OrderView;

  const row = await stack.db.prisma.order.findUniqueOrThrow({ where: { id: orderId } });
  expect(view).toMatchObject({ status: 'EXPIRED', closedAt: row.closedAt?.toISOString() });
  expect((await tracesOf(stack.db.prisma, orderId)).movements).toEqual(['RESERVE', 'RELEASE']);
  expect(await stockOf(stack.db.prisma, SKU)).toEqual(before);
});

test('a payment the workflow takes in time but whose commit comes after the database deadline (no receipt) loses: ORDER_EXPIRED, refunded once', async () => {
  const orderId = await place(900);
  await moveDeadlineIntoThePast(orderId);

  const answer = await payOrder(stack.app, orderId, { paymentId: 'pay-after-db-deadline', amountCents: PRICE_CENTS });

  expect({ status: answer.status, outcome: outcomeOf(answer) }).toEqual({ status: 200, outcome: 'ORDER_EXPIRED' });
  expect(await tracesOf(stack.db.prisma, orderId)).toEqual(
    releasedRefunding('EXPIRED', { paymentId: 'pay-after-db-deadline', amountCents: PRICE_CENTS, outcome: 'ORDER_EXPIRED' }),
  );
  expect(((await handle(orderId).result()) as OrderView).status).toBe('EXPIRED');
});

test('a cancel after the deadline loses to it: the order expires, the cancel is answered ORDER_EXPIRED', async () => {
  const orderId = await place(900);
  await moveDeadlineIntoThePast(orderId);

  const answer = await cancelOrder(stack.app, orderId);

  expect({ status: answer.status, code: errorCode(answer) }).toEqual({ status: 409, code: 'ORDER_EXPIRED' });
  expect(((await handle(orderId).result()) as OrderView).status).toBe('EXPIRED');
});

describe('a payment for an order whose workflow was terminated', () => {
  test('before the deadline is applied from the database: PAID, stock sold, the same answer on redelivery', async () => {
    const orderId = await place(900);
    await handle(orderId).terminate('operator error');

    const answer = await payOrder(stack.app, orderId, { paymentId: 'pay-terminated-in-time', amountCents: PRICE_CENTS });
    const again = await payOrder(stack.app, orderId, { paymentId: 'pay-terminated-in-time', amountCents: PRICE_CENTS });

    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ outcome: 'APPLIED', order: { orderId, status: 'PAID', paymentId: 'pay-terminated-in-time' } });
    expect(statusAndBody(again)).toEqual(statusAndBody(answer));
    expect(await tracesOf(stack.db.prisma, orderId)).toEqual({
      status: 'PAID',
      movements: ['RESERVE', 'COMMIT'],
      payments: [{ paymentId: 'pay-terminated-in-time', amountCents: PRICE_CENTS, outcome: 'APPLIED' }],
      refunds: [],
    });
  });

  test('after the deadline releases the order and refunds the payment once: ORDER_EXPIRED', async () => {
    const orderId = await place(900);
    await handle(orderId).terminate('operator error');
    await moveDeadlineIntoThePast(orderId);

    const answer = await payOrder(stack.app, orderId, { paymentId: 'pay-terminated-late', amountCents: PRICE_CENTS });
    const again = await payOrder(stack.app, orderId, { paymentId: 'pay-terminated-late', amountCents: PRICE_CENTS });

    expect({ status: answer.status, outcome: outcomeOf(answer) }).toEqual({ status: 200, outcome: 'ORDER_EXPIRED' });
    expect(statusAndBody(again)).toEqual(statusAndBody(answer));
    expect(await tracesOf(stack.db.prisma, orderId)).toEqual(
      releasedRefunding('EXPIRED', { paymentId: 'pay-terminated-late', amountCents: PRICE_CENTS, outcome: 'ORDER_EXPIRED' }),
    );
  });

  test('of the wrong amount is refused and refunded, and the order still awaits payment', async () => {
    const orderId = await place(900);
    await handle(orderId).terminate('operator error');

    const answer = await payOrder(stack.app, orderId, { paymentId: 'pay-terminated-short', amountCents: PRICE_CENTS - 1 });

    expect({ status: answer.status, outcome: outcomeOf(answer) }).toEqual({ status: 200, outcome: 'AMOUNT_MISMATCH' });
    expect(await tracesOf(stack.db.prisma, orderId)).toMatchObject({ status: 'AWAITING_PAYMENT', movements: ['RESERVE'] });
    // Leave nothing held: a correct payment settles it.
    expect((await payOrder(stack.app, orderId, { paymentId: 'pay-terminated-right', amountCents: PRICE_CENTS })).status).toBe(200);
  });
});
