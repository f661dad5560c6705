/**
 * The worker: runs orderWorkflow and the stock activities for one task queue.
 * `createOrderWorker` is what tests use too, so the worker under test is the real one.
 */
import { makeTelemetryFilterString, NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities';
import { createInventoryActivities } from '../activities/inventory';
import { createLocalPaymentProvider, type PaymentProvider } from '../activities/payment-provider';
import type { PrismaClient } from '../prisma/generated/client';
import { DEFAULTS, loadConfig, type Config, type WorkerTuning } from './config';
import { createPrismaClient } from './db/client';
import { createLogger, temporalLoggerFrom, type Logger } from './logger';
import { activityTelemetry } from './metrics-activity-interceptor';
import { createWorkerMetrics, listeningPort, serveMetrics, type WorkerMetrics } from './metrics';
import { redactEndpoint } from '../activities/order-events';
import { startEventDispatcher } from './order-events-dispatcher';
import { startReclaimLoop } from './reclaim';
import { startRetentionLoop } from './retention';
import { temporalConnectionOptions } from './temporal';
import { startWorkerHeartbeat } from './worker-heartbeat';

export interface OrderWorkerDependencies {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  prisma: PrismaClient;
  payments?: PaymentProvider;
  tuning?: WorkerTuning;
  /** Where order outcomes, holds and expiries are counted; none in tests that do not look. */
  metrics?: WorkerMetrics;
  /** A prebuilt bundle (tests bundle once); otherwise the workflows are bundled at start. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** MAX_PAYMENT_WINDOW_SECONDS; the contract's default when not given. */
  maxPaymentWindowSeconds?: number;
  /** ORDER_EVENTS_URL: every event the activities write gets a delivery to each. */
  eventEndpoints?: readonly string[];
  /** MAX_OPEN_ORDERS_PER_CUSTOMER, which the hold checks again; the default (no cap) when not given. */
  maxOpenOrdersPerCustomer?: number;
}

export function workflowsPath(): string {
  return require.resolve('../workflows');
}

export async function createOrderWorker(deps: OrderWorkerDependencies): Promise<Worker> {
  const payments = deps.payments ?? createLocalPaymentProvider();
  const tuning = deps.tuning;
  return Worker.create({
    connection: deps.connection,
    namespace: deps.namespace,
    taskQueue: deps.taskQueue,
    activities: {
      ...createActivities({
        prisma: deps.prisma,
        payments,
        maxPaymentWindowSeconds: deps.maxPaymentWindowSeconds ?? DEFAULTS.maxPaymentWindowSeconds,
        ...(deps.eventEndpoints !== undefined && { eventEndpoints: deps.eventEndpoints }),
        ...(deps.maxOpenOrdersPerCustomer !== undefined && { maxOpenOrdersPerCustomer: deps.maxOpenOrdersPerCustomer }),
      }),
      ...createInventoryActivities(deps),
    },
    interceptors: { activity: [activityTelemetry(deps.metrics)] },
    // On shutdown, activities in flight (short transactions) get this long to finish; config may say otherwise.
    shutdownGraceTime: DEFAULTS.workerShutdownGraceSeconds * 1000,
    ...(deps.workflowBundle ? { workflowBundle: deps.workflowBundle } : { workflowsPath: workflowsPath() }),
    ...(tuning && workerTuningOptions(tuning)),
  });
}

/** Config → SDK options. V8 context reuse and one workflow thread stay at the SDK's defaults. */
export function workerTuningOptions(tuning: WorkerTuning): Partial<WorkerOptions> {
  return {
    maxConcurrentActivityTaskExecutions: tuning.maxConcurrentActivities,
    maxConcurrentWorkflowTaskExecutions: tuning.maxConcurrentWorkflowTasks,
    ...(tuning.maxConcurrentWorkflowTaskPolls !== undefined && {
      maxConcurrentWorkflowTaskPolls: tuning.maxConcurrentWorkflowTaskPolls,
    }),
    ...(tuning.maxConcurrentActivityTaskPolls !== undefined && {
      maxConcurrentActivityTaskPolls: tuning.maxConcurrentActivityTaskPolls,
    }),
    maxCachedWorkflows: tuning.maxCachedWorkflows,
    // On SIGTERM (scale-in, deploy) activities in flight get this long to finish before they are cancelled.
    shutdownGraceTime: tuning.shutdownGraceSeconds * 1000,
  };
}

export interface RunWorkerOptions {
  logger: Logger;
  metrics?: WorkerMetrics;
  /** A prebuilt bundle; otherwise `config.worker.workflowBundlePath`, else bundled at start. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** Called once the worker polls and the reclaim runs (a forked test worker tells its parent). */
  onRunning?: () => void;
}

/** Connects, runs the worker, the reclaim and the retention loops until shutdown, and closes what it opened. */
export async function runWorker(config: Config, options: RunWorkerOptions): Promise<void> {
  const { logger, metrics } = options;
  const prisma = createPrismaClient(config.databaseUrl, config.databasePoolSize);
  // The heartbeat's own connection: activities that fill the pool must not silence it.
  const heartbeatDb = createPrismaClient(config.databaseUrl, 1);
  const connection = await NativeConnection.connect(temporalConnectionOptions(config.temporal));
  const workflowBundle =
    options.workflowBundle ?? (config.worker.workflowBundlePath !== undefined ? { codePath: config.worker.workflowBundlePath } : undefined);
  try {
    const worker = await createOrderWorker({
      connection,
      namespace: config.temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      prisma,
      tuning: config.worker,
      maxPaymentWindowSeconds: config.maxPaymentWindowSeconds,
      eventEndpoints: config.orderEvents.endpoints,
      maxOpenOrdersPerCustomer: config.maxOpenOrdersPerCustomer,
      ...(workflowBundle !== undefined && { workflowBundle }),
      ...(metrics !== undefined && { metrics }),
    });
    // /readyz counts this worker alive while these beats are fresh; it beats only while it polls.
    const heartbeat = startWorkerHeartbeat({
      prisma: heartbeatDb,
      namespace: config.temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      identity: worker.options.identity,
      intervalMs: config.workerHeartbeat.intervalMs,
      running: () => worker.getState() === 'RUNNING',
      logger,
    });
    // The Temporal runtime shuts the worker down on the first SIGINT/SIGTERM, letting tasks in
    // flight finish, and then stops listening. Listening here too keeps a second signal (Ctrl-C
    // reaches every process of `npm start`, which also sends SIGTERM) from killing it mid-drain.
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.on(signal, () => {
        logger.info({ signal }, 'worker shutting down: finishing tasks in flight');
        // Not ready from now on: its row goes at once rather than when the drain ends.
        void heartbeat.stop();
      });
    }
    const running = worker.run();
    logger.info(
      { taskQueue: config.temporal.taskQueue, address: config.temporal.address, tuning: config.worker },
      'worker started',
    );
    // Stock past its deadline goes back on sale from here, whatever the workflows' backlog.
    const eventEndpoints = config.orderEvents.endpoints;
    const reclaim = config.reclaim.enabled ? startReclaimLoop({ prisma, config: config.reclaim, eventEndpoints, metrics, logger }) : undefined;
    logger.info({ reclaim: config.reclaim }, config.reclaim.enabled ? 'reclaim running' : 'reclaim off: expiry by workflow timers only');
    // History is pruned past RETENTION_DAYS; conservation is carried in the opening balances. The
    // loop runs with pruning off too: it moves the ledger checkpoint the inventory check reads.
    const retention = startRetentionLoop({ prisma, config: config.retention, prune: config.retention.enabled, metrics, logger });
    logger.info(
      { retention: config.retention },
      config.retention.enabled ? 'retention running' : 'retention off: nothing is pruned (the ledger checkpoint still advances)',
    );
    // Events are written either way (GET /admin/events reads them); they are sent only where configured.
    const dispatcher = eventEndpoints.length > 0 ? startEventDispatcher({ prisma, config: config.orderEvents, metrics, logger }) : undefined;
    logger.info(
      { endpoints: eventEndpoints.map(redactEndpoint), maxAgeSeconds: config.orderEvents.maxAgeSeconds },
      dispatcher ? 'order events: delivering' : 'order events: no ORDER_EVENTS_URL, written but not sent',
    );
    options.onRunning?.();
    try {
      await running;
    } finally {
      await Promise.all([heartbeat.stop(), reclaim?.stop(), retention.stop(), dispatcher?.stop()]);
    }
    logger.info('worker stopped');
  } finally {
    await connection.close();
    await Promise.all([prisma.$disconnect(), heartbeatDb.$disconnect()]);
  }
}

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger('worker', config.logLevel);
  // The SDK's logs, its Rust core's (forwarded: by default the core prints plain text to the
  // console, e.g. its warning for a workflow task over 5 s) and every workflow's and activity's
  // `log` go to the same JSON lines.
  Runtime.install({
    logger: temporalLoggerFrom(logger),
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'WARN' }), forward: {} } },
  });
  const metrics = createWorkerMetrics();
  const metricsServer = await serveMetrics(metrics.registry, config.worker.metricsPort);
  logger.info({ port: listeningPort(metricsServer) }, 'worker metrics listening on /metrics');
  try {
    await runWorker(config, { logger, metrics });
  } finally {
    await new Promise((resolve) => metricsServer.close(resolve));
  }
}

if (require.main === module) {
  main().catch((error: unknown) => {
    createLogger('worker', 'error').fatal({ err: error }, 'worker failed');
    process.exit(1);
  });
}
