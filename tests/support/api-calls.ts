/**
 * The API's calls over HTTP (supertest against the Express app) as the storefront, the payment
 * provider and the operator make them, one function a call, and the readers of their answers.
 * Every answer carries how long it took, so a test can also check that it came in time.
 */
import type express from 'express';
import request from 'supertest';
import { TEST_ADMIN_TOKEN } from './stack';
import { eventually } from './wait';
import { signedHeaders } from './webhooks';

export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown> & { orderId?: string; status?: string };
  /** From sending the request to having the whole answer. */
  ms: number;
}

async function timed(send: () => request.Test): Promise<HttpAnswer> {
  const started = Date.now();
  const res = await send();
  return { status: res.status, headers: res.headers as Record<string, string>, body: res.body as HttpAnswer['body'], ms: Date.now() - started };
}

export type OrderLines = { sku: string; quantity: number }[];

export interface OrderRequest {
  customerId: string;
  items: OrderLines;
  paymentTimeoutSeconds?: number;
}

export interface RequestOptions {
  idempotencyKey?: string;
  /** More headers, e.g. another channel's `Authorization` (sent to the bare app). */
  headers?: Record<string, string>;
}

function withOptions(req: request.Test, options: RequestOptions): request.Test {
  if (options.headers) req.set(options.headers);
  if (options.idempotencyKey !== undefined) req.set('Idempotency-Key', options.idempotencyKey);
  return req;
}

/** POST /orders. */
export function placeOrder(app: express.Express, order: OrderRequest, options: RequestOptions = {}): Promise<HttpAnswer> {
  return timed(() => withOptions(request(app).post('/orders'), options).send(order));
}

export type PaymentEventType = 'payment.succeeded' | 'payment.processing' | 'payment.failed';

export interface PaymentData {
  paymentId: string;
  amountCents: number;
  currency?: string;
}

/** A delivery to POST /webhooks/payments, signed as the provider signs it (a new webhook-id each time). */
export function deliverPayment(app: express.Express, type: PaymentEventType, orderId: string, payment: PaymentData): Promise<HttpAnswer> {
  const raw = JSON.stringify({ type, data: { orderId, ...payment } });
  return timed(() => request(app).post('/webhooks/payments').set('Content-Type', 'application/json').set(signedHeaders(raw)).send(raw));
}

/** The provider's `payment.succeeded` delivery for the order. */
export function payOrder(app: express.Express, orderId: string, payment: PaymentData): Promise<HttpAnswer> {
  return deliverPayment(app, 'payment.succeeded', orderId, payment);
}

/** POST /orders/:orderId/cancel. */
export function cancelOrder(app: express.Express, orderId: string): Promise<HttpAnswer> {
  return timed(() => request(app).post(`/orders/${orderId}/cancel`));
}

/** PUT /admin/products/:sku as the operator. */
export function putProductAsOperator(app: express.Express, sku: string, body: Record<string, unknown>): Promise<HttpAnswer> {
  return timed(() => request(app).put(`/admin/products/${sku}`).set('Authorization', `Bearer ${TEST_ADMIN_TOKEN}`).send(body));
}

/** The answer, once its status is the one expected (a failure shows the body too). */
export function withStatus(status: number, answer: HttpAnswer): HttpAnswer {
  if (answer.status !== status) throw new Error(`expected HTTP ${status}, got ${answer.status}: ${JSON.stringify(answer.body)}`);
  return answer;
}

/** GET /orders/:orderId. */
export function getOrder(app: express.Express, orderId: string): Promise<HttpAnswer> {
  return timed(() => request(app).get(`/orders/${orderId}`));
}

/** POST /admin/orders/:orderId/extend with the operator's token; `body` as given, so a test can send a bad one. */
export function extendOrder(app: express.Express, orderId: string, body: object, options: Pick<RequestOptions, 'idempotencyKey'> = {}): Promise<HttpAnswer> {
  return timed(() => withOptions(request(app).post(`/admin/orders/${orderId}/extend`).set('Authorization', `Bearer ${TEST_ADMIN_TOKEN}`), options).send(body));
}

/** Places with the same key again until decided: a fresh worker may take longer than a short decision wait. */
function placeUntilDecided(app: express.Express, order: OrderRequest, idempotencyKey: string): Promise<HttpAnswer> {
  return eventually(() => placeOrder(app, order, { idempotencyKey }), (a) => a.status !== 202, 60_000);
}

/** Places the order the test will pay and the one it will cancel, both held (201) before the fault. */
export async function placeToPayAndToCancel(
  app: express.Express,
  customerId: string,
  lines: { toPay: OrderLines; toCancel: OrderLines },
  keyPrefix: string,
): Promise<{ payId: string; cancelId: string }> {
  const toPay = await placeUntilDecided(app, { customerId, items: lines.toPay }, `${keyPrefix}-pay`);
  const toCancel = await placeUntilDecided(app, { customerId, items: lines.toCancel }, `${keyPrefix}-cancel`);
  expect([toPay.status, toCancel.status]).toEqual([201, 201]);
  return { payId: String(toPay.body.orderId), cancelId: String(toCancel.body.orderId) };
}

/** The order id of a placement's answer (any status that names one); throws when it names none. */
export function orderIdOf(answer: HttpAnswer): string {
  if (typeof answer.body.orderId !== 'string') throw new Error(`no orderId in ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body.orderId;
}

/** The outcome of a 200 delivery answer (`APPLIED`, `AMOUNT_MISMATCH`, ...). */
export function outcomeOf(answer: HttpAnswer): unknown {
  return answer.body.outcome;
}

/** The order a delivery answer carries. */
export function orderOf(answer: HttpAnswer): Record<string, unknown> {
  return (answer.body.order ?? {}) as Record<string, unknown>;
}

export function errorCode(answer: HttpAnswer): unknown {
  return (answer.body.error as { code?: unknown } | undefined)?.code;
}

/** What the caller was told, without the headers and the time it took: for comparing two answers. */
export function statusAndBody(answer: HttpAnswer): Pick<HttpAnswer, 'status' | 'body'> {
  return { status: answer.status, body: answer.body };
}
