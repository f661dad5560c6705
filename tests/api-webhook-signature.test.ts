/**
 * The payment webhook's X-Signature: HMAC-SHA256 over the exact bytes of the body. A forged,
 * missing or mangled signature answers 401 INVALID_SIGNATURE and nothing happens: no signal
 * reaches the workflow, no payment or refund is recorded, the order still awaits payment.
 */
import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import request from 'supertest';
import { isValidSignature, signPayload } from '../src/api/signature';
import { addProduct, stockOf } from './support/database';
import { startStack, TEST_WEBHOOK_SECRET, type TestStack } from './support/stack';
import { orderWorkflowId } from '../workflows/messages';

let stack: TestStack;
let orderId: string;
const body = JSON.stringify({ paymentId: 'sig-pay', amountCents: 1200 });
const hex = (secret: string, raw: string) => createHmac('sha256', secret).update(raw).digest('hex');

beforeAll(async () => {
  stack = await startStack();
  await addProduct(stack.db.prisma, 'SIG-1', 5, 1200);
  const placed = await request(stack.app).post('/orders').send({ customerId: 'sig', items: [{ sku: 'SIG-1', quantity: 1 }] }).expect(201);
  orderId = placed.body.orderId as string;
});

afterAll(async () => {
  await stack?.stop();
});

function deliver(raw: string, signature: string | undefined, target = orderId) {
  const call = request(stack.app).post(`/orders/${target}/payment`).set('Content-Type', 'application/json');
  return (signature === undefined ? call : call.set('X-Signature', signature)).send(raw);
}

async function expectNothingHappened(): Promise<void> {
  const order = await request(stack.app).get(`/orders/${orderId}`).expect(200);
  expect(order.body.status).toBe('AWAITING_PAYMENT');
  expect(await stack.db.prisma.payment.count()).toBe(0);
  expect(await stack.db.prisma.refund.count()).toBe(0);
  expect(await stockOf(stack.db.prisma, 'SIG-1')).toEqual({ available: 4, reserved: 1, sold: 0 });
  const history = await stack.client.workflow.getHandle(orderWorkflowId(orderId)).fetchHistory();
  const signals = (history.events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes);
  expect(signals).toHaveLength(0);
}

const forgeries: [string, string, string | undefined][] = [
  ['no X-Signature header', body, undefined],
  ['an empty header', body, ''],
  ['the prefix alone', body, 'sha256='],
  ['the hex without its prefix', body, hex(TEST_WEBHOOK_SECRET, body)],
  ['another algorithm name', body, `sha1=${hex(TEST_WEBHOOK_SECRET, body)}`],
  ['a signature made with another secret', body, signPayload('not-the-secret', body)],
  ['a signature of another body', JSON.stringify({ paymentId: 'sig-pay', amountCents: 1 }), signPayload(TEST_WEBHOOK_SECRET, body)],
  ['the same JSON re-spaced after signing', JSON.stringify(JSON.parse(body), null, 2), signPayload(TEST_WEBHOOK_SECRET, body)],
  ['a truncated signature', body, signPayload(TEST_WEBHOOK_SECRET, body).slice(0, -2)],
  ['a signature with a byte appended', body, `${signPayload(TEST_WEBHOOK_SECRET, body)}00`],
  ['a signature with one hex digit changed', body, signPayload(TEST_WEBHOOK_SECRET, body).replace(/.$/, (c) => (c === '0' ? '1' : '0'))],
  ['an empty secret', body, signPayload('', body)],
];

test.each(forgeries)('%s answers 401 INVALID_SIGNATURE and nothing happens', async (_name, raw, signature) => {
  const res = await deliver(raw, signature).expect(401);
  expect(res.body).toEqual({ error: { code: 'INVALID_SIGNATURE', message: 'missing or invalid X-Signature' } });
  await expectNothingHappened();
});

test('100 generated signatures that are not the HMAC of the body answer 401 and nothing happens', async () => {
  const good = signPayload(TEST_WEBHOOK_SECRET, body);
  const signature = fc.oneof(
    fc.string({ maxLength: 80 }),
    fc.stringMatching(/^[0-9a-f]{64}$/).map((h) => `sha256=${h}`),
    fc.integer({ min: 7, max: good.length - 1 }).chain((i) =>
      fc.constantFrom(...'0123456789abcdef').map((c) => `${good.slice(0, i)}${c}${good.slice(i + 1)}`),
    ),
  ).filter((s) => s.trim().toLowerCase() !== good && /^[\t\x20-\x7e]*$/.test(s));
  await fc.assert(
    fc.asyncProperty(signature, async (candidate) => {
      const res = await deliver(body, candidate);
      expect({ candidate, status: res.status }).toEqual({ candidate, status: 401 });
    }),
    { numRuns: 100 },
  );
  await expectNothingHappened();
});

test('a forged signature is refused before anything else is looked at: unknown order or broken body still 401', async () => {
  await deliver(body, 'sha256=00', '00000000-0000-4000-8000-00000000abcd').expect(401);
  await deliver('{not json', 'sha256=00').expect(401);
  await expectNothingHappened();
});

test('the genuine signature (hex in either case) is accepted: 200 PAID', async () => {
  expect(isValidSignature(TEST_WEBHOOK_SECRET, Buffer.from(body), signPayload(TEST_WEBHOOK_SECRET, body).toUpperCase().replace('SHA256=', 'sha256='))).toBe(true);
  const res = await deliver(body, signPayload(TEST_WEBHOOK_SECRET, body)).expect(200);
  expect(res.body).toMatchObject({ orderId, status: 'PAID', paymentId: 'sig-pay' });
});
