import type { PrismaClient } from '../prisma/generated/client';
import type { Cents, OrderId, RefundResult } from './types';

export interface RefundRequest {
  orderId: OrderId;
  paymentId: string;
  amountCents: Cents;
}

/**
 * The small surface of a payment provider this service needs. A real provider's
 * implementation must be idempotent per (orderId, paymentId), as refunds are retried.
 */
export interface PaymentProvider {
  refund(request: RefundRequest): Promise<RefundResult>;
}

/** Records refunds in the local database; the stand-in for a provider in development and tests. */
export function createLocalPaymentProvider(prisma: PrismaClient): PaymentProvider {
  return {
    async refund({ orderId, paymentId, amountCents }) {
      await prisma.refund.createMany({
        data: [{ orderId, paymentId, amountCents, status: 'REFUNDED' }],
        skipDuplicates: true,
      });
      return { paymentId, status: 'REFUNDED' };
    },
  };
}
