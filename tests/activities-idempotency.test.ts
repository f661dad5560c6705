/**
 * Settlement activities against real PostgreSQL: each one, retried after a crash or run
 * twice at once, finds its own earlier work and changes nothing a second time.
 */
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../activities';
import { createLocalPaymentProvider, type PaymentProvider, type RefundRequest } from '../activities/payment-provider';
import { checkInventory } from '../src/db/inventory-check';
import { addProduct, createTestDatabase, stockOf, type TestDatabase } from './support/database';
import { tracesOf } from './support/lifecycle';

let db: TestDatabase;
let activities: ReturnType<typeof createActivities>;
/** Every call the activities make to the provider, to tell a repeated request from a repeated refund. */
const refundRequests: RefundRequest[] = [];

beforeAll(async () => {
  db = await createTestDatabase(40);
  const local = createLocalPaymentProvider();
  const recording: PaymentProvider = {
    refund(request) {
      refundRequests.push(request);
      return local.refund(request);
    },
  };
  activities = createActivities({ prisma: db.prisma, payments: recording });
});

afterAll(async () => {
  await db?.drop();
});

afterEach(async () => {
  expect(await checkInventory(db.prisma)).toEqual({ ok: true, violations: [] });
});

/** One attempt of an activity, as a worker runs it. */
function attempt<P, R>(fn: (input: P) => Promise<R>, input: P): Promise<R> {
  return new MockActivityEnvironment().run(fn, input);
}

/** Runs the same activity `times` times at once, then once more after they are all done (a late retry). */
async function concurrentlyThenAgain<P, R>(fn: (input: P) => Promise<R>, input: P, times = 6): Promise<R[]> {
  const together = await Promise.all(Array.from({ length: times }, () => attempt(fn, input)));
  return [...together, await attempt(fn, input)];
}

async function reservedOrder(items: { sku: string; quantity: number }[]): Promise<string> {
  const orderId = randomUUID();
  const now = new Date();
  await attempt(activities.reserveStock, {
    orderId,
    customerId: 'idempotent',
    items,
    createdAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + 60_000).toISOString(),
  });
  return orderId;
}

test('commitStock run repeatedly and concurrently moves the stock once, records the payment once and answers the same paidAt', async () => {
  await addProduct(db.prisma, 'COMMIT-A', 5);
  await addProduct(db.prisma, 'COMMIT-B', 5);
  const orderId = await reservedOrder([
    { sku: 'COMMIT-B', quantity: 2 },
    { sku: 'COMMIT-A', quantity: 1 },
  ]);

  const results = await concurrentlyThenAgain(activities.commitStock, { orderId, paymentId: 'pay-1', amountCents: 3000 });

  expect(new Set(results.map((r) => r.paidAt)).size).toBe(1);
  expect(await stockOf(db.prisma, 'COMMIT-A')).toEqual({ available: 4, reserved: 0, sold: 1 });
  expect(await stockOf(db.prisma, 'COMMIT-B')).toEqual({ available: 3, reserved: 0, sold: 2 });
  expect(await tracesOf(db.prisma, orderId)).toEqual({
    status: 'PAID',
    movements: ['RESERVE', 'RESERVE', 'COMMIT', 'COMMIT'],
    payments: [{ paymentId: 'pay-1', amountCents: 3000, outcome: 'APPLIED' }],
    refunds: [],
  });
});

test('releaseStock run repeatedly and concurrently returns the stock once and answers the same closedAt', async () => {
  await addProduct(db.prisma, 'RELEASE-A', 5);
  await addProduct(db.prisma, 'RELEASE-B', 5);
  const orderId = await reservedOrder([
    { sku: 'RELEASE-A', quantity: 3 },
    { sku: 'RELEASE-B', quantity: 5 },
  ]);

  const results = await concurrentlyThenAgain(activities.releaseStock, { orderId, reason: 'EXPIRED' });

  expect(new Set(results.map((r) => ('closedAt' in r ? r.closedAt : 'still held'))).size).toBe(1);
  expect(results.every((r) => r.status === 'EXPIRED')).toBe(true);
  expect(await stockOf(db.prisma, 'RELEASE-A')).toEqual({ available: 5, reserved: 0, sold: 0 });
  expect(await stockOf(db.prisma, 'RELEASE-B')).toEqual({ available: 5, reserved: 0, sold: 0 });
  expect(await tracesOf(db.prisma, orderId)).toEqual({
    status: 'EXPIRED',
    movements: ['RESERVE', 'RESERVE', 'RELEASE', 'RELEASE'],
    payments: [],
    refunds: [],
  });
});

test('refundPayment run repeatedly and concurrently records one payment and one refund, always of the amount first recorded', async () => {
  await addProduct(db.prisma, 'REFUND-A', 5);
  const orderId = await reservedOrder([{ sku: 'REFUND-A', quantity: 1 }]);
  refundRequests.length = 0;

  const results = await concurrentlyThenAgain(activities.refundPayment, { orderId, paymentId: 'pay-short', amountCents: 700, reason: 'AMOUNT_MISMATCH' });
  // A redelivery that carries another amount does not change what is refunded.
  const redelivered = await attempt(activities.refundPayment, { orderId, paymentId: 'pay-short', amountCents: 999, reason: 'AMOUNT_MISMATCH' });

  for (const result of [...results, redelivered]) expect(result).toEqual({ paymentId: 'pay-short', status: 'REFUNDED' });
  expect(refundRequests.map((r) => r.amountCents)).toEqual(Array.from({ length: 8 }, () => 700));
  expect(await tracesOf(db.prisma, orderId)).toEqual({
    status: 'AWAITING_PAYMENT',
    movements: ['RESERVE'],
    payments: [{ paymentId: 'pay-short', amountCents: 700, outcome: 'AMOUNT_MISMATCH' }],
    refunds: [{ paymentId: 'pay-short', amountCents: 700, status: 'REFUNDED' }],
  });
  expect(await stockOf(db.prisma, 'REFUND-A')).toEqual({ available: 4, reserved: 1, sold: 0 });
});

test('a release of a paid order, a commit of a released one, or a commit by another payment changes nothing and answers the outcome that won', async () => {
  await addProduct(db.prisma, 'GUARD-A', 4);
  const paid = await reservedOrder([{ sku: 'GUARD-A', quantity: 1 }]);
  const expired = await reservedOrder([{ sku: 'GUARD-A', quantity: 1 }]);
  const won = await attempt(activities.commitStock, { orderId: paid, paymentId: 'pay-guard', amountCents: 1000 });
  const released = await attempt(activities.releaseStock, { orderId: expired, reason: 'EXPIRED' });
  expect(won).toMatchObject({ status: 'PAID', paymentId: 'pay-guard', decidedNow: true });
  expect(released).toMatchObject({ status: 'EXPIRED', decidedNow: true });

  expect(await attempt(activities.releaseStock, { orderId: paid, reason: 'CANCELLED' })).toEqual({ ...won, decidedNow: false });
  expect(await attempt(activities.commitStock, { orderId: expired, paymentId: 'pay-late', amountCents: 1000 })).toEqual({ ...released, decidedNow: false });
  expect(await attempt(activities.commitStock, { orderId: paid, paymentId: 'pay-other', amountCents: 1000 })).toEqual({ ...won, decidedNow: false });

  expect(await tracesOf(db.prisma, paid)).toMatchObject({
    status: 'PAID',
    movements: ['RESERVE', 'COMMIT'],
    payments: [{ paymentId: 'pay-guard', amountCents: 1000, outcome: 'APPLIED' }],
  });
  expect((await db.prisma.order.findUniqueOrThrow({ where: { id: paid } })).paymentId).toBe('pay-guard');
  expect(await tracesOf(db.prisma, expired)).toMatchObject({ status: 'EXPIRED', movements: ['RESERVE', 'RELEASE'], payments: [] });
  expect(await stockOf(db.prisma, 'GUARD-A')).toEqual({ available: 3, reserved: 0, sold: 1 });
});

test('commits and releases of one order proposed all at once: exactly one outcome, which every proposal answers', async () => {
  await addProduct(db.prisma, 'RACE-A', 30);
  for (let round = 0; round < 5; round++) {
    const orderId = await reservedOrder([{ sku: 'RACE-A', quantity: 2 }]);
    const answers = await Promise.all([
      attempt(activities.commitStock, { orderId, paymentId: `pay-a-${round}`, amountCents: 2000 }),
      attempt(activities.releaseStock, { orderId, reason: 'EXPIRED' }),
      attempt(activities.commitStock, { orderId, paymentId: `pay-b-${round}`, amountCents: 2000 }),
      attempt(activities.releaseStock, { orderId, reason: 'CANCELLED' }),
    ]);
    // No expiry here names a deadline, so none is answered "still held".
    expect(answers.every((a) => 'decidedNow' in a)).toBe(true);
    expect(answers.filter((a) => 'decidedNow' in a && a.decidedNow)).toHaveLength(1);
    const decided = answers.find((a) => 'decidedNow' in a && a.decidedNow);
    for (const answer of answers) expect({ ...answer, decidedNow: true }).toEqual(decided);
    const traces = await tracesOf(db.prisma, orderId);
    expect(traces.status).toBe(decided?.status);
    expect(traces.movements).toEqual(decided?.status === 'PAID' ? ['RESERVE', 'COMMIT'] : ['RESERVE', 'RELEASE']);
  }
});

test('after the deadline a commit wins only with a receipt that succeeded in time; without one it releases the order as EXPIRED, and a cancel does too', async () => {
  await addProduct(db.prisma, 'DUE-A', 6);
  const withReceipt = await reservedOrder([{ sku: 'DUE-A', quantity: 1 }]);
  const withoutReceipt = await reservedOrder([{ sku: 'DUE-A', quantity: 1 }]);
  const lateReceipt = await reservedOrder([{ sku: 'DUE-A', quantity: 1 }]);
  const cancelled = await reservedOrder([{ sku: 'DUE-A', quantity: 1 }]);
  for (const orderId of [withReceipt, withoutReceipt, lateReceipt, cancelled]) {
    await db.prisma.$executeRaw`UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = ${orderId}::uuid`;
  }
  await db.prisma.$executeRaw`
    INSERT INTO payment_receipts (payment_id, order_id, amount_cents, currency, succeeded_at)
    VALUES ('pay-receipt-in-time', ${withReceipt}::uuid, 1000, 'eur', now() - interval '2 seconds'),
           ('pay-receipt-late', ${lateReceipt}::uuid, 1000, 'eur', now())`;

  expect(await attempt(activities.commitStock, { orderId: withReceipt, paymentId: 'pay-receipt-in-time', amountCents: 1000 })).toMatchObject({ status: 'PAID', decidedNow: true });
  expect(await attempt(activities.commitStock, { orderId: withoutReceipt, paymentId: 'pay-no-receipt', amountCents: 1000 })).toMatchObject({ status: 'EXPIRED', decidedNow: true });
  expect(await attempt(activities.commitStock, { orderId: lateReceipt, paymentId: 'pay-receipt-late', amountCents: 1000 })).toMatchObject({ status: 'EXPIRED', decidedNow: true });
  expect(await attempt(activities.releaseStock, { orderId: cancelled, reason: 'CANCELLED' })).toMatchObject({ status: 'EXPIRED', decidedNow: true });

  expect((await tracesOf(db.prisma, withReceipt)).movements).toEqual(['RESERVE', 'COMMIT']);
  for (const orderId of [withoutReceipt, lateReceipt, cancelled]) {
    expect(await tracesOf(db.prisma, orderId)).toMatchObject({ status: 'EXPIRED', movements: ['RESERVE', 'RELEASE'], payments: [] });
  }
  expect(await stockOf(db.prisma, 'DUE-A')).toEqual({ available: 5, reserved: 0, sold: 1 });
});

test('decideLatePayment answers from the payment recorded earlier, else from the final state, and for an order still open (its workflow gone) proposes the commit', async () => {
  await addProduct(db.prisma, 'LATE-A', 5);
  const paid = await reservedOrder([{ sku: 'LATE-A', quantity: 1 }]);
  await attempt(activities.commitStock, { orderId: paid, paymentId: 'pay-applied', amountCents: 1000 });
  await attempt(activities.refundPayment, { orderId: paid, paymentId: 'pay-second', amountCents: 1000, reason: 'ORDER_ALREADY_PAID' });
  const cancelled = await reservedOrder([{ sku: 'LATE-A', quantity: 1 }]);
  await attempt(activities.releaseStock, { orderId: cancelled, reason: 'CANCELLED' });
  const open = await reservedOrder([{ sku: 'LATE-A', quantity: 1 }]);
  const openPastDeadline = await reservedOrder([{ sku: 'LATE-A', quantity: 1 }]);
  await db.prisma.$executeRaw`UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = ${openPastDeadline}::uuid`;

  const decide = (orderId: string, paymentId: string, amountCents?: number) =>
    attempt(activities.decideLatePayment, { orderId, paymentId, ...(amountCents !== undefined && { amountCents }) });

  expect(await decide(paid, 'pay-applied')).toBe('APPLIED');
  expect(await decide(paid, 'pay-second')).toBe('ORDER_ALREADY_PAID');
  expect(await decide(paid, 'pay-third')).toBe('ORDER_ALREADY_PAID');
  expect(await decide(cancelled, 'pay-any')).toBe('ORDER_CANCELLED');
  expect(await decide(open, 'pay-short', 999)).toBe('AMOUNT_MISMATCH');
  expect(await decide(open, 'pay-open', 1000)).toBe('APPLIED');
  expect(await decide(open, 'pay-open', 1000)).toBe('APPLIED');
  expect(await decide(openPastDeadline, 'pay-too-late', 1000)).toBe('ORDER_EXPIRED');
  expect(await tracesOf(db.prisma, open)).toMatchObject({ status: 'PAID', movements: ['RESERVE', 'COMMIT'] });
  expect(await tracesOf(db.prisma, openPastDeadline)).toMatchObject({ status: 'EXPIRED', movements: ['RESERVE', 'RELEASE'] });
});

test('extendPaymentWindow run repeatedly and concurrently with one extensionId moves expiresAt once and answers the same', async () => {
  await addProduct(db.prisma, 'EXTEND-A', 5);
  const orderId = randomUUID();
  const now = new Date();
  const expiresAt = new Date(now.getTime() + 60_000);
  await attempt(activities.reserveStock, {
    orderId,
    customerId: 'idempotent',
    items: [{ sku: 'EXTEND-A', quantity: 1 }],
    createdAt: now.toISOString(),
    expiresAt: expiresAt.toISOString(),
    deadlineMovable: true,
  });

  const results = await concurrentlyThenAgain(activities.extendPaymentWindow, { orderId, extensionId: 'ext-1', seconds: 30 });

  const extended = new Date(expiresAt.getTime() + 30_000).toISOString();
  expect(results).toEqual(results.map(() => ({ outcome: 'EXTENDED', expiresAt: extended })));
  expect((await db.prisma.order.findUniqueOrThrow({ where: { id: orderId } })).expiresAt.toISOString()).toBe(extended);
  expect(await db.prisma.orderExtension.count({ where: { orderId } })).toBe(1);

  // An expiry for the old deadline is refused (still held, nothing moves); for the new one it wins.
  const refused = await attempt(activities.releaseStock, { orderId, reason: 'EXPIRED', deadline: { expiresAt: expiresAt.toISOString() } });
  expect(refused).toEqual({ status: 'AWAITING_PAYMENT', expiresAt: extended });
  expect(await stockOf(db.prisma, 'EXTEND-A')).toEqual({ available: 4, reserved: 1, sold: 0 });
  const expired = await attempt(activities.releaseStock, { orderId, reason: 'EXPIRED', deadline: { expiresAt: extended } });
  expect(expired.status).toBe('EXPIRED');
  expect(await stockOf(db.prisma, 'EXTEND-A')).toEqual({ available: 5, reserved: 0, sold: 0 });
});

test('an order held by a workflow that does not follow its deadline is never extended', async () => {
  await addProduct(db.prisma, 'EXTEND-B', 5);
  const orderId = await reservedOrder([{ sku: 'EXTEND-B', quantity: 1 }]);
  await expect(attempt(activities.extendPaymentWindow, { orderId, extensionId: 'ext-old', seconds: 30 })).rejects.toThrow(/does not follow its deadline/);
  expect(await db.prisma.orderExtension.count({ where: { orderId } })).toBe(0);
  await attempt(activities.releaseStock, { orderId, reason: 'CANCELLED' });
});
