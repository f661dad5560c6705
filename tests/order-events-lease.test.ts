/**
 * The dispatcher leases a delivery instead of holding a transaction across its POST (issue 30):
 * on the real stack with real receivers (every delivery verified by `standardwebhooks`), an
 * endpoint that hangs holds back neither another endpoint nor GET /admin/events, no dispatcher
 * transaction is open while a POST runs, a lease that runs out or is given back lets another
 * dispatcher send the same webhook-id, and dispatchers racing keep each order's events in order.
 */
import request from 'supertest';
import { claimDueDeliveries, markAttemptFailed, type ClaimedDelivery } from '../src/db/order-event-deliveries';
import type { PrismaClient } from '../prisma/generated/client';
import { createPrismaClient } from '../src/db/client';
import { checkInventory } from '../src/db/inventory-check';
import { createWorkerMetrics, type WorkerMetrics } from '../src/metrics';
import { startEventDispatcher, type DispatcherTuning, type EventDispatcher } from '../src/order-events-dispatcher';
import { addProduct, idleInTransaction } from './support/database';
import { startEventReceiver, type EventReceiver, type ReceivedEvent } from './support/event-receiver';
import { cancelOrder, extendOrder, orderIdOf, payOrder, placeOrder } from './support/api-calls';
import { startStack, TEST_ADMIN_TOKEN, TEST_ORDER_EVENTS_SECRET, type TestStack } from './support/stack';
import { eventually, sleep } from './support/wait';

const SKU = 'LEASE-1';
const PRICE = 900;
/** Retries come fast here so the tests need not wait minutes; the rule is the same. */
const TUNING: Partial<DispatcherTuning> = { intervalMs: 50, firstRetryDelaySeconds: 0.2, maxRetryDelaySeconds: 0.5 };

let slow: EventReceiver;
let fast: EventReceiver;
let stack: TestStack;
const endpoints = () => [slow.url, fast.url];

beforeAll(async () => {
  [slow, fast] = await Promise.all([startEventReceiver(), startEventReceiver()]);
  // Events get a delivery to both endpoints; each test runs the dispatchers it needs.
  stack = await startStack({ orderEvents: { endpoints: endpoints(), dispatch: false } });
  await addProduct(stack.db.prisma, SKU, 10_000, PRICE);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await Promise.all([slow?.close(), fast?.close()]);
});

beforeEach(() => {
  slow.answer(() => 204);
  fast.answer(() => 204);
});

afterEach(async () => {
  expect([...slow.rejected, ...fast.rejected]).toEqual([]);
  expect(await checkInventory(stack.db.prisma)).toEqual({ ok: true, violations: [] });
});

interface RunningDispatcher {
  dispatcher: EventDispatcher;
  prisma: PrismaClient;
  metrics: WorkerMetrics;
  stop(): Promise<void>;
}

const running: RunningDispatcher[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((d) => d.stop()));
});

/** A database client whose sessions pg_stat_activity shows under `name`. */
function clientNamed(name: string, poolSize = 5): PrismaClient {
  const url = new URL(stack.db.url);
  url.searchParams.set('application_name', name);
  return createPrismaClient(url.toString(), poolSize);
}

/** A dispatcher as a worker runs it, on a database client of its own named `name`. */
function startDispatcher(name: string, tuning: Partial<DispatcherTuning> = TUNING): RunningDispatcher {
  const prisma = clientNamed(name);
  const metrics = createWorkerMetrics();
  const dispatcher = startEventDispatcher({
    prisma,
    config: { endpoints: endpoints(), secret: TEST_ORDER_EVENTS_SECRET, maxAgeSeconds: 3_600 },
    tuning,
    metrics,
  });
  let stopped = false;
  const handle: RunningDispatcher = {
    dispatcher,
    prisma,
    metrics,
    async stop() {
      if (stopped) return;
      stopped = true;
      await dispatcher.stop();
      await prisma.$disconnect();
    },
  };
  running.push(handle);
  return handle;
}

async function place(): Promise<string> {
  const placed = await placeOrder(stack.app, { customerId: 'lease', items: [{ sku: SKU, quantity: 1 }] });
  if (placed.status !== 201) throw new Error(`not held: ${placed.status} ${JSON.stringify(placed.body)}`);
  return orderIdOf(placed);
}

async function extend(orderId: string): Promise<void> {
  const res = await extendOrder(stack.app, orderId, { seconds: 60 });
  expect(res.status).toBe(200);
}

/** The ids of the events written for these orders, in each order's sequence. */
async function eventIdsOf(orderIds: string[]): Promise<string[]> {
  const rows = await stack.db.prisma.orderEvent.findMany({ where: { orderId: { in: orderIds } }, orderBy: [{ orderId: 'asc' }, { seq: 'asc' }] });
  return rows.map((r) => r.id);
}

/** Every event GET /admin/events shows, paging from the start. */
async function feed(): Promise<string[]> {
  const ids: string[] = [];
  let after: string | undefined;
  for (;;) {
    const res = await request(stack.app)
      .get('/admin/events')
      .query({ limit: '100', ...(after !== undefined && { after }) })
      .set('Authorization', `Bearer ${TEST_ADMIN_TOKEN}`);
    expect(res.status).toBe(200);
    const body = res.body as { events: { id: string }[]; nextCursor: string | null };
    ids.push(...body.events.map((e) => e.id));
    if (body.events.length < 100) return ids;
    after = body.nextCursor ?? undefined;
  }
}


async function deliveriesTo(endpoint: string, orderIds: string[]) {
  return stack.db.prisma.orderEventDelivery.findMany({ where: { endpoint, orderId: { in: orderIds } }, orderBy: [{ orderId: 'asc' }, { seq: 'asc' }] });
}

/** Waits until every delivery of these orders to `endpoint` is recorded DELIVERED (just after the 2xx was answered). */
async function allDelivered(endpoint: string, orderIds: string[]): Promise<void> {
  await eventually(() => deliveriesTo(endpoint, orderIds), (rows) => rows.length > 0 && rows.every((d) => d.state === 'DELIVERED'), 10_000);
}

test('an endpoint that hangs holds back neither another endpoint nor GET /admin/events, and no dispatcher transaction is open while it hangs', async () => {
  slow.answer(() => 'hang');
  // Two sending slots for the slow endpoint, so it fills them; a POST outlives the test.
  const dispatcher = startDispatcher('dispatcher-hang', { ...TUNING, maxInFlightPerEndpoint: 2, requestTimeoutMs: 120_000 });
  const first = await place();
  await eventually(() => Promise.resolve(slow.hangingNow()), (n) => n >= 1);

  // Written while the slow endpoint holds a POST open.
  const later = await Promise.all([place(), place(), place()]);
  const [toPay, toCancel, onlyPlaced] = later as [string, string, string];
  await payOrder(stack.app, toPay, { paymentId: `pay-${toPay}`, amountCents: PRICE });
  await cancelOrder(stack.app, toCancel);
  const orders = [first, ...later];
  await Promise.all([
    fast.waitForTypes(first, ['order.placed']),
    fast.waitForTypes(toPay, ['order.placed', 'order.paid']),
    fast.waitForTypes(toCancel, ['order.placed', 'order.cancelled']),
    fast.waitForTypes(onlyPlaced, ['order.placed']),
  ]);
  // The feed shows every event, also those written after the slow POSTs began.
  const written = await eventIdsOf(orders);
  const shown = await eventually(feed, (ids) => written.every((id) => ids.includes(id)), 10_000);
  expect(shown).toEqual(expect.arrayContaining(written));

  // All of that happened while the slow endpoint still held its POSTs open, unanswered.
  let idle = 0;
  for (let sample = 0; sample < 20; sample++) {
    idle += await idleInTransaction(stack.db.prisma, 'dispatcher-hang');
    await sleep(50);
  }
  expect(idle).toBe(0);
  expect(slow.hangingNow()).toBe(2);
  expect(slow.deliveries.filter((d) => d.answered === 0)).toHaveLength(2);
  const toSlow = await deliveriesTo(slow.url, orders);
  // Two leased (attempt 1, nothing recorded yet); every other one still waiting for a slot.
  expect(toSlow.filter((d) => d.attempts === 1).map((d) => [d.state, d.lastError, d.deliveredAt])).toEqual([
    ['PENDING', null, null],
    ['PENDING', null, null],
  ]);
  expect(toSlow.filter((d) => d.attempts !== 1).every((d) => d.state === 'PENDING' && d.attempts === 0)).toBe(true);
  await allDelivered(fast.url, orders);

  // Stopped mid-delivery, the dispatcher gives its leases back at once: the next one sends the
  // same events again, with the same webhook-ids, and everything else in order.
  const cutOff = slow.deliveries.filter((d) => d.answered === 0).map((d) => d.webhookId);
  await dispatcher.stop();
  await eventually(() => Promise.resolve(slow.hangingNow()), (n) => n === 0, 5_000);
  const released = (await deliveriesTo(slow.url, orders)).filter((d) => d.attempts === 1);
  expect(released.map((d) => [d.state, d.lastError])).toEqual([
    ['PENDING', 'not answered before the dispatcher stopped'],
    ['PENDING', 'not answered before the dispatcher stopped'],
  ]);
  slow.answer(() => 204);
  startDispatcher('dispatcher-next');
  await slow.waitForTypes(toPay, ['order.placed', 'order.paid']);
  await slow.waitForTypes(toCancel, ['order.placed', 'order.cancelled']);
  for (const orderId of [first, onlyPlaced]) await slow.waitForTypes(orderId, ['order.placed']);
  for (const id of cutOff) {
    expect(slow.deliveries.filter((d) => d.event.id === id).map((d) => [d.webhookId, d.answered])).toEqual([
      [id, 0],
      [id, 204],
    ]);
  }
  await allDelivered(slow.url, orders);
}, 180_000);

test('a lease that runs out (its dispatcher gone quiet) lets another dispatcher send the same webhook-id; the late outcome of the first changes nothing', async () => {
  const orderId = await place();
  const [eventId] = await eventIdsOf([orderId]);
  // A dispatcher that claims and then goes quiet (frozen, cut off): the claim is the real one.
  const quiet = clientNamed('dispatcher-quiet', 1);
  try {
    const leased = await eventually(
      () => claimDueDeliveries(quiet, [{ endpoint: slow.url, limit: 10 }], 1.5),
      (claimed) => claimed.some((d) => d.eventId === eventId),
    );
    const mine = leased.find((d) => d.eventId === eventId);
    expect(mine).toMatchObject({ endpoint: slow.url, attempts: 1, type: 'order.placed' });
    // Leased: no other claim gets it (nor the order's later events) while the lease lasts.
    await payOrder(stack.app, orderId, { paymentId: `pay-${orderId}`, amountCents: PRICE });
    expect((await claimDueDeliveries(stack.db.prisma, [{ endpoint: slow.url, limit: 100 }], 60)).filter((d) => d.orderId === orderId)).toEqual([]);

    slow.answer(() => 204);
    fast.answer(() => 204);
    startDispatcher('dispatcher-after-lease');
    const received = await slow.waitForTypes(orderId, ['order.placed', 'order.paid']);
    expect(received.map((e) => e.id)).toEqual(await eventIdsOf([orderId]));
    expect(slow.deliveries.filter((d) => d.event.id === eventId).map((d) => [d.webhookId, d.answered])).toEqual([[eventId, 204]]);

    // The first dispatcher's failure, recorded late under its lost lease, is ignored.
    expect(await markAttemptFailed(quiet, mine!, 'HTTP 503', 0, 3_600)).toBe('STALE');
    await allDelivered(slow.url, [orderId]);
    const [delivery] = await stack.db.prisma.orderEventDelivery.findMany({ where: { eventId, endpoint: slow.url } });
    expect(delivery).toMatchObject({ state: 'DELIVERED', attempts: 2, lastError: null });
  } finally {
    await quiet.$disconnect();
  }
  await fast.waitForTypes(orderId, ['order.placed', 'order.paid']);
}, 120_000);

/** Long enough for the checks below on a loaded host; the drain then waits it out. */
const LEASE_SECONDS = 10;

test('concurrent claims never lease one delivery twice, respect each endpoint\'s limit, and leave an order\'s later events until its earlier ones are done', async () => {
  const orders = await Promise.all([place(), place(), place(), place(), place(), place()]);
  await Promise.all(orders.map((id) => payOrder(stack.app, id, { paymentId: `pay-${id}`, amountCents: PRICE })));
  const [a, b] = [clientNamed('claim-a', 1), clientNamed('claim-b', 1)];
  try {
    const mineOnly = (claimed: ClaimedDelivery[]) => claimed.filter((d) => orders.includes(d.orderId));
    const [byA, byB] = await Promise.all([
      claimDueDeliveries(a, [{ endpoint: slow.url, limit: 100 }, { endpoint: fast.url, limit: 2 }], LEASE_SECONDS),
      claimDueDeliveries(b, [{ endpoint: slow.url, limit: 100 }, { endpoint: fast.url, limit: 2 }], LEASE_SECONDS),
    ]);
    const claimed = [...mineOnly(byA), ...mineOnly(byB)];
    const keys = claimed.map((d) => `${d.eventId} ${d.endpoint}`);
    expect(new Set(keys).size).toBe(keys.length);
    // Each order's first event only: its order.paid waits behind the leased order.placed.
    expect(claimed.every((d) => d.type === 'order.placed')).toBe(true);
    expect(claimed.filter((d) => d.endpoint === slow.url).map((d) => d.orderId).sort()).toEqual([...orders].sort());
    expect(mineOnly(byA).filter((d) => d.endpoint === fast.url).length).toBeLessThanOrEqual(2);
    expect(mineOnly(byB).filter((d) => d.endpoint === fast.url).length).toBeLessThanOrEqual(2);
    // Leased: nothing more of these orders is due for the slow endpoint until the leases end.
    expect(mineOnly(await claimDueDeliveries(a, [{ endpoint: slow.url, limit: 100 }], LEASE_SECONDS))).toEqual([]);
  } finally {
    await Promise.all([a.$disconnect(), b.$disconnect()]);
  }
  // Once the leases end, a dispatcher sends everything, in order.
  startDispatcher('dispatcher-drain');
  for (const orderId of orders) {
    await slow.waitForTypes(orderId, ['order.placed', 'order.paid']);
    await fast.waitForTypes(orderId, ['order.placed', 'order.paid']);
  }
}, 120_000);

test('two dispatchers racing, with failures and slow answers, deliver every event of an order in order, each under one webhook-id', async () => {
  const decide = (): { status: number; afterMs: number } => ({ status: Math.random() < 0.3 ? 500 : 204, afterMs: Math.floor(Math.random() * 40) });
  slow.answer(decide);
  fast.answer(decide);
  const [one, two] = [startDispatcher('dispatcher-one'), startDispatcher('dispatcher-two')];
  const orders = await Promise.all(Array.from({ length: 8 }, () => place()));
  await Promise.all(
    orders.map(async (orderId, index) => {
      await extend(orderId);
      await extend(orderId);
      if (index % 2 === 0) await payOrder(stack.app, orderId, { paymentId: `pay-${orderId}`, amountCents: PRICE });
      else await cancelOrder(stack.app, orderId);
    }),
  );
  const expected = (index: number) => ['order.placed', 'order.extended', 'order.extended', index % 2 === 0 ? 'order.paid' : 'order.cancelled'];
  for (const receiver of [slow, fast]) {
    for (const [index, orderId] of orders.entries()) {
      const received = await receiver.waitForTypes(orderId, expected(index), 60_000);
      expect(received.map((e) => e.type)).toEqual(expected(index));
      expect(received.map((e) => e.id)).toEqual(await eventIdsOf([orderId]));
      expectDeliveredInOrder(receiver, received);
    }
  }
  for (const d of [...slow.deliveries, ...fast.deliveries]) expect(d.webhookId).toBe(d.event.id);
  // Every POST is one recorded attempt: no lease was taken twice.
  await Promise.all([allDelivered(slow.url, orders), allDelivered(fast.url, orders)]);
  const rows = await stack.db.prisma.orderEventDelivery.findMany({ where: { orderId: { in: orders } } });
  for (const row of rows) {
    const receiver = row.endpoint === slow.url ? slow : fast;
    expect(row.attempts).toBe(receiver.deliveries.filter((d) => d.event.id === row.eventId).length);
  }
  // Both took part.
  const delivered = async (m: WorkerMetrics) => (await m.orderEventAttempts.get()).values.find((v) => v.labels.outcome === 'delivered')?.value ?? 0;
  expect(await delivered(one.metrics)).toBeGreaterThan(0);
  expect(await delivered(two.metrics)).toBeGreaterThan(0);
}, 240_000);

/** No attempt at an order's event reached the endpoint before the event before it was answered 2xx. */
function expectDeliveredInOrder(receiver: EventReceiver, events: ReceivedEvent[]): void {
  for (const [index, event] of events.entries()) {
    const previous = events[index - 1];
    if (previous === undefined) continue;
    const previousAccepted = receiver.deliveries.find((d) => d.event.id === previous.id && d.answered >= 200 && d.answered < 300);
    const firstAttempt = receiver.deliveries.find((d) => d.event.id === event.id);
    expect(firstAttempt?.receivedAt).toBeGreaterThanOrEqual(previousAccepted?.answeredAt ?? Infinity);
  }
}
