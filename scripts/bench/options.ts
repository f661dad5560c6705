/** Command-line options of `npm run bench`; `--smoke` changes the defaults to a seconds-long run. */
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { APPROACHES, type Approach } from './approaches/names';

export const SCENARIOS = ['floor', 'throughput', 'latency', 'expiry', 'scale', 'flash', 'history', 'approaches'] as const;
export type Scenario = (typeof SCENARIOS)[number];
/** What runs when no --scenario is given: approaches runs only when named (it brings stacks and brokers of its own). */
const DEFAULT_SCENARIOS: Scenario[] = ['floor', 'throughput', 'latency', 'expiry', 'scale', 'flash', 'history'];

export interface TargetStack {
  apiUrl: string;
  /** A storefront key of that API. */
  apiKey: string;
  databaseUrl: string;
  temporalAddress?: string;
  /** Processes to measure, by part name (api, worker, temporal). */
  pids: Record<string, number>;
  /** The stack's PAYMENT_WEBHOOK_SECRET (a secret it accepts): needed to pay orders. */
  webhookSecret?: string;
}

export const ENGINES = ['dev', 'server'] as const;
/** `dev`: the Temporal CLI's dev server (what `npm start` runs); `server`: the real temporal-server on PostgreSQL. */
export type Engine = (typeof ENGINES)[number];

export interface BenchOptions {
  scenarios: Scenario[];
  /** Each engine runs every scenario on a stack of its own; one table per engine. */
  engines: Engine[];
  /** History shards of the real server. */
  temporalShards: number;
  /** Worker processes of a stack the bench starts (default: 1 on the dev server, 2 on the real server). */
  workers?: number;
  smoke: boolean;
  /** Seconds of measured load per throughput run (HTTP, then the same again for the bare-SQL ceiling). */
  duration: number;
  /** Seconds of unmeasured load before the first throughput run on a stack. */
  warmup: number;
  repeat: number;
  /** Share of the orders held in the throughput scenario that the client then pays by webhook (0–1). */
  paidShare: number;
  /** Concurrent HTTP clients, and concurrent callers of the bare-SQL ceiling. */
  connections: number;
  /** PostgreSQL connections the bare-SQL ceiling may use (the server allows 100 in all). */
  sqlPool: number;
  skus: number;
  expiryOrders: number;
  /** Seconds within which the expiry scenario's orders fall due. */
  expiryWindow: number;
  scaleOrders: number;
  /** The flash scenario: units of the one sku on sale, and one-unit buyers sent at it. */
  units: number;
  buyers: number;
  /** Seconds of ordinary one-unit orders just before the drop, the holds/s it is compared with. */
  flashBaseline: number;
  /** history: closed orders of the year of history loaded before the hot path is measured again. */
  historyOrders: number;
  /** history: times each operation of the hot path is measured, on the empty database and with history. */
  historySamples: number;
  /** history: the longest the pruning of that history is measured for (it stops earlier when done). */
  pruneSeconds: number;
  /** history: retention loops pruning at once (as many workers would). */
  pruners: number;
  /** history: where to write the EXPLAIN (ANALYZE, BUFFERS) of every statement of the hot path. */
  explain?: string;
  /** A fresh stack for each scenario (clean memory figures) or one for all. */
  stackPerScenario: boolean;
  /** Environment for the worker and the API of a stack the bench starts (tuning). */
  stackEnv: Record<string, string>;
  databaseAdminUrl: string;
  target?: TargetStack;
  json?: string;
  progressSeconds: number;
  /** The approaches scenario: which of the six, how many orders at what rate, how time is scaled. */
  approaches: Approach[];
  approachOrders: number;
  approachRate: number;
  timeScale: number;
  /** Seconds the consumer or worker stays down after its SIGKILL (bench time). */
  outage: number;
  amqpUrl: string;
  redisUrl: string;
}

const HELP = `npm run bench -- [options]

  --scenario <list>        floor,throughput,latency,expiry,scale,flash,history,approaches (default:
                           all but approaches, which runs only when named); throughput
                           is the closed loop (saturation) with the engine's floor beside every
                           run; latency is an open loop at half the closed-loop maximum;
                           history measures the hot path in PostgreSQL with a year of history
                           kept against an empty database, then prunes it (no stack needed)
  --temporal <list>        dev,server: the engine(s) to run on (default dev). server builds and
                           runs the real temporal-server v1.29.1 on this PostgreSQL (as the
                           compose file runs it) with two worker processes; both print a table each
  --shards <n>             history shards of the real server (default 4)
  --workers <n>            worker processes (default 1 on dev, 2 on server)
  --smoke                  seconds-long run of every scenario (CI)
  --duration <s>           measured seconds per throughput run (default 60)
  --warmup <s>             unmeasured seconds before the first run (default 5)
  --repeat <n>             runs per scenario; figures are median, min, max (default 3; scale runs once)
  --paid-share <0..1>      share of held orders each throughput client then pays through the
                           signed payment webhook before placing its next (default 0.8: most
                           orders of a shop are paid); 0 measures holds alone
  --connections <n>        concurrent clients (default 50)
  --sql-pool <n>           PostgreSQL connections for the bare-SQL ceiling (default 20)
  --skus <n>               products orders pick from (default 200)
  --expiry-orders <n>      orders falling due in the expiry scenario (default 10000)
  --expiry-window <s>      seconds they fall due within (default 60)
  --scale-orders <n>       orders awaiting payment at once in the scale scenario (default 100000)
  --units <n>              flash: units of the one sku on sale (default 500)
  --buyers <n>             flash: one-unit buyers, each a customer of their own (default 5000)
  --flash-baseline <s>     flash: seconds of ordinary one-unit orders before the drop, whose
                           holds/s the drop's are compared with (default 20)
  --history-orders <n>     history: closed orders of a year of history generated in SQL, with
                           their lines, ledger rows, payments, events and deliveries (default
                           1000000: about 12 million rows, loaded in a few minutes here)
  --history-samples <n>    history: times each hot-path operation is measured (default 200)
  --prune-seconds <s>      history: the longest pruning is measured for (default 60)
  --pruners <n>            history: retention loops pruning at once (default 2)
  --explain <file>         history: write the plan of every hot-path statement there
  --shared-stack           one stack for all scenarios (default: a fresh one per scenario)
  --env KEY=VALUE          environment for the worker and API the bench starts, e.g.
                           --env WORKER_MAX_CACHED_WORKFLOWS=500 --env DATABASE_POOL_SIZE=20
  --database-admin-url <u> where to create and drop the bench database
                           (default $BENCH_DATABASE_ADMIN_URL or postgresql://postgres@127.0.0.1:5432/postgres)
  --api-url <url>          target a running stack instead of starting one ($BENCH_API_URL);
  --api-key <key>            a storefront key of it ($BENCH_API_KEY, required with --api-url),
  --database-url <url>       its database ($BENCH_DATABASE_URL, required with --api-url),
  --temporal-address <a>     its Temporal frontend ($BENCH_TEMPORAL_ADDRESS, optional),
  --pid <part>=<pid>         its processes to measure, e.g. --pid worker=1234 (repeatable),
  --webhook-secret <s>       its PAYMENT_WEBHOOK_SECRET, to pay orders ($BENCH_PAYMENT_WEBHOOK_SECRET)
  --json <file>            also write every run's raw figures as JSON
  --progress <s>           seconds between progress lines (default 10; smoke 2)

  approaches (--scenario approaches, run only when named; docs/approaches.md):
  --approaches <list>      rabbitmq,redis,cron,poll,timer,service (default: all six)
  --approach-orders <n>    orders of the workload, the same for each approach (default 20000; smoke 40)
  --approach-rate <n>      orders placed per second (default 20; smoke 20)
  --time-scale <n>         real seconds per bench second: windows of 5 and 30 min, the 60 s cron and
                           the 1 s polling period are divided by it (default 60; smoke 200: windows
                           of 2 and 9 s, the kill after the placing, while the first orders fall due)
  --outage <s>             seconds the SIGKILLed consumer or worker stays down (default 5; smoke 1)
  --amqp-url <url>         RabbitMQ ($BENCH_AMQP_URL or amqp://guest:guest@127.0.0.1:5672)
  --redis-url <url>        Redis ($BENCH_REDIS_URL or redis://127.0.0.1:6379)
`;

const count = z.coerce.number().int().min(1);

/** Most orders of a shop are paid; the rest expire or are cancelled. */
const DEFAULT_PAID_SHARE = 0.8;

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      scenario: { type: 'string' },
      temporal: { type: 'string' },
      shards: { type: 'string' },
      workers: { type: 'string' },
      smoke: { type: 'boolean', default: false },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      repeat: { type: 'string' },
      'paid-share': { type: 'string' },
      connections: { type: 'string' },
      'sql-pool': { type: 'string' },
      skus: { type: 'string' },
      'expiry-orders': { type: 'string' },
      'expiry-window': { type: 'string' },
      'scale-orders': { type: 'string' },
      units: { type: 'string' },
      buyers: { type: 'string' },
      'flash-baseline': { type: 'string' },
      'history-orders': { type: 'string' },
      'history-samples': { type: 'string' },
      'prune-seconds': { type: 'string' },
      pruners: { type: 'string' },
      explain: { type: 'string' },
      'shared-stack': { type: 'boolean' },
      env: { type: 'string', multiple: true },
      'database-admin-url': { type: 'string' },
      'api-url': { type: 'string' },
      'api-key': { type: 'string' },
      'database-url': { type: 'string' },
      'temporal-address': { type: 'string' },
      pid: { type: 'string', multiple: true },
      'webhook-secret': { type: 'string' },
      json: { type: 'string' },
      progress: { type: 'string' },
      approaches: { type: 'string' },
      'approach-orders': { type: 'string' },
      'approach-rate': { type: 'string' },
      'time-scale': { type: 'string' },
      outage: { type: 'string' },
      'amqp-url': { type: 'string' },
      'redis-url': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const smoke = values.smoke ?? false;
  const pick = (value: string | undefined, full: number, smokeValue: number, schema = count) =>
    schema.parse(value ?? (smoke ? smokeValue : full));

  const scenarios = (values.scenario ?? DEFAULT_SCENARIOS.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => z.enum(SCENARIOS).parse(s));

  const apiUrl = values['api-url'] ?? env.BENCH_API_URL;
  let target: TargetStack | undefined;
  if (apiUrl) {
    const databaseUrl = values['database-url'] ?? env.BENCH_DATABASE_URL;
    if (!databaseUrl) throw new Error('--api-url needs --database-url (or BENCH_DATABASE_URL): figures come from the database');
    const temporalAddress = values['temporal-address'] ?? env.BENCH_TEMPORAL_ADDRESS;
    const apiKey = values['api-key'] ?? env.BENCH_API_KEY;
    if (!apiKey) throw new Error('--api-url needs --api-key (or BENCH_API_KEY): a storefront key of that API');
    const webhookSecret = values['webhook-secret'] ?? env.BENCH_PAYMENT_WEBHOOK_SECRET;
    target = {
      apiUrl: z.string().url().parse(apiUrl).replace(/\/$/, ''),
      apiKey,
      databaseUrl: z.string().url().parse(databaseUrl),
      ...(temporalAddress && { temporalAddress }),
      pids: Object.fromEntries((values.pid ?? []).map((p) => keyValue(p, '--pid')).map(([k, v]) => [k, count.parse(v)])),
      ...(webhookSecret && { webhookSecret }),
    };
  }

  const engines = (values.temporal ?? 'dev')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => z.enum(ENGINES).parse(s));
  if (target && engines.includes('server')) throw new Error('--temporal server starts its own stack; it cannot be combined with --api-url');

  const paidShare = z.coerce.number().min(0).max(1).parse(values['paid-share'] ?? DEFAULT_PAID_SHARE);
  if (target && !target.webhookSecret && paidShare > 0 && scenarios.includes('throughput')) {
    throw new Error('paying orders on a running stack needs its secret: --webhook-secret (or BENCH_PAYMENT_WEBHOOK_SECRET), or --paid-share 0');
  }

  const json = values.json;
  return {
    scenarios: [...new Set(scenarios)],
    engines: [...new Set(engines)],
    temporalShards: pick(values.shards, 4, 4),
    ...(values.workers !== undefined && { workers: count.parse(values.workers) }),
    smoke,
    duration: pick(values.duration, 60, 5),
    warmup: pick(values.warmup, 5, 1, z.coerce.number().int().min(0)),
    repeat: pick(values.repeat, 3, 1),
    paidShare,
    connections: pick(values.connections, 50, 10),
    sqlPool: pick(values['sql-pool'], 20, 5),
    skus: pick(values.skus, 200, 20),
    expiryOrders: pick(values['expiry-orders'], 10_000, 100),
    expiryWindow: pick(values['expiry-window'], 60, 3),
    scaleOrders: pick(values['scale-orders'], 100_000, 200),
    units: pick(values.units, 500, 20),
    buyers: pick(values.buyers, 5_000, 300),
    flashBaseline: pick(values['flash-baseline'], 20, 3),
    historyOrders: pick(values['history-orders'], 1_000_000, 3_000),
    historySamples: pick(values['history-samples'], 200, 10),
    pruneSeconds: pick(values['prune-seconds'], 60, 10),
    pruners: pick(values.pruners, 2, 2),
    ...(values.explain !== undefined && { explain: values.explain }),
    stackPerScenario: !(values['shared-stack'] ?? smoke),
    stackEnv: Object.fromEntries((values.env ?? []).map((e) => keyValue(e, '--env'))),
    databaseAdminUrl:
      values['database-admin-url'] ?? env.BENCH_DATABASE_ADMIN_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
    ...(target && { target }),
    ...(json && { json }),
    progressSeconds: pick(values.progress, 10, 2),
    approaches: [
      ...new Set(
        (values.approaches ?? APPROACHES.join(','))
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
          .map((s) => z.enum(APPROACHES).parse(s)),
      ),
    ],
    approachOrders: pick(values['approach-orders'], 20_000, 40),
    approachRate: pick(values['approach-rate'], 20, 20, z.coerce.number().positive()),
    timeScale: pick(values['time-scale'], 60, 200, z.coerce.number().positive()),
    outage: pick(values.outage, 5, 1, z.coerce.number().min(0)),
    amqpUrl: values['amqp-url'] ?? env.BENCH_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
    redisUrl: values['redis-url'] ?? env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
  };
}

function keyValue(text: string, flag: string): [string, string] {
  const at = text.indexOf('=');
  if (at <= 0) throw new Error(`${flag} takes KEY=VALUE, got ${text}`);
  return [text.slice(0, at), text.slice(at + 1)];
}
