/**
 * Order events to the storefront (contract v2), on the real stack with a real receiver: every
 * change of an order is written to the outbox in its own transaction and delivered, signed by
 * the Standard Webhooks scheme (verified by the `standardwebhooks` library on the receiving
 * side), at least once, in order per order, with the same webhook-id on every retry.
 */
import { DEFAULTS } from '../src/config';
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { createActivities } from '../activities';
import { createLocalPaymentProvider } from '../activities/payment-provider';
import { checkInventory } from '../src/db/inventory-check';
import { createWorkerMetrics } from '../src/metrics';
import { addProduct, stockOf } from './support/database';
import { startEventReceiver, type EventReceiver, type ReceivedEvent } from './support/event-receiver';
import { cancelOrder, extendOrder, getOrder, orderIdOf, payOrder, placeOrder } from './support/api-calls';
import { startStack, TEST_ADMIN_TOKEN, type TestStack } from './support/stack';
import { eventually, sleep } from './support/wait';

const SKU = 'EVT-1';
const SCARCE = 'EVT-SCARCE';
const PRICE = 700;
/** Retries come fast here so the tests need not wait minutes; the rule is the same. */
const TUNING = { intervalMs: 50, firstRetryDelaySeconds: 0.3, maxRetryDelaySeconds: 1 };

let receiver: EventReceiver;
let stack: TestStack;

beforeAll(async () => {
  receiver = await startEventReceiver();
  stack = await startStack({ paymentTimeoutSeconds: 900, orderEvents: { endpoints: [receiver.url], tuning: TUNING } });
  await addProduct(stack.db.prisma, SKU, 10_000, PRICE);
  await addProduct(stack.db.prisma, SCARCE, 1, PRICE);
});

afterAll(async () => {
  await stack?.stop();
  await receiver?.close();
});

afterEach(async () => {
  expect(receiver.rejected).toEqual([]);
  expect(await checkInventory(stack.db.prisma)).toEqual({ ok: true, violations: [] });
});

async function place(paymentTimeoutSeconds = 900): Promise<string> {
  const placed = await placeOrder(stack.app, { customerId: 'storefront', items: [{ sku: SKU, quantity: 1 }], paymentTimeoutSeconds });
  if (placed.status !== 201) throw new Error(`not held: ${placed.status} ${JSON.stringify(placed.body)}`);
  return orderIdOf(placed);
}

async function eventsOf(orderId: string): Promise<(ReceivedEvent & { deliveries: Record<string, unknown>[] })[]> {
  const res = await request(stack.app).get(`/orders/${orderId}/events`);
  expect(res.status).toBe(200);
  return (res.body as { events: (ReceivedEvent & { deliveries: Record<string, unknown>[] })[] }).events;
}

async function orderDocument(orderId: string): Promise<Record<string, unknown>> {
  return (await getOrder(stack.app, orderId)).body;
}

/** Waits until the receiver accepted `types` for the order, then checks nothing more was written or sent. */
async function expectExactly(orderId: string, types: string[]): Promise<ReceivedEvent[]> {
  const received = await receiver.waitForTypes(orderId, types);
  await sleep(500);
  const written = await eventsOf(orderId);
  expect(written.map((e) => e.type)).toEqual(types);
  expect(receiver.acceptedFor(orderId).map((e) => e.type)).toEqual(types);
  // What was received is what was written, event for event.
  expect(received.map((e) => e.id)).toEqual(written.map((e) => e.id));
  for (const event of written) expect(event.deliveries).toEqual([expect.objectContaining({ state: 'DELIVERED' })]);
  return received;
}

test('every lifecycle path produces exactly its events, signed, in order, each describing the order as of its change', async () => {
  const paid = await place();
  const cancelled = await place();
  const expired = await place(1);
  const extendedThenPaid = await place();
  const paidTwice = await place();
  const rejected = await placeOrder(stack.app, { customerId: 'storefront', items: [{ sku: SCARCE, quantity: 2 }] });
  const rejectedId = orderIdOf(rejected);
  expect(rejected.status).toBe(409);

  await Promise.all([
    payOrder(stack.app, paid, { paymentId: `pay-${paid}`, amountCents: PRICE }),
    cancelOrder(stack.app, cancelled),
    (async () => {
      const res = await extendOrder(stack.app, extendedThenPaid, { seconds: 600 });
      expect(res.status).toBe(200);
      await payOrder(stack.app, extendedThenPaid, { paymentId: `pay-${extendedThenPaid}`, amountCents: PRICE });
    })(),
    (async () => {
      await payOrder(stack.app, paidTwice, { paymentId: `pay-a-${paidTwice}`, amountCents: PRICE });
      const second = await payOrder(stack.app, paidTwice, { paymentId: `pay-b-${paidTwice}`, amountCents: PRICE });
      expect(second.body.outcome).toBe('ORDER_ALREADY_PAID');
    })(),
  ]);
  await eventually(() => orderDocument(expired), (o) => o.status === 'EXPIRED');
  const latePayment = await payOrder(stack.app, expired, { paymentId: `pay-late-${expired}`, amountCents: PRICE });
  expect(latePayment.body.outcome).toBe('ORDER_EXPIRED');

  const paidEvents = await expectExactly(paid, ['order.placed', 'order.paid']);
  expect(paidEvents[0]?.data.order.status).toBe('AWAITING_PAYMENT');
  expect(paidEvents[1]?.data.order).toEqual(await orderDocument(paid));
  await expectExactly(cancelled, ['order.placed', 'order.cancelled']);
  const expiredEvents = await expectExactly(expired, ['order.placed', 'order.expired', 'payment.refunded']);
  expect(expiredEvents[2]?.data.refund).toEqual({ paymentId: `pay-late-${expired}`, status: 'REFUNDED', amountCents: PRICE, reason: 'ORDER_EXPIRED' });
  expect(expiredEvents[2]?.data.order.status).toBe('EXPIRED');
  const extendedEvents = await expectExactly(extendedThenPaid, ['order.placed', 'order.extended', 'order.paid']);
  expect(Date.parse(String(extendedEvents[1]?.data.order.expiresAt)) - Date.parse(String(extendedEvents[0]?.data.order.expiresAt))).toBe(600_000);
  const twiceEvents = await expectExactly(paidTwice, ['order.placed', 'order.paid', 'payment.refunded']);
  expect(twiceEvents[2]?.data.refund).toMatchObject({ paymentId: `pay-b-${paidTwice}`, reason: 'ORDER_ALREADY_PAID' });
  const rejectedEvents = await expectExactly(rejectedId, ['order.rejected']);
  expect(rejectedEvents[0]?.data.order).toEqual(await orderDocument(rejectedId));

  // Every delivery carried its event id as webhook-id; the envelope is the contract's.
  for (const d of receiver.deliveries) expect(d.webhookId).toBe(d.event.id);
  expect(Object.keys(paidEvents[0] ?? {}).sort()).toEqual(['data', 'id', 'timestamp', 'type']);
});

test('a receiver that is down for a while gets everything once it is back, in order per order', async () => {
  await receiver.down();
  let orders: string[];
  try {
    orders = await Promise.all([place(), place(), place(), place()]);
    const [toPay, toCancel] = orders as [string, string];
    await payOrder(stack.app, toPay, { paymentId: `pay-${toPay}`, amountCents: PRICE });
    await cancelOrder(stack.app, toCancel);
    await sleep(2_000);
    // Nothing got through, and the attempts are recorded.
    for (const orderId of orders) expect(receiver.acceptedFor(orderId)).toEqual([]);
    const waiting = await eventsOf(toPay);
    expect(waiting[0]?.deliveries[0]).toMatchObject({ state: 'PENDING', lastError: expect.stringContaining('ECONNREFUSED') });
    expect(Number(waiting[0]?.deliveries[0]?.attempts)).toBeGreaterThanOrEqual(2);
    // The later event of the same order waits behind the first: never tried before it.
    expect(waiting[1]?.deliveries[0]).toMatchObject({ state: 'PENDING', attempts: 0 });
  } finally {
    await receiver.up();
  }
  const [toPay, toCancel] = orders as [string, string];
  await expectExactly(toPay, ['order.placed', 'order.paid']);
  await expectExactly(toCancel, ['order.placed', 'order.cancelled']);
  for (const orderId of orders.slice(2)) await expectExactly(orderId, ['order.placed']);
});

test('a receiver answering 500 gets the same event again, with the same webhook-id, until it answers 2xx', async () => {
  const failures = new Map<string, number>();
  receiver.answer((event) => {
    const seen = failures.get(event.id) ?? 0;
    failures.set(event.id, seen + 1);
    return seen < 2 ? 500 : 200;
  });
  try {
    const orderId = await place();
    await payOrder(stack.app, orderId, { paymentId: `pay-${orderId}`, amountCents: PRICE });
    const [placed, paid] = await expectExactly(orderId, ['order.placed', 'order.paid']);
    for (const event of [placed, paid]) {
      const attempts = receiver.deliveries.filter((d) => d.event.id === event?.id);
      expect(attempts.map((d) => d.answered)).toEqual([500, 500, 200]);
      expect(new Set(attempts.map((d) => d.webhookId))).toEqual(new Set([event?.id]));
    }
    // order.paid was first sent only after order.placed was accepted.
    const firstPaid = receiver.deliveries.find((d) => d.event.id === paid?.id);
    const placedAccepted = receiver.deliveries.find((d) => d.event.id === placed?.id && d.answered === 200);
    expect(firstPaid?.receivedAt).toBeGreaterThanOrEqual(placedAccepted?.receivedAt ?? Infinity);
    const [written] = await eventsOf(orderId);
    expect(written?.deliveries[0]).toMatchObject({ state: 'DELIVERED', attempts: 3 });
    expect(written?.deliveries[0]).not.toHaveProperty('lastError');
  } finally {
    receiver.answer(() => 204);
  }
});

test('a change that rolls back writes no event, and an event that cannot be written rolls its change back', async () => {
  const { prisma } = stack.db;
  const activities = createActivities({ prisma, payments: createLocalPaymentProvider(), maxPaymentWindowSeconds: DEFAULTS.maxPaymentWindowSeconds, eventEndpoints: [receiver.url] });
  const before = await stockOf(prisma, SKU);

  // The hold takes EVT-1, then meets an unknown sku: the whole transaction rolls back.
  const failedHold = randomUUID();
  await expect(
    activities.reserveStock({
      orderId: failedHold,
      customerId: 'storefront',
      items: [{ sku: SKU, quantity: 1 }, { sku: 'NO-SUCH-SKU', quantity: 1 }],
      createdAt: new Date().toISOString(),
      expiresAt: new Date(Date.now() + 600_000).toISOString(),
      currency: 'eur',
    }),
  ).rejects.toThrow('unknown sku');
  expect(await prisma.order.findUnique({ where: { id: failedHold } })).toBeNull();
  expect(await prisma.orderEvent.count({ where: { orderId: failedHold } })).toBe(0);
  expect(await stockOf(prisma, SKU)).toEqual(before);

  // The other way round: while order.paid cannot be written, the payment does not commit.
  const orderId = randomUUID();
  await activities.reserveStock({
    orderId,
    customerId: 'storefront',
    items: [{ sku: SKU, quantity: 1 }],
    createdAt: new Date().toISOString(),
    expiresAt: new Date(Date.now() + 600_000).toISOString(),
    currency: 'eur',
  });
  await prisma.$executeRaw`
    INSERT INTO payment_receipts (payment_id, order_id, amount_cents, currency, succeeded_at)
    VALUES (${`pay-${orderId}`}, ${orderId}::uuid, ${PRICE}, 'eur', now())`;
  await prisma.$executeRawUnsafe(`
    CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'event refused for the test'; END $$`);
  await prisma.$executeRawUnsafe(`
    CREATE TRIGGER refuse_paid BEFORE INSERT ON order_events FOR EACH ROW
    WHEN (NEW.order_id = '${orderId}' AND NEW.type = 'order.paid') EXECUTE FUNCTION refuse_event()`);
  try {
    await expect(activities.commitStock({ orderId, paymentId: `pay-${orderId}` })).rejects.toThrow('event refused');
    expect((await prisma.order.findUniqueOrThrow({ where: { id: orderId } })).status).toBe('AWAITING_PAYMENT');
    expect(await prisma.stockMovement.count({ where: { orderId, kind: 'COMMIT' } })).toBe(0);
    expect(await prisma.payment.count({ where: { orderId } })).toBe(0);
  } finally {
    await prisma.$executeRawUnsafe('DROP TRIGGER refuse_paid ON order_events');
    await prisma.$executeRawUnsafe('DROP FUNCTION refuse_event()');
  }
  // Once it can be written, the retry commits the payment and its one event together.
  expect(await activities.commitStock({ orderId, paymentId: `pay-${orderId}` })).toMatchObject({ payment: 'APPLIED', order: { status: 'PAID' } });
  await expectExactly(orderId, ['order.placed', 'order.paid']);
});

test('GET /admin/events pages through every event once, in an order that keeps each order\'s sequence', async () => {
  const orderIds = await Promise.all([place(), place(), place()]);
  await Promise.all(orderIds.map((id) => payOrder(stack.app, id, { paymentId: `pay-${id}`, amountCents: PRICE })));
  const total = await prisma().orderEvent.count();
  // Events just written become readable once no older transaction is open.
  const seen: { id: string; type: string; orderId: string; cursor: string }[] = [];
  let after: string | null = null;
  await eventually(
    async () => {
      for (;;) {
        const page = await adminEvents({ ...(after !== null && { after }), limit: '4' });
        expect(page.status).toBe(200);
        const body = page.body as { events: (ReceivedEvent & { cursor: string })[]; nextCursor: string | null };
        seen.push(...body.events.map((e) => ({ id: e.id, type: e.type, orderId: e.data.order.orderId, cursor: e.cursor })));
        after = body.nextCursor;
        if (body.events.length < 4) return seen.length;
      }
    },
    (n) => n >= total,
  );
  expect(seen).toHaveLength(total);
  expect(new Set(seen.map((e) => e.id)).size).toBe(total);
  for (const orderId of orderIds) expect(seen.filter((e) => e.orderId === orderId).map((e) => e.type)).toEqual(['order.placed', 'order.paid']);
  // Paging on from the last cursor finds nothing new, and keeps the cursor.
  const empty = await adminEvents({ after: after ?? '' });
  expect(empty.body).toEqual({ events: [], nextCursor: after });

  expect((await request(stack.bareApp).get('/admin/events')).status).toBe(401);
  const invalidQueries: Record<string, string>[] = [{ after: 'not-a-cursor' }, { limit: '0' }, { limit: '1001' }];
  for (const query of invalidQueries) {
    const res = await adminEvents(query);
    expect(res.status).toBe(400);
    expect((res.body as { error: { code: string } }).error.code).toBe('VALIDATION_FAILED');
  }
  expect((await request(stack.app).get(`/orders/${randomUUID()}/events`)).status).toBe(404);
  expect((await request(stack.app).get('/orders/not-an-id/events')).status).toBe(404);
});

function prisma() {
  return stack.db.prisma;
}

function adminEvents(query: Record<string, string>) {
  return request(stack.app).get('/admin/events').query(query).set('Authorization', `Bearer ${TEST_ADMIN_TOKEN}`);
}

describe('an endpoint that never answers 2xx', () => {
  let failing: TestStack;
  let deadReceiver: EventReceiver;
  const metrics = createWorkerMetrics();

  beforeAll(async () => {
    deadReceiver = await startEventReceiver();
    deadReceiver.answer(() => 503);
    failing = await startStack({
      // The gauge is read once a second, after a batch: at 5 s an event stays PENDING past 0.5 s
      // for about 4 s, so a loaded host's slow ticks still leave a reading in that window (at 2 s
      // a CI run missed it: the window was ~1.4 s).
      orderEvents: { endpoints: [deadReceiver.url], maxAgeSeconds: 5, tuning: TUNING, metrics },
    });
    await addProduct(failing.db.prisma, SKU, 10, PRICE);
  });

  afterAll(async () => {
    await failing?.stop();
    await deadReceiver?.close();
  });

  test('gets each event retried until ORDER_EVENTS_MAX_AGE, then marked failed; the metrics count it', async () => {
    const placed = await placeOrder(failing.app, { customerId: 'storefront', items: [{ sku: SKU, quantity: 1 }] });
    expect(placed.status).toBe(201);
    const oldest = await eventually(() => metrics.orderEventOldestPendingAge.get(), (g) => (g.values[0]?.value ?? 0) > 0.5);
    expect(oldest.values[0]?.value).toBeGreaterThan(0.5);
    const [event] = await eventually(
      async () => (await request(failing.app).get(`/orders/${orderIdOf(placed)}/events`)).body.events as { id: string; deliveries: Record<string, unknown>[] }[],
      (events) => events[0]?.deliveries[0]?.state === 'FAILED',
    );
    expect(event?.deliveries[0]).toMatchObject({ state: 'FAILED', lastError: 'HTTP 503' });
    const attempts = deadReceiver.deliveries.filter((d) => d.event.id === event?.id);
    expect(attempts.length).toBeGreaterThanOrEqual(2);
    expect(attempts.every((d) => d.webhookId === event?.id)).toBe(true);
    const counted = Object.fromEntries((await metrics.orderEventAttempts.get()).values.map((v) => [v.labels.outcome, v.value]));
    expect(counted).toMatchObject({ failed: 1, retry: attempts.length - 1 });
    await eventually(() => metrics.orderEventOldestPendingAge.get(), (g) => g.values[0]?.value === 0);
  });
});
