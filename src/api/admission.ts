/**
 * Admission: the API's first step for every order, one statement (sql/admit_order.sql, in the
 * order's channel). An order the database already shows
 * it cannot have (sold out, or a purchase limit) is refused right there, recorded REJECTED with
 * no workflow; any other is recorded PENDING with its units admitted, and only then started.
 */
import type { PrismaClient } from '../../prisma/generated/client';
import type { Shortage } from '../../workflows/messages';
import { ApiError } from './errors';
import type { CreateOrderBody, OrderResponse } from './schemas';

/** An item over its product's maxPerCustomer: what the customer holds already, and asked for. */
export interface LimitExcess {
  sku: string;
  limit: number;
  alreadyHeld: number;
  requested: number;
}

/** Why an order was refused, with the contract's details for its 409. */
export type Refusal =
  | { code: 'OUT_OF_STOCK'; details: Shortage[] }
  | { code: 'PURCHASE_LIMIT_EXCEEDED'; details: LimitExcess[] }
  | { code: 'TOO_MANY_OPEN_ORDERS'; details: { limit: number; openOrders: number } };

export type RefusalCode = Refusal['code'];

export type Admission =
  /** Recorded PENDING, its units counted against what is on sale: start its workflow. */
  | { outcome: 'ADMITTED'; order: OrderResponse }
  /** Recorded REJECTED, with its event; it has no workflow. */
  | { outcome: 'REFUSED'; order: OrderResponse; refusal: Refusal }
  /** An order with this id (or this customer's key) exists: a replay, or a request racing this one. */
  | { outcome: 'EXISTS' };

export interface AdmissionRequest {
  orderId: string;
  /** The caller's channel: the order belongs to it, and the purchase limits count within it. */
  channel: string;
  body: CreateOrderBody;
  /** The order's expiresAt is an estimate until its hold: the workflow's start counts. */
  paymentTimeoutSeconds: number;
  currency: string;
  idempotencyKey: string | null;
  requestHash: string | null;
  /** MAX_OPEN_ORDERS_PER_CUSTOMER; 0: no cap. */
  maxOpenOrders: number;
  /** ORDER_ADMISSION_SECONDS: an admission no hold took up within this long stops counting. */
  admissionSeconds: number;
  /** ORDER_EVENTS_URL: the `order.rejected` event of a refusal gets a delivery to each. */
  eventEndpoints: readonly string[];
}

/**
 * How long an admission waits for the products' and the customer's locks (behind holds, which
 * take milliseconds), below the API's statement timeout: past it the answer is 503.
 */
export const ADMISSION_LOCK_TIMEOUT_MS = 3_000;

type AdmitAnswer =
  | { outcome: 'UNKNOWN_SKU'; skus: string[] }
  | { outcome: 'EXISTS' }
  | { outcome: 'ADMITTED'; order: OrderResponse }
  | ({ outcome: 'REFUSED'; order: OrderResponse } & Refusal);

/** Admits the order in its channel, or refuses it, or finds it exists (in its channel); UNKNOWN_SKU (recording nothing) when a sku names no product. */
export async function admitOrder(prisma: PrismaClient, request: AdmissionRequest): Promise<Admission> {
  const { orderId, body } = request;
  const createdAt = new Date();
  const expiresAt = new Date(createdAt.getTime() + request.paymentTimeoutSeconds * 1000);
  const items = JSON.stringify(body.items.map(({ sku, quantity }) => ({ sku, quantity })));
  const [row] = await prisma.$queryRaw<{ answer: AdmitAnswer }[]>`
    SELECT admit_order(${request.channel}, ${orderId}::uuid, ${body.customerId}, ${items}::jsonb, ${createdAt}::timestamptz, ${expiresAt}::timestamptz,
                       ${request.currency}, ${request.idempotencyKey}, ${request.requestHash}, ${request.maxOpenOrders}::int,
                       ${request.admissionSeconds}::int, ${ADMISSION_LOCK_TIMEOUT_MS}::int, ${[...request.eventEndpoints]}::text[]) AS answer`;
  const answer = row?.answer;
  switch (answer?.outcome) {
    case 'UNKNOWN_SKU':
      throw new ApiError('UNKNOWN_SKU', 'some skus name no product', { details: answer.skus });
    case 'EXISTS':
      return { outcome: 'EXISTS' };
    case 'ADMITTED':
      return { outcome: 'ADMITTED', order: answer.order };
    case 'REFUSED': {
      const { order, ...refusal } = answer;
      return { outcome: 'REFUSED', order, refusal: refusalOf(refusal.code, refusal.details) };
    }
    default:
      throw new Error(`admit_order answered ${JSON.stringify(answer)}`);
  }
}

/**
 * Takes back a PENDING order whose workflow could not be started, and its admission, so its units
 * are on sale for the next buyer at once. Never one whose hold decided it.
 */
export async function withdrawOrder(prisma: PrismaClient, orderId: string): Promise<void> {
  await prisma.$queryRaw`SELECT withdraw_order(${orderId}::uuid)`;
}

/** A rejection as recorded (orders.rejection_code, orders.rejection); rows from before limits existed are out of stock. */
export function refusalOf(code: string | null, details: unknown): Refusal {
  switch (code) {
    case 'PURCHASE_LIMIT_EXCEEDED':
      return { code, details: (details ?? []) as LimitExcess[] };
    case 'TOO_MANY_OPEN_ORDERS':
      return { code, details: details as { limit: number; openOrders: number } };
    default:
      return { code: 'OUT_OF_STOCK', details: (details ?? []) as Shortage[] };
  }
}
