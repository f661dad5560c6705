/**
 * The payment provider's deliveries: verified over the exact bytes received (Standard Webhooks
 * or Stripe-Signature, by their own libraries), then read as one PaymentEvent. Anything that
 * fails here has changed nothing: no lookup, no write, no signal happens before it.
 */
import Stripe from 'stripe';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { z } from 'zod';
import { ApiError } from './errors';
import { parseOrThrow } from './schemas';

/** The replay window, both ways (the contract's 300 s; both libraries default to it too). */
export const WEBHOOK_TOLERANCE_SECONDS = 300;

export const PAYMENT_EVENT_TYPES = ['payment.succeeded', 'payment.processing', 'payment.failed'] as const;
export type PaymentEventType = (typeof PAYMENT_EVENT_TYPES)[number];

/** A verified delivery, whichever endpoint it came in on. */
export interface PaymentEvent {
  type: PaymentEventType;
  orderId: string;
  paymentId: string;
  amountCents: number;
  /** Lowercase ISO 4217; absent when the provider did not say (then the checkout's). */
  currency?: string;
}

const Currency = z
  .string()
  .regex(/^[A-Za-z]{3}$/, 'an ISO 4217 code, e.g. eur')
  .transform((c) => c.toLowerCase());
const PaymentId = z.string().min(1).max(128);
// Any string names an order or not (404); the bound only keeps absurd values out of queries.
const OrderIdField = z.string().min(1).max(64);
const AmountCents = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const PaymentWebhookBody = z
  .strictObject({
    type: z.enum(PAYMENT_EVENT_TYPES),
    /** Standard Webhooks payloads may carry their own ISO timestamp; it is not used. */
    timestamp: z.string().max(64).optional(),
    data: z.strictObject({
      orderId: OrderIdField,
      paymentId: PaymentId,
      amountCents: AmountCents,
      currency: Currency.optional(),
    }),
  })
  .meta({ id: 'PaymentWebhook' });

const STRIPE_EVENT_TYPES: Record<string, PaymentEventType> = {
  'payment_intent.succeeded': 'payment.succeeded',
  'payment_intent.processing': 'payment.processing',
  'payment_intent.payment_failed': 'payment.failed',
};

const StripeEnvelope = z.object({ type: z.string().min(1), data: z.object({ object: z.unknown() }) });
const StripePaymentIntent = z.object({
  id: PaymentId,
  amount: AmountCents,
  amount_received: AmountCents.optional(),
  currency: Currency,
  metadata: z.object({ orderId: OrderIdField }),
});

/** What the document shows of a Stripe event: the fields read from it. */
export const StripeEventSchema = z
  .object({ type: z.string(), data: z.object({ object: StripePaymentIntent.loose() }) })
  .loose()
  .meta({ id: 'StripeEvent' });

const invalidSignature = (message: string) => new ApiError('INVALID_SIGNATURE', message);

/**
 * The body as text, refusing bytes that are not UTF-8: both libraries decode leniently, so two
 * different invalid byte sequences could otherwise verify as the same signed text.
 */
export function utf8Body(raw: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(raw);
  } catch {
    throw new ApiError('VALIDATION_FAILED', 'the body is not UTF-8', { details: [{ path: '', message: 'invalid UTF-8' }] });
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ApiError('VALIDATION_FAILED', 'the body is not valid JSON', { details: [{ path: '', message: 'malformed JSON' }] });
  }
}

/** Standard Webhooks verification against every configured secret (several while one is rotated). */
export class StandardWebhookVerifier {
  private readonly webhooks: Webhook[];

  constructor(secrets: readonly string[]) {
    if (secrets.length === 0) throw new Error('at least one webhook secret is needed');
    this.webhooks = secrets.map((s) => new Webhook(s));
  }

  /** The delivery's event, or INVALID_SIGNATURE / VALIDATION_FAILED. */
  read(raw: Buffer, header: (name: string) => string | undefined): PaymentEvent {
    const text = utf8Body(raw);
    const headers = {
      'webhook-id': header('webhook-id') ?? '',
      'webhook-timestamp': header('webhook-timestamp') ?? '',
      'webhook-signature': header('webhook-signature') ?? '',
    };
    if (!isWebhookId(headers['webhook-id']) || !isUnixSeconds(headers['webhook-timestamp']) || headers['webhook-signature'] === '') {
      throw invalidSignature('missing or malformed webhook-id, webhook-timestamp or webhook-signature');
    }
    if (!this.webhooks.some((webhook) => verifies(webhook, text, headers))) {
      throw invalidSignature('no webhook-signature matches, or webhook-timestamp is outside the 300 s window');
    }
    const body = parseOrThrow(PaymentWebhookBody, parseJson(text));
    const { orderId, paymentId, amountCents, currency } = body.data;
    return { type: body.type, orderId, paymentId, amountCents, ...(currency !== undefined && { currency }) };
  }
}

function verifies(webhook: Webhook, text: string, headers: Record<string, string>): boolean {
  try {
    // Parsing is ours (a genuine non-JSON body is a 400, not a 401).
    webhook.verify(text, headers, { jsonParse: false });
    return true;
  } catch (error) {
    if (error instanceof WebhookVerificationError) return false;
    throw error;
  }
}

/** Printable ASCII without spaces; the id is part of the signed text, so no separators games. */
function isWebhookId(value: string): boolean {
  return /^[\x21-\x7e]{1,256}$/.test(value);
}

/**
 * Digits only, no sign or leading zero: the libraries read the number with parseInt, which would
 * take "1700000000x" or "01700000000" for the signed "1700000000" (a changed byte accepted).
 */
function isUnixSeconds(value: string): boolean {
  return /^[1-9][0-9]{0,14}$/.test(value);
}

export type StripeDelivery = { kind: 'event'; event: PaymentEvent } | { kind: 'ignored' };

/** Stripe-Signature verification (the `stripe` library) and the payment_intent.* mapping. */
export class StripeWebhookVerifier {
  private readonly secrets: string[];

  /** `secret` may list several comma-separated signing secrets while one is rolled. */
  constructor(secret: string) {
    this.secrets = secret.split(',').map((s) => s.trim()).filter((s) => s !== '');
    if (this.secrets.length === 0) throw new Error('a Stripe signing secret is needed');
  }

  read(raw: Buffer, header: string | undefined, nowMs = Date.now()): StripeDelivery {
    const text = utf8Body(raw);
    const timestamp = header === undefined ? undefined : stripeTimestamp(header);
    if (header === undefined || timestamp === undefined) throw invalidSignature('missing or malformed Stripe-Signature');
    // The library bounds only the age; a timestamp from the future is refused here.
    if (timestamp > Math.floor(nowMs / 1000) + WEBHOOK_TOLERANCE_SECONDS) {
      throw invalidSignature('Stripe-Signature timestamp is outside the 300 s window');
    }
    if (!this.secrets.some((secret) => stripeVerifies(text, header, secret))) {
      throw invalidSignature('no Stripe-Signature matches, or its timestamp is outside the 300 s window');
    }
    const envelope = parseOrThrow(StripeEnvelope, parseJson(text));
    // Own keys only: "__proto__" or "constructor" are not event types.
    const type = Object.hasOwn(STRIPE_EVENT_TYPES, envelope.type) ? STRIPE_EVENT_TYPES[envelope.type] : undefined;
    if (type === undefined) return { kind: 'ignored' };
    const intent = parseOrThrow(StripePaymentIntent, envelope.data.object, 'data.object');
    const amountCents = type === 'payment.succeeded' ? (intent.amount_received ?? intent.amount) : intent.amount;
    return {
      kind: 'event',
      event: { type, orderId: intent.metadata.orderId, paymentId: intent.id, amountCents, currency: intent.currency },
    };
  }
}

function stripeVerifies(text: string, header: string, secret: string): boolean {
  try {
    Stripe.webhooks.constructEvent(text, header, secret, WEBHOOK_TOLERANCE_SECONDS);
    return true;
  } catch (error) {
    if (error instanceof Stripe.errors.StripeSignatureVerificationError) return false;
    throw error;
  }
}

/**
 * The `t=` of a well-formed `t=<unix>,v1=<hex>[,...]` header. The library reads `t` with
 * parseInt too, so anything but plain digits (and a second `t`) is refused first.
 */
function stripeTimestamp(header: string): number | undefined {
  const parts = header.split(',');
  if (parts.length > 16 || !parts.every((p) => /^[a-z0-9]{1,8}=[A-Za-z0-9]{1,256}$/.test(p))) return undefined;
  const times = parts.filter((p) => p.startsWith('t='));
  const value = times.length === 1 ? times[0]?.slice(2) : undefined;
  return value !== undefined && isUnixSeconds(value) ? Number(value) : undefined;
}
