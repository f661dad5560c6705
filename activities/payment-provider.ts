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

/**
 * The stand-in for a provider in development and tests: every refund succeeds at once. The
 * refund is recorded (refunds table, payment.refunded event) by the activity that asked.
 */
export function createLocalPaymentProvider(): PaymentProvider {
  return {
    refund({ paymentId }) {
      return Promise.resolve({ paymentId, status: 'REFUNDED' });
    },
  };
}
