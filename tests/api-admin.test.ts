/** Operator endpoints: bearer auth, product create/update and restock through Temporal, the inventory check. */
import request from 'supertest';
import { MAX_STOCK_COUNT, putProduct, restockProduct } from '../activities/inventory';
import { checkInventory } from '../src/db/inventory-check';
import { placeOrder, putProductAsOperator, withStatus } from './support/api-calls';
import { addProduct, stockOf } from './support/database';
import { TEST_ADMIN_TOKEN, useStack } from './support/stack';
import { eventually } from './support/wait';

const stack = useStack({ checkInventoryAfterEach: false }); // one test breaks the invariants on purpose
const auth = `Bearer ${TEST_ADMIN_TOKEN}`;

function ledger(sku: string) {
  return stack.db.prisma.stockMovement.findMany({ where: { sku }, orderBy: { id: 'asc' }, select: { kind: true, quantity: true } });
}

describe('authorization', () => {
  const attempts: [string, Record<string, string>][] = [
    ['no Authorization header', {}],
    ['a wrong token', { Authorization: 'Bearer not-the-token' }],
    ['the token with another scheme', { Authorization: `Basic ${TEST_ADMIN_TOKEN}` }],
    ['the bare token', { Authorization: TEST_ADMIN_TOKEN }],
    ['a prefix of the token', { Authorization: `Bearer ${TEST_ADMIN_TOKEN.slice(0, -1)}` }],
    ['the token with a suffix', { Authorization: `Bearer ${TEST_ADMIN_TOKEN}x` }],
    ['an empty bearer', { Authorization: 'Bearer ' }],
  ];

  test.each(attempts)('%s answers 401 UNAUTHORIZED on every operator endpoint and changes nothing', async (_name, headers) => {
    await addProduct(stack.db.prisma, 'AUTH-1', 5);
    const calls = [
      request(stack.bareApp).put('/admin/products/AUTH-1').set(headers).send({ name: 'x', priceCents: 1, available: 99 }),
      request(stack.bareApp).post('/admin/products/AUTH-1/restock').set(headers).send({ quantity: 7 }),
      request(stack.bareApp).get('/admin/inventory/check').set(headers),
      // Even a broken body is not read before the token is checked.
      request(stack.bareApp).put('/admin/products/AUTH-1').set(headers).set('Content-Type', 'application/json').send('{oops'),
    ];
    for (const res of await Promise.all(calls)) {
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
      expect(res.body).toEqual({ error: { code: 'UNAUTHORIZED', message: expect.any(String) } });
    }
    expect(await stockOf(stack.db.prisma, 'AUTH-1')).toEqual({ available: 5, reserved: 0, sold: 0 });
  });
});

test('PUT /admin/products/:sku creates a product (201) with an INITIAL ledger row, then updates it (200) with an ADJUSTMENT', async () => {
  const created = withStatus(201, await putProductAsOperator(stack.app, 'NEW-1', { name: 'Kettle', priceCents: 4500, available: 12 }));
  expect(created.body).toEqual({ sku: 'NEW-1', name: 'Kettle', priceCents: 4500, available: 12, reserved: 0, sold: 0 });

  const updated = withStatus(200, await putProductAsOperator(stack.app, 'NEW-1', { name: 'Gooseneck kettle', priceCents: 4900, available: 8 }));
  expect(updated.body).toEqual({ sku: 'NEW-1', name: 'Gooseneck kettle', priceCents: 4900, available: 8, reserved: 0, sold: 0 });

  // Without `available` the count on sale stays as it is and the ledger gets no row.
  withStatus(200, await putProductAsOperator(stack.app, 'NEW-1', { name: 'Kettle', priceCents: 4900 }));
  expect(await ledger('NEW-1')).toEqual([
    { kind: 'INITIAL', quantity: 12 },
    { kind: 'ADJUSTMENT', quantity: -4 },
  ]);
  await request(stack.app).get('/products/NEW-1').expect(200, { sku: 'NEW-1', name: 'Kettle', priceCents: 4900, available: 8, reserved: 0, sold: 0 });
  expect(await checkInventory(stack.db.prisma)).toEqual({ ok: true, violations: [] });
});

test('setting `available` below what open orders hold leaves their reservation alone', async () => {
  await addProduct(stack.db.prisma, 'ADJ-1', 10);
  expect((await placeOrder(stack.app, { customerId: 'adj', items: [{ sku: 'ADJ-1', quantity: 6 }] })).status).toBe(201);
  const res = withStatus(200, await putProductAsOperator(stack.app, 'ADJ-1', { name: 'A', priceCents: 1, available: 0 }));
  expect(res.body).toMatchObject({ available: 0, reserved: 6, sold: 0 });
  expect(await checkInventory(stack.db.prisma)).toEqual({ ok: true, violations: [] });
});

test('POST /admin/products/:sku/restock adds units with a RESTOCK ledger row; unknown sku 404; nothing past the column limit', async () => {
  await addProduct(stack.db.prisma, 'RST-1', 2);
  const res = await request(stack.app).post('/admin/products/RST-1/restock').set('Authorization', auth).send({ quantity: 5 }).expect(200);
  expect(res.body).toMatchObject({ sku: 'RST-1', available: 7, reserved: 0, sold: 0 });
  expect(await ledger('RST-1')).toEqual([
    { kind: 'INITIAL', quantity: 2 },
    { kind: 'RESTOCK', quantity: 5 },
  ]);

  const missing = await request(stack.app).post('/admin/products/NOPE-1/restock').set('Authorization', auth).send({ quantity: 5 }).expect(404);
  expect(missing.body.error.code).toBe('PRODUCT_NOT_FOUND');

  withStatus(201, await putProductAsOperator(stack.app, 'BIG-1', { name: 'Big', priceCents: 1, available: 1_000_000_000 }));
  await request(stack.app).post('/admin/products/BIG-1/restock').set('Authorization', auth).send({ quantity: 1_000_000_000 }).expect(200);
  const tooMuch = await request(stack.app).post('/admin/products/BIG-1/restock').set('Authorization', auth).send({ quantity: 1_000_000_000 }).expect(422);
  expect(tooMuch.body.error).toMatchObject({ code: 'STOCK_LIMIT_EXCEEDED', details: { available: 2_000_000_000, limit: MAX_STOCK_COUNT } });
  expect(await stockOf(stack.db.prisma, 'BIG-1')).toEqual({ available: 2_000_000_000, reserved: 0, sold: 0 });
  expect(await checkInventory(stack.db.prisma)).toEqual({ ok: true, violations: [] });
});

test('concurrent restocks of one sku all apply, each exactly once', async () => {
  await addProduct(stack.db.prisma, 'RST-2', 0);
  const results = await Promise.all(
    Array.from({ length: 10 }, () => request(stack.app).post('/admin/products/RST-2/restock').set('Authorization', auth).send({ quantity: 3 })),
  );
  expect(results.map((r) => r.status)).toEqual(Array(10).fill(200));
  expect(await stockOf(stack.db.prisma, 'RST-2')).toEqual({ available: 30, reserved: 0, sold: 0 });
  expect(await checkInventory(stack.db.prisma)).toEqual({ ok: true, violations: [] });
});

describe('restock with an Idempotency-Key', () => {
  const restock = (sku: string, quantity: number, key?: string) => {
    const call = request(stack.app).post(`/admin/products/${sku}/restock`).set('Authorization', auth);
    return (key === undefined ? call : call.set('Idempotency-Key', key)).send({ quantity });
  };

  test('the same key sent again, and sent six times at once, restocks once; each answers 200 with the product', async () => {
    await addProduct(stack.db.prisma, 'KEY-1', 1);
    await addProduct(stack.db.prisma, 'KEY-2', 1);

    const first = await restock('KEY-1', 4, 'delivery-1');
    const again = await restock('KEY-1', 4, 'delivery-1');
    const racing = await Promise.all(Array.from({ length: 6 }, () => restock('KEY-2', 3, 'delivery-2')));

    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ sku: 'KEY-1', available: 5 });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    expect(racing.map((r) => [r.status, r.body.available])).toEqual(Array(6).fill([200, 4]));
    expect(await ledger('KEY-1')).toEqual([
      { kind: 'INITIAL', quantity: 1 },
      { kind: 'RESTOCK', quantity: 4 },
    ]);
    expect(await ledger('KEY-2')).toEqual([
      { kind: 'INITIAL', quantity: 1 },
      { kind: 'RESTOCK', quantity: 3 },
    ]);
    expect(await checkInventory(stack.db.prisma)).toEqual({ ok: true, violations: [] });
  });

  test('the same key with another quantity or for another sku answers 422 IDEMPOTENCY_KEY_REUSED and changes nothing', async () => {
    await addProduct(stack.db.prisma, 'KEY-3', 2);
    await addProduct(stack.db.prisma, 'KEY-4', 2);
    await restock('KEY-3', 5, 'delivery-3').expect(200);

    const otherQuantity = await restock('KEY-3', 6, 'delivery-3');
    const otherSku = await restock('KEY-4', 5, 'delivery-3');
    // Sent at once for two skus: the ledger's unique operation id lets one through, the other is refused.
    const racing = await Promise.all([restock('KEY-3', 1, 'delivery-4'), restock('KEY-4', 1, 'delivery-4')]);

    for (const res of [otherQuantity, otherSku]) {
      expect(res.status).toBe(422);
      expect(res.body).toEqual({ error: { code: 'IDEMPOTENCY_KEY_REUSED', message: expect.any(String) } });
    }
    expect(racing.map((r) => r.status).sort()).toEqual([200, 422]);
    // 2 + 5 for delivery-3, 2 on KEY-4, and 1 for whichever sku delivery-4 restocked.
    const available = (await stockOf(stack.db.prisma, 'KEY-3')).available + (await stockOf(stack.db.prisma, 'KEY-4')).available;
    expect(available).toBe(10);
    expect(await stack.db.prisma.stockMovement.count({ where: { sku: { in: ['KEY-3', 'KEY-4'] }, kind: 'RESTOCK' } })).toBe(2);
    expect(await checkInventory(stack.db.prisma)).toEqual({ ok: true, violations: [] });
  });

  test('without a key every restock applies; a key is 1..255 characters', async () => {
    await addProduct(stack.db.prisma, 'KEY-5', 0);

    await restock('KEY-5', 2).expect(200);
    await restock('KEY-5', 2).expect(200);
    const tooLong = await restock('KEY-5', 2, 'k'.repeat(256));

    expect(tooLong.status).toBe(400);
    expect(tooLong.body.error).toMatchObject({ code: 'VALIDATION_FAILED', details: [{ path: 'Idempotency-Key', message: expect.any(String) }] });
    expect(await stockOf(stack.db.prisma, 'KEY-5')).toEqual({ available: 4, reserved: 0, sold: 0 });
  });
});

test('a restock activity run again for the same operation (a retry) applies it once, even when the attempts race', async () => {
  await addProduct(stack.db.prisma, 'RETRY-1', 1);
  const attempt = () => restockProduct(stack.db.prisma, { sku: 'RETRY-1', quantity: 4, operationId: 'product-RETRY-1-restock-op-1' });
  const results = await Promise.all([attempt(), attempt(), attempt()]);
  expect(await attempt()).toEqual({ outcome: 'RESTOCKED', product: expect.objectContaining({ available: 5 }) });
  expect(results.every((r) => r.outcome === 'RESTOCKED')).toBe(true);
  expect(await stockOf(stack.db.prisma, 'RETRY-1')).toEqual({ available: 5, reserved: 0, sold: 0 });
  expect(await ledger('RETRY-1')).toEqual([
    { kind: 'INITIAL', quantity: 1 },
    { kind: 'RESTOCK', quantity: 4 },
  ]);
});

test('a put-product activity run again for the same operation reports the same outcome and adjusts once', async () => {
  const first = await putProduct(stack.db.prisma, { sku: 'RETRY-2', name: 'R', priceCents: 10, available: 3, operationId: 'op-create' });
  const again = await putProduct(stack.db.prisma, { sku: 'RETRY-2', name: 'R', priceCents: 10, available: 3, operationId: 'op-create' });
  expect(first.outcome).toBe('CREATED');
  expect(again).toEqual(first);

  // An order takes 2 between the first attempt and its retry: the retry must not "set" 9 again.
  expect((await placeOrder(stack.app, { customerId: 'r2', items: [{ sku: 'RETRY-2', quantity: 2 }] })).status).toBe(201);
  const adjust = () => putProduct(stack.db.prisma, { sku: 'RETRY-2', name: 'R', priceCents: 10, available: 9, operationId: 'op-adjust' });
  expect((await adjust()).product).toMatchObject({ available: 9, reserved: 2 });
  expect((await placeOrder(stack.app, { customerId: 'r2', items: [{ sku: 'RETRY-2', quantity: 2 }] })).status).toBe(201);
  expect(await adjust()).toEqual({ outcome: 'UPDATED', product: expect.objectContaining({ available: 7, reserved: 4 }) });
  expect(await checkInventory(stack.db.prisma)).toEqual({ ok: true, violations: [] });
});

test('the operator endpoints run as workflows on the task queue, visible in Temporal', async () => {
  withStatus(201, await putProductAsOperator(stack.app, 'WF-1', { name: 'W', priceCents: 1 }));
  await request(stack.app).post('/admin/products/WF-1/restock').set('Authorization', auth).send({ quantity: 1 }).expect(200);
  // Visibility is eventually consistent: a workflow that has answered may still be listed as running for a moment.
  const listed = async () => {
    const types: string[] = [];
    for await (const execution of stack.client.workflow.list({ query: 'WorkflowId STARTS_WITH "product-WF-1-"' })) {
      types.push(`${execution.type}:${execution.status.name}`);
    }
    return types.sort();
  };
  const completed = ['putProductWorkflow:COMPLETED', 'restockProductWorkflow:COMPLETED'];
  expect(await eventually(listed, (types) => JSON.stringify(types) === JSON.stringify(completed), 10_000)).toEqual(completed);
  const movements = await stack.db.prisma.stockMovement.findMany({ where: { sku: 'WF-1' }, select: { operationId: true } });
  expect(movements.map((m) => m.operationId)).toEqual([expect.stringMatching(/^product-WF-1-put-/), expect.stringMatching(/^product-WF-1-restock-/)]);
});

test('malformed operator requests answer 400 VALIDATION_FAILED and change nothing', async () => {
  await addProduct(stack.db.prisma, 'VAL-1', 4, 100);
  const bad: [string, string, object | string][] = [
    ['put', '/admin/products/VAL-1', { priceCents: 1 }],
    ['put', '/admin/products/VAL-1', { name: '', priceCents: 1 }],
    ['put', '/admin/products/VAL-1', { name: '   ', priceCents: 1 }],
    ['put', '/admin/products/VAL-1', { name: 'x', priceCents: -1 }],
    ['put', '/admin/products/VAL-1', { name: 'x', priceCents: 1.5 }],
    ['put', '/admin/products/VAL-1', { name: 'x', priceCents: '100' }],
    ['put', '/admin/products/VAL-1', { name: 'x', priceCents: 1, available: -1 }],
    ['put', '/admin/products/VAL-1', { name: 'x', priceCents: 1, available: 2_000_000_000 }],
    ['put', '/admin/products/VAL-1', { name: 'x', priceCents: 1, extra: true }],
    ['put', '/admin/products/bad%20sku', { name: 'x', priceCents: 1 }],
    ['put', '/admin/products/-starts-with-dash', { name: 'x', priceCents: 1 }],
    ['put', `/admin/products/${'S'.repeat(65)}`, { name: 'x', priceCents: 1 }],
    ['put', '/admin/products/VAL-1', '{"name": "x", "priceCents": 1'],
    ['post', '/admin/products/VAL-1/restock', { quantity: 0 }],
    ['post', '/admin/products/VAL-1/restock', { quantity: -3 }],
    ['post', '/admin/products/VAL-1/restock', { quantity: 2.5 }],
    ['post', '/admin/products/VAL-1/restock', {}],
    ['post', '/admin/products/VAL-1/restock', []],
    ['post', '/admin/products/VAL-1/restock', 'null'],
  ];
  for (const [method, path, body] of bad) {
    const call = method === 'put' ? request(stack.app).put(path) : request(stack.app).post(path);
    const res = await call.set('Authorization', auth).set('Content-Type', 'application/json').send(typeof body === 'string' ? body : JSON.stringify(body));
    expect({ path, body, status: res.status, code: res.body?.error?.code }).toEqual({ path, body, status: 400, code: 'VALIDATION_FAILED' });
    expect(Array.isArray(res.body.error.details)).toBe(true);
  }
  expect(await stack.db.prisma.product.findUniqueOrThrow({ where: { sku: 'VAL-1' } })).toMatchObject({ name: 'Product VAL-1', priceCents: 100, available: 4 });
  expect(await ledger('VAL-1')).toEqual([{ kind: 'INITIAL', quantity: 4 }]);
});

test('GET /admin/inventory/check answers ok, and lists each broken invariant once the database is tampered with', async () => {
  const clean = await request(stack.app).get('/admin/inventory/check').set('Authorization', auth).expect(200);
  expect(clean.body).toEqual({ ok: true, violations: [] });

  // Tampering behind the ledger's back (this is what the check exists to catch).
  await addProduct(stack.db.prisma, 'BROKEN-1', 5);
  await stack.db.prisma.$executeRaw`UPDATE products SET available = available + 3 WHERE sku = 'BROKEN-1'`;
  const placed = await placeOrder(stack.app, { customerId: 'tamper', items: [{ sku: 'BROKEN-1', quantity: 2 }] });
  expect(placed.status).toBe(201);
  await stack.db.prisma.$executeRaw`UPDATE orders SET status = 'CANCELLED' WHERE id = ${placed.body.orderId}::uuid`;

  const res = await request(stack.app).get('/admin/inventory/check').set('Authorization', auth).expect(200);
  expect(res.body.ok).toBe(false);
  expect(res.body.violations).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ kind: 'CONSERVATION', sku: 'BROKEN-1' }),
      expect.objectContaining({ kind: 'CLOSED_ORDER_HOLDS_STOCK', orderId: placed.body.orderId, sku: 'BROKEN-1', held: 2 }),
    ]),
  );
  expect(res.body.violations).toHaveLength(2);
  // The full check (the pass over the whole ledger, the checkpoint verified) finds the same.
  const full = await request(stack.app).get('/admin/inventory/check?full=true').set('Authorization', auth).expect(200);
  expect(full.body).toEqual(res.body);
  const malformed = await request(stack.app).get('/admin/inventory/check?full=yes').set('Authorization', auth).expect(400);
  expect(malformed.body.error.code).toBe('VALIDATION_FAILED');
});

test('GET /admin/inventory/check names an order whose stock was both released and committed, and what that leaves it holding', async () => {
  await addProduct(stack.db.prisma, 'BROKEN-2', 5);
  const placed = await placeOrder(stack.app, { customerId: 'tamper-2', items: [{ sku: 'BROKEN-2', quantity: 2 }] });
  expect(placed.status).toBe(201);
  // A second way out of the hold, written behind the ledger's back: the reserve is now moved twice.
  await stack.db.prisma.$executeRaw`
    INSERT INTO stock_movements (sku, order_id, kind, quantity)
    VALUES ('BROKEN-2', ${placed.body.orderId}::uuid, 'RELEASE', 2), ('BROKEN-2', ${placed.body.orderId}::uuid, 'COMMIT', 2)`;
  await stack.db.prisma.$executeRaw`UPDATE orders SET status = 'CANCELLED' WHERE id = ${placed.body.orderId}::uuid`;

  const res = await request(stack.app).get('/admin/inventory/check').set('Authorization', auth).expect(200);
  const mine = (res.body.violations as { kind: string; orderId?: string; sku?: string }[]).filter((v) => v.sku === 'BROKEN-2');
  expect(mine).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ kind: 'CONSERVATION', sku: 'BROKEN-2' }),
      { kind: 'CLOSED_ORDER_HOLDS_STOCK', orderId: placed.body.orderId, status: 'CANCELLED', sku: 'BROKEN-2', held: -2 },
      { kind: 'ORDER_MOVED_TWICE', orderId: placed.body.orderId, sku: 'BROKEN-2', movements: ['RELEASE', 'COMMIT'] },
    ]),
  );
  expect(mine).toHaveLength(3);
});
