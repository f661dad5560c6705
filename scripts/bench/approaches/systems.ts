/**
 * The six systems `--scenario approaches` compares. Each places, pays and expires the same orders
 * through the same SQL (hold_order, decide_order, reclaim_due_orders, via the service's own
 * activities); they differ only in what says "this order is due now":
 *
 *   1 rabbitmq   a message per order with a per-message TTL, dead-lettered to the consumer;
 *   2 redis      a sorted set scored by due time, polled;
 *   3 cron       a sweep of the database at every period;
 *   4 poll       a sweep, then a short sleep;
 *   5 timer      the service, one Temporal timer per order, the reclaim off;
 *   6 service    the service as it ships: the timers plus the reclaim.
 *
 * In 1–4 the bench process is the shop's application (it holds and pays through the activities,
 * and publishes or scores the order), and the mechanism runs in a child process the bench can
 * SIGKILL. In 5–6 the bench starts the real stack (scripts/bench/stack.ts) and drives its HTTP API.
 * Over 400 lines: the six systems side by side, one small class each, so a reader compares them
 * in one file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import readline from 'node:readline';
import { connect, type ChannelModel, type ConfirmChannel } from 'amqplib';
import { Client as TemporalClient, Connection } from '@temporalio/client';
import { Redis } from 'ioredis';
import { createActivities } from '../../../activities';
import { createLocalPaymentProvider } from '../../../activities/payment-provider';
import { DEFAULTS, loadConfig } from '../../../src/config';
import { createPrismaClient } from '../../../src/db/client';
import { applyMigrations, ensureDatabase } from '../../../src/db/migrate';
import { signedDelivery } from '../../pay';
import { ROOT, withDatabase as queryDatabase } from '../../processes';
import { addBenchProducts } from '../orders';
import type { ProcessSelector } from '../proc-stats';
import { dropDatabase, startOwnStack, withDatabase, workerSelector } from '../stack';
import type { ConsumerConfig, ConsumerCounters } from './consumer';
import type { Approach } from './names';
import type { PlannedOrder, ScaledDurations } from './plan';


/** Every workload order's customer starts so; the stacks' readiness probe does not. */
export const CUSTOMER_PREFIX = 'appr-';

export interface Placed {
  orderId: string;
  totalCents: number;
  expiresAtMs: number;
  placedAtMs: number;
}

export interface ApproachSystem {
  /** What it runs on, for the report (the periods it was given). */
  description: string;
  databaseUrl: string;
  /** The processes whose CPU the approach costs. */
  parts: Record<string, ProcessSelector>;
  place(order: PlannedOrder, customerId: string): Promise<Placed | undefined>;
  /** Answers what became of the payment (APPLIED, or the refusal, or 202 when not decided in time). */
  pay(placed: Placed, paymentId: string): Promise<string>;
  /** Resolves once the consumer (1–4) is connected and consuming; the stacks are ready when started. */
  ready(): Promise<void>;
  /** SIGKILLs the consumer (1–4) or the worker (5–6). */
  kill(): Promise<void>;
  restart(): void;
  /** What an operator can see of the releases still pending, right now. */
  operatorView(): Promise<string>;
  /** The consumer processes' counters, added up (1–4). */
  counters(): ConsumerCounters | undefined;
  /** Stops what still queries the database, so its statistics are complete. */
  quiesce(): Promise<void>;
  /** Why it died, if a part died on its own. */
  died(): string | undefined;
  stop(): Promise<void>;
}

export interface SystemOptions {
  approach: Approach;
  databaseAdminUrl: string;
  amqpUrl: string;
  redisUrl: string;
  skus: string[];
  durations: ScaledDurations;
  log: (line: string) => void;
}

/** Resolves to a reason to skip the approach when what it needs cannot be reached. */
export async function unreachable(o: Pick<SystemOptions, 'approach' | 'amqpUrl' | 'redisUrl'>): Promise<string | undefined> {
  if (o.approach === 'rabbitmq') {
    try {
      const connection = await connect(o.amqpUrl, { timeout: 3000 });
      await connection.close();
    } catch (error) {
      return `RabbitMQ cannot be reached at ${redact(o.amqpUrl)} (${(error as Error).message})`;
    }
  }
  if (o.approach === 'redis') {
    const redis = new Redis(o.redisUrl, { lazyConnect: true, connectTimeout: 3000, maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      await redis.connect();
      await redis.ping();
    } catch (error) {
      return `Redis cannot be reached at ${redact(o.redisUrl)} (${(error as Error).message})`;
    } finally {
      redis.disconnect();
    }
  }
  return undefined;
}

function redact(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

export function startSystem(o: SystemOptions): Promise<ApproachSystem> {
  return o.approach === 'timer' || o.approach === 'service' ? stackSystem(o) : directSystem(o);
}

/** A consumer process the bench can kill and start again; its counters survive its deaths. */
class ConsumerProcess {
  private child: ChildProcess | undefined;
  private readonly finished: ConsumerCounters[] = [];
  private current: ConsumerCounters | undefined;
  private expectedExit = false;
  private lastLines: string[] = [];
  private readyWaiters: (() => void)[] = [];
  private isReady = false;
  failure: string | undefined;

  constructor(private readonly config: ConsumerConfig) {}

  start(): void {
    if (this.current) this.finished.push(this.current);
    this.current = undefined;
    this.expectedExit = false;
    this.isReady = false;
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/bench/approaches/consumer.ts', JSON.stringify(this.config)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const onLine = (line: string) => {
      if (line === 'READY' && this.child === child) {
        this.isReady = true;
        for (const resolve of this.readyWaiters.splice(0)) resolve();
        return;
      }
      if (line.startsWith('COUNTERS ')) {
        if (this.child === child) this.current = JSON.parse(line.slice('COUNTERS '.length)) as ConsumerCounters;
        return;
      }
      this.lastLines = [...this.lastLines.slice(-19), line];
    };
    for (const stream of [child.stdout, child.stderr]) readline.createInterface({ input: stream }).on('line', onLine);
    child.on('exit', (code, signal) => {
      if (!this.expectedExit) this.failure = `the ${this.config.kind} consumer exited (${signal ?? code}):\n  ${this.lastLines.join('\n  ')}`;
    });
  }

  /** Resolves once the running process said READY (rejects after a minute). */
  ready(): Promise<void> {
    if (this.isReady) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the ${this.config.kind} consumer was not ready within 60 s:\n  ${this.lastLines.join('\n  ')}`)), 60_000);
      this.readyWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private async end(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    this.expectedExit = true;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  }

  kill(): Promise<void> {
    return this.end('SIGKILL');
  }

  stop(): Promise<void> {
    return this.end('SIGTERM');
  }

  counters(): ConsumerCounters {
    const all = [...this.finished, ...(this.current ? [this.current] : [])];
    const sum = (key: keyof ConsumerCounters) => all.reduce((total, c) => total + c[key], 0);
    return {
      transactions: sum('transactions'),
      emptySweeps: sum('emptySweeps'),
      released: sum('released'),
      redundant: sum('redundant'),
      alreadyPaid: sum('alreadyPaid'),
      early: sum('early'),
      brokerCommands: sum('brokerCommands'),
    };
  }
}

/** Approaches 1–4: the bench holds and pays; a consumer process of its own returns the stock. */
async function directSystem(o: SystemOptions): Promise<ApproachSystem> {
  const tag = randomBytes(4).toString('hex');
  const databaseName = `checkout_bench_${tag}`;
  const databaseUrl = withDatabase(o.databaseAdminUrl, databaseName);
  await ensureDatabase(databaseUrl);
  const closers: (() => Promise<void>)[] = [() => dropDatabase(o.databaseAdminUrl, databaseName)];
  const closeAll = async () => {
    for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
  };
  try {
    await applyMigrations(databaseUrl);
    await addBenchProducts(databaseUrl, o.skus);
    const prisma = createPrismaClient(databaseUrl, 20);
    let prismaOpen = true;
    const closePrisma = async () => {
      if (prismaOpen) await prisma.$disconnect();
      prismaOpen = false;
    };
    closers.push(closePrisma);
    const activities = createActivities({ prisma, payments: createLocalPaymentProvider(), maxPaymentWindowSeconds: DEFAULTS.maxPaymentWindowSeconds });

    // What schedules an order's release when it is held, and what the operator can see of it.
    let schedule: (orderId: string, windowMs: number, expiresAtMs: number) => Promise<void> = async () => undefined;
    let onPaid: (orderId: string) => Promise<void> = async () => undefined;
    let operatorView: () => Promise<string>;
    let config: ConsumerConfig;
    let description: string;
    const parts: Record<string, ProcessSelector> = {
      'app (bench)': { kind: 'self' },
      consumer: { kind: 'children', of: process.pid, command: 'approaches/consumer.ts' },
      postgres: { kind: 'postgresBackends', database: databaseName },
    };

    if (o.approach === 'rabbitmq') {
      const delayQueue = `bench-delay-${tag}`;
      const dueQueue = `bench-due-${tag}`;
      const exchange = `bench-dlx-${tag}`;
      const connection: ChannelModel = await connect(o.amqpUrl);
      const channel: ConfirmChannel = await connection.createConfirmChannel();
      closers.push(async () => {
        await channel.deleteQueue(delayQueue);
        await channel.deleteQueue(dueQueue);
        await channel.deleteExchange(exchange);
        await connection.close();
      });
      await channel.assertExchange(exchange, 'direct', { durable: true });
      // Messages wait here with their own TTL (no consumer); expired ones are dead-lettered.
      await channel.assertQueue(delayQueue, { durable: true, deadLetterExchange: exchange, deadLetterRoutingKey: 'due' });
      await channel.assertQueue(dueQueue, { durable: true });
      await channel.bindQueue(dueQueue, exchange, 'due');
      schedule = (orderId, windowMs) =>
        new Promise((resolve, reject) =>
          channel.sendToQueue(delayQueue, Buffer.from(orderId), { expiration: String(windowMs), persistent: true }, (error) =>
            error ? reject(error as Error) : resolve(),
          ),
        );
      operatorView = async () => {
        const [waiting, due] = await Promise.all([channel.checkQueue(delayQueue), channel.checkQueue(dueQueue)]);
        return `${waiting.messageCount} messages waiting out their TTL, ${due.messageCount} due and not yet consumed: counts only; which order a message is for and when it falls due cannot be read without consuming it`;
      };
      config = { kind: 'rabbitmq', databaseUrl, amqpUrl: o.amqpUrl, delayQueue, dueQueue, prefetch: 50 };
      description = 'one durable queue, a TTL per message (the order\'s window), dead-lettered to a second queue; consumer acks after the database answered, prefetch 50';
      parts.rabbitmq = { kind: 'comm', comm: 'beam.smp' };
    } else if (o.approach === 'redis') {
      const key = `bench-delay:${tag}`;
      const redis = new Redis(o.redisUrl);
      closers.push(async () => {
        await redis.del(key);
        redis.disconnect();
      });
      schedule = async (orderId, _windowMs, expiresAtMs) => {
        await redis.zadd(key, expiresAtMs, orderId);
      };
      // A paid order's pending release can be taken back, unlike a message.
      onPaid = async (orderId) => {
        await redis.zrem(key, orderId);
      };
      operatorView = async () => {
        const [count, first] = await Promise.all([redis.zcard(key), redis.zrange(key, 0, 0, 'WITHSCORES')]);
        const next = first[1] === undefined ? 'none' : `${((Number(first[1]) - Date.now()) / 1000).toFixed(1)} s`;
        return `${count} orders in the sorted set, each with its due time (ZRANGE … WITHSCORES, ZSCORE <order>); the next due in ${next}`;
      };
      config = { kind: 'redis', databaseUrl, redisUrl: o.redisUrl, key, pollMs: o.durations.pollPeriodMs, batch: 100 };
      description = `ZADD at the hold (score = expiresAt), ZREM when paid; the poller takes up to 100 due (ZRANGEBYSCORE), settles, then ZREMs, and sleeps ${o.durations.pollPeriodMs} ms when none is due`;
      parts.redis = { kind: 'comm', comm: 'redis-server' };
    } else {
      const periodMs = o.approach === 'cron' ? o.durations.cronPeriodMs : o.durations.pollPeriodMs;
      operatorView = () => pendingInDatabase(databaseUrl);
      config = { kind: o.approach === 'cron' ? 'cron' : 'poll', databaseUrl, periodMs, batch: 500 };
      description =
        o.approach === 'cron'
          ? `reclaim_due_orders (batches of 500) at every ${periodMs} ms of the wall clock`
          : `reclaim_due_orders (batches of 500), then ${periodMs} ms of sleep`;
    }

    const consumer = new ConsumerProcess(config);
    consumer.start();
    closers.push(() => consumer.stop());

    return {
      description,
      databaseUrl,
      parts,
      async place(order, customerId) {
        const orderId = randomUUID();
        const placedAtMs = Date.now();
        // Decided by the application, as the API decides them for a workflow.
        const createdAt = new Date(placedAtMs);
        const expiresAt = new Date(placedAtMs + order.windowSeconds * 1000);
        const held = await activities.reserveStock({
          orderId,
          customerId,
          items: order.items,
          createdAt: createdAt.toISOString(),
          expiresAt: expiresAt.toISOString(),
          currency: DEFAULTS.checkoutCurrency,
        });
        await schedule(orderId, order.windowSeconds * 1000, expiresAt.getTime());
        return { orderId, totalCents: held.totalCents, expiresAtMs: expiresAt.getTime(), placedAtMs };
      },
      async pay(placed, paymentId) {
        // As the API records a verified payment.succeeded: the order row shared-locked, so a
        // sweep's claim either sees the receipt or passes the order by.
        await prisma.$transaction(async (tx) => {
          await tx.$queryRaw`SELECT 1 FROM orders WHERE id = ${placed.orderId}::uuid FOR SHARE`;
          await tx.$executeRaw`
            INSERT INTO payment_receipts (payment_id, order_id, amount_cents, currency, succeeded_at)
            VALUES (${paymentId}, ${placed.orderId}::uuid, ${BigInt(placed.totalCents)}, ${DEFAULTS.checkoutCurrency}, now())
            ON CONFLICT (payment_id) DO NOTHING`;
        });
        const answer = await activities.commitStock({ orderId: placed.orderId, paymentId });
        if (answer.payment === 'APPLIED') await onPaid(placed.orderId);
        return answer.payment;
      },
      ready: () => consumer.ready(),
      kill: () => consumer.kill(),
      restart: () => consumer.start(),
      operatorView,
      counters: () => consumer.counters(),
      async quiesce() {
        await consumer.stop();
        await closePrisma();
      },
      died: () => consumer.failure,
      stop: closeAll,
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/** Orders awaiting payment and the next deadline, as the database shows them. */
async function pendingInDatabase(databaseUrl: string): Promise<string> {
  return queryDatabase(databaseUrl, async (db) => {
    const { rows } = await db.query<{ n: number; next_s: number | null }>(
      `SELECT count(*)::int AS n,
              EXTRACT(EPOCH FROM min(order_deadline(expires_at, payment_pending_until)) - now())::float8 AS next_s
         FROM orders WHERE status = 'AWAITING_PAYMENT' AND customer_id LIKE $1`,
      [`${CUSTOMER_PREFIX}%`],
    );
    const row = rows[0];
    const next = row?.next_s == null ? 'none' : `${row.next_s.toFixed(1)} s`;
    return `${row?.n ?? 0} orders awaiting payment, each with its deadline, in SQL; the next due in ${next}; nothing shows when the next sweep runs or whether the job runs at all`;
  });
}

/** Approaches 5–6: the real stack (API, worker, dev server), orders and payments over HTTP. */
async function stackSystem(o: SystemOptions): Promise<ApproachSystem> {
  let died: string | undefined;
  const reclaim = o.approach === 'service';
  const stack = await startOwnStack({
    engine: 'dev',
    shards: 4,
    workers: 1,
    databaseAdminUrl: o.databaseAdminUrl,
    env: reclaim ? {} : { RECLAIM_ENABLED: 'false' },
    log: o.log,
    onPartDied: (name, lines) => {
      died = `the ${name} process died:\n  ${lines.join('\n  ')}`;
    },
  });
  try {
    await addBenchProducts(stack.databaseUrl, o.skus);
    const webhookSecret = stack.webhookSecret;
    const temporalAddress = stack.temporalAddress;
    const { killWorker, restartWorker, stopApiAndWorkers } = stack;
    if (!webhookSecret || !temporalAddress || !killWorker || !restartWorker || !stopApiAndWorkers) throw new Error('the approaches need a stack the bench starts');
    const post = (path: string, headers: Record<string, string>, body: string) =>
      fetch(`${stack.apiUrl}${path}`, { method: 'POST', headers, body, signal: AbortSignal.timeout(60_000) });
    const placeOrder = async (customerId: string, items: PlannedOrder['items'], windowSeconds: number) => {
      const placedAtMs = Date.now();
      const response = await post(
        '/orders',
        { 'content-type': 'application/json', authorization: `Bearer ${stack.apiKey}` },
        JSON.stringify({ customerId, items, paymentTimeoutSeconds: windowSeconds }),
      );
      const text = await response.text();
      // 202: admitted, its hold not decided within the API's wait (the worker is down): it is held when one is back.
      if (response.status !== 201 && response.status !== 202) throw new Error(`POST /orders answered ${response.status}: ${text}`);
      const order = JSON.parse(text) as { orderId: string; totalCents: number; expiresAt: string };
      return { orderId: order.orderId, totalCents: order.totalCents, expiresAtMs: Date.parse(order.expiresAt), placedAtMs };
    };
    // The worker may still be starting: one order through the whole path before the run.
    const probeDeadline = Date.now() + 180_000;
    for (;;) {
      try {
        await placeOrder(`probe-${randomBytes(3).toString('hex')}`, [{ sku: o.skus[0] ?? 'BENCH-0001', quantity: 1 }], 86_400);
        break;
      } catch (error) {
        if (Date.now() > probeDeadline) throw error;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    const connection = await Connection.connect({ address: temporalAddress });
    const temporal = new TemporalClient({ connection });
    const partsOf = stack.parts;
    let restartedPid: number | undefined;
    // The stack's worker runs with the default task queue (the bench sets none).
    const taskQueue = loadConfig({}).temporal.taskQueue;
    /** The restarted worker is ready once it polls the task queue (the SDK's identity starts with its pid). */
    const workerPolls = async (pid: number): Promise<boolean> => {
      const { pollers } = await connection.workflowService.describeTaskQueue({
        namespace: 'default',
        taskQueue: { name: taskQueue },
        taskQueueType: 1, // temporal.api.enums.v1.TaskQueueType: workflow
      });
      return (pollers ?? []).some((p) => p.identity?.startsWith(`${pid}@`));
    };
    return {
      description: reclaim
        ? 'the stack as it ships: API, one worker (a workflow with a timer per order, and the reclaim every 200 ms), Temporal dev server'
        : 'the same stack with RECLAIM_ENABLED=false: only each order\'s timer returns its stock',
      databaseUrl: stack.databaseUrl,
      parts: {
        'load (bench)': { kind: 'self' },
        ...(partsOf.api && { api: partsOf.api }),
        worker: workerSelector,
        ...(partsOf.temporal && { temporal: partsOf.temporal }),
        ...(partsOf.postgres && { postgres: partsOf.postgres }),
      },
      place: (order, customerId) => placeOrder(customerId, order.items, order.windowSeconds),
      async pay(placed, paymentId) {
        const delivery = signedDelivery(webhookSecret, 'payment.succeeded', { orderId: placed.orderId, paymentId, amountCents: placed.totalCents });
        const response = await post('/webhooks/payments', delivery.headers, delivery.body);
        const text = await response.text();
        if (response.status === 200) return String((JSON.parse(text) as { outcome?: unknown }).outcome);
        return String(response.status);
      },
      async ready() {
        if (restartedPid === undefined) return;
        const deadline = Date.now() + 180_000;
        while (!(await workerPolls(restartedPid))) {
          if (Date.now() > deadline) throw new Error('the restarted worker did not poll its task queue within 180 s');
          await new Promise((r) => setTimeout(r, 250));
        }
      },
      kill: killWorker,
      restart: () => {
        restartedPid = restartWorker();
      },
      async operatorView() {
        // Less the readiness probe's order, which stays open.
        const { count } = await temporal.workflow.count('ExecutionStatus = "Running" AND OrderStatus = "AWAITING_PAYMENT"');
        const database = await pendingInDatabase(stack.databaseUrl);
        return (
          `${Math.max(0, count - 1)} order workflows awaiting payment in Temporal, each with its timer and PaymentDeadline in the Web UI (its history says when the timer fires and what the release answered); ` +
          database.replace(/; nothing shows.*$/, '') +
          (reclaim ? '; GET /admin/inventory/check lists any hold past its deadline (HOLD_PAST_DEADLINE), the reclaim\'s metrics its lag' : '')
        );
      },
      counters: () => undefined,
      // As the consumers' quiesce: what used the database stops, so its statistics are complete
      // (an idle backend would write them only within 10 s, PGSTAT_IDLE_INTERVAL).
      quiesce: stopApiAndWorkers,
      died: () => died,
      async stop() {
        await connection.close().catch(() => undefined);
        await stack.stop();
      },
    };
  } catch (error) {
    await stack.stop();
    throw error;
  }
}
