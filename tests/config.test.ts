/**
 * Environment → Config → connection and worker options, as pure functions: the settings a
 * hosted Temporal namespace (Cloud or a TLS cluster) and a production deploy need.
 */
import { ACTIVITY_ATTEMPT_MS, CONNECTION_WAIT_MS, LOCK_TIMEOUT_MS, TRANSACTION_TIMEOUT_MS } from '../activities/timeouts';
import { ConfigError, DEFAULTS, loadConfig, loadDatabaseConfig, workflowCacheSizeFor, type Env } from '../src/config';
import { temporalConnectionOptions } from '../src/temporal';
import { workerTuningOptions } from '../src/worker';

const HEAP_1_GIB = { heapSizeLimitMiB: 1024 };
const CERT = '-----BEGIN CERTIFICATE-----\nMIIBclientcert\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nMIIBclientkey\n-----END PRIVATE KEY-----\n';
const CA = '-----BEGIN CERTIFICATE-----\nMIIBrootca\n-----END CERTIFICATE-----\n';

const PRODUCTION: Env = {
  NODE_ENV: 'production',
  DATABASE_URL: 'postgresql://checkout:s3cret@db.internal:5432/checkout',
  PAYMENT_WEBHOOK_SECRET: `whsec_${Buffer.from('production-webhook-secret-32-bytes').toString('base64')}`,
  ADMIN_TOKEN: 'admin-prod-0123456789abcdef0123456789',
  ORDER_ID_SECRET: 'order-ids-0123456789abcdef0123456789',
};

const load = (env: Env) => loadConfig(env, HEAP_1_GIB);

/** A file system of the given files; any other path does not exist. */
function filesOf(files: Record<string, string>): (path: string) => Buffer {
  return (path) => {
    const content = files[path];
    if (content === undefined) throw new Error(`ENOENT: no such file, open '${path}'`);
    return Buffer.from(content);
  };
}

const noFiles = filesOf({});

describe('local defaults', () => {
  test('an empty environment gives the local dev server over plain TCP and the local database', () => {
    const config = load({});

    expect(config.env).toBe('development');
    expect(config.port).toBe(3000);
    expect(config.databaseUrl).toBe('postgresql://postgres@127.0.0.1:5432/checkout');
    expect(config.temporal).toEqual({ address: 'localhost:7233', namespace: 'default', taskQueue: 'checkout' });
    expect(temporalConnectionOptions(config.temporal, noFiles)).toEqual({ address: 'localhost:7233' });
    expect(config.orderDecisionWaitSeconds).toBe(10);
  });

  test('the timeouts nest: lock wait < transaction < activity attempt < the default decision wait', () => {
    expect(LOCK_TIMEOUT_MS).toBeLessThan(TRANSACTION_TIMEOUT_MS);
    expect(CONNECTION_WAIT_MS + TRANSACTION_TIMEOUT_MS).toBeLessThan(ACTIVITY_ATTEMPT_MS);
    expect(ACTIVITY_ATTEMPT_MS).toBeLessThan(DEFAULTS.orderDecisionWaitSeconds * 1000);
    expect(load({}).orderDecisionWaitSeconds).toBe(DEFAULTS.orderDecisionWaitSeconds);
  });

  test('ORDER_DECISION_WAIT_SECONDS is read in whole seconds, 1 to 60', () => {
    expect(load({ ORDER_DECISION_WAIT_SECONDS: '2' }).orderDecisionWaitSeconds).toBe(2);
    expect(() => load({ ORDER_DECISION_WAIT_SECONDS: '0' })).toThrow(/ORDER_DECISION_WAIT_SECONDS/);
    expect(() => load({ ORDER_DECISION_WAIT_SECONDS: '61' })).toThrow(/ORDER_DECISION_WAIT_SECONDS/);
  });

  test('retention: closed orders 90 days, finished deliveries 30 days, pruned by every worker in small batches', () => {
    expect(load({}).retention).toEqual({
      enabled: true,
      retentionSeconds: 90 * 86_400,
      eventRetentionSeconds: 30 * 86_400,
      batchSize: DEFAULTS.pruneBatchSize,
      intervalMs: DEFAULTS.pruneIntervalMs,
    });
    expect(DEFAULTS.retentionDays).toBe(90);
    expect(DEFAULTS.eventRetentionDays).toBe(30);
  });

  test('RETENTION_DAYS and EVENT_RETENTION_DAYS are whole days of at least one; pruning can be turned off', () => {
    const config = load({ RETENTION_DAYS: '365', EVENT_RETENTION_DAYS: '7', RETENTION_PRUNE_ENABLED: 'false', RETENTION_PRUNE_BATCH_SIZE: '50' });

    expect(config.retention).toMatchObject({ enabled: false, retentionSeconds: 365 * 86_400, eventRetentionSeconds: 7 * 86_400, batchSize: 50 });
    expect(() => load({ RETENTION_DAYS: '0' })).toThrow(/RETENTION_DAYS/);
    expect(() => load({ EVENT_RETENTION_DAYS: '1.5' })).toThrow(/EVENT_RETENTION_DAYS/);
    expect(() => load({ RETENTION_PRUNE_BATCH_SIZE: '0' })).toThrow(/RETENTION_PRUNE_BATCH_SIZE/);
  });

  test('blank values count as unset', () => {
    const config = load({ TEMPORAL_API_KEY: '  ', WORKER_MAX_CACHED_WORKFLOWS: '', DATABASE_URL: '' });

    expect(config.temporal.apiKey).toBeUndefined();
    expect(config.temporal.tls).toBeUndefined();
    expect(config.worker.maxCachedWorkflows).toBe(workflowCacheSizeFor(1024));
    expect(config.databaseUrl).toBe('postgresql://postgres@127.0.0.1:5432/checkout');
  });

  test('malformed numbers and enums are refused with the variable named', () => {
    expect(() => load({ PORT: 'eighty' })).toThrow(/PORT/);
    expect(() => load({ TEMPORAL_TLS: 'yes' })).toThrow(/TEMPORAL_TLS/);
    expect(() => load({ WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: '1' })).toThrow(/WORKER_MAX_CONCURRENT_WORKFLOW_TASKS/);
    expect(() => load({ DATABASE_URL: 'not a url' })).toThrow(ConfigError);
  });
});

describe('Temporal Cloud and TLS clusters', () => {
  test('an API key turns TLS on and is passed to the connection', () => {
    const config = load({
      TEMPORAL_ADDRESS: 'eu-west-1.aws.api.temporal.io:7233',
      TEMPORAL_NAMESPACE: 'checkout-prod.a1b2c',
      TEMPORAL_API_KEY: 'key-123',
    });

    expect(config.temporal).toEqual({
      address: 'eu-west-1.aws.api.temporal.io:7233',
      namespace: 'checkout-prod.a1b2c',
      taskQueue: 'checkout',
      apiKey: 'key-123',
      tls: {},
    });
    expect(temporalConnectionOptions(config.temporal, noFiles)).toEqual({
      address: 'eu-west-1.aws.api.temporal.io:7233',
      apiKey: 'key-123',
      tls: {},
    });
  });

  test('an API key with TEMPORAL_TLS=false is refused rather than sent in clear text', () => {
    expect(() => load({ TEMPORAL_API_KEY: 'key-123', TEMPORAL_TLS: 'false' })).toThrow(/TEMPORAL_TLS=false/);
  });

  test('client certificate files become the mTLS pair, read through the given file reader', () => {
    const config = load({
      TEMPORAL_ADDRESS: 'checkout-prod.a1b2c.tmprl.cloud:7233',
      TEMPORAL_TLS_CERT_PATH: '/run/secrets/client.pem',
      TEMPORAL_TLS_KEY_PATH: '/run/secrets/client.key',
      TEMPORAL_TLS_CA_PATH: '/run/secrets/ca.pem',
      TEMPORAL_TLS_SERVER_NAME: 'temporal.internal',
    });
    const files = filesOf({ '/run/secrets/client.pem': CERT, '/run/secrets/client.key': KEY, '/run/secrets/ca.pem': CA });

    const options = temporalConnectionOptions(config.temporal, files);

    expect(options.apiKey).toBeUndefined();
    expect(options.tls).toEqual({
      clientCertPair: { crt: Buffer.from(CERT), key: Buffer.from(KEY) },
      serverRootCACertificate: Buffer.from(CA),
      serverNameOverride: 'temporal.internal',
    });
  });

  test('certificate and key given inline as PEM text are used as they are', () => {
    const config = load({ TEMPORAL_TLS_CERT: CERT, TEMPORAL_TLS_KEY: KEY, TEMPORAL_TLS_CA: CA });

    const options = temporalConnectionOptions(config.temporal, noFiles);

    expect(options.tls).toEqual({
      clientCertPair: { crt: Buffer.from(CERT), key: Buffer.from(KEY) },
      serverRootCACertificate: Buffer.from(CA),
    });
  });

  test('inline PEM flattened to one line with literal \\n is restored', () => {
    const flattened = KEY.replace(/\n/g, '\\n');

    const config = load({ TEMPORAL_TLS_CERT: CERT, TEMPORAL_TLS_KEY: flattened });

    expect(temporalConnectionOptions(config.temporal, noFiles).tls?.clientCertPair?.key).toEqual(Buffer.from(KEY));
  });

  test('a certificate and a key may come one from a file and one inline', () => {
    const config = load({ TEMPORAL_TLS_CERT_PATH: '/certs/client.pem', TEMPORAL_TLS_KEY: KEY });

    const options = temporalConnectionOptions(config.temporal, filesOf({ '/certs/client.pem': CERT }));

    expect(options.tls?.clientCertPair).toEqual({ crt: Buffer.from(CERT), key: Buffer.from(KEY) });
  });

  test.each([
    ['a certificate file without a key', { TEMPORAL_TLS_CERT_PATH: '/certs/client.pem' }],
    ['a key file without a certificate', { TEMPORAL_TLS_KEY_PATH: '/certs/client.key' }],
    ['an inline certificate without a key', { TEMPORAL_TLS_CERT: CERT }],
    ['an inline key without a certificate', { TEMPORAL_TLS_KEY: KEY }],
  ])('%s is an error', (_case, env) => {
    expect(() => load(env)).toThrow(/TEMPORAL_TLS_CERT\(_PATH\) and TEMPORAL_TLS_KEY\(_PATH\) together/);
  });

  test('the same certificate given both as a file and inline is an error', () => {
    expect(() =>
      load({ TEMPORAL_TLS_CERT_PATH: '/certs/client.pem', TEMPORAL_TLS_CERT: CERT, TEMPORAL_TLS_KEY: KEY }),
    ).toThrow(/either TEMPORAL_TLS_CERT_PATH or TEMPORAL_TLS_CERT/);
  });

  test('inline certificate text that is not PEM is refused', () => {
    expect(() => load({ TEMPORAL_TLS_CERT: '/certs/client.pem', TEMPORAL_TLS_KEY: KEY })).toThrow(/PEM/);
  });

  test('a client certificate with TEMPORAL_TLS=false is an error', () => {
    expect(() => load({ TEMPORAL_TLS_CERT: CERT, TEMPORAL_TLS_KEY: KEY, TEMPORAL_TLS: 'false' })).toThrow(
      /TEMPORAL_TLS=false/,
    );
  });

  test('TEMPORAL_TLS=true alone gives server-verified TLS with the system trust store', () => {
    const config = load({ TEMPORAL_ADDRESS: 'temporal.example.com:443', TEMPORAL_TLS: 'true' });

    expect(temporalConnectionOptions(config.temporal, noFiles)).toEqual({ address: 'temporal.example.com:443', tls: {} });
  });

  test('a Temporal Cloud address without an API key or client certificate is an error', () => {
    expect(() => load({ TEMPORAL_ADDRESS: 'checkout-prod.a1b2c.tmprl.cloud:7233' })).toThrow(/Temporal Cloud/);
  });

  test('a certificate file that cannot be read fails with its path named', () => {
    const config = load({ TEMPORAL_TLS_CERT_PATH: '/missing/client.pem', TEMPORAL_TLS_KEY_PATH: '/missing/client.key' });

    expect(() => temporalConnectionOptions(config.temporal, noFiles)).toThrow(/\/missing\/client\.pem/);
  });
});

describe('production', () => {
  test('a complete production environment loads', () => {
    const config = load(PRODUCTION);

    expect(config.env).toBe('production');
    expect(config.databaseUrl).toBe(PRODUCTION.DATABASE_URL);
    expect(config.paymentWebhookSecrets).toEqual([PRODUCTION.PAYMENT_WEBHOOK_SECRET]);
    expect(config.stripeWebhookSecret).toBeUndefined();
    expect(config.checkoutCurrency).toBe('eur');
    expect(config.adminToken).toBe(PRODUCTION.ADMIN_TOKEN);
    expect(config.orderIdSecret).toBe(PRODUCTION.ORDER_ID_SECRET);
    // No bootstrap storefront key unless given: storefront keys come from the database.
    expect(config.storefrontKey).toBeUndefined();
    expect(load({ ...PRODUCTION, STOREFRONT_KEY: 'storefront-0123456789abcdef012345678' }).storefrontKey).toBe('storefront-0123456789abcdef012345678');
  });

  test('outside production the bootstrap keys and the order id secret have development defaults', () => {
    const config = load({});
    expect({ adminToken: config.adminToken, storefrontKey: config.storefrontKey }).toEqual({ adminToken: 'dev-admin-token', storefrontKey: 'dev-storefront-key' });
    expect(config.orderIdSecret).toEqual(expect.any(String));
  });

  test.each([
    ['ADMIN_TOKEN', 'short-admin-token'],
    ['STOREFRONT_KEY', 'short-storefront-key'],
    ['ORDER_ID_SECRET', 'short-secret'],
  ])('production refuses a guessable %s (under 32 characters)', (name, value) => {
    expect(() => load({ ...PRODUCTION, [name]: value })).toThrow(new RegExp(`${name} must be at least 32 characters`));
  });

  test('one key for both scopes is refused: the storefront key would be an operator key', () => {
    expect(() => load({ ...PRODUCTION, STOREFRONT_KEY: PRODUCTION.ADMIN_TOKEN })).toThrow(/STOREFRONT_KEY and ADMIN_TOKEN must differ/);
    expect(() => load({ ADMIN_TOKEN: 'same', STOREFRONT_KEY: 'same' })).toThrow(/must differ/);
  });

  test.each(['DATABASE_URL', 'PAYMENT_WEBHOOK_SECRET', 'ADMIN_TOKEN', 'ORDER_ID_SECRET'])('production without %s is an error', (name) => {
    const env = { ...PRODUCTION, [name]: undefined };

    expect(() => load(env)).toThrow(new RegExp(`${name} must be set`));
  });

  test.each([
    ['PAYMENT_WEBHOOK_SECRET', 'whsec_Y2hlY2tvdXQtZGV2LXdlYmhvb2stc2VjcmV0IQ=='],
    ['PAYMENT_WEBHOOK_SECRET', `${PRODUCTION.PAYMENT_WEBHOOK_SECRET},whsec_Y2hlY2tvdXQtZGV2LXdlYmhvb2stc2VjcmV0IQ==`],
    ['ADMIN_TOKEN', 'dev-admin-token'],
    ['STOREFRONT_KEY', 'dev-storefront-key'],
    ['ORDER_ID_SECRET', 'checkout-dev-order-id-secret'],
    ['DATABASE_URL', 'postgresql://postgres@127.0.0.1:5432/checkout'],
  ])('production with the development default for %s is an error', (name, devValue) => {
    expect(() => load({ ...PRODUCTION, [name]: devValue })).toThrow(new RegExp(name));
  });

  test('migrations need only the database settings, not the app secrets', () => {
    const env: Env = { NODE_ENV: 'production', DATABASE_URL: PRODUCTION.DATABASE_URL };

    expect(loadDatabaseConfig(env)).toEqual({ databaseUrl: PRODUCTION.DATABASE_URL, databasePoolSize: 10 });
    expect(() => loadDatabaseConfig({ NODE_ENV: 'production' })).toThrow(/DATABASE_URL must be set/);
    expect(() => load(env)).toThrow(/PAYMENT_WEBHOOK_SECRET/);
  });
});

describe('production talks to a non-local Temporal only with credentials', () => {
  test.each(['temporal:7233', '10.0.0.5:7233', 'temporal.example.com:7233', '[2001:db8::1]:7233', '127.0.0.2:7233'])(
    'production against %s without an API key or client certificate refuses to start',
    (address) => {
      expect(() => load({ ...PRODUCTION, TEMPORAL_ADDRESS: address })).toThrow(
        new ConfigError(
          `TEMPORAL_ADDRESS ${address} is not local: with NODE_ENV=production set TEMPORAL_API_KEY or a client certificate ` +
            '(TEMPORAL_TLS_CERT/KEY), or TEMPORAL_NETWORK_PRIVATE=true if no one outside this deployment can reach that network',
        ),
      );
    },
  );

  test.each(['localhost:7233', 'LOCALHOST:7233', 'localhost', '127.0.0.1:7233', '[::1]:7233', '::1'])(
    'production against this host (%s) needs no credentials',
    (address) => {
      expect(load({ ...PRODUCTION, TEMPORAL_ADDRESS: address }).temporal).toEqual({ address, namespace: 'default', taskQueue: 'checkout' });
    },
  );

  test('an API key or a client certificate lets production use a remote Temporal', () => {
    const remote = { ...PRODUCTION, TEMPORAL_ADDRESS: 'temporal.internal:7233' };

    expect(load({ ...remote, TEMPORAL_API_KEY: 'key-123' }).temporal.apiKey).toBe('key-123');
    expect(load({ ...remote, TEMPORAL_TLS_CERT: CERT, TEMPORAL_TLS_KEY: KEY }).temporal.tls?.clientCert).toEqual({ pem: CERT });
  });

  test('TLS that only verifies the server is not enough: it does not tell the frontend who is calling', () => {
    const remote = { ...PRODUCTION, TEMPORAL_ADDRESS: 'temporal.internal:7233' };

    expect(() => load({ ...remote, TEMPORAL_TLS: 'true' })).toThrow(/is not local/);
    expect(() => load({ ...remote, TEMPORAL_TLS_CA: CA, TEMPORAL_TLS_SERVER_NAME: 'temporal.internal' })).toThrow(/is not local/);
  });

  test('TEMPORAL_NETWORK_PRIVATE=true is the explicit exemption: plain TCP to a compose service name', () => {
    const config = load({ ...PRODUCTION, TEMPORAL_ADDRESS: 'temporal:7233', TEMPORAL_NETWORK_PRIVATE: 'true' });

    expect(config.temporal).toEqual({ address: 'temporal:7233', namespace: 'default', taskQueue: 'checkout' });
    expect(() => load({ ...PRODUCTION, TEMPORAL_ADDRESS: 'temporal:7233', TEMPORAL_NETWORK_PRIVATE: 'false' })).toThrow(/is not local/);
    expect(() => load({ ...PRODUCTION, TEMPORAL_NETWORK_PRIVATE: 'yes' })).toThrow(/TEMPORAL_NETWORK_PRIVATE/);
  });

  test('no network is private to Temporal Cloud: it still needs an API key or a client certificate', () => {
    expect(() =>
      load({ ...PRODUCTION, TEMPORAL_ADDRESS: 'checkout-prod.a1b2c.tmprl.cloud:7233', TEMPORAL_NETWORK_PRIVATE: 'true' }),
    ).toThrow(/Temporal Cloud/);
  });

  test('outside production a remote Temporal without credentials is allowed (tests, a shared dev cluster)', () => {
    expect(load({ TEMPORAL_ADDRESS: 'temporal:7233' }).temporal.address).toBe('temporal:7233');
    expect(load({ NODE_ENV: 'test', TEMPORAL_ADDRESS: '10.0.0.5:7233' }).temporal.address).toBe('10.0.0.5:7233');
  });
});

describe('payment provider settings', () => {
  const secretOf = (text: string) => `whsec_${Buffer.from(text).toString('base64')}`;

  test('locally: one development whsec_ secret, no Stripe endpoint, eur', () => {
    const config = load({});

    expect(config.paymentWebhookSecrets).toEqual([expect.stringMatching(/^whsec_/)]);
    expect(config.stripeWebhookSecret).toBeUndefined();
    expect(config.checkoutCurrency).toBe('eur');
  });

  test('several comma-separated secrets are all kept, in order (rotation); STRIPE_WEBHOOK_SECRET and CHECKOUT_CURRENCY are read', () => {
    const [older, newer] = [secretOf('the-older-secret-of-the-two'), secretOf('the-newer-secret-of-the-two')];
    const config = load({ PAYMENT_WEBHOOK_SECRET: ` ${older} , ${newer} `, STRIPE_WEBHOOK_SECRET: 'whsec_stripe', CHECKOUT_CURRENCY: 'usd' });

    expect(config.paymentWebhookSecrets).toEqual([older, newer]);
    expect(config.stripeWebhookSecret).toBe('whsec_stripe');
    expect(config.checkoutCurrency).toBe('usd');
  });

  test.each([
    ['no whsec_ prefix', 'plain-text-secret-that-is-long'],
    ['not base64', 'whsec_not*base64!'],
    ['shorter than 16 bytes', secretOf('short')],
    ['an empty list', ' , '],
    ['one bad secret among good ones', `${secretOf('a-good-secret-long-enough')},whsec_`],
  ])('PAYMENT_WEBHOOK_SECRET with %s is refused, naming the variable', (_name, value) => {
    expect(() => load({ PAYMENT_WEBHOOK_SECRET: value })).toThrow(/PAYMENT_WEBHOOK_SECRET/);
  });

  test.each(['EUR', 'euro', 'e1', '€ur'])('CHECKOUT_CURRENCY %p is refused: it must be lowercase ISO 4217', (value) => {
    expect(() => load({ CHECKOUT_CURRENCY: value })).toThrow(/CHECKOUT_CURRENCY/);
  });
});

describe('worker tuning', () => {
  test('defaults: 40 activity and 40 workflow task slots, the cache sized to the heap, 20 s to drain on shutdown, metrics on 9464', () => {
    const { worker } = load({});

    expect(worker).toEqual({
      maxConcurrentActivities: 40,
      maxConcurrentWorkflowTasks: 40,
      maxCachedWorkflows: workflowCacheSizeFor(1024),
      shutdownGraceSeconds: 20,
      metricsPort: 9464,
    });
  });

  test('the workflow cache follows the heap limit: about 600 workflows per GiB above 200 MiB, at least 10', () => {
    expect(workflowCacheSizeFor(1024)).toBe(482);
    expect(workflowCacheSizeFor(768)).toBe(332);
    expect(workflowCacheSizeFor(4096)).toBe(2282);
    expect(workflowCacheSizeFor(150)).toBe(10);
    expect(load({}).worker.maxCachedWorkflows).toBe(482);
    expect(loadConfig({}, { heapSizeLimitMiB: 768 }).worker.maxCachedWorkflows).toBe(332);
  });

  test('every knob is read from the environment and reaches the SDK options', () => {
    const { worker } = load({
      WORKER_MAX_CONCURRENT_ACTIVITIES: '16',
      WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: '24',
      WORKER_MAX_CONCURRENT_WORKFLOW_TASK_POLLS: '12',
      WORKER_MAX_CONCURRENT_ACTIVITY_TASK_POLLS: '4',
      WORKER_MAX_CACHED_WORKFLOWS: '250',
      WORKER_SHUTDOWN_GRACE_SECONDS: '45',
      WORKER_WORKFLOW_BUNDLE_PATH: '/app/dist/workflow-bundle.js',
    });

    expect(worker.workflowBundlePath).toBe('/app/dist/workflow-bundle.js');
    expect(workerTuningOptions(worker)).toEqual({
      maxConcurrentActivityTaskExecutions: 16,
      maxConcurrentWorkflowTaskExecutions: 24,
      maxConcurrentWorkflowTaskPolls: 12,
      maxConcurrentActivityTaskPolls: 4,
      maxCachedWorkflows: 250,
      shutdownGraceTime: 45_000,
    });
  });

  test('pollers left unset keep the SDK default (min(10, slots)) rather than a number of ours', () => {
    const options = workerTuningOptions(load({}).worker);

    expect(options).not.toHaveProperty('maxConcurrentWorkflowTaskPolls');
    expect(options).not.toHaveProperty('maxConcurrentActivityTaskPolls');
  });

  test('more pollers than slots is an error', () => {
    expect(() =>
      load({ WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: '8', WORKER_MAX_CONCURRENT_WORKFLOW_TASK_POLLS: '9' }),
    ).toThrow(/WORKFLOW_TASK_POLLS cannot exceed/);
    expect(() =>
      load({ WORKER_MAX_CONCURRENT_ACTIVITIES: '2', WORKER_MAX_CONCURRENT_ACTIVITY_TASK_POLLS: '3' }),
    ).toThrow(/ACTIVITY_TASK_POLLS cannot exceed/);
  });

  test('a cache of 0 (no sticky execution) is allowed, a negative one is not', () => {
    expect(load({ WORKER_MAX_CACHED_WORKFLOWS: '0' }).worker.maxCachedWorkflows).toBe(0);
    expect(() => load({ WORKER_MAX_CACHED_WORKFLOWS: '-1' })).toThrow(/WORKER_MAX_CACHED_WORKFLOWS/);
  });
});

describe('reclaim', () => {
  test('defaults: on, every 200 ms, 500 orders a batch', () => {
    expect(load({}).reclaim).toEqual({ enabled: true, intervalMs: 200, batchSize: 500, boundSeconds: 10 });
  });

  test('read from the environment, within bounds that keep stock back within a second', () => {
    expect(load({ RECLAIM_ENABLED: 'false', RECLAIM_INTERVAL_MS: '50', RECLAIM_BATCH_SIZE: '2000' }).reclaim).toEqual({
      enabled: false,
      intervalMs: 50,
      batchSize: 2000,
      boundSeconds: 10,
    });
    expect(() => load({ RECLAIM_INTERVAL_MS: '1000' })).toThrow(/RECLAIM_INTERVAL_MS/);
    expect(() => load({ RECLAIM_BATCH_SIZE: '0' })).toThrow(/RECLAIM_BATCH_SIZE/);
    expect(() => load({ RECLAIM_ENABLED: 'yes' })).toThrow(/RECLAIM_ENABLED/);
  });
});

describe('worker heartbeat', () => {
  test('defaults: a beat every second, a worker silent for 5 s is not alive (a frozen one is noticed within 10 s)', () => {
    expect(load({}).workerHeartbeat).toEqual({ intervalMs: 1_000, staleSeconds: 5 });
  });

  test('read from the environment; the bound must leave room for at least one late beat', () => {
    expect(load({ WORKER_HEARTBEAT_INTERVAL_MS: '500', WORKER_HEARTBEAT_STALE_SECONDS: '3' }).workerHeartbeat).toEqual({ intervalMs: 500, staleSeconds: 3 });
    expect(load({ WORKER_HEARTBEAT_INTERVAL_MS: '2000', WORKER_HEARTBEAT_STALE_SECONDS: '4' }).workerHeartbeat).toEqual({ intervalMs: 2_000, staleSeconds: 4 });
    expect(() => load({ WORKER_HEARTBEAT_INTERVAL_MS: '3000' })).toThrow(/at least twice WORKER_HEARTBEAT_INTERVAL_MS/);
    expect(() => load({ WORKER_HEARTBEAT_INTERVAL_MS: '50' })).toThrow(/WORKER_HEARTBEAT_INTERVAL_MS/);
    expect(() => load({ WORKER_HEARTBEAT_STALE_SECONDS: '0' })).toThrow(/WORKER_HEARTBEAT_STALE_SECONDS/);
  });
});

describe('order events settings', () => {
  const SECRET = `whsec_${Buffer.from('order-events-secret-of-32-bytes!').toString('base64')}`;

  test('locally: no endpoints, a development secret, 72 hours of retries', () => {
    const { orderEvents } = load({});

    expect(orderEvents.endpoints).toEqual([]);
    expect(orderEvents.secret).toMatch(/^whsec_/);
    expect(orderEvents.maxAgeSeconds).toBe(72 * 3600);
  });

  test('several comma-separated endpoints, the secret and the max age in s, m, h or d are read', () => {
    const env = { ORDER_EVENTS_URL: 'https://shop.example/hooks, http://10.0.0.5:4000/events', ORDER_EVENTS_SECRET: SECRET };

    expect(load({ ...env, ORDER_EVENTS_MAX_AGE: '90s' }).orderEvents).toEqual({
      endpoints: ['https://shop.example/hooks', 'http://10.0.0.5:4000/events'],
      secret: SECRET,
      maxAgeSeconds: 90,
    });
    expect(load({ ...env, ORDER_EVENTS_MAX_AGE: '30m' }).orderEvents.maxAgeSeconds).toBe(1800);
    expect(load({ ...env, ORDER_EVENTS_MAX_AGE: '3d' }).orderEvents.maxAgeSeconds).toBe(259_200);
  });

  test.each([
    [{ ORDER_EVENTS_URL: 'ftp://shop.example/hooks' }, /ORDER_EVENTS_URL: "ftp:\/\/shop.example\/hooks" is not an http\(s\) URL/],
    [{ ORDER_EVENTS_URL: 'not a url' }, /ORDER_EVENTS_URL/],
    [{ ORDER_EVENTS_URL: 'http://a/x,http://a/x' }, /names an endpoint twice/],
    [{ ORDER_EVENTS_SECRET: 'plain-secret' }, /ORDER_EVENTS_SECRET: secret #1 must be whsec_/],
    [{ ORDER_EVENTS_SECRET: `${SECRET},${SECRET}` }, /ORDER_EVENTS_SECRET must be one whsec_ secret/],
    [{ ORDER_EVENTS_MAX_AGE: '72' }, /ORDER_EVENTS_MAX_AGE: a duration such as 72h/],
    [{ ORDER_EVENTS_MAX_AGE: '0s' }, /ORDER_EVENTS_MAX_AGE must be at least 1s/],
  ])('%p is refused', (env, message) => {
    expect(() => load(env)).toThrow(message);
  });

  test('production with endpoints needs its own secret; without endpoints it needs none', () => {
    expect(() => load({ ...PRODUCTION, ORDER_EVENTS_URL: 'https://shop.example/hooks' })).toThrow(/ORDER_EVENTS_SECRET must be set/);
    expect(load({ ...PRODUCTION, ORDER_EVENTS_URL: 'https://shop.example/hooks', ORDER_EVENTS_SECRET: SECRET }).orderEvents.secret).toBe(SECRET);
    expect(load(PRODUCTION).orderEvents.endpoints).toEqual([]);
  });
});
