/**
 * Operating it: the real API and worker processes (as `npm start` runs them) against a dev
 * server and a database of their own. Their JSON logs tell an order's story under its
 * orderId, each exposes Prometheus metrics, and both shut down cleanly on SIGTERM. The API's
 * drain (requests in flight finish, new ones are refused) is checked in-process as well.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import readline from 'node:readline';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startApi } from '../src/api/server';
import { createLogger } from '../src/logger';
import { addProduct, createTestDatabase, type TestDatabase } from './support/database';
import { createTestApi, startDevServer, startWorker, TEST_ADMIN_TOKEN, TEST_STOREFRONT_KEY, TEST_WEBHOOK_SECRET } from './support/stack';
import { eventually } from './support/wait';
import { signedHeaders } from './support/webhooks';

type LogLine = Record<string, unknown> & { msg?: string; orderId?: string };

class Service {
  readonly lines: LogLine[] = [];
  readonly exited: Promise<number | null>;

  constructor(readonly name: string, readonly child: ChildProcess) {
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        this.lines.push(JSON.parse(line) as LogLine);
      } catch {
        this.lines.push({ msg: line, unstructured: true });
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(`[${name}] ${chunk.toString()}`));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  waitForLine(match: (line: LogLine) => boolean, timeoutMs = 90_000): Promise<LogLine> {
    return eventually(async () => this.lines.find(match), (line) => line !== undefined, timeoutMs) as Promise<LogLine>;
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}

function spawnService(name: string, script: string, env: Record<string, string>): Service {
  // tsx as a loader (not its CLI wrapper), so the signal and the exit code are the service's own.
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: path.resolve(__dirname, '..'),
    env: { ...process.env, NODE_ENV: 'test', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Service(name, child);
}

let env: TestWorkflowEnvironment;
let db: TestDatabase;
let api: Service;
let worker: Service;
let apiUrl: string;
let workerMetricsUrl: string;

beforeAll(async () => {
  [env, db] = await Promise.all([startDevServer(), createTestDatabase()]);
  await addProduct(db.prisma, 'OPS-1', 10, 500);
  const shared = {
    DATABASE_URL: db.url,
    TEMPORAL_ADDRESS: env.address,
    TEMPORAL_TASK_QUEUE: `ops-${randomUUID()}`,
    PAYMENT_WEBHOOK_SECRET: TEST_WEBHOOK_SECRET,
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    STOREFRONT_KEY: TEST_STOREFRONT_KEY,
  };
  // The reclaim off: these tests follow one order's expiry through its workflow's own lines and
  // counters (the reclaim's are covered in tests/reclaim.test.ts).
  worker = spawnService('worker', 'src/worker.ts', { ...shared, WORKER_METRICS_PORT: '0', RECLAIM_ENABLED: 'false' });
  api = spawnService('api', 'src/api/server.ts', { ...shared, PORT: '0' });
  const [metricsLine, listening] = await Promise.all([
    worker.waitForLine((l) => l.msg === 'worker metrics listening on /metrics'),
    api.waitForLine((l) => l.msg === 'API listening'),
  ]);
  await worker.waitForLine((l) => l.msg === 'worker started');
  workerMetricsUrl = `http://127.0.0.1:${String(metricsLine.port)}/metrics`;
  apiUrl = `http://127.0.0.1:${String(listening.port)}`;
}, 180_000);

afterAll(async () => {
  await Promise.all([api?.stop(), worker?.stop()]);
  await env?.teardown();
  await db?.drop();
});

async function http(method: string, url: string, body?: object | string, headers: Record<string, string> = {}) {
  const res = await fetch(`${apiUrl}${url}`, {
    method,
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TEST_STOREFRONT_KEY}`, ...headers },
    ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

async function waitForStatus(orderId: string, status: string): Promise<void> {
  await eventually(async () => (await http('GET', `/orders/${orderId}`)).body.status, (s) => s === status);
}

test('every log line of an order, from the API and from the worker, carries its orderId', async () => {
  const placed = await http('POST', '/orders', { customerId: 'ops', items: [{ sku: 'OPS-1', quantity: 2 }], paymentTimeoutSeconds: 1 }, { 'X-Request-Id': 'story-1' });
  expect(placed.status).toBe(201);
  const orderId = placed.body.orderId as string;
  await waitForStatus(orderId, 'EXPIRED');
  await worker.waitForLine((l) => l.orderId === orderId && l.msg === 'order expired; stock back on sale');
  // The API writes a request's line when its answer is sent, and the line then crosses a pipe: wait
  // for it rather than race it (a fresh-clone run read the lines before the GET's had arrived).
  await api.waitForLine((l) => l.orderId === orderId && (l.req as { url?: string } | undefined)?.url === `/orders/${orderId}`);

  const apiLines = api.lines.filter((l) => l.orderId === orderId);
  expect(apiLines[0]).toMatchObject({
    level: 30,
    component: 'api',
    requestId: 'story-1',
    orderId,
    req: { method: 'POST', url: '/orders' },
    res: { statusCode: 201 },
    responseTime: expect.any(Number),
    time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
  });
  expect(apiLines.some((l) => (l.req as { url?: string } | undefined)?.url === `/orders/${orderId}`)).toBe(true);
  // No header is logged: they carry the admin token and webhook signatures.
  expect(JSON.stringify(api.lines)).not.toMatch(/authorization|x-signature|webhook-signature/i);

  const workerLines = worker.lines.filter((l) => l.orderId === orderId);
  expect(workerLines.map((l) => l.msg)).toEqual(
    expect.arrayContaining(['stock held; awaiting payment', 'order expired; stock back on sale']),
  );
  for (const line of workerLines) {
    expect(line).toMatchObject({ component: 'worker', workflowId: `order-${orderId}`, activityType: expect.any(String) });
  }
  const expiry = workerLines.find((l) => l.msg === 'order expired; stock back on sale');
  expect(expiry?.expiryLagSeconds).toEqual(expect.any(Number));
});

test('the worker exposes order outcomes, holds, expiries and expiry lag; the API its HTTP latency', async () => {
  const paid = await http('POST', '/orders', { customerId: 'ops', items: [{ sku: 'OPS-1', quantity: 1 }] });
  // A delivery signed by the standardwebhooks library, over real HTTP to the API process.
  const raw = JSON.stringify({ type: 'payment.succeeded', data: { orderId: paid.body.orderId, paymentId: 'ops-pay', amountCents: 500 } });
  const payment = await fetch(`${apiUrl}/webhooks/payments`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...signedHeaders(raw) },
    body: raw,
  });
  expect(payment.status).toBe(200);
  expect(await payment.json()).toMatchObject({ outcome: 'APPLIED', order: { status: 'PAID' } });
  const cancelled = await http('POST', '/orders', { customerId: 'ops', items: [{ sku: 'OPS-1', quantity: 1 }] });
  expect((await http('POST', `/orders/${String(cancelled.body.orderId)}/cancel`)).status).toBe(200);
  expect((await http('POST', '/orders', { customerId: 'ops', items: [{ sku: 'OPS-1', quantity: 99 }] })).status).toBe(409);

  const metrics = await eventually(
    async () => (await fetch(workerMetricsUrl)).text(),
    (text) => /checkout_orders_total\{outcome="CANCELLED"\} 1/.test(text),
  );
  expect(metrics).toMatch(/^checkout_stock_holds_total 3$/m);
  expect(metrics).toMatch(/^checkout_orders_total\{outcome="EXPIRED"\} 1$/m);
  expect(metrics).toMatch(/^checkout_orders_total\{outcome="PAID"\} 1$/m);
  // The refusal was the API's, at admission: no workflow, so the worker counted no REJECTED order.
  expect(metrics).not.toMatch(/^checkout_orders_total\{outcome="REJECTED"\}/m);
  expect(metrics).toMatch(/^checkout_order_expiries_total 1$/m);
  expect(metrics).toMatch(/^checkout_order_expiry_lag_seconds_count 1$/m);
  expect(metrics).toMatch(/^checkout_order_expiry_lag_seconds_bucket\{le="\+Inf"\} 1$/m);

  const apiMetrics = await (await fetch(`${apiUrl}/metrics`)).text();
  expect(apiMetrics).toMatch(/checkout_http_request_duration_seconds_count\{method="POST",route="\/orders",status_code="201"\} 3/);
  expect(apiMetrics).toMatch(/checkout_http_request_duration_seconds_count\{method="POST",route="\/orders",status_code="409"\} 1/);
  expect(apiMetrics).toMatch(/^checkout_order_refusals_total\{reason="OUT_OF_STOCK",decided_by="api"\} 1$/m);
});

test('an operator restock through the API runs on the worker and is logged there', async () => {
  const res = await http('POST', '/admin/products/OPS-1/restock', { quantity: 5 }, { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` });
  expect(res.status).toBe(200);
  await worker.waitForLine((l) => l.msg === 'restock' && String(l.workflowId).startsWith('product-OPS-1-restock-'));
});

test('the API drains on shutdown: it stops being ready, refuses new connections, finishes the request in flight, then closes its clients', async () => {
  const taskQueue = `drain-${randomUUID()}`;
  const { app, services } = createTestApi({ prisma: db.prisma, temporal: env.client, taskQueue, defaultPaymentTimeoutSeconds: 900 });
  let clientsClosed = false;
  const running = await startApi({
    app,
    readiness: services.readiness,
    logger: createLogger('api', 'silent'),
    port: 0,
    closeClients: async () => {
      await services.readiness.close();
      clientsClosed = true;
    },
  });
  const url = `http://127.0.0.1:${running.port}`;

  // No worker polls this queue yet, so the order request stays in flight.
  const inFlight = fetch(`${url}/orders`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ customerId: 'drain', items: [{ sku: 'OPS-1', quantity: 1 }] }),
  });
  await eventually(async () => (await env.client.workflow.count(`TaskQueue = "${taskQueue}"`)).count, (n) => n === 1);

  const stopped = running.shutdown('test');
  expect(await services.readiness.check()).toMatchObject({ ready: false, checks: { draining: true } });
  await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  expect(clientsClosed).toBe(false);

  const lateWorker = await startWorker(env, db, taskQueue);
  try {
    const res = await inFlight;
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ status: 'AWAITING_PAYMENT' });
    await stopped;
    expect(clientsClosed).toBe(true);
  } finally {
    await lateWorker.stop();
  }
});

test('on SIGTERM both processes stop cleanly (exit 0) and say so', async () => {
  const [apiExit, workerExit] = await Promise.all([api.stop(), worker.stop()]);
  expect({ apiExit, workerExit }).toEqual({ apiExit: 0, workerExit: 0 });
  expect(api.lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['API shutting down: no new requests, finishing those in flight', 'API stopped']));
  expect(worker.lines.map((l) => l.msg)).toContain('worker stopped');
  expect(api.lines.concat(worker.lines).filter((l) => l.unstructured)).toEqual([]);
});
