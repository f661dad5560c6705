/** Provider deliveries as the real signing libraries make them (standardwebhooks, stripe). */
import { randomUUID } from 'node:crypto';
import Stripe from 'stripe';
import { Webhook } from 'standardwebhooks';
import { TEST_STRIPE_SECRET, TEST_WEBHOOK_SECRET } from './stack';

export interface SigningOptions {
  secret?: string;
  id?: string;
  /** Unix seconds; now when not given. */
  timestamp?: number;
}

/** `webhook-id`, `webhook-timestamp` and `webhook-signature` for a raw body, signed by `standardwebhooks`. */
export function signedHeaders(raw: string, options: SigningOptions = {}): Record<string, string> {
  const id = options.id ?? `msg_${randomUUID()}`;
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  const signature = new Webhook(options.secret ?? TEST_WEBHOOK_SECRET).sign(id, new Date(timestamp * 1000), raw);
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signature };
}

/** A `Stripe-Signature` header for a raw body, made by `stripe.webhooks.generateTestHeaderString`. */
export function stripeSignature(raw: string, options: { secret?: string; timestamp?: number } = {}): string {
  return Stripe.webhooks.generateTestHeaderString({
    payload: raw,
    secret: options.secret ?? TEST_STRIPE_SECRET,
    ...(options.timestamp !== undefined && { timestamp: options.timestamp }),
  });
}

export function paymentIntentEvent(
  type: string,
  intent: { id: string; orderId: string; amount: number; amountReceived?: number; currency?: string },
): string {
  return JSON.stringify({
    id: `evt_${randomUUID().replace(/-/g, '')}`,
    object: 'event',
    type,
    data: {
      object: {
        id: intent.id,
        object: 'payment_intent',
        amount: intent.amount,
        amount_received: intent.amountReceived ?? (type === 'payment_intent.succeeded' ? intent.amount : 0),
        currency: intent.currency ?? 'eur',
        metadata: { orderId: intent.orderId },
      },
    },
  });
}
