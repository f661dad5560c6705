/** What the lifecycle tests read back: HTTP calls as the provider makes them, and an order's traces in the database. */
import type express from 'express';
import request from 'supertest';
import { signPayload } from '../../src/api/signature';
import type { PrismaClient } from '../../prisma/generated/client';
import { TEST_WEBHOOK_SECRET } from './stack';

export interface HttpAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** The payment provider's webhook call, signed as the provider signs it. */
export async function payOverHttp(app: express.Express, orderId: string, payment: { paymentId: string; amountCents: number }): Promise<HttpAnswer> {
  const raw = JSON.stringify(payment);
  const res = await request(app)
    .post(`/orders/${orderId}/payment`)
    .set('Content-Type', 'application/json')
    .set('X-Signature', signPayload(TEST_WEBHOOK_SECRET, raw))
    .send(raw);
  return { status: res.status, body: res.body as Record<string, unknown> };
}

export async function cancelOverHttp(app: express.Express, orderId: string): Promise<HttpAnswer> {
  const res = await request(app).post(`/orders/${orderId}/cancel`);
  return { status: res.status, body: res.body as Record<string, unknown> };
}

export async function placeOverHttp(
  app: express.Express,
  body: { customerId: string; items: { sku: string; quantity: number }[]; paymentTimeoutSeconds?: number },
): Promise<HttpAnswer & { orderId: string }> {
  const res = await request(app).post('/orders').send(body);
  const answer = res.body as Record<string, unknown>;
  if (typeof answer.orderId !== 'string') throw new Error(`no orderId in ${res.status} ${JSON.stringify(answer)}`);
  return { status: res.status, body: answer, orderId: answer.orderId };
}

export function errorCode(answer: HttpAnswer): unknown {
  return (answer.body.error as { code?: unknown } | undefined)?.code;
}

/** Everything the database holds about one order's settlement. */
export interface OrderTraces {
  status: string;
  /** Ledger kinds for the order, e.g. ['RESERVE', 'COMMIT'] (one per sku). */
  movements: string[];
  payments: { paymentId: string; amountCents: number; outcome: string }[];
  refunds: { paymentId: string; amountCents: number; status: string }[];
}

export async function tracesOf(prisma: PrismaClient, orderId: string): Promise<OrderTraces> {
  const [order, movements, payments, refunds] = await Promise.all([
    prisma.order.findUniqueOrThrow({ where: { id: orderId }, select: { status: true } }),
    prisma.stockMovement.findMany({ where: { orderId }, orderBy: [{ kind: 'asc' }, { sku: 'asc' }], select: { kind: true } }),
    prisma.payment.findMany({ where: { orderId }, orderBy: { paymentId: 'asc' }, select: { paymentId: true, amountCents: true, outcome: true } }),
    prisma.refund.findMany({ where: { orderId }, orderBy: { paymentId: 'asc' }, select: { paymentId: true, amountCents: true, status: true } }),
  ]);
  return { status: order.status, movements: movements.map((m) => m.kind), payments, refunds };
}
