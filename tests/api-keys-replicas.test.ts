/**
 * Keys across replicas, as deployed: two API processes (as `npm start` runs them) over one
 * database, and `npm run keys` as an operator runs it. A revocation on one replica, or from the
 * command, is refused by every replica within 5 s; lastUsedAt is kept; and no key, valid or not,
 * ever appears in what the processes log, even at the most verbose level.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { generateApiKey } from '../src/api/api-keys';
import { createTestDatabase, type TestDatabase } from './support/database';
import { startDevServer, TEST_ADMIN_TOKEN, TEST_ORDER_ID_SECRET, TEST_STOREFRONT_KEY } from './support/stack';
import { eventually } from './support/wait';

const ROOT = path.resolve(__dirname, '..');
const run = promisify(execFile);

class ApiProcess {
  /** Everything the process wrote, stdout and stderr, as text. */
  output = '';
  port = 0;
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}

let env: TestWorkflowEnvironment;
let db: TestDatabase;
const replicas: ApiProcess[] = [];

function serviceEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    NODE_ENV: 'test',
    // The most verbose level: nothing that is logged at all may carry a key.
    LOG_LEVEL: 'trace',
    DATABASE_URL: db.url,
    TEMPORAL_ADDRESS: env.address,
    TEMPORAL_TASK_QUEUE: `keys-${randomUUID()}`,
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    STOREFRONT_KEY: TEST_STOREFRONT_KEY,
    ORDER_ID_SECRET: TEST_ORDER_ID_SECRET,
    PORT: '0',
  };
}

async function startReplica(): Promise<ApiProcess> {
  const replica = new ApiProcess(spawn(process.execPath, ['--import', 'tsx', 'src/api/server.ts'], { cwd: ROOT, env: serviceEnv(), stdio: ['ignore', 'pipe', 'pipe'] }));
  const listening = await eventually(
    async () => replica.output.split('\n').flatMap((line) => (line.includes('"API listening"') ? [JSON.parse(line) as { port: number }] : []))[0],
    (line) => line !== undefined,
    90_000,
  );
  replica.port = listening?.port ?? 0;
  return replica;
}

/** `npm run keys -- <args>` as an operator runs it. */
async function keysCommand(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'scripts/keys.ts', ...args], { cwd: ROOT, env: serviceEnv() });
  return stdout;
}

beforeAll(async () => {
  [env, db] = await Promise.all([startDevServer(), createTestDatabase()]);
  replicas.push(...(await Promise.all([startReplica(), startReplica()])));
}, 180_000);

afterAll(async () => {
  await Promise.all(replicas.map((r) => r.stop()));
  await env?.teardown();
  await db?.drop();
});

/** Every key any request of this file sent or received. */
const keysSeen = new Set<string>([TEST_ADMIN_TOKEN, TEST_STOREFRONT_KEY]);

async function call(replica: ApiProcess, method: string, route: string, key?: string, body?: object) {
  if (key) keysSeen.add(key);
  const res = await fetch(`${replica.url}${route}`, {
    method,
    headers: { 'Content-Type': 'application/json', ...(key !== undefined && { Authorization: `Bearer ${key}` }) },
    ...(body && { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  for (const match of text.matchAll(/ck_[A-Za-z0-9_-]{43}/g)) keysSeen.add(match[0]);
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}

/** A storefront key's answer for an order id that names nothing: 404 while the key is valid, 401 once it is not. */
const probe = async (replica: ApiProcess, key: string) => (await call(replica, 'GET', `/orders/${randomUUID()}`, key)).status;

async function refusedEverywhereWithin(key: string, since: number): Promise<number> {
  await Promise.all(replicas.map((r) => eventually(() => probe(r, key), (status) => status === 401, 10_000)));
  return Date.now() - since;
}

test('npm run keys creates a key and prints it once; both replicas take it; revoked from the command, both refuse it within 5 s', async () => {
  const created = await keysCommand('create', '--name', 'web shop', '--scope', 'orders', '--channel', 'web');
  const key = /key \(shown this once[^)]*\): (ck_[A-Za-z0-9_-]{43})/.exec(created)?.[1];
  const id = /^created ([0-9a-f-]{36}) /m.exec(created)?.[1];
  expect({ key: typeof key, id: typeof id }).toEqual({ key: 'string', id: 'string' });
  keysSeen.add(key!);
  expect(created.split(key!)).toHaveLength(2);

  expect(await Promise.all(replicas.map((r) => probe(r, key!)))).toEqual([404, 404]);
  expect(await keysCommand('list')).toContain(`${id!}  "web shop"  storefront key of channel web`);
  expect(await keysCommand('list')).not.toContain(key!);

  await keysCommand('revoke', id!);
  const revokedAt = Date.now();
  expect(await refusedEverywhereWithin(key!, revokedAt)).toBeLessThan(5_000);
}, 60_000);

test('a key revoked on one replica is refused by the other within 5 s, without a restart; lastUsedAt is kept', async () => {
  const [a, b] = replicas as [ApiProcess, ApiProcess];
  const created = await call(a, 'POST', '/admin/api-keys', TEST_ADMIN_TOKEN, { name: 'app', scope: 'orders', channel: 'app' });
  expect(created.status).toBe(201);
  const { id, key } = created.body as { id: string; key: string };
  // B has it cached as valid now.
  expect(await probe(b, key)).toBe(404);
  const listed = await call(b, 'GET', '/admin/api-keys', TEST_ADMIN_TOKEN);
  const seen = (listed.body.apiKeys as { id: string; lastUsedAt?: string }[]).find((k) => k.id === id);
  expect(Date.now() - Date.parse(seen?.lastUsedAt ?? '')).toBeLessThan(60_000);

  expect((await call(a, 'DELETE', `/admin/api-keys/${id}`, TEST_ADMIN_TOKEN)).status).toBe(200);
  const revokedAt = Date.now();
  expect(await probe(a, key)).toBe(401);
  expect(await refusedEverywhereWithin(key, revokedAt)).toBeLessThan(5_000);
}, 60_000);

test('no key appears in any log line of either replica, whatever was sent', async () => {
  const [a, b] = replicas as [ApiProcess, ApiProcess];
  const operator = await call(a, 'POST', '/admin/api-keys', TEST_ADMIN_TOKEN, { name: 'ops', scope: 'operator' });
  const operatorKey = (operator.body as { key: string }).key;
  for (const replica of [a, b]) {
    await call(replica, 'GET', '/admin/api-keys', operatorKey);
    await call(replica, 'GET', '/admin/inventory/check', TEST_ADMIN_TOKEN);
    await call(replica, 'GET', `/orders/${randomUUID()}`, TEST_STOREFRONT_KEY);
    await call(replica, 'GET', `/orders/${randomUUID()}`, generateApiKey());
    await call(replica, 'GET', `/orders/${randomUUID()}`, operatorKey);
    await call(replica, 'POST', '/orders', `${operatorKey}-not-quite`, { customerId: 'x', items: [] });
    await call(replica, 'PUT', '/admin/products/LOG-1', TEST_STOREFRONT_KEY, { name: 'x', priceCents: 1 });
  }
  await Promise.all(replicas.map((r) => r.stop()));

  const output = replicas.map((r) => r.output).join('\n');
  // The logs say who called, by key id, and refusals are logged: what is there is not the key.
  expect(output).toContain('"apiKeyId":"bootstrap-operator"');
  expect(output).toMatch(/"statusCode":401/);
  const leaked = [...keysSeen].filter((key) => output.includes(key) || output.includes(encodeURIComponent(key)));
  expect({ keysChecked: keysSeen.size > 5, leaked }).toEqual({ keysChecked: true, leaked: [] });
}, 60_000);
