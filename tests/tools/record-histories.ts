/**
 * `npm run record-histories`: runs every path of an order on a fresh dev server, with the
 * real worker and a database of its own, and saves each workflow's history as JSON under
 * tests/histories/<scenario>.json. tests/replay.test.ts replays them all against the
 * current workflow code. Re-record only after a change that is meant to be compatible
 * (see docs/development.md, "Changing the workflow safely"), and keep the older fixtures beside them.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { historyToJSON, type History } from '@temporalio/common/lib/proto-utils';
import { tsToMs } from '@temporalio/common/lib/time';
import { createLocalPaymentProvider, type PaymentProvider } from '../../activities/payment-provider';
import { reclaimDueOrders } from '../../src/reclaim';
import { createOrderWorker } from '../../src/worker';
import globalSetup from '../support/global-setup';
import '../support/quiet-runtime';
import { addProduct, createTestDatabase, type TestDatabase } from '../support/database';
import { cancelOrder, deliverPayment, errorCode, extendOrder, type HttpAnswer, orderIdOf, payOrder, placeOrder } from '../support/api-calls';
import { createTestApi, startDevServer, workflowBundle } from '../support/stack';
import { eventually, sleep } from '../support/wait';
import {
  cancelOrderSignal,
  getOrderQuery,
  latePaymentWorkflowId,
  ORDER_WORKFLOW_TYPE,
  orderWorkflowId,
  paymentReceivedSignal,
  type OrderView,
  type OrderWorkflowInput,
} from '../../workflows/messages';

export const HISTORIES_DIR = path.resolve(__dirname, '../histories');

/** Every recorded path; each names one workflow history. */
export const SCENARIOS = [
  'paid',
  'expired',
  'cancelled',
  'rejected',
  'wrong-amount',
  'duplicate-payment',
  'second-payment',
  'late-payment',
  'late-payment-after-close',
  'payment-at-deadline-won',
  'payment-at-deadline-lost',
  'payment-while-pending',
  'cancel-while-pending',
  'cancel-requested',
  'payment-lost-to-reclaim',
  'timer-finds-reclaimed',
  'cancel-lost-to-deadline',
  'late-payment-terminated',
  'processing-then-paid',
  'processing-failed-then-expired',
  'processing-hold-ran-out',
  'extended-then-paid',
  'extended-then-expired',
  'extension-lost-to-deadline',
] as const;
export type Scenario = (typeof SCENARIOS)[number];

const SKU = 'REPLAY-1';
const SCARCE_SKU = 'REPLAY-SCARCE';
const PRICE_CENTS = 1500;
/** PAYMENT_PROCESSING_HOLD_SECONDS while recording: short, so a hold runs out in the recording. */
const PROCESSING_HOLD_SECONDS = 3;
/** Refunds of payments whose id starts with this wait until the gate opens, to keep a workflow open. */
const HELD_REFUND_PREFIX = 'held-';

interface Recorder {
  db: TestDatabase;
  app: ReturnType<typeof createTestApi>['app'];
  temporal: Client;
  taskQueue: string;
  openRefundGate(): void;
  /** Scenario → the workflow id whose history is saved for it at the end. */
  recorded: Map<Scenario, string>;
}

async function main(): Promise<void> {
  await globalSetup();
  const [env, db] = await Promise.all([startDevServer(), createTestDatabase()]);
  const taskQueue = `record-histories-${randomUUID()}`;
  let openRefundGate!: () => void;
  const refundGate = new Promise<void>((resolve) => (openRefundGate = resolve));
  const local = createLocalPaymentProvider();
  const payments: PaymentProvider = {
    async refund(request) {
      if (request.paymentId.startsWith(HELD_REFUND_PREFIX)) await refundGate;
      return local.refund(request);
    },
  };
  const worker = await createOrderWorker({
    connection: env.nativeConnection,
    namespace: env.namespace ?? 'default',
    taskQueue,
    prisma: db.prisma,
    payments,
    workflowBundle: workflowBundle(),
  });
  const running = worker.run();
  try {
    await addProduct(db.prisma, SKU, 1000, PRICE_CENTS);
    await addProduct(db.prisma, SCARCE_SKU, 1, PRICE_CENTS);
    const { app } = createTestApi({
      prisma: db.prisma,
      temporal: env.client,
      taskQueue,
      defaultPaymentTimeoutSeconds: 900,
      paymentProcessingHoldSeconds: PROCESSING_HOLD_SECONDS,
    });
    const recorder: Recorder = { db, app, temporal: env.client, taskQueue, openRefundGate, recorded: new Map() };

    const runs = [
      recordSimplePaths,
      recordPaymentRedeliveries,
      recordLatePayments,
      recordDeadlineRaces,
      recordEarlySignals,
      recordDatabaseDecisions,
      recordHoldsThatFollowPayments,
    ];
    for (const run of runs) {
      await run(recorder);
    }
    mkdirSync(HISTORIES_DIR, { recursive: true });
    for (const scenario of SCENARIOS) {
      const workflowId = recorder.recorded.get(scenario);
      if (!workflowId) throw new Error(`scenario ${scenario} was not recorded`);
      const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
      writeFileSync(path.join(HISTORIES_DIR, `${scenario}.json`), `${historyToJSON(history)}\n`);
      console.log(`recorded ${scenario} (${history.events?.length ?? 0} events)`);
    }
  } finally {
    openRefundGate();
    worker.shutdown();
    await running;
    await env.teardown();
    await db.drop();
  }
}

const items = (quantity = 1) => [{ sku: SKU, quantity }];

async function place(r: Recorder, paymentTimeoutSeconds = 900, quantity = 1): Promise<string> {
  return orderIdOf(await placeOrder(r.app, { customerId: 'recorder', items: items(quantity), paymentTimeoutSeconds }));
}

async function pay(r: Recorder, orderId: string, paymentId: string, amountCents = PRICE_CENTS): Promise<HttpAnswer> {
  return payOrder(r.app, orderId, { paymentId, amountCents });
}

async function finalView(r: Recorder, workflowId: string): Promise<OrderView> {
  return (await r.temporal.workflow.getHandle(workflowId).result()) as OrderView;
}

/** Records the order's workflow once it has closed in the expected state. */
async function record(r: Recorder, scenario: Scenario, orderId: string, expected: OrderView['status']): Promise<void> {
  const view = await finalView(r, orderWorkflowId(orderId));
  if (view.status !== expected) throw new Error(`${scenario}: the order ended ${view.status}, not ${expected}`);
  r.recorded.set(scenario, orderWorkflowId(orderId));
}

/** `code` is the error code of a refusal, or the outcome of a payment delivery (answered 200). */
function expectAnswer(scenario: string, answer: HttpAnswer, status: number, code?: string): void {
  if (answer.status !== status || (code !== undefined && (errorCode(answer) ?? answer.body.outcome) !== code)) {
    throw new Error(`${scenario}: expected ${status} ${code ?? ''}, got ${answer.status} ${JSON.stringify(answer.body)}`);
  }
}

async function recordSimplePaths(r: Recorder): Promise<void> {
  const paid = await place(r);
  expectAnswer('paid', await pay(r, paid, 'pay-paid'), 200);
  await record(r, 'paid', paid, 'PAID');

  await record(r, 'expired', await place(r, 1), 'EXPIRED');

  const cancelled = await place(r);
  expectAnswer('cancelled', await cancelOrder(r.app, cancelled), 200);
  await record(r, 'cancelled', cancelled, 'CANCELLED');

  // The API refuses what the database shows sold out without a workflow (409 OUT_OF_STOCK); a
  // rejected workflow is one whose hold found the stock gone after the order was admitted,
  // started here as the API starts an admitted order.
  const refused = await placeOrder(r.app, { customerId: 'recorder', items: [...items(), { sku: SCARCE_SKU, quantity: 2 }] });
  expectAnswer('rejected', refused, 409, 'OUT_OF_STOCK');
  const rejected: OrderWorkflowInput = {
    orderId: randomUUID(),
    customerId: 'recorder',
    items: [...items(), { sku: SCARCE_SKU, quantity: 2 }],
    paymentTimeoutSeconds: 900,
    currency: 'eur',
  };
  await r.temporal.workflow.start(ORDER_WORKFLOW_TYPE, { workflowId: orderWorkflowId(rejected.orderId), taskQueue: r.taskQueue, args: [rejected] });
  await record(r, 'rejected', rejected.orderId, 'REJECTED');

  const wrongAmount = await place(r);
  expectAnswer('wrong-amount', await pay(r, wrongAmount, 'pay-short', PRICE_CENTS - 1), 200, 'AMOUNT_MISMATCH');
  expectAnswer('wrong-amount', await pay(r, wrongAmount, 'pay-right'), 200);
  await record(r, 'wrong-amount', wrongAmount, 'PAID');

  const requested = await place(r);
  await r.temporal.workflow.getHandle(orderWorkflowId(requested)).cancel();
  await record(r, 'cancel-requested', requested, 'CANCELLED');
}

async function recordPaymentRedeliveries(r: Recorder): Promise<void> {
  const duplicated = await place(r);
  const answers = await Promise.all([1, 2, 3].map(() => pay(r, duplicated, 'pay-dup')));
  for (const answer of answers) expectAnswer('duplicate-payment', answer, 200);
  await record(r, 'duplicate-payment', duplicated, 'PAID');
  // After the order's workflow closed, a redelivery is answered from PostgreSQL: no workflow runs for it.
  expectAnswer('duplicate-payment', await pay(r, duplicated, 'pay-dup'), 200);

  // Two payments sent together: the second reaches the open workflow and is refunded there.
  for (let attempt = 1; ; attempt++) {
    const orderId = await place(r);
    const answers = await Promise.all([pay(r, orderId, 'pay-first'), pay(r, orderId, 'pay-second')]);
    // Either may reach the workflow first; the other is refused.
    const [won, refused] = answers[0].body.outcome === 'APPLIED' ? answers : [answers[1], answers[0]];
    expectAnswer('second-payment', won, 200);
    expectAnswer('second-payment', refused, 200, 'ORDER_ALREADY_PAID');
    await finalView(r, orderWorkflowId(orderId));
    if ((await signalCount(r, orderWorkflowId(orderId))) === 2) {
      await record(r, 'second-payment', orderId, 'PAID');
      return;
    }
    if (attempt === 5) throw new Error('second-payment: the second payment never reached the open workflow');
  }
}

async function recordLatePayments(r: Recorder): Promise<void> {
  // A wrong amount whose refund is held keeps the workflow open past its deadline; the payment
  // that then arrives is refused by the order's own workflow.
  const orderId = await place(r, 3);
  const held = pay(r, orderId, `${HELD_REFUND_PREFIX}short`, PRICE_CENTS - 1);
  const handle = r.temporal.workflow.getHandle(orderWorkflowId(orderId));
  await eventually(() => handle.query(getOrderQuery), (view) => view.status === 'EXPIRED' && view.closedAt !== undefined);
  const late = pay(r, orderId, 'pay-late');
  await eventually(() => r.db.prisma.refund.count({ where: { orderId, paymentId: 'pay-late' } }), (count) => count === 1);
  r.openRefundGate();
  expectAnswer('late-payment', await late, 200, 'ORDER_EXPIRED');
  expectAnswer('late-payment', await held, 200, 'AMOUNT_MISMATCH');
  await record(r, 'late-payment', orderId, 'EXPIRED');

  const closed = await place(r, 1);
  await finalView(r, orderWorkflowId(closed));
  expectAnswer('late-payment-after-close', await pay(r, closed, 'pay-after-close'), 200, 'ORDER_EXPIRED');
  r.recorded.set('late-payment-after-close', latePaymentWorkflowId(closed, 'pay-after-close'));
}

/** Payments sent around expiresAt; the won and the lost race whose signal came nearest the deadline are kept. */
async function recordDeadlineRaces(r: Recorder): Promise<void> {
  let won: { orderId: string; gapMs: number } | undefined;
  let lost: { orderId: string; gapMs: number } | undefined;
  for (let batch = 1; !(won && lost); batch++) {
    if (batch > 5) throw new Error('payment-at-deadline: no race was both won and lost');
    const races = await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const placed = await placeOrder(r.app, { customerId: 'recorder', items: items(), paymentTimeoutSeconds: 2 });
        const orderId = orderIdOf(placed);
        const expiresAt = Date.parse(placed.body.expiresAt as string);
        // From 800 ms before to 300 ms after the deadline: a payment takes a while to reach the workflow.
        await sleep(expiresAt - 800 + i * 100 - Date.now());
        const answer = await pay(r, orderId, `pay-deadline-${i}`);
        const workflowId = orderWorkflowId(orderId);
        const view = await finalView(r, workflowId);
        const history = await r.temporal.workflow.getHandle(workflowId).fetchHistory();
        const signalledAt = signalTimeMs(history);
        // A payment that missed the open workflow went to latePaymentWorkflow: no race in this history.
        const gapMs = signalledAt === undefined ? Infinity : Math.abs(signalledAt - expiresAt);
        return { orderId, status: view.status, answer, gapMs };
      }),
    );
    console.log(`deadline races, batch ${batch}: ${races.filter((race) => race.status === 'PAID').length} of ${races.length} won`);
    for (const race of races.filter((race) => Number.isFinite(race.gapMs))) {
      if (race.status === 'PAID' && (!won || race.gapMs < won.gapMs)) won = race;
      if (race.status === 'EXPIRED' && (!lost || race.gapMs < lost.gapMs)) lost = race;
    }
  }
  await record(r, 'payment-at-deadline-won', won.orderId, 'PAID');
  await record(r, 'payment-at-deadline-lost', lost.orderId, 'EXPIRED');
}

/** Signals that reach the workflow before its reservation is done. */
async function recordEarlySignals(r: Recorder): Promise<void> {
  const start = (input: OrderWorkflowInput) => ({ workflowId: orderWorkflowId(input.orderId), taskQueue: r.taskQueue, args: [input] });
  const paying: OrderWorkflowInput = { orderId: randomUUID(), customerId: 'recorder', items: items(), paymentTimeoutSeconds: 900, currency: 'eur' };
  // As the API does: the order's PENDING row and the verified delivery's receipt come before the signal.
  await r.db.prisma.$executeRaw`
    INSERT INTO orders (id, customer_id, status, total_cents, created_at, expires_at, currency)
    VALUES (${paying.orderId}::uuid, 'recorder', 'PENDING', ${PRICE_CENTS}, now(), now() + interval '15 minutes', 'eur')`;
  await r.db.prisma.$executeRaw`
    INSERT INTO payment_receipts (payment_id, order_id, amount_cents, currency, succeeded_at)
    VALUES ('pay-early', ${paying.orderId}::uuid, ${PRICE_CENTS}, 'eur', now())`;
  await r.temporal.workflow.signalWithStart(ORDER_WORKFLOW_TYPE, {
    ...start(paying),
    signal: paymentReceivedSignal,
    signalArgs: [{ paymentId: 'pay-early', amountCents: PRICE_CENTS }],
  });
  await record(r, 'payment-while-pending', paying.orderId, 'PAID');

  const cancelling: OrderWorkflowInput = { orderId: randomUUID(), customerId: 'recorder', items: items(), paymentTimeoutSeconds: 900, currency: 'eur' };
  await r.temporal.workflow.signalWithStart(ORDER_WORKFLOW_TYPE, { ...start(cancelling), signal: cancelOrderSignal, signalArgs: [] });
  await record(r, 'cancel-while-pending', cancelling.orderId, 'CANCELLED');
}

/**
 * The database decided before the workflow proposed: the reclaim (run here once, by hand, on an
 * order whose deadline was moved into the past in the database only) or the deadline itself.
 */
async function recordDatabaseDecisions(r: Recorder): Promise<void> {
  const dueNow = (orderId: string) =>
    r.db.prisma.$executeRaw`UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = ${orderId}::uuid`;
  const reclaim = async (orderId: string) => {
    await dueNow(orderId);
    const { released } = await reclaimDueOrders(r.db.prisma, 100);
    if (released !== 1) throw new Error(`the reclaim released ${released} orders, not 1`);
  };

  const paidLate = await place(r);
  await reclaim(paidLate);
  expectAnswer('payment-lost-to-reclaim', await pay(r, paidLate, 'pay-after-reclaim'), 200, 'ORDER_EXPIRED');
  await record(r, 'payment-lost-to-reclaim', paidLate, 'EXPIRED');

  const timed = await place(r, 3);
  await reclaim(timed);
  await record(r, 'timer-finds-reclaimed', timed, 'EXPIRED');

  const cancelledLate = await place(r);
  await dueNow(cancelledLate);
  expectAnswer('cancel-lost-to-deadline', await cancelOrder(r.app, cancelledLate), 409, 'ORDER_EXPIRED');
  await record(r, 'cancel-lost-to-deadline', cancelledLate, 'EXPIRED');

  // The order's workflow is gone while the order still awaits payment: decided from the database.
  const terminated = await place(r);
  await r.temporal.workflow.getHandle(orderWorkflowId(terminated)).terminate('recording a late payment for a terminated workflow');
  expectAnswer('late-payment-terminated', await pay(r, terminated, 'pay-terminated'), 200);
  r.recorded.set('late-payment-terminated', latePaymentWorkflowId(terminated, 'pay-terminated'));
}

/** payment.processing holds and operator extensions: the workflow's timer follows the database's deadline. */
async function recordHoldsThatFollowPayments(r: Recorder): Promise<void> {
  const processing = (orderId: string, paymentId: string) =>
    deliverPayment(r.app, 'payment.processing', orderId, { paymentId, amountCents: PRICE_CENTS });
  // Past the deadline, so the timer fires and the database answers that the order is still held.
  const pastDeadline = () => sleep(1_500);

  const slow = await place(r, 1);
  expectAnswer('processing-then-paid', await processing(slow, 'pay-processing'), 200, 'PROCESSING');
  await pastDeadline();
  expectAnswer('processing-then-paid', await pay(r, slow, 'pay-processing'), 200, 'APPLIED');
  await record(r, 'processing-then-paid', slow, 'PAID');

  const declined = await place(r, 1);
  expectAnswer('processing-failed-then-expired', await processing(declined, 'pay-declined'), 200, 'PROCESSING');
  await pastDeadline();
  expectAnswer(
    'processing-failed-then-expired',
    await deliverPayment(r.app, 'payment.failed', declined, { paymentId: 'pay-declined', amountCents: PRICE_CENTS }),
    200,
    'FAILED',
  );
  await record(r, 'processing-failed-then-expired', declined, 'EXPIRED');

  const stuck = await place(r, 1);
  expectAnswer('processing-hold-ran-out', await processing(stuck, 'pay-stuck'), 200, 'PROCESSING');
  await record(r, 'processing-hold-ran-out', stuck, 'EXPIRED');

  const transfer = await place(r, 2);
  expectAnswer('extended-then-paid', await extendOrder(r.app, transfer, { seconds: 60 }), 200);
  await pastDeadline();
  expectAnswer('extended-then-paid', await pay(r, transfer, 'pay-transfer'), 200, 'APPLIED');
  await record(r, 'extended-then-paid', transfer, 'PAID');

  const extended = await place(r, 1);
  expectAnswer('extended-then-expired', await extendOrder(r.app, extended, { seconds: 1 }), 200);
  await record(r, 'extended-then-expired', extended, 'EXPIRED');

  // The deadline passed in the database (moved there by hand) before the timer fired: the
  // extension loses, and the workflow expires the order at once.
  const lost = await place(r);
  await r.db.prisma.$executeRaw`UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = ${lost}::uuid`;
  expectAnswer('extension-lost-to-deadline', await extendOrder(r.app, lost, { seconds: 60 }), 409, 'ORDER_EXPIRED');
  await record(r, 'extension-lost-to-deadline', lost, 'EXPIRED');
}

async function signalCount(r: Recorder, workflowId: string): Promise<number> {
  const history = await r.temporal.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes).length;
}

/** When the payment reached the order's workflow; undefined when it came after the workflow closed. */
function signalTimeMs(history: History): number | undefined {
  const signal = (history.events ?? []).find((e) => e.workflowExecutionSignaledEventAttributes);
  return signal ? tsToMs(signal.eventTime) : undefined;
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
