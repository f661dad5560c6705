/**
 * Fault: the worker delivering an order event is SIGKILLed, or frozen (SIGSTOP), while the
 * receiver has the request but has not answered. Its claim is a lease, not a transaction: no
 * transaction of the worker is open while the POST hangs, and once the lease runs out the next
 * worker sends the same event again, with the same webhook-id; a frozen worker that thaws finds
 * its lease gone and changes nothing. Nothing is lost or sent out of order.
 */
import { checkInventory } from '../../src/db/inventory-check';
import { addProduct, idleInTransaction } from '../support/database';
import { startEventReceiver, type EventReceiver } from '../support/event-receiver';
import { useFaultStack } from '../support/fault-stack';
import { TEST_ORDER_EVENTS_SECRET } from '../support/stack';
import { eventually, sleep } from '../support/wait';

let receiver: EventReceiver;
const stack = useFaultStack('events-killed');

beforeAll(async () => {
  receiver = await startEventReceiver();
});

afterAll(async () => {
  await receiver?.close();
});

afterEach(async () => {
  await stack.scenario.stopWorkers();
});

const env = () => ({ ORDER_EVENTS_URL: receiver.url, ORDER_EVENTS_SECRET: TEST_ORDER_EVENTS_SECRET });


async function deliveryStates(orderId: string) {
  const written = await stack.db.prisma.orderEvent.findMany({ where: { orderId }, orderBy: { seq: 'asc' }, include: { deliveries: true } });
  return written.map((e) => [e.type, e.deliveries.map((d) => d.state)]);
}

test('an event whose delivery was cut off by SIGKILL is redelivered with the same webhook-id by the next worker', async () => {
  const { db, scenario } = stack;
  await addProduct(db.prisma, 'EK-1', 10, 800);
  receiver.answer(() => 'hang');
  const doomed = await scenario.startWorker('doomed-worker', { env: env() });
  const order = await scenario.place([{ sku: 'EK-1', quantity: 2 }], 900);

  // The receiver holds the delivery open; the worker holds a lease, and no transaction.
  await eventually(() => Promise.resolve(receiver.deliveries.length), (n) => n >= 1);
  const [cutOff] = receiver.deliveries;
  expect(cutOff?.event).toMatchObject({ type: 'order.placed', data: { order: { orderId: order.orderId, status: 'AWAITING_PAYMENT' } } });
  let idle = 0;
  for (let sample = 0; sample < 10; sample++) {
    idle += await idleInTransaction(stack.db.prisma, 'doomed-worker');
    await sleep(100);
  }
  expect(idle).toBe(0);
  expect(receiver.hangingNow()).toBe(1);
  await doomed.kill();

  receiver.answer(() => 204);
  await scenario.startWorker('next-worker', { env: env() });
  await scenario.checkout.pay(order.orderId, { paymentId: 'pay-events-killed', amountCents: 1600 });
  const received = await receiver.waitForTypes(order.orderId, ['order.placed', 'order.paid'], 60_000);

  expect(received.map((e) => e.type)).toEqual(['order.placed', 'order.paid']);
  // The same event, the same id, sent twice: once cut off, once answered.
  const placedDeliveries = receiver.deliveries.filter((d) => d.event.id === cutOff?.event.id);
  expect(placedDeliveries.map((d) => [d.webhookId, d.answered])).toEqual([
    [cutOff?.event.id, 0],
    [cutOff?.event.id, 204],
  ]);
  expect(receiver.rejected).toEqual([]);
  // Recorded just after the 2xx was answered.
  const states = await eventually(() => deliveryStates(order.orderId), (st) => JSON.stringify(st).split('DELIVERED').length === 3, 10_000);
  expect(states).toEqual([
    ['order.placed', ['DELIVERED']],
    ['order.paid', ['DELIVERED']],
  ]);
  expect(await checkInventory(db.prisma)).toEqual({ ok: true, violations: [] });
}, 180_000);

test('a worker frozen (SIGSTOP) mid-delivery loses its lease to the next worker, which sends the same webhook-id; thawed, it changes nothing', async () => {
  const { db, scenario } = stack;
  await addProduct(db.prisma, 'EK-2', 10, 800);
  receiver.answer(() => 'hang');
  const frozen = await scenario.startWorker('frozen-worker', { env: env() });
  const order = await scenario.place([{ sku: 'EK-2', quantity: 1 }], 900);
  await eventually(
    () => Promise.resolve(receiver.deliveries.filter((d) => d.event.data.order.orderId === order.orderId)),
    (d) => d.length >= 1,
  );
  const [cutOff] = receiver.deliveries.filter((d) => d.event.data.order.orderId === order.orderId);
  frozen.pause();

  receiver.answer(() => 204);
  await scenario.startWorker('thawed-after', { env: env() });
  // Once the frozen worker's lease has run out, the next one sends the event again.
  const [placed] = await receiver.waitForTypes(order.orderId, ['order.placed'], 60_000);
  expect(placed?.id).toBe(cutOff?.event.id);
  const attempts = () => receiver.deliveries.filter((d) => d.event.id === cutOff?.event.id).map((d) => [d.webhookId, d.answered]);
  expect(attempts()).toEqual([
    [cutOff?.event.id, 0],
    [cutOff?.event.id, 204],
  ]);

  // Thawed, the frozen worker's POST times out and its failure is recorded under a lost lease: ignored.
  frozen.resume();
  await eventually(() => Promise.resolve(receiver.hangingNow()), (n) => n === 0, 30_000);
  await sleep(1_000);
  expect(await deliveryStates(order.orderId)).toEqual([['order.placed', ['DELIVERED']]]);
  const [delivery] = await db.prisma.orderEventDelivery.findMany({ where: { eventId: cutOff?.event.id ?? '' } });
  expect(delivery).toMatchObject({ state: 'DELIVERED', attempts: 2, lastError: null });
  expect(attempts()).toHaveLength(2);

  // And the order's next event follows, in order, once.
  await scenario.checkout.pay(order.orderId, { paymentId: 'pay-events-frozen', amountCents: 800 });
  const received = await receiver.waitForTypes(order.orderId, ['order.placed', 'order.paid'], 60_000);
  expect(received.map((e) => e.type)).toEqual(['order.placed', 'order.paid']);
  expect(receiver.rejected).toEqual([]);
  expect(await checkInventory(db.prisma)).toEqual({ ok: true, violations: [] });
}, 180_000);
