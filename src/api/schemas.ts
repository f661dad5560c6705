/**
 * The contract's shapes as zod schemas: request bodies are validated with them at the edge,
 * before anything else happens, and the OpenAPI document (openapi.ts) is generated from the
 * very same schemas. `meta({ id })` names a schema in the document's components.
 */
import { z } from 'zod';
import { ORDER_EVENT_TYPES } from '../../activities/order-events';
import { API_KEY_SCOPES } from './api-keys';
import { ApiError } from './errors';

export const MAX_ITEMS = 50;
export const MAX_QUANTITY = 1000;
export const MAX_PAYMENT_TIMEOUT_SECONDS = 86_400;
/** Counts an operator may set or add at once; the stock columns are 32-bit integers. */
export const MAX_STOCK_PER_REQUEST = 1_000_000_000;
export const MAX_PRICE_CENTS = 10_000_000;

const OrderItemRequest = z.strictObject({
  sku: z.string().min(1).max(64),
  quantity: z.number().int().min(1).max(MAX_QUANTITY),
});

export const CreateOrderBody = z
  .strictObject({
    customerId: z.string().min(1).max(64),
    items: z
      .array(OrderItemRequest)
      .min(1)
      .max(MAX_ITEMS)
      .refine((items) => new Set(items.map((i) => i.sku)).size === items.length, {
        message: 'skus must be distinct',
      }),
    paymentTimeoutSeconds: z.number().int().min(1).max(MAX_PAYMENT_TIMEOUT_SECONDS).optional(),
  })
  .meta({ id: 'CreateOrderRequest' });
export type CreateOrderBody = z.infer<typeof CreateOrderBody>;

export const IdempotencyKey = z.string().min(1).max(255);

/** Skus an operator may create: letters, digits, `.`, `_`, `-`; safe in URLs and workflow ids. */
export const Sku = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'a sku is 1..64 letters, digits, ".", "_" or "-", starting with a letter or digit');

export const PutProductBody = z
  .strictObject({
    name: z.string().trim().min(1).max(200),
    priceCents: z.number().int().min(0).max(MAX_PRICE_CENTS),
    available: z.number().int().min(0).max(MAX_STOCK_PER_REQUEST).optional(),
    maxPerCustomer: z
      .number()
      .int()
      .min(1)
      .max(MAX_STOCK_PER_REQUEST)
      .nullable()
      .optional()
      .meta({ description: 'The most units one customer may hold in orders awaiting payment, paid or in flight; null removes the limit, absent leaves it' }),
  })
  .meta({ id: 'PutProductRequest' });
export type PutProductBody = z.infer<typeof PutProductBody>;

export const RestockBody = z
  .strictObject({ quantity: z.number().int().min(1).max(MAX_STOCK_PER_REQUEST) })
  .meta({ id: 'RestockRequest' });
export type RestockBody = z.infer<typeof RestockBody>;

/** A storefront, an app, a market: letters, digits, `.`, `_`, `-`, as a sku. */
export const Channel = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'a channel is 1..64 letters, digits, ".", "_" or "-", starting with a letter or digit');

export const CreateApiKeyBody = z
  .strictObject({
    name: z.string().trim().min(1).max(200),
    scope: z.enum(API_KEY_SCOPES),
    channel: Channel.optional().meta({ description: 'The storefront key\'s channel (default `default`); an operator key has none' }),
  })
  .refine((body) => body.scope === 'orders' || body.channel === undefined, {
    message: 'an operator key sees every channel and takes none',
    path: ['channel'],
  })
  .meta({ id: 'CreateApiKeyRequest' });
export type CreateApiKeyBody = z.infer<typeof CreateApiKeyBody>;

/** The contract's bound on one extension: a week. */
export const MAX_EXTENSION_SECONDS = 604_800;

export const ExtendBody = z
  .strictObject({ seconds: z.number().int().min(1).max(MAX_EXTENSION_SECONDS) })
  .meta({ id: 'ExtendRequest' });
export type ExtendBody = z.infer<typeof ExtendBody>;

// ---- responses ----

const IsoTime = z.iso.datetime();

export const OrderStatusSchema = z.enum(['PENDING', 'AWAITING_PAYMENT', 'PAID', 'EXPIRED', 'CANCELLED', 'REJECTED']);

export const OrderSchema = z
  .object({
    orderId: z.uuid(),
    channel: z.string().meta({ description: 'The channel of the storefront key that placed it' }),
    customerId: z.string(),
    status: OrderStatusSchema,
    items: z.array(z.object({ sku: z.string(), quantity: z.number().int(), unitPriceCents: z.number().int() })),
    totalCents: z.number().int().meta({ description: 'May exceed 2^31 (64-bit in the database)' }),
    createdAt: IsoTime,
    expiresAt: IsoTime,
    paidAt: IsoTime.optional(),
    closedAt: IsoTime.optional().meta({ description: 'When the order reached its final state (for EXPIRED and CANCELLED: when the stock was back)' }),
    paymentId: z.string().optional(),
    paymentPending: z
      .literal(true)
      .optional()
      .meta({ description: 'Present while a payment.processing delivery holds the stock past expiresAt (or until it)' }),
  })
  .meta({ id: 'Order' });
export type OrderResponse = z.infer<typeof OrderSchema>;

export const PAYMENT_OUTCOMES = [
  'APPLIED',
  'ORDER_EXPIRED',
  'ORDER_CANCELLED',
  'ORDER_REJECTED',
  'ORDER_ALREADY_PAID',
  'AMOUNT_MISMATCH',
  'CURRENCY_MISMATCH',
  'PAYMENT_ALREADY_USED',
  'PROCESSING',
  'FAILED',
] as const;

export const PaymentAnswerSchema = z
  .object({
    outcome: z.enum(PAYMENT_OUTCOMES),
    refund: z
      .object({ paymentId: z.string(), status: z.literal('REFUNDED') })
      .optional()
      .meta({ description: 'For a refused payment (ORDER_* , AMOUNT_MISMATCH, CURRENCY_MISMATCH): refunded exactly once' }),
    order: OrderSchema,
  })
  .meta({ id: 'PaymentAnswer' });

export const IgnoredDeliverySchema = z.object({ ignored: z.literal(true) }).meta({ id: 'IgnoredDelivery' });

export const ProductSchema = z
  .object({
    sku: z.string(),
    name: z.string(),
    priceCents: z.number().int(),
    available: z.number().int().meta({ description: 'On sale now' }),
    reserved: z.number().int().meta({ description: 'Held by open orders' }),
    sold: z.number().int().meta({ description: 'Taken by paid orders' }),
    maxPerCustomer: z.number().int().optional().meta({ description: 'Present when set: the purchase limit per customer (PURCHASE_LIMIT_EXCEEDED)' }),
  })
  .meta({ id: 'Product' });
export type ProductResponse = z.infer<typeof ProductSchema>;

export const ProductListSchema = z.object({ products: z.array(ProductSchema) }).meta({ id: 'ProductList' });

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().meta({ description: 'SCREAMING_SNAKE_CASE, one of the codes listed per operation' }),
      message: z.string(),
      details: z.unknown().optional(),
    }),
  })
  .meta({ id: 'Error' });

/** A refused order (OUT_OF_STOCK, PURCHASE_LIMIT_EXCEEDED, TOO_MANY_OPEN_ORDERS): its id beside `error`. */
export const OutOfStockErrorSchema = ErrorSchema.extend({
  orderId: z.uuid().meta({ description: 'The order, recorded as REJECTED' }),
}).meta({ id: 'OutOfStockError' });

export const InventoryCheckQuery = z.object({
  full: z
    .enum(['true', 'false'])
    .optional()
    .meta({ description: 'true: also the pass over the whole ledger (names every order, verifies the ledger checkpoint); linear in the history kept' }),
});

export const InventoryReportSchema = z
  .object({
    ok: z.boolean(),
    violations: z.array(
      z
        .object({
          kind: z.enum([
            'NEGATIVE_STOCK',
            'CONSERVATION',
            'CLOSED_ORDER_HOLDS_STOCK',
            'ORDER_MOVED_TWICE',
            'HOLD_PAST_DEADLINE',
            'RECEIPT_DISAGREES_WITH_ORDER',
            'ADMISSION_MISCOUNTED',
            'LEDGER_CHECKPOINT_DRIFT',
          ]),
        })
        .loose()
        .meta({ description: 'One broken invariant, with the sku or order and the numbers that show it' }),
    ),
  })
  .meta({ id: 'InventoryReport' });

export const OrderEventTypeSchema = z.enum(ORDER_EVENT_TYPES);

export const OrderEventDeliverySchema = z
  .object({
    endpoint: z.string().meta({ description: 'Scheme, host and path of the endpoint (credentials and query left out)' }),
    state: z.enum(['PENDING', 'DELIVERED', 'FAILED']),
    attempts: z.number().int(),
    lastAttemptAt: IsoTime.optional(),
    nextAttemptAt: IsoTime.optional().meta({ description: 'While PENDING: when it is tried next' }),
    deliveredAt: IsoTime.optional(),
    lastError: z.string().optional().meta({ description: 'Why the last attempt failed (HTTP status or network error)' }),
  })
  .meta({ id: 'OrderEventDelivery' });

export const OrderEventSchema = z
  .object({
    id: z.uuid().meta({ description: 'The event id; sent as webhook-id, the same on every retry' }),
    type: OrderEventTypeSchema,
    timestamp: IsoTime.meta({ description: 'When the change was committed' }),
    data: z.object({
      order: OrderSchema.meta({ description: 'The order as of this change' }),
      refund: z
        .object({ paymentId: z.string(), status: z.literal('REFUNDED'), amountCents: z.number().int(), reason: z.string() })
        .optional()
        .meta({ description: 'For payment.refunded' }),
    }),
    deliveries: z.array(OrderEventDeliverySchema).meta({ description: 'One per endpoint of ORDER_EVENTS_URL when the event was written' }),
  })
  .meta({ id: 'OrderEvent' });
export type OrderEventResponse = z.infer<typeof OrderEventSchema>;

export const OrderEventListSchema = z.object({ events: z.array(OrderEventSchema) }).meta({ id: 'OrderEventList' });

/** `<transaction>-<event id>`: where a page of GET /admin/events ended. */
export const EventCursor = z.string().regex(/^\d{1,19}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'a cursor from an earlier page');

export const MAX_EVENTS_PAGE = 1000;

export const EventsPageQuery = z.object({
  after: EventCursor.optional(),
  limit: z.coerce.number().int().min(1).max(MAX_EVENTS_PAGE).default(100),
});

export const OrderEventsPageSchema = z
  .object({
    events: z.array(OrderEventSchema.extend({ cursor: EventCursor.meta({ description: 'Pass as after= to read on from this event' }) })),
    nextCursor: EventCursor.nullable().meta({ description: 'after= for the next page: the last event of this page, else the after= given (null at the start)' }),
  })
  .meta({ id: 'OrderEventsPage' });
export type OrderEventsPageResponse = z.infer<typeof OrderEventsPageSchema>;

export const ApiKeySchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    scope: z.enum(API_KEY_SCOPES),
    channel: z.string().nullable().meta({ description: "A storefront key's channel; null for an operator key" }),
    createdAt: IsoTime,
    revokedAt: IsoTime.optional(),
    lastUsedAt: IsoTime.optional().meta({ description: 'Written by each API replica at most every 30 s, and before it answers this list' }),
  })
  .meta({ id: 'ApiKey' });

export const CreatedApiKeySchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    scope: z.enum(API_KEY_SCOPES),
    channel: z.string().nullable(),
    key: z.string().meta({ description: 'The key itself, shown this once: only its hash is stored' }),
    createdAt: IsoTime,
  })
  .meta({ id: 'CreatedApiKey' });

export const ApiKeyListSchema = z.object({ apiKeys: z.array(ApiKeySchema) }).meta({ id: 'ApiKeyList' });

export const HealthSchema = z.object({ status: z.literal('ok') }).meta({ id: 'Health' });
export const ReadinessSchema = z
  .object({ status: z.literal('ready'), checks: z.record(z.string(), z.string()) })
  .meta({ id: 'Readiness' });

export function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, location?: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new ApiError('VALIDATION_FAILED', 'the request is invalid', {
    details: result.error.issues.map((issue) => ({
      path: [location, ...issue.path.map(String)].filter((p) => p !== undefined && p !== '').join('.'),
      message: issue.message,
    })),
  });
}
