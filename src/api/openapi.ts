/**
 * The OpenAPI 3.1 document of the contract, generated from the zod schemas the API validates
 * with (schemas.ts), so the two cannot drift. Served at GET /openapi.json.
 *
 * Over 400 lines: one registration per route of the contract, in the order of docs/api.md; split,
 * the document would be assembled from pieces that no longer read as the contract does.
 */
import { OpenAPIRegistry, OpenApiGeneratorV31, type ResponseConfig } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import type { ErrorCode } from './errors';
import {
  ApiKeyListSchema,
  ApiKeySchema,
  CreateApiKeyBody,
  CreatedApiKeySchema,
  CreateOrderBody,
  EventsPageQuery,
  ExtendBody,
  ErrorSchema,
  HealthSchema,
  IdempotencyKey,
  InventoryCheckQuery,
  InventoryReportSchema,
  OrderEventListSchema,
  OrderEventsPageSchema,
  OrderSchema,
  OutOfStockErrorSchema,
  IgnoredDeliverySchema,
  PaymentAnswerSchema,
  ProductListSchema,
  ProductSchema,
  PutProductBody,
  ReadinessSchema,
  RestockBody,
  Sku,
} from './schemas';
import { PaymentWebhookBody, StripeEventSchema } from './webhooks';

const json = (schema: z.ZodType, description: string): ResponseConfig => ({
  description,
  content: { 'application/json': { schema } },
});

const failure = (codes: ErrorCode[], description = ''): ResponseConfig =>
  json(ErrorSchema, `${codes.map((c) => `\`${c}\``).join(' | ')}${description ? `: ${description}` : ''}`);

const jsonBody = (schema: z.ZodType) => ({ required: true, content: { 'application/json': { schema } } });

const orderIdParam = z.object({ orderId: z.string().meta({ description: 'The orderId (a UUID); any other value answers 404' }) });
const skuParam = z.object({ sku: z.string() });
const adminSkuParam = z.object({ sku: Sku });
const challenge = { description: '`Bearer realm="checkout"`, with `error=` and `scope=` saying what was wrong', schema: { type: 'string' as const } };
/** Checked before the body is read: no key, a malformed header, an unknown or revoked key; a key of another scope. */
const keyResponses = (scope: 'orders' | 'operator') => ({
  401: {
    ...failure(['UNAUTHORIZED'], 'no `Authorization: Bearer <key>`, a malformed one, or an unknown or revoked key (indistinguishable)'),
    headers: { 'WWW-Authenticate': challenge },
  },
  403: { ...failure(['FORBIDDEN'], `the key's scope is not \`${scope}\``), headers: { 'WWW-Authenticate': challenge } },
});
const adminResponses = keyResponses('operator');
const storefrontResponses = keyResponses('orders');
const invalid = failure(['VALIDATION_FAILED'], 'details list the fields and why; nothing changed');

const retryAfter = { description: 'Seconds to wait before asking again', schema: { type: 'string' as const } };
const location = { description: '`/orders/<orderId>`: where the decision will show', schema: { type: 'string' as const } };

/** Not decided within ORDER_DECISION_WAIT_SECONDS (default 10): the order exists and will be decided. */
const undecided = (schema: z.ZodType, description: string): ResponseConfig => ({
  ...json(schema, `${description} (not decided within \`ORDER_DECISION_WAIT_SECONDS\`)`),
  headers: { Location: location, 'Retry-After': retryAfter },
});

const unavailable: ResponseConfig = {
  ...failure(['SERVICE_UNAVAILABLE'], 'Temporal or PostgreSQL cannot be reached (details `{ unavailable }`); nothing was done, send it again'),
  headers: { 'Retry-After': retryAfter },
};

// The contract (v3) names it PENDING on the wire, and the component PaymentPending.
const PaymentUndecidedSchema = z
  .object({ outcome: z.literal('PENDING'), order: OrderSchema })
  .meta({ id: 'PaymentPending', description: 'The payment was received; its outcome was not decided in time' });

export function buildOpenApiDocument(): ReturnType<OpenApiGeneratorV31['generateDocument']> {
  const registry = new OpenAPIRegistry();
  const admin = registry.registerComponent('securitySchemes', 'operatorKey', {
    type: 'http',
    scheme: 'bearer',
    description: 'An operator key (scope `operator`): ADMIN_TOKEN, or one made by POST /admin/api-keys or `npm run keys`',
  });
  const storefront = registry.registerComponent('securitySchemes', 'storefrontKey', {
    type: 'http',
    scheme: 'bearer',
    description:
      "A storefront key (scope `orders`) of one channel: STOREFRONT_KEY (channel `default`), or one made by POST /admin/api-keys. " +
      "Another channel's orders answer 404 ORDER_NOT_FOUND, as an unknown id",
  });

  registry.registerPath({
    method: 'post',
    path: '/orders',
    tags: ['orders'],
    summary: "Place an order in the key's channel: hold its stock for the payment window, all items or none",
    security: [{ [storefront.name]: [] }],
    request: {
      headers: z.object({
        'Idempotency-Key': IdempotencyKey.optional().meta({
          description: 'The same key from the same customer with the same body returns the same order and holds nothing more',
        }),
      }),
      body: jsonBody(CreateOrderBody),
    },
    responses: {
      201: json(OrderSchema, 'Stock held; status AWAITING_PAYMENT with expiresAt (or the same order again, for a repeated Idempotency-Key)'),
      202: undecided(OrderSchema, 'Status PENDING: the order exists, holds nothing yet, and will be held or rejected; the same Idempotency-Key returns it'),
      400: invalid,
      ...storefrontResponses,
      409: json(
        OutOfStockErrorSchema,
        '`OUT_OF_STOCK` | `PURCHASE_LIMIT_EXCEEDED` | `TOO_MANY_OPEN_ORDERS`: nothing held; the order is REJECTED, its `orderId` beside `error` ' +
          '(refused by the API at admission, it has no workflow). Details: OUT_OF_STOCK `[{ sku, requested, available }]`; ' +
          'PURCHASE_LIMIT_EXCEEDED `[{ sku, limit, alreadyHeld, requested }]`; TOO_MANY_OPEN_ORDERS `{ limit, openOrders }`',
      ),
      422: failure(['UNKNOWN_SKU', 'IDEMPOTENCY_KEY_REUSED'], 'UNKNOWN_SKU details list the unknown skus'),
      503: unavailable,
    },
  });

  registry.registerPath({
    method: 'get',
    path: '/orders/{orderId}',
    tags: ['orders'],
    summary: "Read an order of the key's channel",
    security: [{ [storefront.name]: [] }],
    request: { params: orderIdParam },
    responses: { 200: json(OrderSchema, 'The order (also PENDING)'), ...storefrontResponses, 404: failure(['ORDER_NOT_FOUND']), 503: unavailable },
  });

  const deliveryResponses = {
    200: json(
      PaymentAnswerSchema,
      'A decided business outcome (the provider stops redelivering): APPLIED (the order is PAID; a redelivery answers the same), ' +
        'ORDER_EXPIRED | ORDER_CANCELLED | ORDER_REJECTED | ORDER_ALREADY_PAID | AMOUNT_MISMATCH | CURRENCY_MISMATCH (not applied, ' +
        'refunded exactly once; after a mismatch the order still awaits payment), PAYMENT_ALREADY_USED (the paymentId belongs to ' +
        'another order: nothing applied, nothing refunded), PROCESSING (payment.processing, recorded), FAILED (payment.failed, recorded)',
    ),
    400: invalid,
    401: failure(['INVALID_SIGNATURE'], 'missing, wrong or out-of-window (300 s either way) signature; nothing happened'),
    404: failure(['ORDER_NOT_FOUND'], 'data.orderId names no order; nothing happened'),
    202: undecided(PaymentUndecidedSchema, 'Received and recorded, not decided yet; a redelivery gets the decision'),
    503: unavailable,
  };

  registry.registerPath({
    method: 'post',
    path: '/webhooks/payments',
    tags: ['payments'],
    summary:
      "The payment provider's webhook (Standard Webhooks). A verified payment.succeeded reaches the order's workflow as the paymentReceived signal",
    request: {
      headers: z.object({
        'webhook-id': z.string().meta({ description: 'The delivery id (printable ASCII, 1..256); part of the signed text' }),
        'webhook-timestamp': z.string().meta({ description: 'Unix seconds; refused more than 300 s from the server clock, either way' }),
        'webhook-signature': z.string().meta({
          description:
            'Space-separated `v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<raw body>">`, keyed by the base64-decoded part ' +
            'of a `whsec_` secret of PAYMENT_WEBHOOK_SECRET (comma-separated while rotating: any signature matching any secret)',
        }),
      }),
      body: jsonBody(PaymentWebhookBody),
    },
    responses: deliveryResponses,
  });

  registry.registerPath({
    method: 'post',
    path: '/webhooks/stripe',
    tags: ['payments'],
    summary:
      'Stripe events (when STRIPE_WEBHOOK_SECRET is set; otherwise 404): payment_intent.succeeded | .processing | .payment_failed ' +
      'as payment.succeeded | .processing | .failed with paymentId = data.object.id, amountCents = data.object.amount_received ' +
      '(processing/failed: amount), currency = data.object.currency, orderId = data.object.metadata.orderId',
    request: {
      headers: z.object({
        'Stripe-Signature': z.string().meta({
          description: '`t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed by STRIPE_WEBHOOK_SECRET>[,v1=…]`; 300 s either way',
        }),
      }),
      body: jsonBody(StripeEventSchema),
    },
    responses: {
      ...deliveryResponses,
      200: {
        description: `${deliveryResponses[200].description}. Any other event type: \`{ "ignored": true }\``,
        content: { 'application/json': { schema: z.union([PaymentAnswerSchema, IgnoredDeliverySchema]) } },
      },
    },
  });

  registry.registerPath({
    method: 'post',
    path: '/orders/{orderId}/cancel',
    tags: ['orders'],
    summary: "Cancel an unpaid order of the key's channel; answers once its stock is back (repeatable)",
    security: [{ [storefront.name]: [] }],
    request: { params: orderIdParam },
    responses: {
      200: json(OrderSchema, 'CANCELLED, stock back on sale'),
      ...storefrontResponses,
      202: undecided(OrderSchema, 'Cancel asked for, the stock not back yet (status still AWAITING_PAYMENT or PENDING); repeat the cancel for the outcome'),
      404: failure(['ORDER_NOT_FOUND']),
      409: failure(['ORDER_ALREADY_PAID', 'ORDER_EXPIRED', 'ORDER_REJECTED']),
      503: unavailable,
    },
  });

  registry.registerPath({
    method: 'get',
    path: '/products',
    tags: ['products'],
    summary: 'List products with their stock',
    responses: { 200: json(ProductListSchema, 'All products, by sku') },
  });

  registry.registerPath({
    method: 'get',
    path: '/products/{sku}',
    tags: ['products'],
    summary: 'Read a product and its stock',
    request: { params: skuParam },
    responses: { 200: json(ProductSchema, 'The product'), 404: failure(['PRODUCT_NOT_FOUND']) },
  });

  registry.registerPath({
    method: 'put',
    path: '/admin/products/{sku}',
    tags: ['operator'],
    summary: 'Create or update a product; `available`, when given, sets the count on sale (a ledger ADJUSTMENT); `maxPerCustomer` sets (null: removes) the purchase limit',
    security: [{ [admin.name]: [] }],
    request: { params: adminSkuParam, body: jsonBody(PutProductBody) },
    responses: { 200: json(ProductSchema, 'Updated'), 201: json(ProductSchema, 'Created'), 400: invalid, ...adminResponses },
  });

  registry.registerPath({
    method: 'post',
    path: '/admin/products/{sku}/restock',
    tags: ['operator'],
    summary: 'Add units to the count on sale (a ledger RESTOCK)',
    security: [{ [admin.name]: [] }],
    request: {
      params: adminSkuParam,
      headers: z.object({
        'Idempotency-Key': IdempotencyKey.optional().meta({
          description: 'The same key restocks once: a repeat with the same sku and quantity answers the product as it is now',
        }),
      }),
      body: jsonBody(RestockBody),
    },
    responses: {
      200: json(ProductSchema, 'Restocked (or already restocked under this Idempotency-Key)'),
      400: invalid,
      ...adminResponses,
      404: failure(['PRODUCT_NOT_FOUND']),
      422: failure(
        ['STOCK_LIMIT_EXCEEDED', 'IDEMPOTENCY_KEY_REUSED'],
        'the count on sale would exceed 2147483647, or the key was used for another sku or quantity',
      ),
    },
  });

  registry.registerPath({
    method: 'post',
    path: '/admin/orders/{orderId}/extend',
    tags: ['operator'],
    summary: "Move an unpaid order's expiresAt later (e.g. a bank transfer is on its way); decided against the deadline, once",
    security: [{ [admin.name]: [] }],
    request: {
      params: orderIdParam,
      headers: z.object({
        'Idempotency-Key': IdempotencyKey.optional().meta({
          description: 'The same key extends once: a repeat with the same seconds answers the order as it is now',
        }),
      }),
      body: jsonBody(ExtendBody),
    },
    responses: {
      200: json(OrderSchema, 'Extended: expiresAt moved later by `seconds`'),
      202: undecided(OrderSchema, 'Asked for; the extension is applied when the worker takes it; repeat with the same Idempotency-Key for the outcome'),
      400: invalid,
      ...adminResponses,
      404: failure(['ORDER_NOT_FOUND']),
      409: failure(
        ['ORDER_EXPIRED', 'ORDER_ALREADY_PAID', 'ORDER_CANCELLED', 'ORDER_REJECTED', 'EXTENSION_NOT_SUPPORTED'],
        'the order no longer awaits payment (the deadline may have won the race), or it was placed before extensions existed',
      ),
      422: failure(
        ['EXTENSION_TOO_LONG', 'IDEMPOTENCY_KEY_REUSED'],
        'past MAX_PAYMENT_WINDOW_SECONDS from createdAt (nothing changed), or the key was used with other seconds',
      ),
      503: unavailable,
    },
  });

  registry.registerPath({
    method: 'get',
    path: '/orders/{orderId}/events',
    tags: ['orders'],
    summary: "What was sent to the storefront for this order of the key's channel, oldest first, with each delivery's state",
    security: [{ [storefront.name]: [] }],
    request: { params: orderIdParam },
    responses: { 200: json(OrderEventListSchema, 'The events (none before the order is held)'), ...storefrontResponses, 404: failure(['ORDER_NOT_FOUND']) },
  });

  registry.registerPath({
    method: 'get',
    path: '/admin/events',
    tags: ['operator'],
    summary: 'Page through all order events in the order they committed, with their delivery state, for a consumer that reads instead of receiving',
    security: [{ [admin.name]: [] }],
    request: { query: EventsPageQuery },
    responses: { 200: json(OrderEventsPageSchema, 'Up to `limit` events after the cursor'), 400: invalid, ...adminResponses },
  });

  registry.registerPath({
    method: 'post',
    path: '/admin/api-keys',
    tags: ['operator'],
    summary: 'Create a key: a storefront key (scope orders) of a channel, or an operator key. The key is in this answer only',
    security: [{ [admin.name]: [] }],
    request: { body: jsonBody(CreateApiKeyBody) },
    responses: { 201: json(CreatedApiKeySchema, 'Created; only its hash is stored'), 400: invalid, ...adminResponses },
  });

  registry.registerPath({
    method: 'get',
    path: '/admin/api-keys',
    tags: ['operator'],
    summary: 'List every key (revoked ones too), without the keys, with when each was last used',
    security: [{ [admin.name]: [] }],
    responses: { 200: json(ApiKeyListSchema, 'Oldest first'), ...adminResponses },
  });

  registry.registerPath({
    method: 'delete',
    path: '/admin/api-keys/{id}',
    tags: ['operator'],
    summary: 'Revoke a key: refused at once by this replica, by every replica within 5 s (repeatable)',
    security: [{ [admin.name]: [] }],
    request: { params: z.object({ id: z.string() }) },
    responses: { 200: json(ApiKeySchema, 'Revoked (revokedAt set)'), ...adminResponses, 404: failure(['API_KEY_NOT_FOUND']) },
  });

  registry.registerPath({
    method: 'get',
    path: '/admin/inventory/check',
    tags: ['operator'],
    summary: "Check the contract's stock invariants against the database",
    security: [{ [admin.name]: [] }],
    request: { query: InventoryCheckQuery },
    responses: { 200: json(InventoryReportSchema, 'ok, or the violations found'), 400: invalid, ...adminResponses },
  });

  registry.registerPath({
    method: 'get',
    path: '/healthz',
    tags: ['health'],
    summary: 'Liveness: 200 while the process runs',
    responses: { 200: json(HealthSchema, 'Running') },
  });

  registry.registerPath({
    method: 'get',
    path: '/readyz',
    tags: ['health'],
    summary: 'Readiness: PostgreSQL and Temporal answer, a worker polled the task queue recently, and the process is not shutting down',
    responses: {
      200: json(ReadinessSchema, 'Ready'),
      503: failure(['SERVICE_UNAVAILABLE'], 'details name the check that failed'),
    },
  });

  registry.registerPath({
    method: 'get',
    path: '/metrics',
    tags: ['health'],
    summary: 'Prometheus metrics of the API process',
    responses: { 200: { description: 'Prometheus text format', content: { 'text/plain': { schema: z.string() } } } },
  });

  registry.registerPath({
    method: 'get',
    path: '/openapi.json',
    tags: ['health'],
    summary: 'This document',
    responses: { 200: { description: 'OpenAPI 3.1', content: { 'application/json': { schema: z.object({}).loose() } } } },
  });

  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'Checkout API',
      version: '1.0.0',
      description:
        'Holds stock for unpaid orders and returns it exactly once when the payment window closes. ' +
        'Every error is `{ "error": { "code", "message", "details"? } }`. Money is integer cents; times are ISO-8601 UTC. ' +
        'Any route may also answer `ROUTE_NOT_FOUND` (404, no such route), `METHOD_NOT_ALLOWED` (405, with `Allow`) and `INTERNAL_ERROR` (500).',
    },
  });
}
