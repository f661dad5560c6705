/**
 * Payments that arrive as the payment window closes. Each one either wins (200 PAID, stock
 * committed) or loses (409 ORDER_EXPIRED, refunded, stock released): never both, never
 * neither, and the HTTP answer, the order, the ledger, the payments and the refunds agree.
 * Which way each race goes depends on timing, so the test asserts only consistency; two
 * control orders, one surely won and one surely lost, run through the same checks.
 */
import { checkInventory } from '../src/db/inventory-check';
import { orderWorkflowId, type OrderView } from '../workflows/messages';
import { addProduct, stockOf } from './support/database';
import { type HttpAnswer, orderIdOf, outcomeOf, payOrder, placeOrder, statusAndBody } from './support/api-calls';
import { releasedRefunding, tracesOf } from './support/order-traces';
import { useStack } from './support/stack';
import { sleep } from './support/wait';

const RACING_ORDERS = 30;
const WINDOW_SECONDS = 2;
/** Payments land from 600 ms before to 600 ms after each order's expiresAt. */
const SPREAD_MS = 600;
const PRICE_CENTS = 700;
const STOCK = 100;

const stack = useStack();

beforeAll(async () => {
  await addProduct(stack.db.prisma, 'DEADLINE-1', STOCK, PRICE_CENTS);
});

interface Delivery {
  orderId: string;
  paymentId: string;
  answer: HttpAnswer;
}

async function placeRacer(paymentTimeoutSeconds: number): Promise<{ orderId: string; expiresAt: number }> {
  const placed = await placeOrder(stack.app, { customerId: 'racer', items: [{ sku: 'DEADLINE-1', quantity: 1 }], paymentTimeoutSeconds });
  if (placed.status !== 201) throw new Error(`placing failed: ${placed.status} ${JSON.stringify(placed.body)}`);
  return { orderId: orderIdOf(placed), expiresAt: Date.parse(placed.body.expiresAt as string) };
}

async function deliver(orderId: string, paymentId: string): Promise<Delivery> {
  return { orderId, paymentId, answer: await payOrder(stack.app, orderId, { paymentId, amountCents: PRICE_CENTS }) };
}

/** The one outcome the answer states, checked against everything the database holds. */
async function expectOneConsistentOutcome({ orderId, paymentId, answer }: Delivery): Promise<'WON' | 'LOST'> {
  const view = (await stack.client.workflow.getHandle(orderWorkflowId(orderId)).result()) as OrderView;
  const traces = await tracesOf(stack.db.prisma, orderId);
  expect(answer.status).toBe(200);
  if (outcomeOf(answer) === 'APPLIED') {
    expect(answer.body.order).toMatchObject({ orderId, status: 'PAID', paymentId });
    expect(view.status).toBe('PAID');
    expect(traces).toEqual({
      status: 'PAID',
      movements: ['RESERVE', 'COMMIT'],
      payments: [{ paymentId, amountCents: PRICE_CENTS, outcome: 'APPLIED' }],
      refunds: [],
    });
    return 'WON';
  }
  expect(answer.body).toMatchObject({ outcome: 'ORDER_EXPIRED', refund: { paymentId, status: 'REFUNDED' }, order: { orderId, status: 'EXPIRED' } });
  expect(view.status).toBe('EXPIRED');
  expect(traces).toEqual(
    releasedRefunding('EXPIRED', { paymentId, amountCents: PRICE_CENTS, outcome: 'ORDER_EXPIRED' }),
  );
  return 'LOST';
}

/**
 * Workflow task failures other than the expected kind: a signal or update that arrives
 * while the workflow completes makes the server refuse that completion (UNHANDLED_COMMAND,
 * UNHANDLED_UPDATE) and the workflow runs on. Anything else (nondeterminism, a bug in the
 * workflow code) shows up here.
 */
async function unexpectedWorkflowTaskFailures(): Promise<{ workflowId: string; cause: number; failure: unknown }[]> {
  const expectedCauses = new Set([1 /* UNHANDLED_COMMAND */, 31 /* UNHANDLED_UPDATE */]);
  const failures: { workflowId: string; cause: number; failure: unknown }[] = [];
  for await (const { workflowId, runId } of stack.client.workflow.list()) {
    const history = await stack.client.workflow.getHandle(workflowId, runId).fetchHistory();
    for (const event of history.events ?? []) {
      const failed = event.workflowTaskFailedEventAttributes;
      const cause = Number(failed?.cause ?? 0);
      if (failed && !expectedCauses.has(cause)) failures.push({ workflowId, cause, failure: failed.failure?.message });
    }
  }
  return failures;
}

test(`${RACING_ORDERS} payments delivered around their orders' deadlines each have exactly one outcome, the same everywhere and on redelivery`, async () => {
  const surelyWon = await placeRacer(900);
  const surelyLost = await placeRacer(1);

  const racing = Array.from({ length: RACING_ORDERS }, async (_, i) => {
    const { orderId, expiresAt } = await placeRacer(WINDOW_SECONDS);
    const offsetMs = -SPREAD_MS + Math.round((2 * SPREAD_MS * i) / (RACING_ORDERS - 1));
    await sleep(expiresAt + offsetMs - Date.now());
    return deliver(orderId, `pay-race-${i}`);
  });
  const won = deliver(surelyWon.orderId, 'pay-control-won');
  const lost = (async () => {
    await stack.client.workflow.getHandle(orderWorkflowId(surelyLost.orderId)).result();
    return deliver(surelyLost.orderId, 'pay-control-lost');
  })();
  const deliveries = await Promise.all([...racing, won, lost]);

  const outcomes: string[] = [];
  for (const delivery of deliveries) outcomes.push(await expectOneConsistentOutcome(delivery));
  expect(outcomes.slice(-2)).toEqual(['WON', 'LOST']);

  // Every payment again, all at once: the same answers, and nothing moves.
  const redelivered = await Promise.all(deliveries.map((d) => deliver(d.orderId, d.paymentId)));
  redelivered.forEach((again, i) => expect(statusAndBody(again.answer)).toEqual(deliveries[i] && statusAndBody(deliveries[i].answer)));

  const sold = outcomes.filter((o) => o === 'WON').length;
  expect(await stockOf(stack.db.prisma, 'DEADLINE-1')).toEqual({ available: STOCK - sold, reserved: 0, sold });
  expect(await stack.db.prisma.refund.count()).toBe(outcomes.length - sold);
  expect(await checkInventory(stack.db.prisma)).toEqual({ ok: true, violations: [] });
  expect(await unexpectedWorkflowTaskFailures()).toEqual([]);
  console.info(`deadline race: ${sold - 1} of ${RACING_ORDERS} racing payments won, ${RACING_ORDERS - sold + 1} lost`);
}, 180_000);
