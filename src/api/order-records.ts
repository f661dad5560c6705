/**
 * The read model: orders and products as PostgreSQL holds them, which every HTTP answer
 * reports. An order is read through order_document (the one definition the events use too),
 * within the caller's channel scope.
 */
import { Prisma, type PrismaClient } from '../../prisma/generated/client';
import { ApiError } from './errors';
import { toProductResponse } from './mappers';
import type { OrderResponse, ProductResponse } from './schemas';

/** Which orders a caller may see: those of one channel (a storefront key), or every channel. */
export type ChannelScope = string | typeof EVERY_CHANNEL;
/** An operator and the payment provider see every channel's orders. */
export const EVERY_CHANNEL = null;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether a string has the form of an orderId (a UUID); anything else names no order. */
export const isOrderId = (value: string): boolean => UUID.test(value);

export function orderNotFound(orderId: string): ApiError {
  return new ApiError('ORDER_NOT_FOUND', `no order ${orderId}`);
}

/** An order as the API answers it, with what a repeated placement is checked against. */
export interface OrderRecord {
  order: OrderResponse;
  requestHash: string | null;
  /** A rejection's details and reason (orders.rejection, orders.rejection_code). */
  rejection: unknown;
  rejectionCode: string | null;
}

export class OrderRecords {
  constructor(private readonly prisma: PrismaClient) {}

  /** The order, if `channel` may see it; another channel's order is ORDER_NOT_FOUND, as an unknown id. */
  async getOrder(orderId: string, channel: ChannelScope): Promise<OrderResponse> {
    return (await this.findOrder(orderId, channel)).order;
  }

  async findOrder(orderId: string, channel: ChannelScope): Promise<OrderRecord> {
    const order = isOrderId(orderId) ? await this.findOrderRecord(Prisma.sql`id = ${orderId}::uuid`, channel) : null;
    if (!order) throw orderNotFound(orderId);
    return order;
  }

  /** The order a channel's customer placed with an Idempotency-Key; gone only if a racing request withdrew it. */
  async findKeyedOrder(derivedId: string, channel: string, customerId: string, idempotencyKey: string): Promise<OrderRecord> {
    const order = await this.findOrderRecord(Prisma.sql`customer_id = ${customerId} AND idempotency_key = ${idempotencyKey}`, channel);
    if (!order) throw orderNotFound(derivedId);
    return order;
  }

  async listProducts(): Promise<ProductResponse[]> {
    const products = await this.prisma.product.findMany({ orderBy: { sku: 'asc' } });
    return products.map(toProductResponse);
  }

  async getProduct(sku: string): Promise<ProductResponse> {
    const product = await this.prisma.product.findUnique({ where: { sku } });
    if (!product) throw new ApiError('PRODUCT_NOT_FOUND', `no product ${sku}`);
    return toProductResponse(product);
  }

  /** The order as order_document shows it, with what placement checks. */
  private async findOrderRecord(where: Prisma.Sql, channel: ChannelScope): Promise<OrderRecord | null> {
    const ofChannel = channel === EVERY_CHANNEL ? Prisma.empty : Prisma.sql`AND channel = ${channel}`;
    const [row] = await this.prisma.$queryRaw<{ order: OrderResponse; request_hash: string | null; rejection: unknown; rejection_code: string | null }[]>`
      SELECT order_document(id) AS order, request_hash, rejection, rejection_code FROM orders WHERE ${where} ${ofChannel}`;
    return row ? { order: row.order, requestHash: row.request_hash, rejection: row.rejection, rejectionCode: row.rejection_code } : null;
  }
}
