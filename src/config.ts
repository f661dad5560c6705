/**
 * The one place the environment is read. Every setting has a default that works on a
 * developer machine, except secrets in production, which must be given.
 *
 * Over 400 lines: every setting, its default (DEFAULTS) and its bounds in one zod schema; a
 * default or bound kept anywhere else would be a second copy of the rule.
 */
import v8 from 'node:v8';
import { z } from 'zod';

/** `whsec_` + base64 of "checkout-dev-webhook-secret!": for local runs and `npm run pay` only. */
const DEV_WEBHOOK_SECRET = 'whsec_Y2hlY2tvdXQtZGV2LXdlYmhvb2stc2VjcmV0IQ==';
const DEV_ADMIN_TOKEN = 'dev-admin-token';
const DEV_STOREFRONT_KEY = 'dev-storefront-key';
/** Keys order ids derived from an Idempotency-Key in local runs only. */
const DEV_ORDER_ID_SECRET = 'checkout-dev-order-id-secret';
/** `whsec_` + base64 of "checkout-dev-order-events-secret": signs order events in local runs only. */
const DEV_ORDER_EVENTS_SECRET = 'whsec_Y2hlY2tvdXQtZGV2LW9yZGVyLWV2ZW50cy1zZWNyZXQ=';
const DEV_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/checkout';

/**
 * The defaults of the settings other modules also need when they are built without a config
 * (tests, tools): stated here once, and the schema below uses them.
 */
export const DEFAULTS = {
  paymentTimeoutSeconds: 900,
  orderDecisionWaitSeconds: 10,
  paymentProcessingHoldSeconds: 3600,
  maxPaymentWindowSeconds: 604_800,
  checkoutCurrency: 'eur',
  workerShutdownGraceSeconds: 20,
  /** The inventory check flags a hold still held this long past its effective deadline. */
  reclaimBoundSeconds: 10,
  /**
   * How long an API replica trusts what it looked up about a key (valid, revoked or unknown):
   * under the contract's 5 s for a revocation to reach every replica, with room for the lookup.
   */
  apiKeyCacheSeconds: 4,
  /** How often an API replica writes the lastUsedAt of the keys it saw (one UPDATE for all). */
  apiKeyLastUsedFlushSeconds: 30,
  /** Orders awaiting payment (or in flight) one customer may have at once; 0: no cap. */
  maxOpenOrdersPerCustomer: 0,
  /**
   * How long an order admitted but not yet held keeps its units from other buyers. Longer than a
   * drop's holds take to run (units ÷ holds per second), or more workflows start than there are units.
   */
  orderAdmissionSeconds: 60,
  /** How often each worker writes its heartbeat row (src/worker-heartbeat.ts). */
  workerHeartbeatIntervalMs: 1_000,
  /**
   * /readyz counts a worker alive while its last heartbeat is at most this old: a frozen or dead
   * worker turns it 503 within this (plus one probe), under the 10 s an operator is promised.
   */
  workerHeartbeatStaleSeconds: 5,
  /** Closed orders (and everything that hangs off them) are kept this long after they closed. */
  retentionDays: 90,
  /** Delivered or given-up event deliveries are kept this long after they finished. */
  eventRetentionDays: 30,
  /** Closed orders pruned per transaction: small, so each batch holds its rows for milliseconds. */
  pruneBatchSize: 200,
  /** Pause between prune batches once caught up. */
  pruneIntervalMs: 5_000,
} as const;

/** Production's shortest bootstrap key or order id secret: anything shorter can be guessed. */
export const MIN_PRODUCTION_SECRET_LENGTH = 32;

const DURATION = /^(\d+)(s|m|h|d)$/;
const intFromEnv = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v));
const optionalInt = (min: number, max: number) =>
  z.preprocess((v) => (typeof v === 'string' && v.trim() === '' ? undefined : v), intFromEnv(min, max).optional());

const DatabaseEnvSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  DATABASE_URL: optionalString.pipe(z.string().url().optional()),
  DATABASE_POOL_SIZE: intFromEnv(1, 500).default(10),
});

const EnvSchema = DatabaseEnvSchema.extend({
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  PORT: intFromEnv(0, 65535).default(3000),
  TEMPORAL_ADDRESS: z.string().min(1).default('localhost:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('checkout'),
  TEMPORAL_API_KEY: optionalString,
  TEMPORAL_TLS: z.enum(['true', 'false']).optional(),
  TEMPORAL_TLS_CERT_PATH: optionalString,
  TEMPORAL_TLS_KEY_PATH: optionalString,
  TEMPORAL_TLS_CA_PATH: optionalString,
  TEMPORAL_TLS_CERT: optionalString,
  TEMPORAL_TLS_KEY: optionalString,
  TEMPORAL_TLS_CA: optionalString,
  TEMPORAL_TLS_SERVER_NAME: optionalString,
  // Production's only exemption from Temporal credentials: the operator vouches that no one else can reach it.
  TEMPORAL_NETWORK_PRIVATE: z.enum(['true', 'false']).default('false'),
  PAYMENT_TIMEOUT_SECONDS: intFromEnv(1, 86_400).default(DEFAULTS.paymentTimeoutSeconds),
  ORDER_DECISION_WAIT_SECONDS: intFromEnv(1, 60).default(DEFAULTS.orderDecisionWaitSeconds),
  // How long a payment.processing delivery keeps an order's stock past its deadline (at most).
  PAYMENT_PROCESSING_HOLD_SECONDS: intFromEnv(1, 604_800).default(DEFAULTS.paymentProcessingHoldSeconds),
  // No extension moves expiresAt further than this from createdAt.
  MAX_PAYMENT_WINDOW_SECONDS: intFromEnv(1, 31_536_000).default(DEFAULTS.maxPaymentWindowSeconds),
  PAYMENT_WEBHOOK_SECRET: optionalString,
  STRIPE_WEBHOOK_SECRET: optionalString,
  CHECKOUT_CURRENCY: optionalString.pipe(z.string().regex(/^[a-z]{3}$/, 'a lowercase ISO 4217 code, e.g. eur').optional()),
  ADMIN_TOKEN: optionalString,
  // A bootstrap storefront key of channel `default`; unset in production: only keys from the database.
  STOREFRONT_KEY: optionalString,
  ORDER_ID_SECRET: optionalString,
  WORKER_MAX_CONCURRENT_ACTIVITIES: intFromEnv(1, 10_000).default(40),
  // The SDK refuses fewer than 2 workflow task slots while the cache is on.
  WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: intFromEnv(2, 10_000).default(40),
  WORKER_MAX_CONCURRENT_WORKFLOW_TASK_POLLS: optionalInt(2, 1_000),
  WORKER_MAX_CONCURRENT_ACTIVITY_TASK_POLLS: optionalInt(1, 1_000),
  WORKER_MAX_CACHED_WORKFLOWS: optionalInt(0, 1_000_000),
  WORKER_SHUTDOWN_GRACE_SECONDS: intFromEnv(0, 3_600).default(DEFAULTS.workerShutdownGraceSeconds),
  WORKER_WORKFLOW_BUNDLE_PATH: optionalString,
  WORKER_METRICS_PORT: intFromEnv(0, 65535).default(9464),
  // Worker: how often it writes its heartbeat; API: how old the newest may be for /readyz to say ready.
  WORKER_HEARTBEAT_INTERVAL_MS: intFromEnv(100, 60_000).default(DEFAULTS.workerHeartbeatIntervalMs),
  WORKER_HEARTBEAT_STALE_SECONDS: intFromEnv(1, 3_600).default(DEFAULTS.workerHeartbeatStaleSeconds),
  // The reclaim in every worker; its interval bounds how late past expiresAt stock comes back.
  RECLAIM_ENABLED: z.enum(['true', 'false']).default('true'),
  RECLAIM_INTERVAL_MS: intFromEnv(10, 250).default(200),
  RECLAIM_BATCH_SIZE: intFromEnv(1, 10_000).default(500),
  // The inventory check reports any hold still held this long past its effective deadline.
  RECLAIM_BOUND_SECONDS: intFromEnv(1, 3_600).default(DEFAULTS.reclaimBoundSeconds),
  // API and worker: a customer with this many orders awaiting payment (or in flight) is refused another; 0: no cap.
  MAX_OPEN_ORDERS_PER_CUSTOMER: intFromEnv(0, 1_000_000).default(DEFAULTS.maxOpenOrdersPerCustomer),
  // API: an order admitted (PENDING) but not held within this long stops keeping its units from others.
  ORDER_ADMISSION_SECONDS: intFromEnv(1, 86_400).default(DEFAULTS.orderAdmissionSeconds),
  // Retention (src/retention.ts): closed orders pruned this many days after they closed, finished deliveries after EVENT_RETENTION_DAYS.
  RETENTION_DAYS: intFromEnv(1, 36_500).default(DEFAULTS.retentionDays),
  EVENT_RETENTION_DAYS: intFromEnv(1, 36_500).default(DEFAULTS.eventRetentionDays),
  RETENTION_PRUNE_ENABLED: z.enum(['true', 'false']).default('true'),
  // Pause between prune batches once caught up (a full batch is followed by the next at once).
  RETENTION_PRUNE_INTERVAL_MS: intFromEnv(100, 3_600_000).default(DEFAULTS.pruneIntervalMs),
  RETENTION_PRUNE_BATCH_SIZE: intFromEnv(1, 10_000).default(DEFAULTS.pruneBatchSize),
  // Comma-separated http(s) endpoints that receive every order event; none: events are only read.
  ORDER_EVENTS_URL: optionalString,
  ORDER_EVENTS_SECRET: optionalString,
  // How long an event is retried before it is marked failed: e.g. 72h, 30m, 90s, 3d.
  ORDER_EVENTS_MAX_AGE: optionalString.pipe(z.string().regex(DURATION, 'a duration such as 72h, 30m, 90s or 3d').optional()),
});

export type Env = Record<string, string | undefined>;

/** Every variable this module reads; deploy files are checked against it (tests/compose.test.ts). */
export const CONFIG_ENV_NAMES: readonly string[] = Object.keys(EnvSchema.shape);

/** PEM material comes from a file or, as many platforms inject secrets, from the variable itself. */
export type PemSource = { path: string } | { pem: string };

export interface TemporalTlsConfig {
  clientCert?: PemSource;
  clientKey?: PemSource;
  serverRootCa?: PemSource;
  serverName?: string;
}

export interface TemporalConfig {
  address: string;
  namespace: string;
  taskQueue: string;
  apiKey?: string;
  /** Undefined means plain TCP (the local dev server, or a cluster inside a private network). */
  tls?: TemporalTlsConfig;
}

export interface WorkerTuning {
  maxConcurrentActivities: number;
  maxConcurrentWorkflowTasks: number;
  /** Undefined: the SDK's default, min(10, slots). */
  maxConcurrentWorkflowTaskPolls?: number;
  maxConcurrentActivityTaskPolls?: number;
  maxCachedWorkflows: number;
  shutdownGraceSeconds: number;
  /** A bundle made at build time (`scripts/build-workflow-bundle.ts`); otherwise bundled at start. */
  workflowBundlePath?: string;
  /** The worker's own Prometheus listener (outcomes, holds, expiries happen in the worker). */
  metricsPort: number;
}

/** Order events to the storefront (src/order-events-dispatcher.ts). */
export interface OrderEventsConfig {
  /** Where each event is delivered; empty: events are written and read, not sent. */
  endpoints: string[];
  /** Standard Webhooks secret (`whsec_<base64>`) that signs every delivery. */
  secret: string;
  /** An event not delivered this long after it was written is marked failed. */
  maxAgeSeconds: number;
}

/** Each worker's heartbeat row (src/worker-heartbeat.ts) and how /readyz reads it. */
export interface WorkerHeartbeatConfig {
  intervalMs: number;
  /** A worker whose last beat is older than this does not count as alive. */
  staleSeconds: number;
}

/** The bulk release of holds past their deadline (src/reclaim.ts). */
export interface ReclaimConfig {
  enabled: boolean;
  intervalMs: number;
  batchSize: number;
  /** A hold still held this long past its effective deadline is a violation (GET /admin/inventory/check). */
  boundSeconds: number;
}

/** Pruning of closed orders and finished event deliveries (src/retention.ts). */
export interface RetentionConfig {
  enabled: boolean;
  /** RETENTION_DAYS in seconds: a closed order older than this (by closedAt) is pruned. */
  retentionSeconds: number;
  /** EVENT_RETENTION_DAYS in seconds: a delivered or given-up delivery older than this is pruned. */
  eventRetentionSeconds: number;
  batchSize: number;
  intervalMs: number;
}

const SECONDS_PER_DAY = 86_400;

export interface DatabaseConfig {
  databaseUrl: string;
  databasePoolSize: number;
}

export interface Config extends DatabaseConfig {
  env: 'development' | 'test' | 'production';
  logLevel: z.infer<typeof EnvSchema>['LOG_LEVEL'];
  port: number;
  temporal: TemporalConfig;
  paymentTimeoutSeconds: number;
  /** How long a request waits for a decision (hold, payment, cancel) before answering 202. */
  orderDecisionWaitSeconds: number;
  /** How long a payment.processing delivery may hold an order past its deadline. */
  paymentProcessingHoldSeconds: number;
  /** The latest an extension may move expiresAt, counted from createdAt. */
  maxPaymentWindowSeconds: number;
  /** MAX_OPEN_ORDERS_PER_CUSTOMER; 0: no cap. */
  maxOpenOrdersPerCustomer: number;
  /** ORDER_ADMISSION_SECONDS: how long an admitted order not yet held keeps its units from others. */
  orderAdmissionSeconds: number;
  /** Standard Webhooks secrets (`whsec_<base64>`); more than one while a secret is rotated. */
  paymentWebhookSecrets: string[];
  /** The Stripe endpoint's signing secret; undefined turns POST /webhooks/stripe off (404). */
  stripeWebhookSecret?: string;
  /** Lowercase ISO 4217: every order is priced and paid in it. */
  checkoutCurrency: string;
  /** The bootstrap operator key. */
  adminToken: string;
  /** The bootstrap storefront key (channel `default`); undefined: none. */
  storefrontKey?: string;
  /** Keys the order ids derived from (channel, customer, Idempotency-Key): the same on every replica. */
  orderIdSecret: string;
  worker: WorkerTuning;
  reclaim: ReclaimConfig;
  retention: RetentionConfig;
  orderEvents: OrderEventsConfig;
  workerHeartbeat: WorkerHeartbeatConfig;
}

/** What the process itself contributes to the config: its V8 heap limit bounds the workflow cache. */
export interface RuntimeFacts {
  heapSizeLimitMiB: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function currentRuntimeFacts(): RuntimeFacts {
  return { heapSizeLimitMiB: Math.floor(v8.getHeapStatistics().heap_size_limit / 2 ** 20) };
}

export function loadConfig(env: Env = process.env, runtime: RuntimeFacts = currentRuntimeFacts()): Config {
  const e = parseEnv(EnvSchema, env);
  const production = e.NODE_ENV === 'production';
  return {
    env: e.NODE_ENV,
    logLevel: e.LOG_LEVEL,
    port: e.PORT,
    ...databaseConfig(e),
    temporal: temporalConfig(e, production),
    paymentTimeoutSeconds: e.PAYMENT_TIMEOUT_SECONDS,
    orderDecisionWaitSeconds: e.ORDER_DECISION_WAIT_SECONDS,
    paymentProcessingHoldSeconds: e.PAYMENT_PROCESSING_HOLD_SECONDS,
    maxPaymentWindowSeconds: e.MAX_PAYMENT_WINDOW_SECONDS,
    maxOpenOrdersPerCustomer: e.MAX_OPEN_ORDERS_PER_CUSTOMER,
    orderAdmissionSeconds: e.ORDER_ADMISSION_SECONDS,
    paymentWebhookSecrets: paymentWebhookSecrets(e.PAYMENT_WEBHOOK_SECRET, production),
    ...(e.STRIPE_WEBHOOK_SECRET !== undefined && { stripeWebhookSecret: e.STRIPE_WEBHOOK_SECRET.trim() }),
    checkoutCurrency: e.CHECKOUT_CURRENCY ?? DEFAULTS.checkoutCurrency,
    ...bootstrapKeys(e, production),
    orderIdSecret: longSecret('ORDER_ID_SECRET', secret('ORDER_ID_SECRET', e.ORDER_ID_SECRET, DEV_ORDER_ID_SECRET, production), production),
    worker: workerTuning(e, runtime),
    reclaim: {
      enabled: e.RECLAIM_ENABLED === 'true',
      intervalMs: e.RECLAIM_INTERVAL_MS,
      batchSize: e.RECLAIM_BATCH_SIZE,
      boundSeconds: e.RECLAIM_BOUND_SECONDS,
    },
    retention: {
      enabled: e.RETENTION_PRUNE_ENABLED === 'true',
      retentionSeconds: e.RETENTION_DAYS * SECONDS_PER_DAY,
      eventRetentionSeconds: e.EVENT_RETENTION_DAYS * SECONDS_PER_DAY,
      batchSize: e.RETENTION_PRUNE_BATCH_SIZE,
      intervalMs: e.RETENTION_PRUNE_INTERVAL_MS,
    },
    orderEvents: orderEventsConfig(e, production),
    workerHeartbeat: workerHeartbeatConfig(e),
  };
}

function workerHeartbeatConfig(e: ParsedEnv): WorkerHeartbeatConfig {
  // One late beat (a GC pause, a slow statement) must not turn a live worker not ready.
  if (e.WORKER_HEARTBEAT_STALE_SECONDS * 1000 < 2 * e.WORKER_HEARTBEAT_INTERVAL_MS) {
    throw new ConfigError('WORKER_HEARTBEAT_STALE_SECONDS must be at least twice WORKER_HEARTBEAT_INTERVAL_MS');
  }
  return { intervalMs: e.WORKER_HEARTBEAT_INTERVAL_MS, staleSeconds: e.WORKER_HEARTBEAT_STALE_SECONDS };
}

function orderEventsConfig(e: ParsedEnv, production: boolean): OrderEventsConfig {
  const endpoints = (e.ORDER_EVENTS_URL ?? '').split(',').map((u) => u.trim()).filter((u) => u !== '');
  for (const endpoint of endpoints) {
    const url = URL.canParse(endpoint) ? new URL(endpoint) : undefined;
    if (url?.protocol !== 'http:' && url?.protocol !== 'https:') {
      throw new ConfigError(`ORDER_EVENTS_URL: ${JSON.stringify(endpoint)} is not an http(s) URL`);
    }
  }
  if (new Set(endpoints).size !== endpoints.length) throw new ConfigError('ORDER_EVENTS_URL names an endpoint twice');
  // Without endpoints nothing is signed, so production needs no secret then.
  const signingSecret = secret('ORDER_EVENTS_SECRET', e.ORDER_EVENTS_SECRET, DEV_ORDER_EVENTS_SECRET, production && endpoints.length > 0);
  const [checked] = webhookSecrets(signingSecret, 'ORDER_EVENTS_SECRET');
  if (checked === undefined || signingSecret.includes(',')) throw new ConfigError('ORDER_EVENTS_SECRET must be one whsec_ secret');
  return { endpoints, secret: checked, maxAgeSeconds: durationSeconds(e.ORDER_EVENTS_MAX_AGE ?? '72h') };
}

const DURATION_UNIT_SECONDS = { s: 1, m: 60, h: 3_600, d: 86_400 } as const;

function durationSeconds(value: string): number {
  const [, amount = '0', unit = 's'] = DURATION.exec(value) ?? [];
  const seconds = Number(amount) * DURATION_UNIT_SECONDS[unit as keyof typeof DURATION_UNIT_SECONDS];
  if (seconds < 1) throw new ConfigError('ORDER_EVENTS_MAX_AGE must be at least 1s');
  return seconds;
}

/** Only the database settings: what migrations and the seed need, without the app's secrets. */
export function loadDatabaseConfig(env: Env = process.env): DatabaseConfig {
  return databaseConfig(parseEnv(DatabaseEnvSchema, env));
}

function parseEnv<S extends z.ZodType>(schema: S, env: Env): z.infer<S> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`invalid environment: ${problems}`);
  }
  return parsed.data;
}

function databaseConfig(e: z.infer<typeof DatabaseEnvSchema>): DatabaseConfig {
  // The URL carries the database password, so production never falls back to the local default.
  const databaseUrl = secret('DATABASE_URL', e.DATABASE_URL, DEV_DATABASE_URL, e.NODE_ENV === 'production');
  return { databaseUrl, databasePoolSize: e.DATABASE_POOL_SIZE };
}

function secret(name: string, value: string | undefined, devDefault: string, production: boolean): string {
  if (production && (value === undefined || value === devDefault)) {
    throw new ConfigError(`${name} must be set (and not to the development default) when NODE_ENV=production`);
  }
  return value ?? devDefault;
}

/**
 * ADMIN_TOKEN (required in production) and STOREFRONT_KEY (optional there: storefront keys may all
 * come from the database). Production refuses any setting that would leave a route open to a
 * guess: a development default, a short key, or one key for both scopes.
 */
function bootstrapKeys(e: ParsedEnv, production: boolean): Pick<Config, 'adminToken' | 'storefrontKey'> {
  const adminToken = longSecret('ADMIN_TOKEN', secret('ADMIN_TOKEN', e.ADMIN_TOKEN, DEV_ADMIN_TOKEN, production), production);
  if (production && e.STOREFRONT_KEY === DEV_STOREFRONT_KEY) {
    throw new ConfigError('STOREFRONT_KEY must not be the development default when NODE_ENV=production');
  }
  const storefrontKey = e.STOREFRONT_KEY ?? (production ? undefined : DEV_STOREFRONT_KEY);
  if (storefrontKey !== undefined) longSecret('STOREFRONT_KEY', storefrontKey, production);
  if (storefrontKey === adminToken) {
    throw new ConfigError('STOREFRONT_KEY and ADMIN_TOKEN must differ: a storefront key would be an operator key');
  }
  return { adminToken, ...(storefrontKey !== undefined && { storefrontKey }) };
}

function longSecret(name: string, value: string, production: boolean): string {
  if (production && value.length < MIN_PRODUCTION_SECRET_LENGTH) {
    throw new ConfigError(`${name} must be at least ${MIN_PRODUCTION_SECRET_LENGTH} characters when NODE_ENV=production (e.g. openssl rand -hex 24)`);
  }
  return value;
}

/** Shorter keys are guessable; Standard Webhooks recommends 24 to 64 bytes. */
const MIN_WEBHOOK_KEY_BYTES = 16;
const WHSEC = /^whsec_([A-Za-z0-9+/]+={0,2})$/;

function paymentWebhookSecrets(value: string | undefined, production: boolean): string[] {
  const secrets = webhookSecrets(secret('PAYMENT_WEBHOOK_SECRET', value, DEV_WEBHOOK_SECRET, production));
  // The development secret is public (it is in this file), also as one of several.
  if (production && secrets.includes(DEV_WEBHOOK_SECRET)) {
    throw new ConfigError('PAYMENT_WEBHOOK_SECRET must not include the development default when NODE_ENV=production');
  }
  return secrets;
}

/** Comma-separated `whsec_<base64>` secrets (PAYMENT_WEBHOOK_SECRET by default), each of at least 16 bytes. */
export function webhookSecrets(value: string, name = 'PAYMENT_WEBHOOK_SECRET'): string[] {
  const secrets = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (secrets.length === 0) throw new ConfigError(`${name} holds no secret`);
  for (const [index, candidate] of secrets.entries()) {
    const base64 = WHSEC.exec(candidate)?.[1];
    // Round-tripping catches base64 that Node would decode leniently (bad padding, stray bits).
    const key = base64 === undefined ? undefined : Buffer.from(base64, 'base64');
    if (key === undefined || key.toString('base64') !== base64 || key.length < MIN_WEBHOOK_KEY_BYTES) {
      throw new ConfigError(
        `${name}: secret #${index + 1} must be whsec_ followed by the base64 of at least ${MIN_WEBHOOK_KEY_BYTES} bytes`,
      );
    }
  }
  return secrets;
}

type ParsedEnv = z.infer<typeof EnvSchema>;

function temporalConfig(e: ParsedEnv, production: boolean): TemporalConfig {
  const clientCert = pemSource('TEMPORAL_TLS_CERT', e.TEMPORAL_TLS_CERT_PATH, e.TEMPORAL_TLS_CERT);
  const clientKey = pemSource('TEMPORAL_TLS_KEY', e.TEMPORAL_TLS_KEY_PATH, e.TEMPORAL_TLS_KEY);
  const serverRootCa = pemSource('TEMPORAL_TLS_CA', e.TEMPORAL_TLS_CA_PATH, e.TEMPORAL_TLS_CA);
  if ((clientCert === undefined) !== (clientKey === undefined)) {
    throw new ConfigError(
      'a client certificate needs its key: set TEMPORAL_TLS_CERT(_PATH) and TEMPORAL_TLS_KEY(_PATH) together',
    );
  }
  const tlsSettings = dropUndefined({ clientCert, clientKey, serverRootCa, serverName: e.TEMPORAL_TLS_SERVER_NAME });
  const needsTls = Object.keys(tlsSettings).length > 0 || e.TEMPORAL_API_KEY !== undefined;
  // An API key or a certificate sent over plain TCP would leak it: refuse rather than quietly send it.
  if (e.TEMPORAL_TLS === 'false' && needsTls) {
    throw new ConfigError(
      'TEMPORAL_TLS=false contradicts TEMPORAL_API_KEY / TEMPORAL_TLS_* settings, which only work over TLS',
    );
  }
  if (isTemporalCloud(e.TEMPORAL_ADDRESS) && e.TEMPORAL_API_KEY === undefined && clientCert === undefined) {
    throw new ConfigError(
      `${e.TEMPORAL_ADDRESS} is Temporal Cloud: set TEMPORAL_API_KEY or a client certificate (TEMPORAL_TLS_CERT/KEY)`,
    );
  }
  // Whoever reaches a frontend without credentials can signal, reset or terminate any order.
  const authenticated = e.TEMPORAL_API_KEY !== undefined || clientCert !== undefined;
  if (production && !authenticated && !isLocalAddress(e.TEMPORAL_ADDRESS) && e.TEMPORAL_NETWORK_PRIVATE !== 'true') {
    throw new ConfigError(
      `TEMPORAL_ADDRESS ${e.TEMPORAL_ADDRESS} is not local: with NODE_ENV=production set TEMPORAL_API_KEY or a client certificate ` +
        '(TEMPORAL_TLS_CERT/KEY), or TEMPORAL_NETWORK_PRIVATE=true if no one outside this deployment can reach that network',
    );
  }
  const tls = e.TEMPORAL_TLS === 'true' || needsTls ? tlsSettings : undefined;
  return dropUndefined({
    address: e.TEMPORAL_ADDRESS,
    namespace: e.TEMPORAL_NAMESPACE,
    taskQueue: e.TEMPORAL_TASK_QUEUE,
    apiKey: e.TEMPORAL_API_KEY,
    tls,
  });
}

function pemSource(name: string, path: string | undefined, inline: string | undefined): PemSource | undefined {
  if (path !== undefined && inline !== undefined) {
    throw new ConfigError(`set either ${name}_PATH or ${name}, not both`);
  }
  if (path !== undefined) return { path };
  if (inline === undefined) return undefined;
  // Some platforms flatten multi-line secrets into one line with literal "\n".
  const pem = inline.includes('\n') ? inline : inline.replace(/\\n/g, '\n');
  if (!pem.includes('-----BEGIN ')) {
    throw new ConfigError(`${name} must hold PEM text (-----BEGIN ...); use ${name}_PATH for a file`);
  }
  return { pem };
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '::1']);

/** `host:port`, `[v6]:port` or a bare host: true when the host is this machine's loopback. */
function isLocalAddress(address: string): boolean {
  const bracketed = /^\[([^\]]+)\](:\d+)?$/.exec(address);
  // More than one colon without brackets is a bare IPv6 address, not host:port.
  const host = bracketed?.[1] ?? (address.split(':').length === 2 ? address.replace(/:\d*$/, '') : address);
  return LOOPBACK_HOSTS.has(host.toLowerCase());
}

function isTemporalCloud(address: string): boolean {
  const host = address.replace(/:\d+$/, '').toLowerCase();
  return host.endsWith('.tmprl.cloud');
}

/**
 * Workflow cache size when not set: what fits the V8 heap, the SDK's own estimate for reused
 * V8 contexts (about 600 cached workflows per GiB once 200 MiB are left for the runtime,
 * activities and the Prisma pool). The image caps the heap with --max-old-space-size, so the
 * cache follows the container's memory rather than the host's.
 */
export function workflowCacheSizeFor(heapSizeLimitMiB: number): number {
  const RUNTIME_BASELINE_MIB = 200;
  const CACHED_WORKFLOWS_PER_GIB = 600;
  return Math.max(Math.floor((Math.max(heapSizeLimitMiB - RUNTIME_BASELINE_MIB, 0) * CACHED_WORKFLOWS_PER_GIB) / 1024), 10);
}

function workerTuning(e: ParsedEnv, runtime: RuntimeFacts): WorkerTuning {
  const tuning: WorkerTuning = dropUndefined({
    maxConcurrentActivities: e.WORKER_MAX_CONCURRENT_ACTIVITIES,
    maxConcurrentWorkflowTasks: e.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
    maxConcurrentWorkflowTaskPolls: e.WORKER_MAX_CONCURRENT_WORKFLOW_TASK_POLLS,
    maxConcurrentActivityTaskPolls: e.WORKER_MAX_CONCURRENT_ACTIVITY_TASK_POLLS,
    maxCachedWorkflows: e.WORKER_MAX_CACHED_WORKFLOWS ?? workflowCacheSizeFor(runtime.heapSizeLimitMiB),
    shutdownGraceSeconds: e.WORKER_SHUTDOWN_GRACE_SECONDS,
    workflowBundlePath: e.WORKER_WORKFLOW_BUNDLE_PATH,
    metricsPort: e.WORKER_METRICS_PORT,
  });
  // A poller holds a slot open, so more pollers than slots would never be used.
  if ((tuning.maxConcurrentWorkflowTaskPolls ?? 0) > tuning.maxConcurrentWorkflowTasks) {
    throw new ConfigError('WORKER_MAX_CONCURRENT_WORKFLOW_TASK_POLLS cannot exceed WORKER_MAX_CONCURRENT_WORKFLOW_TASKS');
  }
  if ((tuning.maxConcurrentActivityTaskPolls ?? 0) > tuning.maxConcurrentActivities) {
    throw new ConfigError('WORKER_MAX_CONCURRENT_ACTIVITY_TASK_POLLS cannot exceed WORKER_MAX_CONCURRENT_ACTIVITIES');
  }
  return tuning;
}

function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
