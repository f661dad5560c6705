/**
 * Settlement activities against real PostgreSQL: each one, retried after a crash or run
 * twice at once, finds its own earlier work and changes nothing a second time.
 */
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../activities';
import { createLocalPaymentProvider, type PaymentProvider, type RefundRequest } from '../activities/payment-provider';
import { DEFAULTS } from '../src/config';
import { checkInventory } from '../src/db/inventory-check';
import { addProduct, createTestDatabase, stockOf, type TestDatabase } from './support/database';
import { tracesOf } from './support/order-traces';

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
  activities = createActivities({ prisma: db.prisma, payments: recording, maxPaymentWindowSeconds: DEFAULTS.maxPaymentWindowSeconds });
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
    currency: 'eur',
  });
  return orderId;
}

/** A verified payment.succeeded, as the API records it before any workflow hears of it. */
async function receipt(orderId: string, paymentId: string, amountCents: number, currency = 'eur', secondsAgo = 0): Promise<void> {
  await db.prisma.$executeRaw`
    INSERT INTO payment_receipts (payment_id, order_id, amount_cents, currency, succeeded_at)
    VALUES (${paymentId}, ${orderId}::uuid, ${amountCents}, ${currency}, now() - make_interval(secs => ${secondsAgo}))`;
}

/** Moves the order's deadline a second into the past: it is due. */
async function makeDue(orderId: string): Promise<void> {
  await db.prisma.$executeRaw`UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = ${orderId}::uuid`;
}

test('commitStock run repeatedly and concurrently moves the stock once, records the payment once and answers the same paidAt', async () => {
  await addProduct(db.prisma, 'COMMIT-A', 5);
  await addProduct(db.prisma, 'COMMIT-B', 5);
  const orderId = await reservedOrder([
    { sku: 'COMMIT-B', quantity: 2 },
    { sku: 'COMMIT-A', quantity: 1 },
  ]);

  await receipt(orderId, 'pay-1', 3000);
  const results = await concurrentlyThenAgain(activities.commitStock, { orderId, paymentId: 'pay-1' });

  expect(results.every((r) => r.payment === 'APPLIED')).toBe(true);
  expect(new Set(results.map((r) => (r.order?.status === 'PAID' ? r.order.paidAt : 'not paid'))).size).toBe(1);
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

  await makeDue(orderId);
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

test('refundPayment run repeatedly and concurrently records one payment and one refund, of the amount its verified receipt recorded', async () => {
  await addProduct(db.prisma, 'REFUND-A', 5);
  const orderId = await reservedOrder([{ sku: 'REFUND-A', quantity: 1 }]);
  refundRequests.length = 0;

  await receipt(orderId, 'pay-short', 700);
  const results = await concurrentlyThenAgain(activities.refundPayment, { orderId, paymentId: 'pay-short', reason: 'AMOUNT_MISMATCH' });
  const redelivered = await attempt(activities.refundPayment, { orderId, paymentId: 'pay-short', reason: 'AMOUNT_MISMATCH' });

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
  await receipt(paid, 'pay-guard', 1000);
  const won = (await attempt(activities.commitStock, { orderId: paid, paymentId: 'pay-guard' })).order;
  await makeDue(expired);
  const released = await attempt(activities.releaseStock, { orderId: expired, reason: 'EXPIRED' });
  expect(won).toMatchObject({ status: 'PAID', paymentId: 'pay-guard', decidedNow: true });
  expect(released).toMatchObject({ status: 'EXPIRED', decidedNow: true });

  expect(await attempt(activities.releaseStock, { orderId: paid, reason: 'CANCELLED' })).toEqual({ ...won, decidedNow: false });
  await receipt(expired, 'pay-late', 1000);
  expect(await attempt(activities.commitStock, { orderId: expired, paymentId: 'pay-late' })).toEqual({ payment: 'ORDER_EXPIRED', order: { ...released, decidedNow: false } });
  await receipt(paid, 'pay-other', 1000);
  expect(await attempt(activities.commitStock, { orderId: paid, paymentId: 'pay-other' })).toEqual({ payment: 'ORDER_ALREADY_PAID', order: { ...won, decidedNow: false } });

  expect(await tracesOf(db.prisma, paid)).toMatchObject({
    status: 'PAID',
    movements: ['RESERVE', 'COMMIT'],
    payments: [{ paymentId: 'pay-guard', amountCents: 1000, outcome: 'APPLIED' }],
  });
  expect((await db.prisma.order.findUniqueOrThrow({ where: { id: paid } })).paymentId).toBe('pay-guard');
  expect(await tracesOf(db.prisma, expired)).toMatchObject({ status: 'EXPIRED', movements: ['RESERVE', 'RELEASE'], payments: [] });
  expect(await stockOf(db.prisma, 'GUARD-A')).toEqual({ available: 3, reserved: 0, sold: 1 });
});

test('commits, an expiry and a cancel of one order with two payments in time, proposed all at once: exactly one outcome (PAID), which every proposal answers', async () => {
  await addProduct(db.prisma, 'RACE-A', 30);
  for (let round = 0; round < 5; round++) {
    const orderId = await reservedOrder([{ sku: 'RACE-A', quantity: 2 }]);
    await receipt(orderId, `pay-a-${round}`, 2000);
    await receipt(orderId, `pay-b-${round}`, 2000);
    const proposals = await Promise.all([
      attempt(activities.commitStock, { orderId, paymentId: `pay-a-${round}` }),
      attempt(activities.releaseStock, { orderId, reason: 'EXPIRED' }),
      attempt(activities.commitStock, { orderId, paymentId: `pay-b-${round}` }),
      attempt(activities.releaseStock, { orderId, reason: 'CANCELLED' }),
    ]);
    // Two payments in time: whichever proposal gets there first, the order is paid (by the first receipt).
    const answers = proposals.map((a) => ('payment' in a ? a.order : a));
    expect(answers.every((a) => a !== undefined && 'decidedNow' in a && a.status === 'PAID')).toBe(true);
    expect(answers.filter((a) => a !== undefined && 'decidedNow' in a && a.decidedNow)).toHaveLength(1);
    const decided = answers.find((a) => a !== undefined && 'decidedNow' in a && a.decidedNow);
    for (const answer of answers) expect({ ...answer, decidedNow: true }).toEqual(decided);
    expect(proposals.filter((a) => 'payment' in a).map((a) => ('payment' in a ? a.payment : undefined)).sort()).toEqual(['APPLIED', 'ORDER_ALREADY_PAID']);
    const traces = await tracesOf(db.prisma, orderId);
    expect(traces.status).toBe(decided?.status);
    expect(traces.movements).toEqual(decided?.status === 'PAID' ? ['RESERVE', 'COMMIT'] : ['RESERVE', 'RELEASE']);
  }
});

test('after the deadline a commit wins only with a receipt that succeeded in time; a late one expires the order, and a cancel does too', async () => {
  await addProduct(db.prisma, 'DUE-A', 6);
  const withReceipt = await reservedOrder([{ sku: 'DUE-A', quantity: 1 }]);
  const lateReceipt = await reservedOrder([{ sku: 'DUE-A', quantity: 1 }]);
  const cancelled = await reservedOrder([{ sku: 'DUE-A', quantity: 1 }]);
  await receipt(withReceipt, 'pay-receipt-in-time', 1000, 'eur', 5);
  for (const orderId of [withReceipt, lateReceipt, cancelled]) await makeDue(orderId);
  await receipt(lateReceipt, 'pay-receipt-late', 1000);

  expect(await attempt(activities.commitStock, { orderId: withReceipt, paymentId: 'pay-receipt-in-time' })).toMatchObject({ payment: 'APPLIED', order: { status: 'PAID', decidedNow: true } });
  expect(await attempt(activities.commitStock, { orderId: lateReceipt, paymentId: 'pay-receipt-late' })).toMatchObject({ payment: 'ORDER_EXPIRED', order: { status: 'EXPIRED', decidedNow: true } });
  expect(await attempt(activities.releaseStock, { orderId: cancelled, reason: 'CANCELLED' })).toMatchObject({ status: 'EXPIRED', decidedNow: true });

  expect((await tracesOf(db.prisma, withReceipt)).movements).toEqual(['RESERVE', 'COMMIT']);
  for (const orderId of [lateReceipt, cancelled]) {
    expect(await tracesOf(db.prisma, orderId)).toMatchObject({ status: 'EXPIRED', movements: ['RESERVE', 'RELEASE'], payments: [] });
  }
  expect(await stockOf(db.prisma, 'DUE-A')).toEqual({ available: 5, reserved: 0, sold: 1 });
});

test('decideLatePayment decides by the same rule: the final state for a closed order, the commit for one still open (its workflow gone)', async () => {
  await addProduct(db.prisma, 'LATE-A', 5);
  const paid = await reservedOrder([{ sku: 'LATE-A', quantity: 1 }]);
  await receipt(paid, 'pay-applied', 1000);
  await attempt(activities.commitStock, { orderId: paid, paymentId: 'pay-applied' });
  await receipt(paid, 'pay-second', 1000);
  const cancelled = await reservedOrder([{ sku: 'LATE-A', quantity: 1 }]);
  await attempt(activities.releaseStock, { orderId: cancelled, reason: 'CANCELLED' });
  await receipt(cancelled, 'pay-any', 1000);
  const open = await reservedOrder([{ sku: 'LATE-A', quantity: 1 }]);
  await receipt(open, 'pay-short-late', 999);
  await receipt(open, 'pay-dollars', 1000, 'usd');
  const openPastDeadline = await reservedOrder([{ sku: 'LATE-A', quantity: 1 }]);
  await makeDue(openPastDeadline);
  await receipt(openPastDeadline, 'pay-too-late', 1000);

  const decide = (orderId: string, paymentId: string) => attempt(activities.decideLatePayment, { orderId, paymentId });

  expect(await decide(paid, 'pay-applied')).toBe('APPLIED');
  expect(await decide(paid, 'pay-second')).toBe('ORDER_ALREADY_PAID');
  expect(await decide(cancelled, 'pay-any')).toBe('ORDER_CANCELLED');
  expect(await decide(open, 'pay-short-late')).toBe('AMOUNT_MISMATCH');
  expect(await decide(open, 'pay-dollars')).toBe('CURRENCY_MISMATCH');
  await receipt(open, 'pay-open', 1000);
  expect(await decide(open, 'pay-open')).toBe('APPLIED');
  expect(await decide(open, 'pay-open')).toBe('APPLIED');
  expect(await decide(openPastDeadline, 'pay-too-late')).toBe('ORDER_EXPIRED');
  // Not a verified payment of this order: no decision, nothing moves.
  await expect(decide(paid, 'pay-never-received')).rejects.toThrow(/not a verified payment/);
  await expect(decide(open, 'pay-applied')).rejects.toThrow(/not a verified payment/);
  expect(await tracesOf(db.prisma, open)).toMatchObject({ status: 'PAID', movements: ['RESERVE', 'COMMIT'] });
  expect(await tracesOf(db.prisma, openPastDeadline)).toMatchObject({ status: 'EXPIRED', movements: ['RESERVE', 'RELEASE'] });
  const outcomes = await db.prisma.paymentReceipt.findMany({ where: { orderId: open }, orderBy: { paymentId: 'asc' }, select: { paymentId: true, outcome: true } });
  expect(outcomes).toEqual([
    { paymentId: 'pay-dollars', outcome: 'REFUSED' },
    { paymentId: 'pay-open', outcome: 'APPLIED' },
    { paymentId: 'pay-short-late', outcome: 'REFUSED' },
  ]);
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
    currency: 'eur',
  });

  const results = await concurrentlyThenAgain(activities.extendPaymentWindow, { orderId, extensionId: 'ext-1', seconds: 30 });

  const extended = new Date(expiresAt.getTime() + 30_000).toISOString();
  expect(results.map((r) => ({ outcome: r.outcome, expiresAt: 'expiresAt' in r ? r.expiresAt : undefined }))).toEqual(results.map(() => ({ outcome: 'EXTENDED', expiresAt: extended })));
  expect((await db.prisma.order.findUniqueOrThrow({ where: { id: orderId } })).expiresAt.toISOString()).toBe(extended);
  expect(await db.prisma.orderExtension.count({ where: { orderId } })).toBe(1);

  // An expiry before the (new) deadline is refused: still held, nothing moves; once due it wins.
  const refused = await attempt(activities.releaseStock, { orderId, reason: 'EXPIRED' });
  expect(refused).toMatchObject({ status: 'AWAITING_PAYMENT', expiresAt: extended });
  expect(await stockOf(db.prisma, 'EXTEND-A')).toEqual({ available: 4, reserved: 1, sold: 0 });
  await makeDue(orderId);
  const expired = await attempt(activities.releaseStock, { orderId, reason: 'EXPIRED' });
  expect(expired.status).toBe('EXPIRED');
  expect(await stockOf(db.prisma, 'EXTEND-A')).toEqual({ available: 5, reserved: 0, sold: 0 });
});
