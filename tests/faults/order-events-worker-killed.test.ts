/**
 * Fault: the worker delivering an order event is SIGKILLed while the receiver has the request
 * but has not answered. Its claim was a row lock in an open transaction, so it goes with the
 * killed connection; the next worker sends the same event again, with the same webhook-id, and
 * nothing is lost or sent out of order.
 */
import { checkInventory } from '../../src/db/inventory-check';
import { addProduct } from '../support/database';
import { startEventReceiver, type EventReceiver } from '../support/event-receiver';
import { useFaultStack } from '../support/fault-stack';
import { TEST_ORDER_EVENTS_SECRET } from '../support/stack';
import { eventually } from '../support/wait';

let receiver: EventReceiver;
const stack = useFaultStack('events-killed');

beforeAll(async () => {
  receiver = await startEventReceiver();
});

afterAll(async () => {
  await receiver?.close();
});

test('an event whose delivery was cut off by SIGKILL is redelivered with the same webhook-id by the next worker', async () => {
  const { db, scenario } = stack;
  const env = { ORDER_EVENTS_URL: receiver.url, ORDER_EVENTS_SECRET: TEST_ORDER_EVENTS_SECRET };
  await addProduct(db.prisma, 'EK-1', 10, 800);
  receiver.answer(() => 'hang');
  const doomed = await scenario.startWorker('doomed-worker', { env });
  const order = await scenario.place([{ sku: 'EK-1', quantity: 2 }], 900);

  // The receiver holds the delivery open; the worker's transaction holds the claim.
  await eventually(() => Promise.resolve(receiver.deliveries.length), (n) => n >= 1);
  const [cutOff] = receiver.deliveries;
  expect(cutOff?.event).toMatchObject({ type: 'order.placed', data: { order: { orderId: order.orderId, status: 'AWAITING_PAYMENT' } } });
  await doomed.kill();

  receiver.answer(() => 204);
  await scenario.startWorker('next-worker', { env });
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
  const written = await db.prisma.orderEvent.findMany({ where: { orderId: order.orderId }, orderBy: { seq: 'asc' }, include: { deliveries: true } });
  expect(written.map((e) => [e.type, e.deliveries.map((d) => d.state)])).toEqual([
    ['order.placed', ['DELIVERED']],
    ['order.paid', ['DELIVERED']],
  ]);
  expect(await checkInventory(db.prisma)).toEqual({ ok: true, violations: [] });
});
