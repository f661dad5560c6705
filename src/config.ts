/**
 * The one place the environment is read. Every setting has a default that works on a
 * developer machine, except secrets in production, which must be given.
 */
import { z } from 'zod';

const DEV_WEBHOOK_SECRET = 'dev-webhook-secret';
const DEV_ADMIN_TOKEN = 'dev-admin-token';

const intFromEnv = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v));

const EnvSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  PORT: intFromEnv(0, 65535).default(3000),
  DATABASE_URL: z.string().url().default('postgresql://postgres@127.0.0.1:5432/checkout'),
  DATABASE_POOL_SIZE: intFromEnv(1, 500).default(10),
  TEMPORAL_ADDRESS: z.string().min(1).default('localhost:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('checkout'),
  TEMPORAL_API_KEY: optionalString,
  TEMPORAL_TLS: z.enum(['true', 'false']).optional(),
  TEMPORAL_TLS_CERT_PATH: optionalString,
  TEMPORAL_TLS_KEY_PATH: optionalString,
  TEMPORAL_TLS_CA_PATH: optionalString,
  TEMPORAL_TLS_SERVER_NAME: optionalString,
  PAYMENT_TIMEOUT_SECONDS: intFromEnv(1, 86_400).default(900),
  PAYMENT_WEBHOOK_SECRET: optionalString,
  ADMIN_TOKEN: optionalString,
  WORKER_MAX_CONCURRENT_ACTIVITIES: intFromEnv(1, 10_000).default(100),
  WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: intFromEnv(1, 10_000).default(100),
  WORKER_MAX_CACHED_WORKFLOWS: intFromEnv(0, 1_000_000).default(2_000),
  WORKER_METRICS_PORT: intFromEnv(0, 65535).default(9464),
});

export type Env = Record<string, string | undefined>;

export interface TemporalTlsConfig {
  clientCertPath?: string;
  clientKeyPath?: string;
  serverRootCaPath?: string;
  serverName?: string;
}

export interface TemporalConfig {
  address: string;
  namespace: string;
  taskQueue: string;
  apiKey?: string;
  /** Undefined means plain TCP (the local dev server). */
  tls?: TemporalTlsConfig;
}

export interface Config {
  env: 'development' | 'test' | 'production';
  logLevel: z.infer<typeof EnvSchema>['LOG_LEVEL'];
  port: number;
  databaseUrl: string;
  databasePoolSize: number;
  temporal: TemporalConfig;
  paymentTimeoutSeconds: number;
  paymentWebhookSecret: string;
  adminToken: string;
  worker: {
    maxConcurrentActivities: number;
    maxConcurrentWorkflowTasks: number;
    maxCachedWorkflows: number;
    /** The worker's own Prometheus listener (outcomes, holds, expiries happen in the worker). */
    metricsPort: number;
  };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function loadConfig(env: Env = process.env): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`invalid environment: ${problems}`);
  }
  const e = parsed.data;
  const production = e.NODE_ENV === 'production';
  return {
    env: e.NODE_ENV,
    logLevel: e.LOG_LEVEL,
    port: e.PORT,
    databaseUrl: e.DATABASE_URL,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    temporal: temporalConfig(e),
    paymentTimeoutSeconds: e.PAYMENT_TIMEOUT_SECONDS,
    paymentWebhookSecret: secret('PAYMENT_WEBHOOK_SECRET', e.PAYMENT_WEBHOOK_SECRET, DEV_WEBHOOK_SECRET, production),
    adminToken: secret('ADMIN_TOKEN', e.ADMIN_TOKEN, DEV_ADMIN_TOKEN, production),
    worker: {
      maxConcurrentActivities: e.WORKER_MAX_CONCURRENT_ACTIVITIES,
      maxConcurrentWorkflowTasks: e.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
      maxCachedWorkflows: e.WORKER_MAX_CACHED_WORKFLOWS,
      metricsPort: e.WORKER_METRICS_PORT,
    },
  };
}

function secret(name: string, value: string | undefined, devDefault: string, production: boolean): string {
  if (value !== undefined) return value;
  if (production) throw new ConfigError(`${name} must be set when NODE_ENV=production`);
  return devDefault;
}

function temporalConfig(e: z.infer<typeof EnvSchema>): TemporalConfig {
  const hasClientCert = e.TEMPORAL_TLS_CERT_PATH !== undefined || e.TEMPORAL_TLS_KEY_PATH !== undefined;
  if (hasClientCert && (e.TEMPORAL_TLS_CERT_PATH === undefined || e.TEMPORAL_TLS_KEY_PATH === undefined)) {
    throw new ConfigError('TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH must be set together');
  }
  // An API key (Temporal Cloud) or a client certificate implies TLS unless explicitly turned off.
  const tlsWanted =
    e.TEMPORAL_TLS === 'true' ||
    (e.TEMPORAL_TLS !== 'false' && (hasClientCert || e.TEMPORAL_API_KEY !== undefined || e.TEMPORAL_TLS_CA_PATH !== undefined));
  const tls: TemporalTlsConfig | undefined = tlsWanted
    ? dropUndefined({
        clientCertPath: e.TEMPORAL_TLS_CERT_PATH,
        clientKeyPath: e.TEMPORAL_TLS_KEY_PATH,
        serverRootCaPath: e.TEMPORAL_TLS_CA_PATH,
        serverName: e.TEMPORAL_TLS_SERVER_NAME,
      })
    : undefined;
  return dropUndefined({
    address: e.TEMPORAL_ADDRESS,
    namespace: e.TEMPORAL_NAMESPACE,
    taskQueue: e.TEMPORAL_TASK_QUEUE,
    apiKey: e.TEMPORAL_API_KEY,
    tls,
  });
}

function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
