/**
 * `npm run cloud-actions`: what an order really costs in Temporal Cloud actions. Starts a dev
 * server, a database, the real worker (with its reclaim) and the API's Express app, drives each
 * path of an order through HTTP as a shop and its payment provider would, then reads from the
 * server every workflow run the order caused (order-<id>, late-payment-<id>-*) and counts their
 * histories, and adds what only the API saw (rejected updates, queries) through an interceptor
 * on the API's Temporal client. Saves the records (tests/measurements/) and prints the table.
 *
 *   npm run cloud-actions -- [--runs 5] [--out tests/measurements/cloud-actions.json]
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import globalSetup from '../support/global-setup';
import '../support/quiet-runtime';
import { addProduct, createTestDatabase, type TestDatabase } from '../support/database';
import { cancelOrder, deliverPayment, extendOrder, getOrder, type HttpAnswer, orderIdOf, payOrder, placeOrder } from '../support/api-calls';
import { createTestApi, startDevServer, startWorker } from '../support/stack';
import { sleep } from '../support/wait';
import { latePaymentWorkflowId, orderWorkflowId } from '../../workflows/messages';
import {
  acceptedUpdateIds,
  actionsTable,
  countActions,
  CURRENT_MEASUREMENT,
  type CloudActionsMeasurement,
  type OrderRecord,
  type WorkflowRunRecord,
} from './cloud-actions';
import { TemporalCallLog } from './temporal-calls';

const SKU = 'COST-1';
const SCARCE_SKU = 'COST-SCARCE';
const PRICE_CENTS = 1500;
/** PAYMENT_PROCESSING_HOLD_SECONDS of the API here: short, so a hold ends within the run. */
const PROCESSING_HOLD_SECONDS = 3;
/** How long the server may take to list a closed run in its visibility store. */
const VISIBILITY_WAIT_MS = 30_000;

interface Driver {
  app: ReturnType<typeof createTestApi>['app'];
  /** Not the API's client: what the tool itself asks Temporal is not the order's cost. */
  temporal: Client;
}

interface OrderPath {
  path: string;
  description: string;
  /** Drives one order through the path and returns its id once every workflow it caused has closed. */
  drive(d: Driver): Promise<string>;
}

/** Every path measured; the order here is the order of the table. */
export const PATHS: OrderPath[] = [
  {
    path: 'paid',
    description: 'placed, read once (GET), paid by one webhook delivery',
    async drive(d) {
      const orderId = await place(d);
      expectStatus(await getOrder(d.app, orderId), 200);
      expectOutcome(await pay(d, orderId, 'pay-1'), 'APPLIED');
      return closed(d, orderId);
    },
  },
  {
    path: 'paid, delivery repeated after close',
    description: 'paid; the provider delivers the same payment again after the workflow closed',
    async drive(d) {
      const orderId = await place(d);
      expectOutcome(await pay(d, orderId, 'pay-1'), 'APPLIED');
      await closed(d, orderId);
      expectOutcome(await pay(d, orderId, 'pay-1'), 'APPLIED');
      return closed(d, orderId);
    },
  },
  {
    path: 'paid, three deliveries at once',
    description: 'the same payment delivered three times concurrently',
    async drive(d) {
      const orderId = await place(d);
      for (const answer of await Promise.all([1, 2, 3].map(() => pay(d, orderId, 'pay-1')))) expectOutcome(answer, 'APPLIED');
      return closed(d, orderId);
    },
  },
  {
    path: 'placed twice with one Idempotency-Key, then paid',
    description: 'the shop retries its POST /orders with the same Idempotency-Key and body, then the order is paid',
    async drive(d) {
      const body = { customerId: 'costs', items: [{ sku: SKU, quantity: 1 }] };
      const key = `key-${randomUUID()}`;
      const first = await placeOrder(d.app, body, { idempotencyKey: key });
      const again = await placeOrder(d.app, body, { idempotencyKey: key });
      const orderId = String(first.body.orderId);
      if (first.status !== 201 || again.status !== 201 || again.body.orderId !== orderId) {
        throw new Error(`expected the same order twice, got ${first.status} ${JSON.stringify(first.body)} and ${again.status} ${JSON.stringify(again.body)}`);
      }
      expectOutcome(await pay(d, orderId, 'pay-1'), 'APPLIED');
      return closed(d, orderId);
    },
  },
  {
    path: 'expired',
    description: 'placed with a 1 s window and left to expire',
    async drive(d) {
      return closed(d, await place(d, { paymentTimeoutSeconds: 1 }));
    },
  },
  {
    path: 'cancelled',
    description: 'placed, then cancelled by the customer',
    async drive(d) {
      const orderId = await place(d);
      expectStatus(await cancelOrder(d.app, orderId), 200);
      return closed(d, orderId);
    },
  },
  {
    path: 'cancelled, cancel repeated',
    description: 'cancelled, then cancelled again after the workflow closed',
    async drive(d) {
      const orderId = await place(d);
      expectStatus(await cancelOrder(d.app, orderId), 200);
      await closed(d, orderId);
      expectStatus(await cancelOrder(d.app, orderId), 200);
      return closed(d, orderId);
    },
  },
  {
    path: 'rejected (out of stock)',
    description: 'asks for more than is in stock',
    async drive(d) {
      const placed = await placeOrder(d.app, { customerId: 'costs', items: [{ sku: SCARCE_SKU, quantity: 2 }] });
      expectStatus(placed, 409);
      return closed(d, orderIdOf(placed));
    },
  },
  {
    path: 'wrong amount, then paid',
    description: 'a payment short by one cent (refunded), then the right one',
    async drive(d) {
      const orderId = await place(d);
      expectOutcome(await pay(d, orderId, 'pay-short', PRICE_CENTS - 1), 'AMOUNT_MISMATCH');
      expectOutcome(await pay(d, orderId, 'pay-right'), 'APPLIED');
      return closed(d, orderId);
    },
  },
  {
    path: 'paid twice',
    description: 'paid; a second, different payment arrives after the workflow closed (refunded)',
    async drive(d) {
      const orderId = await place(d);
      expectOutcome(await pay(d, orderId, 'pay-1'), 'APPLIED');
      await closed(d, orderId);
      expectOutcome(await pay(d, orderId, 'pay-2'), 'ORDER_ALREADY_PAID');
      return closed(d, orderId, ['pay-2']);
    },
  },
  {
    path: 'paid after it expired',
    description: 'expired (1 s window), then a payment arrives (refunded)',
    async drive(d) {
      const orderId = await closed(d, await place(d, { paymentTimeoutSeconds: 1 }));
      expectOutcome(await pay(d, orderId, 'pay-late'), 'ORDER_EXPIRED');
      return closed(d, orderId, ['pay-late']);
    },
  },
  {
    path: 'paid after its workflow was terminated',
    description: 'an operator terminated the workflow; the payment is decided without it',
    async drive(d) {
      const orderId = await place(d);
      await d.temporal.workflow.getHandle(orderWorkflowId(orderId)).terminate('measuring a payment without its workflow');
      expectOutcome(await pay(d, orderId, 'pay-1'), 'APPLIED');
      return closed(d, orderId, ['pay-1']);
    },
  },
  {
    path: 'processing, then paid',
    description: 'payment.processing, then payment.succeeded within the window',
    async drive(d) {
      const orderId = await place(d);
      expectOutcome(await deliver(d, 'payment.processing', orderId, 'pay-1'), 'PROCESSING');
      expectOutcome(await pay(d, orderId, 'pay-1'), 'APPLIED');
      return closed(d, orderId);
    },
  },
  {
    path: 'processing, failed, then expired',
    description: 'payment.processing holds the order past its 2 s window, payment.failed ends the hold, the order expires',
    async drive(d) {
      const orderId = await place(d, { paymentTimeoutSeconds: 2 });
      expectOutcome(await deliver(d, 'payment.processing', orderId, 'pay-1'), 'PROCESSING');
      await sleep(2_500);
      expectOutcome(await deliver(d, 'payment.failed', orderId, 'pay-1'), 'FAILED');
      return closed(d, orderId);
    },
  },
  {
    path: 'extended, then paid',
    description: 'an operator extends the window by 60 s, then the order is paid',
    async drive(d) {
      const orderId = await place(d);
      expectStatus(await extendOrder(d.app, orderId, { seconds: 60 }), 200);
      expectOutcome(await pay(d, orderId, 'pay-1'), 'APPLIED');
      return closed(d, orderId);
    },
  },
];

async function place(d: Driver, options: { paymentTimeoutSeconds?: number } = {}): Promise<string> {
  const placed = await placeOrder(d.app, { customerId: 'costs', items: [{ sku: SKU, quantity: 1 }], ...options });
  expectStatus(placed, 201);
  return orderIdOf(placed);
}

/** Payment ids are unique across orders (a receipt claims its id for one order): the name, then the order. */
function paymentId(orderId: string, name: string): string {
  return `${name}-${orderId}`;
}

function pay(d: Driver, orderId: string, name: string, amountCents = PRICE_CENTS): Promise<HttpAnswer> {
  return payOrder(d.app, orderId, { paymentId: paymentId(orderId, name), amountCents });
}

function deliver(d: Driver, type: 'payment.processing' | 'payment.failed', orderId: string, name: string): Promise<HttpAnswer> {
  return deliverPayment(d.app, type, orderId, { paymentId: paymentId(orderId, name), amountCents: PRICE_CENTS });
}

function expectStatus(answer: HttpAnswer, status: number): void {
  if (answer.status !== status) throw new Error(`expected ${status}, got ${answer.status} ${JSON.stringify(answer.body)}`);
}

function expectOutcome(answer: HttpAnswer, outcome: string): void {
  if (answer.status !== 200 || answer.body.outcome !== outcome) throw new Error(`expected 200 ${outcome}, got ${answer.status} ${JSON.stringify(answer.body)}`);
}

/** Waits until the order's workflow, and the late-payment workflows of these payments, have closed. */
async function closed(d: Driver, orderId: string, latePayments: string[] = []): Promise<string> {
  const ids = [orderWorkflowId(orderId), ...latePayments.map((name) => latePaymentWorkflowId(orderId, paymentId(orderId, name)))];
  // A terminated workflow's result throws; closed is all this waits for.
  await Promise.all(ids.map((id) => d.temporal.workflow.getHandle(id).result().catch(() => undefined)));
  return orderId;
}

/**
 * Every run the order caused, read from the server: listed by visibility (which may lag the
 * histories by moments, so until it names every workflow the API called and none still runs),
 * then each run's history counted.
 */
async function readOrder(temporal: Client, orderId: string, log: TemporalCallLog): Promise<OrderRecord> {
  const belongs = (id: string) => id === orderWorkflowId(orderId) || id.startsWith(`late-payment-${orderId}-`);
  const calls = log.callsTo(belongs);
  const called = new Set(calls.map((c) => c.workflowId));
  const query = `WorkflowId = "${orderWorkflowId(orderId)}" OR WorkflowId STARTS_WITH "late-payment-${orderId}-"`;
  const deadline = Date.now() + VISIBILITY_WAIT_MS;
  for (;;) {
    const listed: { workflowId: string; runId: string; type: string; running: boolean }[] = [];
    for await (const wf of temporal.workflow.list({ query })) {
      listed.push({ workflowId: wf.workflowId, runId: wf.runId, type: wf.type, running: wf.status.name === 'RUNNING' });
    }
    const complete = [...called].every((id) => listed.some((wf) => wf.workflowId === id)) && listed.every((wf) => !wf.running);
    if (complete || Date.now() > deadline) {
      if (!complete) throw new Error(`order ${orderId}: visibility never listed every workflow closed: ${JSON.stringify(listed)}`);
      const workflows: WorkflowRunRecord[] = [];
      for (const wf of listed.sort((a, b) => a.workflowId.localeCompare(b.workflowId) || a.runId.localeCompare(b.runId))) {
        const history = await temporal.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
        const events = (JSON.parse(historyToJSON(history)) as { events: Parameters<typeof countActions>[0] }).events;
        workflows.push({ workflowId: wf.workflowId, runId: wf.runId, workflowType: wf.type, actions: countActions(events), acceptedUpdateIds: acceptedUpdateIds(events) });
      }
      return { orderId, workflows, calls };
    }
    await sleep(250);
  }
}

/** JSON with one line per order, so a new measurement reads as a diff of orders. */
function measurementJson(m: CloudActionsMeasurement): string {
  const { paths, ...about } = m;
  const head = JSON.stringify(about, null, 2).replace(/\n}$/, ',\n  "paths": [\n');
  const body = paths
    .map(({ orders, ...p }) => `    ${JSON.stringify(p).replace(/}$/, ', "orders": [')}\n${orders.map((o) => `      ${JSON.stringify(o)}`).join(',\n')}\n    ]}`)
    .join(',\n');
  return `${head}${body}\n  ]\n}\n`;
}

function measuredCode(): string {
  const root = path.resolve(__dirname, '../..');
  const git = (...args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();
  const commit = git('rev-parse', '--short', 'HEAD');
  // Only the code that runs counts: the tool and its saved figures are not the service.
  const changed = git('status', '--porcelain', '--', 'src', 'workflows', 'activities', 'prisma/migrations');
  return changed ? `${commit} with uncommitted changes` : commit;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, out: { type: 'string', default: CURRENT_MEASUREMENT } } });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs takes a whole number of at least 1');
  await globalSetup();
  let env: TestWorkflowEnvironment | undefined;
  let db: TestDatabase | undefined;
  let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
  try {
    [env, db] = await Promise.all([startDevServer(), createTestDatabase()]);
    const taskQueue = `cloud-actions-${randomUUID()}`;
    worker = await startWorker(env, db, taskQueue);
    await addProduct(db.prisma, SKU, 1_000_000, PRICE_CENTS);
    await addProduct(db.prisma, SCARCE_SKU, 1, PRICE_CENTS);
    const log = new TemporalCallLog();
    // The API's own client, as server.ts builds it, with the interceptor that records its calls.
    const apiClient = new Client({ connection: env.connection, namespace: env.namespace ?? 'default', interceptors: { workflow: [log.interceptor()] } });
    const { app } = createTestApi({
      prisma: db.prisma,
      temporal: apiClient,
      taskQueue,
      defaultPaymentTimeoutSeconds: 900,
      paymentProcessingHoldSeconds: PROCESSING_HOLD_SECONDS,
    });
    const driver: Driver = { app, temporal: env.client };
    const measurement: CloudActionsMeasurement = { measuredAt: new Date().toISOString(), code: measuredCode(), runsPerPath: runs, paths: [] };
    for (const p of PATHS) {
      const orders: OrderRecord[] = [];
      for (let run = 0; run < runs; run++) orders.push(await readOrder(env.client, await p.drive(driver), log));
      measurement.paths.push({ path: p.path, description: p.description, orders });
      console.error(`measured: ${p.path} (${runs} orders)`);
    }
    mkdirSync(path.dirname(values.out), { recursive: true });
    writeFileSync(values.out, measurementJson(measurement));
    console.error(`saved ${values.out}`);
    process.stdout.write(`${actionsTable(measurement)}\n`);
  } finally {
    await worker?.stop();
    await env?.teardown();
    await db?.drop();
  }
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
