/**
 * Malformed input, generated (fast-check): every broken body answers 400 VALIDATION_FAILED in
 * the contract's shape, with details, and changes nothing: no stock moves, no order is
 * recorded, no workflow starts. The valid base body names real skus with stock, so a body
 * that slipped through validation would visibly hold stock.
 */
import fc from 'fast-check';
import request from 'supertest';
import { checkInventory } from '../src/db/inventory-check';
import { addProduct } from './support/database';
import { useStack } from './support/stack';
import { getOrder, orderIdOf, placeOrder } from './support/api-calls';
import { signedHeaders } from './support/webhooks';

const stack = useStack();
const SKUS = ['VAL-A', 'VAL-B', 'VAL-C'];

beforeAll(async () => {
  for (const sku of SKUS) await addProduct(stack.db.prisma, sku, 50, 300);
});

interface Snapshot {
  products: unknown[];
  orders: number;
  movements: number;
  payments: number;
  receipts: number;
  workflows: number;
}

async function snapshot(): Promise<Snapshot> {
  const { prisma } = stack.db;
  const [products, orders, movements, payments, receipts, workflows] = await Promise.all([
    prisma.product.findMany({ orderBy: { sku: 'asc' }, select: { sku: true, available: true, reserved: true, sold: true } }),
    prisma.order.count(),
    prisma.stockMovement.count(),
    prisma.payment.count(),
    prisma.paymentReceipt.count(),
    stack.client.workflow.count(`TaskQueue = "${stack.taskQueue}"`).then((c) => c.count),
  ]);
  return { products, orders, movements, payments, receipts, workflows };
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const validBody = () => ({
  customerId: 'validation',
  items: [
    { sku: 'VAL-A', quantity: 1 },
    { sku: 'VAL-B', quantity: 2 },
  ],
  paymentTimeoutSeconds: 60,
});

/** A JSON value of the wrong kind for a field that wants `kind`. */
const wrongType = (kind: 'string' | 'integer' | 'array' | 'object'): fc.Arbitrary<Json> => {
  const candidates: [string, fc.Arbitrary<Json>][] = [
    ['string', fc.string()],
    ['integer', fc.integer()],
    ['boolean', fc.boolean()],
    ['null', fc.constant(null)],
    ['array', fc.array(fc.integer(), { maxLength: 3 })],
    ['object', fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 2 })],
  ];
  return fc.oneof(...candidates.filter(([k]) => k !== kind).map(([, arbitrary]) => arbitrary));
};

const badQuantity: fc.Arbitrary<Json> = fc.oneof(
  fc.integer({ max: 0 }),
  fc.integer({ min: 1001 }),
  fc.double({ min: 0.001, max: 999.999, noNaN: true }).filter((n) => !Number.isInteger(n)),
  fc.constantFrom(1e21, -1e21, 1e308),
  fc.integer({ min: 1, max: 1000 }).map(String),
  wrongType('integer'),
);

const badSku: fc.Arbitrary<Json> = fc.oneof(fc.constant(''), fc.string({ minLength: 65, maxLength: 80 }), wrongType('string'));

const badTimeout: fc.Arbitrary<Json> = fc.oneof(
  fc.integer({ max: 0 }),
  fc.integer({ min: 86_401 }),
  fc.double({ min: 0.5, max: 100.5, noNaN: true }).filter((n) => !Number.isInteger(n)),
  fc.integer({ min: 1, max: 100 }).map(String),
  wrongType('integer'),
);

type Mutation = { what: string; apply: (body: Record<string, Json>) => Json };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.constantFrom<'customerId' | 'items'>('customerId', 'items').map((field) => ({
    what: `missing ${field}`,
    apply: (b: Record<string, Json>) => omit(b, field),
  })),
  fc.oneof(fc.constant(''), fc.string({ minLength: 65, maxLength: 100 }), wrongType('string')).map((v) => ({
    what: `customerId ${JSON.stringify(v)}`,
    apply: (b: Record<string, Json>) => ({ ...b, customerId: v }),
  })),
  fc.oneof(fc.constant<Json>([]), wrongType('array')).map((v) => ({
    what: `items ${JSON.stringify(v)}`,
    apply: (b: Record<string, Json>) => ({ ...b, items: v }),
  })),
  fc.integer({ min: 51, max: 80 }).map((n) => ({
    what: `${n} items`,
    apply: (b: Record<string, Json>) => ({ ...b, items: Array.from({ length: n }, (_, i) => ({ sku: `VAL-${i}`, quantity: 1 })) }),
  })),
  fc.constantFrom(...SKUS).map((sku) => ({
    what: `duplicated sku ${sku}`,
    apply: (b: Record<string, Json>) => ({ ...b, items: [{ sku, quantity: 1 }, { sku: 'VAL-C', quantity: 1 }, { sku, quantity: 2 }] }),
  })),
  badQuantity.map((q) => ({
    what: `quantity ${JSON.stringify(q)}`,
    apply: (b: Record<string, Json>) => ({ ...b, items: [{ sku: 'VAL-A', quantity: q }] }),
  })),
  badSku.map((sku) => ({ what: `sku ${JSON.stringify(sku)}`, apply: (b: Record<string, Json>) => ({ ...b, items: [{ sku, quantity: 1 }] }) })),
  fc.constantFrom('sku', 'quantity').map((field) => ({
    what: `item without ${field}`,
    apply: (b: Record<string, Json>) => ({ ...b, items: [omit({ sku: 'VAL-A', quantity: 1 }, field)] }),
  })),
  fc.oneof(wrongType('object'), fc.constant<Json>('VAL-A')).map((item) => ({
    what: `item ${JSON.stringify(item)}`,
    apply: (b: Record<string, Json>) => ({ ...b, items: [item] }),
  })),
  badTimeout.map((t) => ({
    what: `paymentTimeoutSeconds ${JSON.stringify(t)}`,
    apply: (b: Record<string, Json>) => ({ ...b, paymentTimeoutSeconds: t }),
  })),
  fc.string({ minLength: 1, maxLength: 10 }).filter((k) => !['customerId', 'items', 'paymentTimeoutSeconds'].includes(k)).map((key) => ({
    what: `unknown field ${JSON.stringify(key)}`,
    apply: (b: Record<string, Json>) => ({ ...b, [key]: 1 }),
  })),
  fc.constant({ what: 'unknown field in an item', apply: (b: Record<string, Json>) => ({ ...b, items: [{ sku: 'VAL-A', quantity: 1, priceCents: 1 }] }) }),
  fc.oneof(fc.array(fc.integer(), { maxLength: 2 }), fc.string(), fc.integer(), fc.constant(null), fc.boolean()).map((v) => ({
    what: `body ${JSON.stringify(v)}`,
    apply: () => v,
  })),
);

interface MalformedRequest {
  what: string;
  text: string;
  contentType: string;
}

/** JSON text that does not parse: a valid body cut short, or something else entirely. */
const brokenJson: fc.Arbitrary<MalformedRequest> = fc.oneof(
  fc.integer({ min: 1, max: JSON.stringify(validBody()).length - 1 }).map((cut) => ({
    what: `JSON cut at ${cut}`,
    text: JSON.stringify(validBody()).slice(0, cut),
    contentType: 'application/json',
  })),
  fc.string({ minLength: 1, maxLength: 40 })
    .filter((s) => !parses(s) && s.trim() !== '')
    .map((text) => ({ what: `not JSON ${JSON.stringify(text)}`, text, contentType: 'application/json' })),
  fc.constantFrom("{'customerId': 'x'}", '{"customerId": "x",}', '{customerId: 1}', 'undefined', 'NaN').map((text) => ({
    what: `not JSON ${text}`,
    text,
    contentType: 'application/json',
  })),
);

const malformedOrder: fc.Arbitrary<MalformedRequest> = fc.oneof(
  { weight: 6, arbitrary: mutation.map((m) => ({ what: m.what, text: JSON.stringify(m.apply(validBody())), contentType: 'application/json' })) },
  { weight: 2, arbitrary: brokenJson },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 65 * 1024, max: 200 * 1024 }).map((size) => ({
      what: `oversized body of ${size} bytes`,
      text: JSON.stringify({ ...validBody(), customerId: 'x'.repeat(size) }),
      contentType: 'application/json',
    })),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'application/xml').map((contentType) => ({
      what: `JSON sent as ${contentType}`,
      text: JSON.stringify(validBody()),
      contentType,
    })),
  },
);

test('150 generated malformed POST /orders bodies each answer 400 VALIDATION_FAILED with details and change nothing', async () => {
  const before = await snapshot();
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(malformedOrder, async ({ what, text, contentType }) => {
      runs += 1;
      const res = await request(stack.app).post('/orders').set('Content-Type', contentType).send(text);
      expect({ what, status: res.status }).toEqual({ what, status: 400 });
      expect(res.body).toEqual({ error: { code: 'VALIDATION_FAILED', message: expect.any(String), details: expect.any(Array) } });
      expect(res.body.error.details.length).toBeGreaterThan(0);
      expect(res.text).not.toMatch(/\n\s+at /);
    }),
    { numRuns: 150 },
  );
  expect(runs).toBe(150);
  expect(await snapshot()).toEqual(before);
});

test('validation names the fields and why', async () => {
  const res = await request(stack.app)
    .post('/orders')
    .send({ customerId: '', items: [{ sku: 'VAL-A', quantity: 0 }, { sku: 'VAL-A', quantity: 1.5 }], paymentTimeoutSeconds: 86_401 })
    .expect(400);
  const paths = (res.body.error.details as { path: string; message: string }[]).map((d) => d.path);
  expect(paths.sort()).toEqual(['customerId', 'items.0.quantity', 'items.1.quantity', 'paymentTimeoutSeconds']);

  const duplicated = await request(stack.app)
    .post('/orders')
    .send({ customerId: 'x', items: [{ sku: 'VAL-A', quantity: 1 }, { sku: 'VAL-A', quantity: 2 }] })
    .expect(400);
  expect(duplicated.body.error.details).toEqual([{ path: 'items', message: 'skus must be distinct' }]);
});

test('validation comes before any lookup: a malformed body with unknown skus is 400, not 422', async () => {
  const res = await request(stack.app).post('/orders').send({ customerId: 'x', items: [{ sku: 'NOPE', quantity: 0 }] }).expect(400);
  expect(res.body.error.code).toBe('VALIDATION_FAILED');
});

test('a malformed Idempotency-Key answers 400 and changes nothing', async () => {
  const before = await snapshot();
  for (const key of ['', 'k'.repeat(256)]) {
    const res = await request(stack.app).post('/orders').set('Idempotency-Key', key).send(validBody()).expect(400);
    expect(res.body.error.details).toEqual([expect.objectContaining({ path: 'Idempotency-Key' })]);
  }
  expect(await snapshot()).toEqual(before);
});

test('a missing body and an empty body answer 400', async () => {
  await request(stack.app).post('/orders').expect(400);
  await request(stack.app).post('/orders').set('Content-Type', 'application/json').send('').expect(400);
  await request(stack.app).post('/orders').set('Content-Type', 'application/json').set('Content-Encoding', 'br-nope').send('{}').expect(400);
});

test('80 generated malformed payment deliveries, correctly signed, answer 400 and apply or record nothing', async () => {
  const placed = await placeOrder(stack.app, { customerId: 'payer', items: [{ sku: 'VAL-C', quantity: 1 }] });
  expect(placed.status).toBe(201);
  const orderId = orderIdOf(placed);
  const before = await snapshot();
  const data = (change: Record<string, Json | undefined>) =>
    Object.fromEntries(Object.entries({ orderId, paymentId: 'p', amountCents: 300, ...change }).filter(([, v]) => v !== undefined));
  const delivery = (type: Json, fields: Record<string, Json | undefined>) => JSON.stringify({ type, data: data(fields) });
  const badPayment: fc.Arbitrary<string> = fc.oneof(
    fc.oneof(fc.constant(''), fc.string({ minLength: 129, maxLength: 140 }), wrongType('string')).map((paymentId) =>
      delivery('payment.succeeded', { paymentId }),
    ),
    fc.oneof(fc.integer({ max: -1 }), fc.double({ min: 0.1, max: 1000.9, noNaN: true }).filter((n) => !Number.isInteger(n)), fc.constantFrom(1e300, 2 ** 53), wrongType('integer')).map(
      (amountCents) => delivery('payment.succeeded', { amountCents }),
    ),
    fc.oneof(fc.constantFrom('', 'eu', 'euro', 'e1r', '€€€'), wrongType('string')).map((currency) => delivery('payment.succeeded', { currency })),
    fc.oneof(fc.constantFrom('', 'payment.refunded', 'PAYMENT.SUCCEEDED', 'payment_intent.succeeded'), wrongType('string')).map((type) => delivery(type, {})),
    fc.oneof(fc.constant(''), fc.string({ minLength: 65, maxLength: 80 }), wrongType('string')).map((badOrderId) => delivery('payment.succeeded', { orderId: badOrderId })),
    fc.constantFrom(
      delivery('payment.succeeded', { paymentId: undefined }),
      delivery('payment.succeeded', { amountCents: undefined }),
      delivery('payment.succeeded', { orderId: undefined }),
      delivery('payment.succeeded', { extra: 1 }),
      JSON.stringify({ type: 'payment.succeeded', data: data({}), extra: true }),
      JSON.stringify({ type: 'payment.succeeded' }),
      JSON.stringify({ data: data({}) }),
      JSON.stringify(data({})),
      '[]', 'null', '"p"', '{', 'not json', '',
    ),
  );
  await fc.assert(
    fc.asyncProperty(badPayment, async (raw) => {
      const res = await request(stack.app).post('/webhooks/payments').set('Content-Type', 'application/json').set(signedHeaders(raw)).send(raw);
      expect({ raw, status: res.status, code: res.body?.error?.code }).toEqual({ raw, status: 400, code: 'VALIDATION_FAILED' });
    }),
    { numRuns: 80 },
  );
  expect(await snapshot()).toEqual(before);
  const order = await getOrder(stack.app, orderId);
  expect(order.status).toBe(200);
  expect(order.body.status).toBe('AWAITING_PAYMENT');
  expect(await checkInventory(stack.db.prisma)).toEqual({ ok: true, violations: [] });
});

function omit(value: Record<string, Json>, key: string): Record<string, Json> {
  return Object.fromEntries(Object.entries(value).filter(([k]) => k !== key));
}

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
