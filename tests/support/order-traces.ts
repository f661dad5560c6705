/** An order's traces in the database (status, ledger, payments, refunds), and the traces the lifecycle tests expect. */
import type { PrismaClient } from '../../prisma/generated/client';

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
