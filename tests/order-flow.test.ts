/** The order path end to end on a real dev server and PostgreSQL, without HTTP. */
import { addProduct, stockOf } from './support/database';
import { useStack } from './support/stack';
import { eventually } from './support/wait';

const stack = useStack();

test('an order paid before its window closes is PAID and its stock moves reserved → sold', async () => {
  await addProduct(stack.db.prisma, 'PAY-1', 10, 1500);
  await addProduct(stack.db.prisma, 'PAY-2', 5, 250);

  const placed = await stack.checkout.placeOrder({
    customerId: 'alice',
    items: [
      { sku: 'PAY-1', quantity: 2 },
      { sku: 'PAY-2', quantity: 3 },
    ],
  });
  expect(placed.httpStatus).toBe(201);
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
  });
  expect(placed.order.status).toBe('AWAITING_PAYMENT');
  expect(await stockOf(stack.db.prisma, 'EXP-1')).toEqual({ available: 1, reserved: 3, sold: 0 });

  const expired = await eventually(
    () => stack.checkout.getOrder(placed.order.orderId),
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
    items: [
      { sku: 'REJ-1', quantity: 3 },
      { sku: 'REJ-2', quantity: 1 },
    ],
  });

  expect(placed.httpStatus).toBe(409);
  expect(placed.shortages).toEqual([{ sku: 'REJ-1', requested: 3, available: 2 }]);
  expect((await stack.checkout.getOrder(placed.order.orderId)).status).toBe('REJECTED');
  expect(await stockOf(stack.db.prisma, 'REJ-1')).toEqual({ available: 2, reserved: 0, sold: 0 });
  expect(await stockOf(stack.db.prisma, 'REJ-2')).toEqual({ available: 10, reserved: 0, sold: 0 });
});
