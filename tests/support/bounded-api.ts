/**
 * The API's HTTP app over a fault test's parts, with a short decision wait, and the checks every
 * bounded-answer test makes: how long an answer took, and that each unit of stock moved once.
 */
import type { Client } from '@temporalio/client';
import type express from 'express';
import request from 'supertest';
import type { PrismaClient } from '../../prisma/generated/client';
import { createTestApi } from './stack';
import { eventually } from './wait';
import { signedHeaders } from './webhooks';

/** Short, so the tests see the 202s quickly; the default is 10 s. */
export const TEST_DECISION_WAIT_SECONDS = 2;

/**
 * What "within the bound" means on a loaded, shared machine: the wait plus generous slack,
 * still far from the unbounded wait (minutes) these tests guard against.
 */
export const ANSWER_BOUND_MS = TEST_DECISION_WAIT_SECONDS * 1000 + 10_000;

export interface BoundedApi {
  app: express.Express;
  close(): Promise<void>;
}

export function boundedApi(deps: { prisma: PrismaClient; temporal: Client; taskQueue: string }): BoundedApi {
  const { app, services } = createTestApi({ ...deps, defaultPaymentTimeoutSeconds: 900, decisionWaitSeconds: TEST_DECISION_WAIT_SECONDS });
  return { app, close: () => services.readiness.close() };
}

export interface Timed {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown> & { orderId?: string; status?: string };
  ms: number;
}

async function timed(send: () => request.Test): Promise<Timed> {
  const started = Date.now();
  const res = await send();
  return { status: res.status, headers: res.headers as Record<string, string>, body: res.body as Timed['body'], ms: Date.now() - started };
}

export type OrderLines = { sku: string; quantity: number }[];

export function placeOrder(app: express.Express, customerId: string, items: OrderLines, key: string): Promise<Timed> {
  return timed(() => request(app).post('/orders').set('Idempotency-Key', key).send({ customerId, items }));
}

/** The provider's payment.succeeded delivery for the order, signed as the provider signs it (a new webhook-id each time). */
export function payOrder(app: express.Express, orderId: string, paymentId: string, amountCents: number): Promise<Timed> {
  const raw = JSON.stringify({ type: 'payment.succeeded', data: { orderId, paymentId, amountCents } });
  return timed(() => request(app).post('/webhooks/payments').set('Content-Type', 'application/json').set(signedHeaders(raw)).send(raw));
}

export function cancelOrder(app: express.Express, orderId: string): Promise<Timed> {
  return timed(() => request(app).post(`/orders/${orderId}/cancel`));
}

export function getOrder(app: express.Express, orderId: string): Promise<Timed> {
  return timed(() => request(app).get(`/orders/${orderId}`));
}

/** Stock movements per order and sku, e.g. { "<orderId> SKU": ["RESERVE", "COMMIT"] }: each kind at most once. */
export async function movementsOf(prisma: PrismaClient, orderIds: string[]): Promise<Record<string, string[]>> {
  const rows = await prisma.stockMovement.findMany({
    where: { orderId: { in: orderIds } },
    orderBy: [{ orderId: 'asc' }, { sku: 'asc' }, { kind: 'asc' }],
  });
  const moved: Record<string, string[]> = {};
  for (const row of rows) (moved[`${row.orderId} ${row.sku}`] ??= []).push(row.kind);
  return moved;
}

/** A 503 SERVICE_UNAVAILABLE with Retry-After, within the bound, naming the part that is down. */
export function expectUnavailable(answer: Timed, unavailable: 'postgres' | 'temporal'): void {
  expect(answer.ms).toBeLessThan(ANSWER_BOUND_MS);
  expect(answer.status).toBe(503);
  expect(answer.headers['retry-after']).toMatch(/^\d+$/);
  expect(answer.body).toMatchObject({ error: { code: 'SERVICE_UNAVAILABLE', details: { unavailable } } });
}

/** Places with the same key again until decided: a fresh worker may take longer than the short wait. */
export function placeUntilDecided(app: express.Express, customerId: string, lines: { sku: string; quantity: number }[], key: string): Promise<Timed> {
  return eventually(() => placeOrder(app, customerId, lines, key), (a) => a.status !== 202, 60_000);
}

/** Places the order the test will pay and the one it will cancel, both held (201) before the fault. */
export async function placeToPayAndToCancel(
  app: express.Express,
  customerId: string,
  lines: { toPay: OrderLines; toCancel: OrderLines },
  keyPrefix: string,
): Promise<{ payId: string; cancelId: string }> {
  const toPay = await placeUntilDecided(app, customerId, lines.toPay, `${keyPrefix}-pay`);
  const toCancel = await placeUntilDecided(app, customerId, lines.toCancel, `${keyPrefix}-cancel`);
  expect([toPay.status, toCancel.status]).toEqual([201, 201]);
  return { payId: String(toPay.body.orderId), cancelId: String(toCancel.body.orderId) };
}
