/** What the lifecycle tests read back: HTTP calls as the provider makes them, and an order's traces in the database. */
import type express from 'express';
import request from 'supertest';
import type { PrismaClient } from '../../prisma/generated/client';
import { signedHeaders } from './webhooks';

export interface HttpAnswer {
  status: number;
  body: Record<string, unknown>;
}

export interface PaymentData {
  paymentId: string;
  amountCents: number;
  currency?: string;
}

/** A `payment.succeeded` delivery to POST /webhooks/payments, signed as the provider signs it. */
export async function payOverHttp(app: express.Express, orderId: string, payment: PaymentData): Promise<HttpAnswer> {
  return deliverOverHttp(app, 'payment.succeeded', orderId, payment);
}

export async function deliverOverHttp(
  app: express.Express,
  type: 'payment.succeeded' | 'payment.processing' | 'payment.failed',
  orderId: string,
  payment: PaymentData,
): Promise<HttpAnswer> {
  const raw = JSON.stringify({ type, data: { orderId, ...payment } });
  const res = await request(app).post('/webhooks/payments').set('Content-Type', 'application/json').set(signedHeaders(raw)).send(raw);
  return { status: res.status, body: res.body as Record<string, unknown> };
}

/** The outcome of a 200 delivery answer (`APPLIED`, `AMOUNT_MISMATCH`, ...). */
export function outcomeOf(answer: HttpAnswer): unknown {
  return answer.body.outcome;
}

export function orderOf(answer: HttpAnswer): Record<string, unknown> {
  return (answer.body.order ?? {}) as Record<string, unknown>;
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

type Payment = { paymentId: string; amountCents: number };

/** The traces of an order that was paid by `applied` and refunded `refused` (with its outcome). */
export function paidRefundingOne(applied: Payment, refused: Payment & { outcome: string }): OrderTraces {
  const payments = [{ ...applied, outcome: 'APPLIED' }, refused].sort((a, b) => a.paymentId.localeCompare(b.paymentId));
  return {
    status: 'PAID',
    movements: ['RESERVE', 'COMMIT'],
    payments,
    refunds: [{ paymentId: refused.paymentId, amountCents: refused.amountCents, status: 'REFUNDED' }],
  };
}

/** The traces of an order whose stock went back (`status`) and that refunded its one payment. */
export function releasedRefunding(status: string, refused: Payment & { outcome: string }): OrderTraces {
  return {
    status,
    movements: ['RESERVE', 'RELEASE'],
    payments: [refused],
    refunds: [{ paymentId: refused.paymentId, amountCents: refused.amountCents, status: 'REFUNDED' }],
  };
}

export async function tracesOf(prisma: PrismaClient, orderId: string): Promise<OrderTraces> {
  const [order, movements, payments, refunds] = await Promise.all([
    prisma.order.findUniqueOrThrow({ where: { id: orderId }, select: { status: true } }),
    prisma.stockMovement.findMany({ where: { orderId }, orderBy: [{ kind: 'asc' }, { sku: 'asc' }], select: { kind: true } }),
    prisma.payment.findMany({ where: { orderId }, orderBy: { paymentId: 'asc' }, select: { paymentId: true, amountCents: true, outcome: true } }),
    prisma.refund.findMany({ where: { orderId }, orderBy: { paymentId: 'asc' }, select: { paymentId: true, amountCents: true, status: true } }),
  ]);
  return {
    status: order.status,
    movements: movements.map((m) => m.kind),
    payments: payments.map((p) => ({ ...p, amountCents: Number(p.amountCents) })),
    refunds: refunds.map((r) => ({ ...r, amountCents: Number(r.amountCents) })),
  };
}
