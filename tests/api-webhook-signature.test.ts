/**
 * Who may pay an order: only a delivery signed with a configured secret, over the exact bytes
 * received, within 300 s of the server's clock. Deliveries are signed here by the real
 * `standardwebhooks` and `stripe` libraries; every forgery, replay onto another order, stale or
 * future timestamp, changed byte and generated malformed delivery answers 401 or 400 and
 * changes nothing: no receipt, no payment, no refund, no signal, the stock still held.
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import request from 'supertest';
import { Webhook } from 'standardwebhooks';
import { orderWorkflowId } from '../workflows/messages';
import { addProduct, stockOf } from './support/database';
import { createTestApi, TEST_STRIPE_SECRET, TEST_WEBHOOK_SECRET, useStack } from './support/stack';
import { getOrder, orderIdOf, placeOrder } from './support/api-calls';
import { paymentIntentEvent, signedHeaders, stripeSignature } from './support/webhooks';

const stack = useStack();
/** The order every forgery aims at; it must still await payment, untouched, at the end. */
let target: string;
/** Another order, whose genuine deliveries an attacker has captured. */
let captured: string;

const PRICE = 1200;
const now = () => Math.floor(Date.now() / 1000);
const secretOf = () => `whsec_${randomBytes(32).toString('base64')}`;

beforeAll(async () => {
  await addProduct(stack.db.prisma, 'SIG-1', 10, PRICE);
  // Orders that are meant to be paid take their stock from SIG-2, so SIG-1 shows only the two above.
  await addProduct(stack.db.prisma, 'SIG-2', 10, PRICE);
  target = await placeOn('SIG-1', 'sig-target');
  captured = await placeOn('SIG-1', 'sig-captured');
});

const bodyFor = (orderId: string, paymentId = 'sig-pay', amountCents = PRICE, type = 'payment.succeeded') =>
  JSON.stringify({ type, data: { orderId, paymentId, amountCents } });

function deliver(raw: string | Buffer, headers: Record<string, string>, app = stack.app) {
  // superagent would JSON-encode a Buffer sent as application/json; bytes go as they are.
  const type = Buffer.isBuffer(raw) ? 'application/octet-stream' : 'application/json';
  return request(app).post('/webhooks/payments').set('Content-Type', type).set(headers).send(raw);
}

async function expectUntouched(orderId: string): Promise<void> {
  const order = await getOrder(stack.app, orderId);
  expect(order.status).toBe(200);
  expect(order.body.status).toBe('AWAITING_PAYMENT');
  const { prisma } = stack.db;
  expect(await prisma.paymentReceipt.count({ where: { orderId } })).toBe(0);
  expect(await prisma.payment.count({ where: { orderId } })).toBe(0);
  expect(await prisma.refund.count({ where: { orderId } })).toBe(0);
  const history = await stack.client.workflow.getHandle(orderWorkflowId(orderId)).fetchHistory();
  expect((history.events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes)).toHaveLength(0);
}

async function expectNothingHappened(): Promise<void> {
  await expectUntouched(target);
  await expectUntouched(captured);
  expect(await stockOf(stack.db.prisma, 'SIG-1')).toEqual({ available: 8, reserved: 2, sold: 0 });
}

/** Changes the (printable, non-space) character at `index` to another one; `by` is 1..93. */
function changeAt(text: string, index: number, by: number): string {
  const next = 0x21 + ((text.charCodeAt(index) - 0x21 + by) % 94);
  return `${text.slice(0, index)}${String.fromCharCode(next)}${text.slice(index + 1)}`;
}

async function placeOn(sku: string, customerId: string, app = stack.app): Promise<string> {
  const placed = await placeOrder(app, { customerId, items: [{ sku, quantity: 1 }] });
  expect(placed.status).toBe(201);
  return orderIdOf(placed);
}

describe('POST /webhooks/payments (Standard Webhooks)', () => {
  const genuineFor = (orderId: string, options: { id?: string; timestamp?: number; secret?: string } = {}) => {
    const raw = bodyFor(orderId);
    return { raw, headers: signedHeaders(raw, options) };
  };

  const forgeries: [string, () => { raw: string; headers: Record<string, string> }][] = [
    ['no signature headers at all', () => ({ raw: bodyFor(target), headers: {} })],
    ['no webhook-id', () => { const { raw, headers } = genuineFor(target); delete headers['webhook-id']; return { raw, headers }; }],
    ['no webhook-timestamp', () => { const { raw, headers } = genuineFor(target); delete headers['webhook-timestamp']; return { raw, headers }; }],
    ['no webhook-signature', () => { const { raw, headers } = genuineFor(target); delete headers['webhook-signature']; return { raw, headers }; }],
    ['an empty webhook-signature', () => ({ ...genuineFor(target), headers: { ...genuineFor(target).headers, 'webhook-signature': '' } })],
    ['a signature made with a secret that is not configured', () => genuineFor(target, { secret: secretOf() })],
    [
      "a captured delivery's signature over a body naming another order",
      () => {
        const seen = genuineFor(captured);
        return { raw: seen.raw.replace(captured, target), headers: seen.headers };
      },
    ],
    [
      'a captured delivery with the amount changed',
      () => {
        const seen = genuineFor(target);
        return { raw: seen.raw.replace(String(PRICE), String(PRICE + 1)), headers: seen.headers };
      },
    ],
    ['the signed JSON re-spaced', () => { const { raw, headers } = genuineFor(target); return { raw: JSON.stringify(JSON.parse(raw), null, 2), headers }; }],
    ['a stale timestamp (301 s old), correctly signed', () => genuineFor(target, { timestamp: now() - 301 })],
    ['a timestamp from the future (330 s ahead: past the 300 s tolerance with room for a slow first request), correctly signed', () => genuineFor(target, { timestamp: now() + 330 })],
    ['a day-old timestamp, correctly signed', () => genuineFor(target, { timestamp: now() - 86_400 })],
    [
      'the timestamp moved by one second after signing',
      () => { const { raw, headers } = genuineFor(target); return { raw, headers: { ...headers, 'webhook-timestamp': String(Number(headers['webhook-timestamp']) + 1) } }; },
    ],
    [
      'the timestamp with a trailing letter (parseInt would read the signed number)',
      () => { const { raw, headers } = genuineFor(target); return { raw, headers: { ...headers, 'webhook-timestamp': `${headers['webhook-timestamp']}x` } }; },
    ],
    [
      'the timestamp with a leading zero',
      () => { const { raw, headers } = genuineFor(target); return { raw, headers: { ...headers, 'webhook-timestamp': `0${headers['webhook-timestamp']}` } }; },
    ],
    ['the webhook-id changed after signing', () => { const { raw, headers } = genuineFor(target, { id: 'msg_1' }); return { raw, headers: { ...headers, 'webhook-id': 'msg_2' } }; }],
    [
      'the signature under another version tag',
      () => { const { raw, headers } = genuineFor(target); return { raw, headers: { ...headers, 'webhook-signature': (headers['webhook-signature'] ?? '').replace('v1,', 'v2,') } }; },
    ],
    [
      'a truncated signature',
      () => { const { raw, headers } = genuineFor(target); return { raw, headers: { ...headers, 'webhook-signature': (headers['webhook-signature'] ?? '').slice(0, -4) } }; },
    ],
    [
      'the v1 scheme of the old route (X-Signature: sha256=<hex>)',
      () => ({ raw: bodyFor(target), headers: { 'X-Signature': `sha256=${'0'.repeat(64)}` } }),
    ],
  ];

  test.each(forgeries)('%s: 401 INVALID_SIGNATURE, nothing happens', async (_name, make) => {
    const { raw, headers } = make();
    const res = await deliver(raw, headers).expect(401);
    expect(res.body).toEqual({ error: { code: 'INVALID_SIGNATURE', message: expect.any(String) } });
    await expectNothingHappened();
  });

  test('the v1 route POST /orders/:orderId/payment is gone: 404 ROUTE_NOT_FOUND', async () => {
    const res = await request(stack.app).post(`/orders/${target}/payment`).send({ paymentId: 'x', amountCents: PRICE }).expect(404);
    expect(res.body.error.code).toBe('ROUTE_NOT_FOUND');
    await expectNothingHappened();
  });

  test('a forged signature is refused before anything is looked at: an unknown order or a broken body still 401', async () => {
    const forged = { 'webhook-id': 'msg_x', 'webhook-timestamp': String(now()), 'webhook-signature': 'v1,AAAA' };
    await deliver(bodyFor('00000000-0000-4000-8000-00000000abcd'), forged).expect(401);
    await deliver('{not json', forged).expect(401);
    await deliver(bodyFor('not-a-uuid'), forged).expect(401);
    await expectNothingHappened();
  });

  test('120 genuine deliveries with one character changed in the webhook-id, the timestamp or the body all answer 401', async () => {
    const raw = bodyFor(target, 'sig-mutated');
    const headers = signedHeaders(raw, { id: 'msg_2mutation0test' });
    const mutation = fc.oneof(
      fc.record({ part: fc.constant('id' as const), index: fc.nat({ max: (headers['webhook-id'] ?? '').length - 1 }), by: fc.integer({ min: 1, max: 93 }) }),
      fc.record({ part: fc.constant('timestamp' as const), index: fc.nat({ max: 9 }), by: fc.integer({ min: 1, max: 9 }) }),
      fc.record({ part: fc.constant('body' as const), index: fc.nat({ max: raw.length - 1 }), by: fc.integer({ min: 1, max: 93 }) }),
    );
    await fc.assert(
      fc.asyncProperty(mutation, async ({ part, index, by }) => {
        const changed = { raw, headers: { ...headers } };
        if (part === 'id') changed.headers['webhook-id'] = changeAt(headers['webhook-id'] ?? '', index, by);
        if (part === 'body') changed.raw = changeAt(raw, index, by);
        if (part === 'timestamp') {
          // Another digit (another second), never a non-digit: the decimal must still parse.
          const ts = headers['webhook-timestamp'] ?? '';
          let digit = (Number(ts[index]) + by) % 10;
          if (index === 0 && digit === 0) digit = Number(ts[0]) === 2 ? 3 : 2;
          changed.headers['webhook-timestamp'] = `${ts.slice(0, index)}${digit}${ts.slice(index + 1)}`;
        }
        const res = await deliver(changed.raw, changed.headers);
        expect({ part, index, by, status: res.status }).toEqual({ part, index, by, status: 401 });
      }),
      { numRuns: 120 },
    );
    await expectNothingHappened();
  });

  test('150 generated malformed deliveries (garbage headers, unsigned or signed junk) answer 401 or 400 and change nothing', async () => {
    const header = fc.string({ maxLength: 60 }).filter((s) => /^[\x20-\x7e]*$/.test(s));
    const body = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.json({ maxDepth: 3 }),
      fc.constantFrom('', 'null', '[]', '{}', '{"type":"payment.succeeded"}', bodyFor(target, 'sig-junk', -1), bodyFor(target, 'sig-junk', 1.5)),
      fc.record({ type: fc.string(), data: fc.record({ orderId: fc.constant(target), paymentId: fc.string(), amountCents: fc.anything() }) }).map((v) => JSON.stringify(v)),
    );
    const unsigned = fc.record({ raw: body, id: header, timestamp: header, signature: header });
    const signedJunk = body.filter((raw) => !isValidPaymentBody(raw)).map((raw) => ({ raw, signed: true as const }));
    await fc.assert(
      fc.asyncProperty(fc.oneof(unsigned, signedJunk), async (delivery) => {
        const res =
          'signed' in delivery
            ? await deliver(delivery.raw, signedHeaders(delivery.raw))
            : await deliver(delivery.raw, { 'webhook-id': delivery.id, 'webhook-timestamp': delivery.timestamp, 'webhook-signature': delivery.signature });
        const expected = 'signed' in delivery ? 400 : 401;
        expect({ delivery, status: res.status, code: res.body?.error?.code }).toEqual({
          delivery,
          status: expected,
          code: expected === 400 ? 'VALIDATION_FAILED' : 'INVALID_SIGNATURE',
        });
      }),
      { numRuns: 150 },
    );
    await expectNothingHappened();
  });

  test('bodies that are too large, compressed or not UTF-8 answer 400 and change nothing, even when signed', async () => {
    const huge = JSON.stringify({ type: 'payment.succeeded', data: { orderId: target, paymentId: 'sig-huge', amountCents: PRICE }, pad: 'x'.repeat(70_000) });
    expect((await deliver(huge, signedHeaders(huge)).expect(400)).body.error.code).toBe('VALIDATION_FAILED');
    const raw = bodyFor(target, 'sig-gzip');
    await deliver(raw, { ...signedHeaders(raw), 'Content-Encoding': 'gzip' }).expect(400);
    // 0xff is no UTF-8: a lenient decoder would read it as U+FFFD, like any other invalid byte.
    const invalid = Buffer.concat([Buffer.from(raw.slice(0, -2)), Buffer.from([0xff]), Buffer.from('"}')]);
    await deliver(invalid, signedHeaders(invalid.toString('utf8'))).expect(400);
    await expectNothingHappened();
  });

  test('rotation: with two secrets configured, a delivery signed by either is genuine; a third secret is not', async () => {
    const [older, newer] = [secretOf(), secretOf()];
    const { app } = createTestApi(
      { prisma: stack.db.prisma, temporal: stack.client, taskQueue: stack.taskQueue, defaultPaymentTimeoutSeconds: 900 },
      { paymentWebhookSecrets: [older, newer] },
    );
    const [first, second, third] = [await placeOn('SIG-2', 'rotation', app), await placeOn('SIG-2', 'rotation', app), await placeOn('SIG-2', 'rotation', app)];

    const byOlder = bodyFor(first, 'rot-older');
    const byNewer = bodyFor(second, 'rot-newer');
    const byOther = bodyFor(third, 'rot-other');
    expect((await deliver(byOlder, signedHeaders(byOlder, { secret: older }), app).expect(200)).body.outcome).toBe('APPLIED');
    expect((await deliver(byNewer, signedHeaders(byNewer, { secret: newer }), app).expect(200)).body.outcome).toBe('APPLIED');
    await deliver(byOther, signedHeaders(byOther, { secret: TEST_WEBHOOK_SECRET }), app).expect(401);
    // One header may carry several signatures (the provider signs with old and new): any match counts.
    const signed = signedHeaders(byOther, { secret: newer });
    const headers = { ...signed, 'webhook-signature': `v1,${Buffer.alloc(32).toString('base64')} ${signed['webhook-signature'] ?? ''}` };
    expect((await deliver(byOther, headers, app).expect(200)).body.outcome).toBe('APPLIED');
    expect(await stack.db.prisma.order.count({ where: { id: { in: [first, second, third] }, status: 'PAID' } })).toBe(3);
    await expectNothingHappened();
  });

  test('a delivery signed by the standardwebhooks library is genuine whatever its Content-Type: 200 APPLIED', async () => {
    const orderId = await placeOn('SIG-2', 'genuine');
    const raw = bodyFor(orderId, 'sig-genuine');
    const id = 'msg_genuine';
    const timestamp = new Date();
    const signature = new Webhook(TEST_WEBHOOK_SECRET).sign(id, timestamp, raw);
    const res = await request(stack.app)
      .post('/webhooks/payments')
      .set('Content-Type', 'text/plain')
      .set({ 'webhook-id': id, 'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)), 'webhook-signature': signature })
      .send(raw)
      .expect(200);
    expect(res.body).toMatchObject({ outcome: 'APPLIED', order: { orderId, status: 'PAID', paymentId: 'sig-genuine' } });
    // The captured, genuine delivery replayed as it is: the same answer, nothing more.
    const replay = await request(stack.app)
      .post('/webhooks/payments')
      .set({ 'webhook-id': id, 'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)), 'webhook-signature': signature })
      .send(raw)
      .expect(200);
    expect(replay.body).toEqual(res.body);
    expect(await stack.db.prisma.stockMovement.count({ where: { orderId, kind: 'COMMIT' } })).toBe(1);
    await expectNothingHappened();
  });
});

describe('POST /webhooks/stripe', () => {
  const intent = (orderId: string, id: string, type = 'payment_intent.succeeded') => paymentIntentEvent(type, { id, orderId, amount: PRICE });
  const deliverStripe = (raw: string | Buffer, signature: string | undefined, app = stack.app) => {
    const call = request(app).post('/webhooks/stripe').set('Content-Type', 'application/json');
    return (signature === undefined ? call : call.set('Stripe-Signature', signature)).send(raw);
  };

  const forgeries: [string, () => { raw: string; signature: string | undefined }][] = [
    ['no Stripe-Signature', () => ({ raw: intent(target, 'pi_none'), signature: undefined })],
    ['a signature made with another secret', () => { const raw = intent(target, 'pi_other'); return { raw, signature: stripeSignature(raw, { secret: 'whsec_not_ours' }) }; }],
    ["a captured event's signature over a body naming another order", () => { const raw = intent(captured, 'pi_cap'); return { raw: raw.replace(captured, target), signature: stripeSignature(raw) }; }],
    ['a stale timestamp (301 s old)', () => { const raw = intent(target, 'pi_old'); return { raw, signature: stripeSignature(raw, { timestamp: now() - 301 }) }; }],
    ['a timestamp from the future (330 s ahead: past the 300 s tolerance with room for a slow first request)', () => { const raw = intent(target, 'pi_future'); return { raw, signature: stripeSignature(raw, { timestamp: now() + 330 }) }; }],
    ['t= with a trailing letter', () => { const raw = intent(target, 'pi_t'); return { raw, signature: stripeSignature(raw).replace(/^t=(\d+)/, 't=$1x') }; }],
    ['two t= values', () => { const raw = intent(target, 'pi_tt'); return { raw, signature: `t=1,${stripeSignature(raw)}` }; }],
    ['the signature hex changed', () => { const raw = intent(target, 'pi_hex'); return { raw, signature: stripeSignature(raw).replace(/.$/, (c) => (c === '0' ? '1' : '0')) }; }],
  ];

  test.each(forgeries)('%s: 401 INVALID_SIGNATURE, nothing happens', async (_name, make) => {
    const { raw, signature } = make();
    const res = await deliverStripe(raw, signature).expect(401);
    expect(res.body.error.code).toBe('INVALID_SIGNATURE');
    await expectNothingHappened();
  });

  test('without STRIPE_WEBHOOK_SECRET the route does not exist: 404', async () => {
    const { app, services } = createTestApi(
      { prisma: stack.db.prisma, temporal: stack.client, taskQueue: stack.taskQueue, defaultPaymentTimeoutSeconds: 900 },
      { stripeWebhookSecret: null },
    );
    const raw = intent(target, 'pi_off');
    expect((await deliverStripe(raw, stripeSignature(raw), app).expect(404)).body.error.code).toBe('ROUTE_NOT_FOUND');
    await services.readiness.close();
    await expectNothingHappened();
  });

  test('a signed event of another type answers 200 { ignored: true }; a signed payment_intent without metadata.orderId 400', async () => {
    const other = paymentIntentEvent('charge.refunded', { id: 'pi_ignored', orderId: target, amount: PRICE });
    expect((await deliverStripe(other, stripeSignature(other)).expect(200)).body).toEqual({ ignored: true });
    const proto = JSON.stringify({ type: '__proto__', data: { object: {} } });
    expect((await deliverStripe(proto, stripeSignature(proto)).expect(200)).body).toEqual({ ignored: true });
    const noOrder = JSON.stringify({ type: 'payment_intent.succeeded', data: { object: { id: 'pi_x', amount: PRICE, amount_received: PRICE, currency: 'eur', metadata: {} } } });
    expect((await deliverStripe(noOrder, stripeSignature(noOrder)).expect(400)).body.error.code).toBe('VALIDATION_FAILED');
    await expectNothingHappened();
  });

  test('events signed by the stripe library map to the three types: processing, payment_failed, then succeeded', async () => {
    const orderId = await placeOn('SIG-2', 'stripe');
    const send = async (type: string) => {
      const raw = intent(orderId, 'pi_stripe_1', type);
      return (await deliverStripe(raw, stripeSignature(raw, { secret: TEST_STRIPE_SECRET })).expect(200)).body as { outcome: string; order: { status: string } };
    };
    expect(await send('payment_intent.processing')).toMatchObject({ outcome: 'PROCESSING', order: { status: 'AWAITING_PAYMENT' } });
    expect(await send('payment_intent.payment_failed')).toMatchObject({ outcome: 'FAILED', order: { status: 'AWAITING_PAYMENT' } });
    expect(await send('payment_intent.succeeded')).toMatchObject({ outcome: 'APPLIED', order: { status: 'PAID', paymentId: 'pi_stripe_1' } });
    const receipt = await stack.db.prisma.paymentReceipt.findUniqueOrThrow({ where: { paymentId: 'pi_stripe_1' } });
    expect(receipt).toMatchObject({ orderId, amountCents: BigInt(PRICE), currency: 'eur', succeededAt: expect.any(Date) });
    await expectNothingHappened();
  });
});

function isValidPaymentBody(raw: string): boolean {
  try {
    const value = JSON.parse(raw) as { type?: unknown; data?: { orderId?: unknown; paymentId?: unknown; amountCents?: unknown } };
    return (
      typeof value === 'object' &&
      value !== null &&
      ['payment.succeeded', 'payment.processing', 'payment.failed'].includes(String(value.type)) &&
      typeof value.data?.paymentId === 'string' &&
      Number.isSafeInteger(value.data.amountCents)
    );
  } catch {
    return false;
  }
}
