/**
 * Pays an order by hand, as the payment provider would: reads the order's total from the API
 * (with a storefront key of the order's channel: STOREFRONT_KEY, or --key), signs a Standard
 * Webhooks delivery with the configured PAYMENT_WEBHOOK_SECRET and posts it to
 * POST /webhooks/payments, then prints the answer. With --amount no key is needed.
 *
 *   npm run pay -- <orderId> [--amount N] [--type succeeded|processing|failed]
 *                            [--payment-id ID] [--currency eur] [--url http://localhost:3000] [--key ck_...]
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Webhook } from 'standardwebhooks';
import { loadConfig } from '../src/config';

const TYPES = ['payment.succeeded', 'payment.processing', 'payment.failed'] as const;
export type DeliveryType = (typeof TYPES)[number];

const USAGE =
  'usage: npm run pay -- <orderId> [--amount N] [--type succeeded|processing|failed] ' +
  '[--payment-id ID] [--currency eur] [--url http://localhost:<PORT>] [--key <storefront key, default STOREFRONT_KEY>]';

interface PayOptions {
  orderId: string;
  amountCents?: number;
  type: DeliveryType;
  paymentId: string;
  currency: string;
  url: string;
  /** A storefront key of the order's channel, to read its total. */
  key?: string;
}

function parseOptions(argv: string[], defaults: { port: number; currency: string; key?: string }): PayOptions {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      amount: { type: 'string' },
      type: { type: 'string', default: 'payment.succeeded' },
      'payment-id': { type: 'string' },
      currency: { type: 'string', default: defaults.currency },
      url: { type: 'string', default: `http://localhost:${defaults.port}` },
      key: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const orderId = positionals[0];
  if (values.help || orderId === undefined || positionals.length > 1) throw new UsageError(USAGE);
  const type = (values.type.startsWith('payment.') ? values.type : `payment.${values.type}`) as DeliveryType;
  if (!TYPES.includes(type)) throw new UsageError(`--type must be one of ${TYPES.join(', ')}\n${USAGE}`);
  const amountCents = values.amount === undefined ? undefined : Number(values.amount);
  if (amountCents !== undefined && !(Number.isSafeInteger(amountCents) && amountCents >= 0)) {
    throw new UsageError(`--amount must be a whole number of cents\n${USAGE}`);
  }
  return {
    orderId,
    type,
    paymentId: values['payment-id'] ?? `pay_${randomUUID()}`,
    currency: values.currency,
    url: values.url.replace(/\/+$/, ''),
    ...(amountCents !== undefined && { amountCents }),
    ...((values.key ?? defaults.key) !== undefined && { key: values.key ?? defaults.key }),
  };
}

class UsageError extends Error {}

async function orderTotal(url: string, orderId: string, key: string | undefined): Promise<number> {
  if (key === undefined) throw new UsageError(`reading the order's total needs a storefront key: set STOREFRONT_KEY, or pass --key or --amount\n${USAGE}`);
  const res = await fetch(`${url}/orders/${encodeURIComponent(orderId)}`, { headers: { Authorization: `Bearer ${key}` } });
  const body = (await res.json()) as { totalCents?: unknown };
  if (!res.ok || typeof body.totalCents !== 'number') {
    throw new Error(`GET /orders/${orderId} answered ${res.status} ${JSON.stringify(body)}`);
  }
  return body.totalCents;
}

/** A delivery to POST /webhooks/payments as the provider sends it: the raw body and the headers that sign it. */
export function signedDelivery(
  secret: string,
  type: DeliveryType,
  data: { orderId: string; paymentId: string; amountCents: number; currency?: string },
): { headers: Record<string, string>; body: string } {
  const body = JSON.stringify({ type, data });
  const id = `msg_${randomUUID()}`;
  const timestamp = new Date();
  return {
    headers: {
      'Content-Type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
      'webhook-signature': new Webhook(secret).sign(id, timestamp, body),
    },
    body,
  };
}

export async function pay(options: PayOptions, secret: string): Promise<{ status: number; body: unknown }> {
  const amountCents = options.amountCents ?? (await orderTotal(options.url, options.orderId, options.key));
  const delivery = signedDelivery(secret, options.type, {
    orderId: options.orderId,
    paymentId: options.paymentId,
    amountCents,
    currency: options.currency,
  });
  const res = await fetch(`${options.url}/webhooks/payments`, { method: 'POST', ...delivery });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text) as unknown;
  } catch {
    // Not JSON (a proxy's error page, say): printed as it came.
  }
  return { status: res.status, body };
}

async function main(): Promise<void> {
  const config = loadConfig();
  const options = parseOptions(process.argv.slice(2), {
    port: config.port,
    currency: config.checkoutCurrency,
    ...(config.storefrontKey !== undefined && { key: config.storefrontKey }),
  });
  // The first configured secret: during a rotation every listed secret is accepted.
  const [secret] = config.paymentWebhookSecrets;
  if (secret === undefined) throw new Error('PAYMENT_WEBHOOK_SECRET holds no secret');
  const answer = await pay(options, secret);
  console.log(`${answer.status} ${JSON.stringify(answer.body, null, 2)}`);
  if (answer.status < 200 || answer.status >= 300) process.exitCode = 1;
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error instanceof UsageError ? error.message : error);
    process.exitCode = error instanceof UsageError ? 2 : 1;
  });
}
