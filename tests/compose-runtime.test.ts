/**
 * What the image runs, run here without Docker: the Dockerfile's stages built from its build
 * context alone (the repository less `.dockerignore`: `npm ci`, `npm run build`, the workflow
 * bundle, then a runtime stage with production dependencies only), then the compose services'
 * commands with NODE_ENV=production in that runtime stage: migrate, seed, the worker and the
 * API as plain `node dist/...` processes against a real Temporal dev server and a database of
 * their own.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { promisify } from 'node:util';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Client } from 'pg';
import { workflowCacheSizeFor } from '../src/config';
import { buildImage, type ImageBuild } from './support/image-build';
import { startDevServer } from './support/stack';
import { eventually } from './support/wait';
import { signedHeaders } from './support/webhooks';
import { freePort } from '../scripts/processes';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..');
const ADMIN_URL = process.env.TEST_DATABASE_ADMIN_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const WEBHOOK_SECRET = `whsec_${randomBytes(32).toString('base64')}`;
/** The API's bootstrap storefront key (channel `default`) in this run. */
const STOREFRONT_KEY = `storefront-${randomBytes(16).toString('hex')}`;
const WORKER_HEAP_MIB = 256;

interface RunningProcess {
  child: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
}

let scratchDir: string;
let image: ImageBuild;
let imageBuildSeconds: number;
/** The runtime stage's directory: the image's /app. */
let buildDir: string;
let server: TestWorkflowEnvironment;
let databaseName: string;
let databaseUrl: string;
const processes: RunningProcess[] = [];

async function admin<T>(query: (client: Client) => Promise<T>): Promise<T> {
  return connected(ADMIN_URL, query);
}

async function withDatabase<T>(query: (client: Client) => Promise<T>): Promise<T> {
  return connected(databaseUrl, query);
}

async function connected<T>(connectionString: string, query: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString });
  await client.connect();
  try {
    return await query(client);
  } finally {
    await client.end();
  }
}

/** The environment compose gives the app services, pointed at this test's server and database. */
function productionEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    NODE_ENV: 'production',
    DATABASE_URL: databaseUrl,
    ...extra,
  };
}

async function runToCompletion(entry: string, env: NodeJS.ProcessEnv): Promise<string> {
  const { stdout } = await run(process.execPath, [entry], { cwd: buildDir, env });
  return stdout;
}

function startProcess(entry: string, env: NodeJS.ProcessEnv): RunningProcess {
  const child = spawn(process.execPath, [entry], { cwd: buildDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    readline.createInterface({ input: stream }).on('line', (line) => lines.push(line));
  }
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const running = { child, lines, exited };
  processes.push(running);
  return running;
}

function logged(process: RunningProcess, message: string): Record<string, unknown> | undefined {
  for (const line of process.lines) {
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry.msg === message) return entry;
    } catch {
      // Not a pino line (e.g. the Temporal runtime's own output).
    }
  }
  return undefined;
}

beforeAll(async () => {
  scratchDir = mkdtempSync(path.join(os.tmpdir(), 'checkout-image-'));
  const started = Date.now();
  // The build's npm cache starts from this machine's, which holds every package of the lockfile
  // once `npm ci` ran (as it has before any test): its `npm ci`s then check the tarballs against
  // the lockfile without downloading them again (from an empty cache the build took 78 s on a quiet
  // machine, 65 s so: most of the rest is unpacking 34,000 files and compiling).
  const machineNpmCache = execFileSync('npm', ['config', 'get', 'cache'], { encoding: 'utf8' }).trim();
  image = await buildImage({ root: ROOT, outDir: scratchDir, seedNpmCache: machineNpmCache });
  imageBuildSeconds = (Date.now() - started) / 1000;
  buildDir = image.image.dir;

  databaseName = `checkout_image_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE "${databaseName}"`));
  const url = new URL(ADMIN_URL);
  url.pathname = `/${databaseName}`;
  databaseUrl = url.toString();
  server = await startDevServer();
}, 600_000);

afterAll(async () => {
  for (const { child, exited } of processes) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  }
  await server?.teardown();
  if (databaseName) await admin((c) => c.query(`DROP DATABASE IF EXISTS "${databaseName}" WITH (FORCE)`));
  if (scratchDir) rmSync(scratchDir, { recursive: true, force: true });
});

test('the image builds from its build context alone, which holds no tests, and runs with production dependencies only', () => {
  const lockfile = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; optional?: boolean }>;
  };
  const topLevel = Object.entries(lockfile.packages)
    .filter(([key]) => /^node_modules\/(@[^/]+\/)?[^/@]+$/.test(key))
    .map(([key, entry]) => ({ name: key.slice('node_modules/'.length), dev: entry.dev === true, optional: entry.optional === true }));
  const installed = (name: string): boolean => existsSync(path.join(buildDir, 'node_modules', name, 'package.json'));
  const imageNodeMajor = /^ARG NODE_IMAGE=node:(\d+)/m.exec(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))?.[1];

  console.log(`image built without Docker in ${imageBuildSeconds.toFixed(0)} s`);
  expect(image.contextFiles.filter((file) => file.startsWith('tests/'))).toEqual([]);
  expect(image.contextFiles).toEqual(expect.arrayContaining(['package-lock.json', 'src/api/server.ts', 'prisma/schema.prisma']));
  expect(image.stages.map((stage) => stage.name)).toEqual(['build', 'runtime']);
  // Optional packages are other platforms' native builds.
  expect(topLevel.filter(({ dev, optional, name }) => !dev && !optional && !installed(name))).toEqual([]);
  expect(topLevel.filter(({ dev, name }) => dev && installed(name))).toEqual([]);
  for (const entry of ['dist/src/api/server.js', 'dist/src/worker.js', 'dist/scripts/migrate.js', 'dist/prisma/seed.js', 'dist/workflow-bundle.js']) {
    expect({ entry, exists: existsSync(path.join(buildDir, entry)) }).toEqual({ entry, exists: true });
  }
  expect(existsSync(path.join(buildDir, 'dist/tests'))).toBe(false);
  // The stages run on this machine's Node, so it must be the image's major version.
  expect(process.versions.node.split('.')[0]).toBe(imageNodeMajor);
});

test('the compiled migrate and seed jobs set up the database, and running them again changes nothing', async () => {
  const migrated = await runToCompletion('dist/scripts/migrate.js', productionEnv({}));
  const seeded = await runToCompletion('dist/prisma/seed.js', productionEnv({}));
  const migratedAgain = await runToCompletion('dist/scripts/migrate.js', productionEnv({}));
  const seededAgain = await runToCompletion('dist/prisma/seed.js', productionEnv({}));

  expect(migrated).toMatch(/^applied \d+_init/);
  expect(seeded).toMatch(/^seeded SKU-1/);
  expect(migratedAgain.trim()).toBe('database is up to date');
  expect(seededAgain.trim()).toBe('sample products already present');
}, 120_000);

test('the compiled worker (prebuilt bundle, capped heap) and API take an order to PAID, then stop cleanly on SIGTERM', async () => {
  const taskQueue = `checkout-image-${randomUUID()}`;
  const port = await freePort();
  const common = {
    TEMPORAL_ADDRESS: server.address,
    TEMPORAL_NAMESPACE: 'default',
    TEMPORAL_TASK_QUEUE: taskQueue,
    PAYMENT_WEBHOOK_SECRET: WEBHOOK_SECRET,
    ADMIN_TOKEN: `admin-${randomBytes(16).toString('hex')}`,
    STOREFRONT_KEY,
    ORDER_ID_SECRET: `order-ids-${randomBytes(16).toString('hex')}`,
    LOG_LEVEL: 'info',
  };
  const worker = startProcess(
    'dist/src/worker.js',
    productionEnv({
      ...common,
      WORKER_WORKFLOW_BUNDLE_PATH: path.join(buildDir, 'dist/workflow-bundle.js'),
      WORKER_SHUTDOWN_GRACE_SECONDS: '5',
      // Any free port: a worker already running on this machine (npm start, a bench) holds 9464.
      WORKER_METRICS_PORT: '0',
      NODE_OPTIONS: `--max-old-space-size=${WORKER_HEAP_MIB}`,
    }),
  );
  const api = startProcess('dist/src/api/server.js', productionEnv({ ...common, PORT: String(port) }));
  const base = `http://127.0.0.1:${port}`;
  await eventually(
    () => fetch(`${base}/healthz`).then((r) => r.ok, () => false),
    (ok) => ok,
    60_000,
  );
  await eventually(async () => logged(worker, 'worker started'), (entry) => entry !== undefined, 60_000);

  const placed = await fetch(`${base}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${STOREFRONT_KEY}` },
    body: JSON.stringify({ customerId: 'image-test', items: [{ sku: 'SKU-1', quantity: 2 }] }),
  });
  const order = (await placed.json()) as { orderId: string; status: string; totalCents: number };
  const paymentBody = JSON.stringify({
    type: 'payment.succeeded',
    data: { orderId: order.orderId, paymentId: 'pay-image-1', amountCents: order.totalCents },
  });
  const paid = await fetch(`${base}/webhooks/payments`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...signedHeaders(paymentBody, { secret: WEBHOOK_SECRET }) },
    body: paymentBody,
  });
  const paidOrder = ((await paid.json()) as { order: { status: string } }).order;

  expect(placed.status).toBe(201);
  expect(order.status).toBe('AWAITING_PAYMENT');
  expect(paid.status).toBe(200);
  expect(paidOrder.status).toBe('PAID');
  const stock = await withDatabase(async (db) => {
    const { rows } = await db.query('SELECT available, reserved, sold FROM products WHERE sku = $1', ['SKU-1']);
    return rows[0] as { available: number; reserved: number; sold: number };
  });
  expect(stock).toEqual({ available: 98, reserved: 0, sold: 2 });

  // The worker's workflow cache followed its capped heap, not the host's memory.
  const started = logged(worker, 'worker started') as { tuning: { maxCachedWorkflows: number; workflowBundlePath: string } };
  expect(started.tuning.workflowBundlePath).toBe(path.join(buildDir, 'dist/workflow-bundle.js'));
  expect(started.tuning.maxCachedWorkflows).toBeLessThan(workflowCacheSizeFor(2 * WORKER_HEAP_MIB));
  expect(started.tuning.maxCachedWorkflows).toBeGreaterThanOrEqual(workflowCacheSizeFor(WORKER_HEAP_MIB));

  worker.child.kill('SIGTERM');
  api.child.kill('SIGTERM');
  expect(await worker.exited).toBe(0);
  expect(await api.exited).toBe(0);
  expect(logged(worker, 'worker stopped')).toBeDefined();
}, 180_000);
