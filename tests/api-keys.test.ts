/**
 * Callers and keys (invariant 8): every route crossed with every kind of credential, generated
 * from two tables; a refusal comes before the body is read and changes nothing; a storefront key
 * sees only its channel's orders; keys are managed over /admin/api-keys and cached per replica.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { ApiKeyStore, apiKeyDigest, generateApiKey, type Caller } from '../src/api/api-keys';
import { Authenticator } from '../src/api/authentication';
import { createLogger } from '../src/logger';
import { addProduct } from './support/database';
import { createTestApi, TEST_ADMIN_TOKEN, TEST_STOREFRONT_KEY, useStack } from './support/stack';
import { eventually } from './support/wait';

const stack = useStack();
const SKU = 'KEY-1';
const operatorAuth = { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` };

interface CreatedKey {
  id: string;
  name: string;
  scope: 'orders' | 'operator';
  channel: string | null;
  key: string;
  createdAt: string;
}

async function createKey(body: { name: string; scope: 'orders' | 'operator'; channel?: string }): Promise<CreatedKey> {
  const res = await request(stack.bareApp).post('/admin/api-keys').set(operatorAuth).send(body);
  expect(res.status).toBe(201);
  return res.body as CreatedKey;
}

function revokeKey(id: string) {
  return request(stack.bareApp).delete(`/admin/api-keys/${id}`).set(operatorAuth);
}

/** Storefront keys of channel `web` (the orders under test) and `shop` (another), an operator key, and revoked ones. */
const keys = {} as Record<'web' | 'shop' | 'operator' | 'revokedWeb' | 'revokedOperator', CreatedKey>;

beforeAll(async () => {
  await addProduct(stack.db.prisma, SKU, 100_000, 500);
  keys.web = await createKey({ name: 'web storefront', scope: 'orders', channel: 'web' });
  keys.shop = await createKey({ name: 'shop storefront', scope: 'orders', channel: 'shop' });
  keys.operator = await createKey({ name: 'ops', scope: 'operator' });
  keys.revokedWeb = await createKey({ name: 'old web storefront', scope: 'orders', channel: 'web' });
  keys.revokedOperator = await createKey({ name: 'old ops', scope: 'operator' });
  for (const key of [keys.revokedWeb, keys.revokedOperator]) expect((await revokeKey(key.id)).status).toBe(200);
});

type Headers = Record<string, string>;
const bearer = (key: CreatedKey): Headers => ({ Authorization: `Bearer ${key.key}` });
const api = () => request(stack.bareApp);

/** An order of channel `web`, awaiting payment. */
async function webOrder(): Promise<string> {
  const res = await api().post('/orders').set(bearer(keys.web)).send(orderBody());
  expect(res.status).toBe(201);
  return res.body.orderId as string;
}

const orderBody = () => ({ customerId: `c-${randomUUID()}`, items: [{ sku: SKU, quantity: 1 }] });

interface RouteCase {
  route: string;
  scope: 'orders' | 'operator';
  /** What the call acts on (an order, a key to revoke), made beforehand. */
  prepare?: () => Promise<string>;
  send(target: string, headers: Headers): request.Test;
  /** Status with the right key. */
  ok: number;
  /** For a storefront key of another channel: 404 as for an unknown id, or (placing) an order of its own channel. */
  otherChannel?: 'ORDER_NOT_FOUND' | 'ITS_OWN_ORDER';
}

const ROUTES: RouteCase[] = [
  { route: 'POST /orders', scope: 'orders', ok: 201, otherChannel: 'ITS_OWN_ORDER', send: (_t, h) => api().post('/orders').set(h).send(orderBody()) },
  { route: 'GET /orders/:orderId', scope: 'orders', ok: 200, otherChannel: 'ORDER_NOT_FOUND', prepare: webOrder, send: (t, h) => api().get(`/orders/${t}`).set(h) },
  {
    route: 'POST /orders/:orderId/cancel',
    scope: 'orders',
    ok: 200,
    otherChannel: 'ORDER_NOT_FOUND',
    prepare: webOrder,
    send: (t, h) => api().post(`/orders/${t}/cancel`).set(h),
  },
  {
    route: 'GET /orders/:orderId/events',
    scope: 'orders',
    ok: 200,
    otherChannel: 'ORDER_NOT_FOUND',
    prepare: webOrder,
    send: (t, h) => api().get(`/orders/${t}/events`).set(h),
  },
  {
    route: 'PUT /admin/products/:sku',
    scope: 'operator',
    ok: 201,
    prepare: async () => `P-${randomUUID()}`,
    send: (t, h) => api().put(`/admin/products/${t}`).set(h).send({ name: 'x', priceCents: 1, available: 1 }),
  },
  { route: 'POST /admin/products/:sku/restock', scope: 'operator', ok: 200, send: (_t, h) => api().post(`/admin/products/${SKU}/restock`).set(h).send({ quantity: 1 }) },
  {
    route: 'POST /admin/orders/:orderId/extend',
    scope: 'operator',
    ok: 200,
    prepare: webOrder,
    send: (t, h) => api().post(`/admin/orders/${t}/extend`).set(h).send({ seconds: 60 }),
  },
  { route: 'GET /admin/events', scope: 'operator', ok: 200, send: (_t, h) => api().get('/admin/events').set(h) },
  { route: 'GET /admin/inventory/check', scope: 'operator', ok: 200, send: (_t, h) => api().get('/admin/inventory/check').set(h) },
  {
    route: 'POST /admin/api-keys',
    scope: 'operator',
    ok: 201,
    send: (_t, h) => api().post('/admin/api-keys').set(h).send({ name: 'n', scope: 'orders', channel: 'web' }),
  },
  { route: 'GET /admin/api-keys', scope: 'operator', ok: 200, send: (_t, h) => api().get('/admin/api-keys').set(h) },
  {
    route: 'DELETE /admin/api-keys/:id',
    scope: 'operator',
    ok: 200,
    prepare: async () => (await createKey({ name: 'to revoke', scope: 'orders', channel: 'web' })).id,
    send: (t, h) => api().delete(`/admin/api-keys/${t}`).set(h),
  },
];

const CREDENTIALS = ['no key', 'a malformed header', 'an unknown key', 'a revoked key', 'a key of the wrong scope', "another channel's key", 'the right key'] as const;
type Credential = (typeof CREDENTIALS)[number];

function headersFor(route: RouteCase, credential: Credential): Headers {
  const right = route.scope === 'orders' ? keys.web : keys.operator;
  switch (credential) {
    case 'no key':
      return {};
    case 'a malformed header':
      // Even the right key, under another scheme, is no bearer key.
      return { Authorization: `Token ${right.key}` };
    case 'an unknown key':
      return { Authorization: `Bearer ${generateApiKey()}` };
    case 'a revoked key':
      return bearer(route.scope === 'orders' ? keys.revokedWeb : keys.revokedOperator);
    case 'a key of the wrong scope':
      return bearer(route.scope === 'orders' ? keys.operator : keys.web);
    case "another channel's key":
      return bearer(keys.shop);
    case 'the right key':
      return bearer(right);
  }
}

function expectedStatus(route: RouteCase, credential: Credential): number {
  switch (credential) {
    case 'no key':
    case 'a malformed header':
    case 'an unknown key':
    case 'a revoked key':
      return 401;
    case 'a key of the wrong scope':
      return 403;
    case "another channel's key":
      if (route.scope === 'operator') return 403;
      return route.otherChannel === 'ORDER_NOT_FOUND' ? 404 : route.ok;
    case 'the right key':
      return route.ok;
  }
}

/** What a refused call must leave as it was: orders by status and channel, stock, keys, extensions. */
async function fingerprint() {
  const { prisma } = stack.db;
  const [orders, products, apiKeys, extensions] = await Promise.all([
    prisma.order.groupBy({ by: ['status', 'channel'], _count: true, orderBy: [{ status: 'asc' }, { channel: 'asc' }] }),
    prisma.product.findMany({ orderBy: { sku: 'asc' }, select: { sku: true, available: true, reserved: true } }),
    prisma.apiKey.findMany({ orderBy: { id: 'asc' }, select: { id: true, revokedAt: true } }),
    prisma.orderExtension.count(),
  ]);
  return { orders, products, apiKeys, extensions };
}

const MATRIX = ROUTES.flatMap((route) => CREDENTIALS.map((credential) => [route.route, credential, expectedStatus(route, credential), route] as const));

test.each(MATRIX)('%s with %s answers %i', async (_route, credential, status, route) => {
  const target = (await route.prepare?.()) ?? '';
  const before = await fingerprint();
  const res = await route.send(target, headersFor(route, credential));
  expect(res.status).toBe(status);
  switch (status) {
    case 401:
      expect(res.body).toEqual({ error: { code: 'UNAUTHORIZED', message: expect.any(String) } });
      expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="checkout"/);
      expect(await fingerprint()).toEqual(before);
      break;
    case 403:
      expect(res.body).toEqual({ error: { code: 'FORBIDDEN', message: expect.any(String) } });
      expect(res.headers['www-authenticate']).toBe(`Bearer realm="checkout", error="insufficient_scope", scope="${route.scope}"`);
      expect(await fingerprint()).toEqual(before);
      break;
    case 404: {
      // Exactly as for an id that names no order, and the order is untouched.
      const unknown = randomUUID();
      const asUnknown = await route.send(unknown, headersFor(route, credential));
      expect({ status: asUnknown.status, body: asUnknown.body }).toEqual({ status: 404, body: { error: { code: 'ORDER_NOT_FOUND', message: `no order ${unknown}` } } });
      expect(res.body).toEqual({ error: { code: 'ORDER_NOT_FOUND', message: `no order ${target}` } });
      expect(await fingerprint()).toEqual(before);
      break;
    }
    default:
      if (credential === "another channel's key") expect(res.body).toMatchObject({ channel: 'shop', status: 'AWAITING_PAYMENT' });
      else if (route.scope === 'orders' && route.route !== 'GET /orders/:orderId/events') expect(res.body.channel).toBe('web');
  }
});

test('the open routes answer without a key, and ignore one that is unknown or revoked', async () => {
  for (const headers of [{}, { Authorization: `Bearer ${generateApiKey()}` }, bearer(keys.revokedWeb), { Authorization: 'Basic x' }]) {
    await api().get('/healthz').set(headers).expect(200);
    await api().get('/products').set(headers).expect(200);
    await api().get(`/products/${SKU}`).set(headers).expect(200);
    await api().get('/openapi.json').set(headers).expect(200);
    await api().get('/metrics').set(headers).expect(200);
  }
});

describe('the key is checked before the body is read', () => {
  /** Sends headers announcing a 1 kB body and only the first bytes of it; resolves with the answer that comes anyway. */
  async function answerWithoutBody(method: string, path: string, headers: Headers): Promise<{ status: number; body: unknown }> {
    const server = stack.bareApp.listen(0);
    await new Promise((resolve) => server.once('listening', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      return await new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, method, path, headers: { 'Content-Type': 'application/json', 'Content-Length': '1024', ...headers } });
        const timer = setTimeout(() => reject(new Error('no answer while the body was still coming: the body was waited for')), 5_000);
        req.on('response', (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString()));
          res.on('end', () => {
            clearTimeout(timer);
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown });
            req.destroy();
          });
        });
        req.on('error', () => undefined);
        req.write('{"customerId":');
      });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  }

  test('no key on POST /orders: 401 while the body has not arrived', async () => {
    expect(await answerWithoutBody('POST', '/orders', {})).toMatchObject({ status: 401, body: { error: { code: 'UNAUTHORIZED' } } });
  });

  test('a storefront key on PUT /admin/products/:sku: 403 while the body has not arrived', async () => {
    expect(await answerWithoutBody('PUT', '/admin/products/X-1', bearer(keys.web))).toMatchObject({ status: 403, body: { error: { code: 'FORBIDDEN' } } });
  });

  test('an unknown key with a body that is not JSON: 401, not 400', async () => {
    const res = await api().post('/orders').set({ Authorization: `Bearer ${generateApiKey()}`, 'Content-Type': 'application/json' }).send('{oops');
    expect(res.status).toBe(401);
  });
});

test.each([
  ['an empty bearer', 'Bearer '],
  ['the bare key', 'KEY'],
  ['Basic with the key', 'Basic KEY'],
  ['two keys', 'Bearer KEY KEY'],
  ['a key with a non-ASCII letter', 'Bearer KEYé'],
])('a malformed Authorization header (%s) answers 401 with error="invalid_request"', async (_name, header) => {
  const res = await api().get('/admin/api-keys').set('Authorization', header.replace(/KEY/g, keys.operator.key)).ok(() => true);
  expect(res.status).toBe(401);
  expect(res.headers['www-authenticate']).toBe('Bearer realm="checkout", error="invalid_request"');
});

describe('channels', () => {
  test("an order carries its key's channel in every answer and in its events; the bootstrap key's is `default`", async () => {
    const placed = await api().post('/orders').set(bearer(keys.shop)).send(orderBody()).expect(201);
    expect(placed.body.channel).toBe('shop');
    const read = await api().get(`/orders/${placed.body.orderId}`).set(bearer(keys.shop)).expect(200);
    expect(read.body).toEqual(placed.body);
    const events = await api().get(`/orders/${placed.body.orderId}/events`).set(bearer(keys.shop)).expect(200);
    expect(events.body.events.map((e: { data: { order: { channel: string } } }) => e.data.order.channel)).toEqual(['shop']);
    const bootstrap = await api().post('/orders').set('Authorization', `Bearer ${TEST_STOREFRONT_KEY}`).send(orderBody()).expect(201);
    expect(bootstrap.body.channel).toBe('default');
  });

  test('idempotency is per channel, customer and key: the same customer and key in two channels are two orders', async () => {
    const body = orderBody();
    const web = await api().post('/orders').set(bearer(keys.web)).set('Idempotency-Key', 'k-1').send(body).expect(201);
    const shop = await api().post('/orders').set(bearer(keys.shop)).set('Idempotency-Key', 'k-1').send(body).expect(201);
    const webAgain = await api().post('/orders').set(bearer(keys.web)).set('Idempotency-Key', 'k-1').send(body).expect(201);
    expect(shop.body.orderId).not.toBe(web.body.orderId);
    expect(webAgain.body).toEqual(web.body);
    expect(await stack.db.prisma.order.count({ where: { customerId: body.customerId } })).toBe(2);
  });

  test('an order id from an Idempotency-Key is keyed by ORDER_ID_SECRET, and a retry finds its order after the secret changed', async () => {
    const body = orderBody();
    const first = await api().post('/orders').set(bearer(keys.web)).set('Idempotency-Key', 'rotate').send(body).expect(201);
    const other = createTestApi({ prisma: stack.db.prisma, temporal: stack.client, taskQueue: stack.taskQueue, defaultPaymentTimeoutSeconds: 900, orderIdSecret: 'another secret' });
    try {
      const retried = await request(other.bareApp).post('/orders').set(bearer(keys.web)).set('Idempotency-Key', 'rotate').send(body).expect(201);
      expect(retried.body).toEqual(first.body);
      // A new key under the new secret names another id than under the old one.
      const fresh = await request(other.bareApp).post('/orders').set(bearer(keys.web)).set('Idempotency-Key', 'fresh').send(body).expect(201);
      const underOld = await api().post('/orders').set(bearer(keys.web)).set('Idempotency-Key', 'fresh').send({ ...body, customerId: `${body.customerId}-x` }).expect(201);
      expect(fresh.body.orderId).not.toBe(underOld.body.orderId);
    } finally {
      await other.services.authenticator.close();
      await other.services.readiness.close();
    }
  });
});

describe('managing keys', () => {
  test('POST /admin/api-keys shows the key once; only its SHA-256 is stored; GET lists keys without them; DELETE revokes (repeatable)', async () => {
    const created = await createKey({ name: 'mobile app', scope: 'orders', channel: 'app' });
    expect(created).toEqual({ id: expect.any(String), name: 'mobile app', scope: 'orders', channel: 'app', key: expect.stringMatching(/^ck_[A-Za-z0-9_-]{43}$/), createdAt: expect.any(String) });
    const row = await stack.db.prisma.apiKey.findUniqueOrThrow({ where: { id: created.id } });
    expect(Buffer.from(row.keyHash)).toEqual(apiKeyDigest(created.key));
    expect(JSON.stringify(row)).not.toContain(created.key.slice(3));

    const listed = await api().get('/admin/api-keys').set(operatorAuth).expect(200);
    expect(listed.body.apiKeys).toContainEqual({ id: created.id, name: 'mobile app', scope: 'orders', channel: 'app', createdAt: created.createdAt });
    expect(JSON.stringify(listed.body)).not.toContain(created.key);

    await api().get(`/orders/${randomUUID()}`).set(bearer(created)).expect(404);
    const revoked = await revokeKey(created.id).expect(200);
    expect(revoked.body).toMatchObject({ id: created.id, revokedAt: expect.any(String) });
    expect((await revokeKey(created.id).expect(200)).body).toEqual(revoked.body);
    // This replica forgets it at once.
    await api().get(`/orders/${randomUUID()}`).set(bearer(created)).expect(401);
    await revokeKey(randomUUID()).expect(404, { error: { code: 'API_KEY_NOT_FOUND', message: 'no such API key' } });
    await revokeKey('not-a-uuid').expect(404);
  });

  test('an operator key has no channel; a storefront key without one is of channel `default`; names and channels are validated', async () => {
    expect((await createKey({ name: 'ops 2', scope: 'operator' })).channel).toBeNull();
    expect((await createKey({ name: 'plain', scope: 'orders' })).channel).toBe('default');
    for (const body of [
      { name: 'x', scope: 'operator', channel: 'web' },
      { name: '', scope: 'orders' },
      { name: 'x', scope: 'admin' },
      { name: 'x', scope: 'orders', channel: 'no spaces' },
      { name: 'x', scope: 'orders', key: 'choose-my-own' },
    ]) {
      const res = await api().post('/admin/api-keys').set(operatorAuth).send(body);
      expect({ body, status: res.status, code: res.body.error?.code }).toEqual({ body, status: 400, code: 'VALIDATION_FAILED' });
    }
  });

  test('a key revoked on one replica is refused by another within 5 s; lastUsedAt shows in the list', async () => {
    const created = await createKey({ name: 'replicated', scope: 'orders', channel: 'web' });
    const replica = createTestApi({ prisma: stack.db.prisma, temporal: stack.client, taskQueue: stack.taskQueue, defaultPaymentTimeoutSeconds: 900 });
    try {
      const probe = () => request(replica.bareApp).get(`/orders/${randomUUID()}`).set(bearer(created));
      expect((await probe()).status).toBe(404); // valid, and now cached there
      const listed = await request(replica.bareApp).get('/admin/api-keys').set(operatorAuth).expect(200);
      expect(listed.body.apiKeys.find((k: { id: string }) => k.id === created.id)?.lastUsedAt).toEqual(expect.any(String));

      await revokeKey(created.id).expect(200);
      const revokedAt = Date.now();
      await eventually(async () => (await probe()).status, (status) => status === 401, 10_000);
      expect(Date.now() - revokedAt).toBeLessThan(5_000);
    } finally {
      await replica.services.authenticator.close();
      await replica.services.readiness.close();
    }
  });
});

describe('the per-replica cache', () => {
  /** An authenticator over the test database whose store calls are counted. */
  function countingAuthenticator(options: { cacheMs?: number; lastUsedFlushMs?: number } = {}) {
    const store = new ApiKeyStore(stack.db.prisma);
    const lookups: string[] = [];
    const findActive = store.findActive.bind(store);
    store.findActive = async (digest: Buffer) => {
      lookups.push(digest.toString('hex'));
      return findActive(digest);
    };
    const authenticator = new Authenticator({
      store,
      bootstrap: { adminToken: TEST_ADMIN_TOKEN, storefrontKey: TEST_STOREFRONT_KEY },
      logger: createLogger('api', 'silent'),
      lastUsedFlushMs: options.lastUsedFlushMs ?? 3_600_000,
      ...(options.cacheMs !== undefined && { cacheMs: options.cacheMs }),
    });
    return { authenticator, lookups };
  }

  test('an unknown and a revoked key take the same path: one lookup by digest, no row, cached alike', async () => {
    const { authenticator, lookups } = countingAuthenticator();
    const unknown = generateApiKey();
    const results: (Caller | null)[] = [];
    for (let i = 0; i < 3; i++) results.push(await authenticator.identify(unknown), await authenticator.identify(keys.revokedWeb.key));
    expect(results).toEqual([null, null, null, null, null, null]);
    expect(lookups).toEqual([apiKeyDigest(unknown).toString('hex'), apiKeyDigest(keys.revokedWeb.key).toString('hex')]);
    // A burst of one new key costs one query; bootstrap keys none.
    const burst = generateApiKey();
    await Promise.all(Array.from({ length: 20 }, () => authenticator.identify(burst)));
    expect(await authenticator.identify(TEST_ADMIN_TOKEN)).toEqual({ keyId: 'bootstrap-operator', scope: 'operator' });
    expect(lookups).toHaveLength(3);
    await authenticator.close();
  });

  test('a lookup that read the key before it was revoked here is answered but not cached', async () => {
    // A store whose first lookup answers only when the test says: the key as it was before the revocation.
    let answerFirst: (caller: Caller) => void = () => undefined;
    let lookups = 0;
    const store = {
      findActive: () => (++lookups === 1 ? new Promise<Caller>((resolve) => (answerFirst = resolve)) : Promise.resolve(undefined)),
      recordUses: async () => undefined,
    } as unknown as ApiKeyStore;
    const authenticator = new Authenticator({ store, bootstrap: { adminToken: TEST_ADMIN_TOKEN }, logger: createLogger('api', 'silent') });
    const key = generateApiKey();
    const inFlight = authenticator.identify(key);
    authenticator.forget(apiKeyDigest(key)); // revoked here while the lookup was on its way
    answerFirst({ keyId: randomUUID(), scope: 'orders', channel: 'web' });
    expect(await inFlight).toMatchObject({ scope: 'orders' });
    expect(await authenticator.identify(key)).toBeNull();
    expect(lookups).toBe(2);
    await authenticator.close();
  });

  test('an unknown and a revoked key cannot be told apart by timing', async () => {
    // No cache: each identification looks the digest up in PostgreSQL, the slow part of the path.
    const { authenticator } = countingAuthenticator({ cacheMs: 0 });
    const samples = { unknown: [] as number[], revoked: [] as number[] };
    const time = async (key: string) => {
      const start = process.hrtime.bigint();
      await authenticator.identify(key);
      return Number(process.hrtime.bigint() - start) / 1e6;
    };
    for (let i = 0; i < 30; i++) await time(generateApiKey()); // warm the pool and the plan
    for (let i = 0; i < 300; i++) {
      // Interleaved, so load on the machine falls on both alike.
      samples.unknown.push(await time(generateApiKey()));
      samples.revoked.push(await time(keys.revokedWeb.key));
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    const [u, r] = [median(samples.unknown), median(samples.revoked)];
    // The same query finds no row either way; what differs is noise, well within a quarter.
    expect(Math.abs(u - r)).toBeLessThan(Math.max(u, r) * 0.25 + 0.05);
    await authenticator.close();
  });

  test('lastUsedAt is written in one batch, not once per request', async () => {
    const { authenticator } = countingAuthenticator();
    const created = await createKey({ name: 'busy', scope: 'orders', channel: 'web' });
    const rowVersion = async () =>
      (await stack.db.prisma.$queryRaw<{ xmin: string; last_used_at: Date | null }[]>`SELECT xmin::text, last_used_at FROM api_keys WHERE id = ${created.id}::uuid`)[0];
    const before = await rowVersion();
    for (let i = 0; i < 50; i++) expect(await authenticator.identify(created.key)).toMatchObject({ scope: 'orders', channel: 'web' });
    // Fifty uses, no write: the row is the same version.
    expect(await rowVersion()).toEqual(before);
    await authenticator.flushLastUsed();
    const after = await rowVersion();
    expect(after?.xmin).not.toBe(before?.xmin);
    expect(Date.now() - (after?.last_used_at?.getTime() ?? 0)).toBeLessThan(60_000);
    await authenticator.close();
  });
});
