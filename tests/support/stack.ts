/**
 * The real system for tests: a Temporal dev server (the pinned CLI), a migrated PostgreSQL
 * database of its own, the real worker, and the API's service and Express app.
 */
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker, WorkerOptions } from '@temporalio/worker';
import express from 'express';
import { createApp } from '../../src/api/app';
import type { CheckoutService } from '../../src/api/checkout';
import type { OperatorService } from '../../src/api/operator';
import { createApiServices, type ApiServiceDependencies } from '../../src/api/services';
import { checkInventory } from '../../src/db/inventory-check';
import { loadConfig, type OrderEventsConfig, type ReclaimConfig } from '../../src/config';
import type { WorkerMetrics } from '../../src/metrics';
import { startEventDispatcher, type DispatcherTuning } from '../../src/order-events-dispatcher';
import { createLogger } from '../../src/logger';
import { startReclaimLoop } from '../../src/reclaim';
import { createOrderWorker } from '../../src/worker';
import { startWorkerHeartbeat } from '../../src/worker-heartbeat';
import { createPrismaClient } from '../../src/db/client';
import { DEFAULTS } from '../../src/config';
import { createTestDatabase, type TestDatabase } from './database';
import { sleep } from './wait';
import { devServerArgs, freePort, ProcessGroup, waitForPort } from '../../scripts/processes';
import { setNamespaceRetention } from '../../scripts/temporal-namespace';

/** Standard Webhooks secret of the test API (`whsec_` + base64 of 32 bytes). */
export const TEST_WEBHOOK_SECRET = `whsec_${Buffer.from('checkout-tests-webhook-secret-32b').toString('base64')}`;
/** The Stripe endpoint's signing secret in tests. */
export const TEST_STRIPE_SECRET = 'whsec_test_stripe_signing_secret';
export const TEST_CURRENCY = 'eur';
export const TEST_ADMIN_TOKEN = 'test-admin-token';
/** The bootstrap storefront key of the test API (channel `default`): requests without a key get it. */
export const TEST_STOREFRONT_KEY = 'test-storefront-key';
export const TEST_ORDER_ID_SECRET = 'test-order-id-secret';

export function temporalCliPath(): string {
  const cli = process.env.TEMPORAL_CLI_PATH;
  if (!cli) throw new Error('TEMPORAL_CLI_PATH is not set: the jest global setup provides it');
  return cli;
}

export function workflowBundle(): { codePath: string } {
  const codePath = process.env.CHECKOUT_TEST_WORKFLOW_BUNDLE;
  if (!codePath) throw new Error('CHECKOUT_TEST_WORKFLOW_BUNDLE is not set: the jest global setup provides it');
  return { codePath };
}

/** How long a test waits for its dev server to listen: generous, as CI starts several at once on 2 cores. */
const DEV_SERVER_START_TIMEOUT_MS = 60_000;

/**
 * A dev server of the test's own (the pinned CLI, the order search attributes registered), and
 * an environment attached to it; `teardown` stops both. The CLI is started here rather than by
 * the SDK's `createLocal`, whose 5 s start limit is fixed and too short on a loaded CI host.
 */
export async function startDevServer(
  options: { dbFilename?: string; port?: number; uiPort?: number } = {},
): Promise<TestWorkflowEnvironment> {
  const ip = '127.0.0.1';
  const port = options.port ?? (await freePort(ip));
  const lastLines: string[] = [];
  let exited = false;
  const processes = new ProcessGroup({
    onLine: (_name, line) => {
      lastLines.push(line);
      if (lastLines.length > 20) lastLines.shift();
    },
    onUnexpectedExit: () => {
      exited = true;
    },
  });
  processes.start(
    'temporal',
    temporalCliPath(),
    devServerArgs({ ip, port, namespace: 'default', dbFilename: options.dbFilename, uiPort: options.uiPort }),
  );
  // An in-memory server has nothing to save: killed at once (a graceful stop takes ~1.3 s); one
  // on a state file stops gracefully, as the tests that restart Temporal need.
  const stopServer = () => processes.stop(['temporal'], options.dbFilename ? 5_000 : 0);
  // A jest worker that exits without teardown must not leave its server behind.
  const killOnExit = () => void processes.stop(['temporal'], 0);
  process.once('exit', killOnExit);
  try {
    const deadline = Date.now() + DEV_SERVER_START_TIMEOUT_MS;
    await waitForPort(ip, port, DEV_SERVER_START_TIMEOUT_MS, () => exited);
    const env = await attachWhenHealthy(`${ip}:${port}`, deadline, () => exited);
    // As `npm start` runs it: closed workflows kept as long as closed orders (RETENTION_DAYS).
    await setNamespaceRetention(env.connection, 'default', loadConfig({}).retention.retentionSeconds);
    const closeConnections = env.teardown.bind(env);
    env.teardown = async () => {
      await closeConnections();
      await stopServer();
      process.removeListener('exit', killOnExit);
    };
    return env;
  } catch (error) {
    await stopServer();
    process.removeListener('exit', killOnExit);
    throw new Error(`the dev server on port ${port} did not start: ${(error as Error).message}\n${lastLines.join('\n')}`, { cause: error });
  }
}

/**
 * Attaches to a dev server that listens. Its frontend listens a moment before it is healthy and
 * answers GetSystemInfo with Unavailable ("Frontend is not healthy yet") meanwhile, which a
 * fresh-clone run on a loaded host met: ask again until the start deadline.
 */
async function attachWhenHealthy(address: string, deadline: number, exited: () => boolean): Promise<TestWorkflowEnvironment> {
  for (;;) {
    try {
      return await TestWorkflowEnvironment.createFromExistingServer({ address });
    } catch (error) {
      const unhealthy = /not healthy|unavailable/i.test(String((error as Error).message));
      if (!unhealthy || exited() || Date.now() > deadline) throw error;
      await sleep(250);
    }
  }
}

/** Signs the order events tests receive (`whsec_` + base64 of 32 bytes). */
export const TEST_ORDER_EVENTS_SECRET = `whsec_${Buffer.from('checkout-tests-order-events-32b!').toString('base64')}`;

/** Order events in a test stack: where they go, and (optionally) a faster dispatcher. */
export type TestOrderEvents = Pick<OrderEventsConfig, 'endpoints'> &
  Partial<OrderEventsConfig> & {
    tuning?: Partial<DispatcherTuning>;
    metrics?: WorkerMetrics;
    /** false: events get their deliveries, but the test runs the dispatchers itself. */
    dispatch?: boolean;
  };

export interface RunningWorker {
  worker: Worker;
  stop(): Promise<void>;
}

/** The reclaim as a worker runs it by default (config defaults); tests may switch it off. */
export const TEST_RECLAIM: ReclaimConfig = { enabled: true, intervalMs: 200, batchSize: 500, boundSeconds: 10 };

export async function startWorker(
  env: TestWorkflowEnvironment,
  db: TestDatabase,
  taskQueue: string,
  reclaim: ReclaimConfig = TEST_RECLAIM,
  options: {
    maxPaymentWindowSeconds?: number;
    orderEvents?: TestOrderEvents;
    maxOpenOrdersPerCustomer?: number;
    /** Another build of the workflows (a change being shipped); the suite's bundle by default. */
    workflowBundle?: WorkerOptions['workflowBundle'];
  } = {},
): Promise<RunningWorker> {
  const { orderEvents, ...workerOptions } = options;
  const eventEndpoints = orderEvents?.endpoints ?? [];
  const worker = await createOrderWorker({
    connection: env.nativeConnection,
    namespace: env.namespace ?? 'default',
    taskQueue,
    prisma: db.prisma,
    eventEndpoints,
    ...workerOptions,
    workflowBundle: workerOptions.workflowBundle ?? workflowBundle(),
  });
  const running = worker.run();
  // As runWorker does: /readyz counts this worker alive by its heartbeat, written on a connection of its own.
  const heartbeatDb = createPrismaClient(db.url, 1);
  const heartbeat = startWorkerHeartbeat({
    prisma: heartbeatDb,
    namespace: env.namespace ?? 'default',
    taskQueue,
    identity: worker.options.identity,
    intervalMs: DEFAULTS.workerHeartbeatIntervalMs,
    running: () => worker.getState() === 'RUNNING',
  });
  const reclaimLoop = reclaim.enabled ? startReclaimLoop({ prisma: db.prisma, config: reclaim, eventEndpoints }) : undefined;
  const dispatcher =
    orderEvents && orderEvents.dispatch !== false && eventEndpoints.length > 0
      ? startEventDispatcher({
          prisma: db.prisma,
          config: {
            endpoints: eventEndpoints,
            secret: orderEvents.secret ?? TEST_ORDER_EVENTS_SECRET,
            maxAgeSeconds: orderEvents.maxAgeSeconds ?? 3_600,
          },
          ...(orderEvents.tuning && { tuning: orderEvents.tuning }),
          ...(orderEvents.metrics && { metrics: orderEvents.metrics }),
        })
      : undefined;
  return {
    worker,
    async stop() {
      await Promise.all([heartbeat.stop(), reclaimLoop?.stop(), dispatcher?.stop()]);
      await heartbeatDb.$disconnect();
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
    },
  };
}

export interface TestStack {
  env: TestWorkflowEnvironment;
  client: Client;
  db: TestDatabase;
  taskQueue: string;
  worker: RunningWorker;
  checkout: CheckoutService;
  operator: OperatorService;
  /** The app as the test storefront calls it: a request without Authorization carries TEST_STOREFRONT_KEY. */
  app: express.Express;
  /** The app as served: each request brings its own key, or none. */
  bareApp: express.Express;
  stop(): Promise<void>;
}

type TestApiDependencies = Omit<ApiServiceDependencies, 'checkoutCurrency' | 'orderIdSecret' | 'bootstrapKeys' | 'logger'> &
  Partial<Pick<ApiServiceDependencies, 'checkoutCurrency' | 'orderIdSecret'>>;

/** The API's services as the server builds them, with the tests' keys, secrets and currency. */
export function createTestServices(deps: TestApiDependencies) {
  return createApiServices({
    ...deps,
    checkoutCurrency: deps.checkoutCurrency ?? TEST_CURRENCY,
    orderIdSecret: deps.orderIdSecret ?? TEST_ORDER_ID_SECRET,
    bootstrapKeys: { adminToken: TEST_ADMIN_TOKEN, storefrontKey: TEST_STOREFRONT_KEY },
    logger: createLogger('api', 'silent'),
  });
}

/**
 * The API's services and Express app as the server builds them, with the tests' keys, secrets and
 * currency. `app` fills in the test storefront key where a request has no Authorization header, so
 * suites about other behaviour read as before; `bareApp` is the app exactly as served.
 */
export function createTestApi(
  deps: TestApiDependencies,
  /** `stripeWebhookSecret: null` builds the app as without STRIPE_WEBHOOK_SECRET. */
  secrets: { paymentWebhookSecrets?: string[]; stripeWebhookSecret?: string | null } = {},
) {
  const services = createTestServices(deps);
  const bareApp = createApp({
    ...services,
    logger: createLogger('api', 'silent'),
    paymentWebhookSecrets: secrets.paymentWebhookSecrets ?? [TEST_WEBHOOK_SECRET],
    ...(secrets.stripeWebhookSecret !== null && { stripeWebhookSecret: secrets.stripeWebhookSecret ?? TEST_STRIPE_SECRET }),
  });
  return { app: withStorefrontKey(bareApp), bareApp, services };
}

/** `app` as the test storefront calls it: the test storefront key unless the request names a key. */
export function withStorefrontKey(app: express.Express): express.Express {
  const storefront = express();
  storefront.disable('x-powered-by');
  storefront.use((req, _res, next) => {
    req.headers.authorization ??= `Bearer ${TEST_STOREFRONT_KEY}`;
    next();
  });
  storefront.use(app);
  return storefront;
}

export interface StackOptions {
  paymentTimeoutSeconds?: number;
  uiPort?: number;
  reclaim?: ReclaimConfig;
  /** PAYMENT_PROCESSING_HOLD_SECONDS of the API (default 3600). */
  paymentProcessingHoldSeconds?: number;
  /** MAX_PAYMENT_WINDOW_SECONDS of the worker (default 604800). */
  maxPaymentWindowSeconds?: number;
  /** Where the worker (and the API, for refusals) delivers order events (none: written, not sent). */
  orderEvents?: TestOrderEvents;
  /** MAX_OPEN_ORDERS_PER_CUSTOMER of the API and the worker (default 0: no cap). */
  maxOpenOrdersPerCustomer?: number;
  /** ORDER_ADMISSION_SECONDS of the API (default 60). */
  admissionSeconds?: number;
}

export async function startStack(options: StackOptions = {}): Promise<TestStack> {
  const [env, db] = await Promise.all([startDevServer({ uiPort: options.uiPort }), createTestDatabase()]);
  const taskQueue = `checkout-test-${randomUUID()}`;
  const worker = await startWorker(env, db, taskQueue, options.reclaim, {
    ...(options.maxPaymentWindowSeconds !== undefined && { maxPaymentWindowSeconds: options.maxPaymentWindowSeconds }),
    ...(options.orderEvents && { orderEvents: options.orderEvents }),
    ...(options.maxOpenOrdersPerCustomer !== undefined && { maxOpenOrdersPerCustomer: options.maxOpenOrdersPerCustomer }),
  });
  const { app, bareApp, services } = createTestApi({
    prisma: db.prisma,
    temporal: env.client,
    taskQueue,
    defaultPaymentTimeoutSeconds: options.paymentTimeoutSeconds ?? 900,
    ...(options.paymentProcessingHoldSeconds !== undefined && { paymentProcessingHoldSeconds: options.paymentProcessingHoldSeconds }),
    ...(options.maxOpenOrdersPerCustomer !== undefined && { maxOpenOrdersPerCustomer: options.maxOpenOrdersPerCustomer }),
    ...(options.admissionSeconds !== undefined && { admissionSeconds: options.admissionSeconds }),
    ...(options.orderEvents && { eventEndpoints: options.orderEvents.endpoints }),
  });
  const { checkout, operator, readiness, authenticator } = services;
  return {
    env,
    client: env.client,
    db,
    taskQueue,
    worker,
    checkout,
    operator,
    app,
    bareApp,
    // `this`: a test may have replaced the worker (stopped it and started another).
    async stop(this: TestStack) {
      await this.worker.stop();
      await authenticator.close();
      await readiness.close();
      await env.teardown();
      await db.drop();
    },
  };
}

/**
 * Registers the file's beforeAll (`start`) and afterAll (`stop`, given whatever had started);
 * the returned object is filled in before the file's tests run.
 */
export function useStarted<T extends object>(start: () => Promise<T>, stop: (started: Partial<T>) => Promise<void>): T {
  const started: Partial<T> = {};
  beforeAll(async () => {
    Object.assign(started, await start());
  }, 120_000);
  afterAll(() => stop(started));
  return started as T;
}

/**
 * One stack for the file, and after each test the check that the stock invariants hold.
 * `beforeStop` runs first in afterAll, while the stack is still up.
 */
export function useStack(
  /** `checkInventoryAfterEach: false` for a file that breaks the invariants on purpose. */
  options: StackOptions & { beforeStop?: () => Promise<void>; checkInventoryAfterEach?: boolean } = {},
): TestStack {
  const stack = useStarted(
    () => startStack(options),
    async (started) => {
      await options.beforeStop?.();
      await started.stop?.();
    },
  );
  if (options.checkInventoryAfterEach !== false) {
    afterEach(async () => {
      expect(await checkInventory(stack.db.prisma)).toEqual({ ok: true, violations: [] });
    });
  }
  return stack;
}
