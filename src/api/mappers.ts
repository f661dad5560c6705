/**
 * From what the database and the workflow hold to what the contract's answers say: the DTO
 * mappers. The order as the API answers it comes from order_document in SQL, or from the
 * workflow's view here.
 */
import type { Product } from '../../prisma/generated/client';
import type { OrderView } from '../../workflows/messages';
import type { OrderResponse, ProductResponse } from './schemas';

/**
 * The workflow's view as the API answers it: shortages go in a refusal's details, never in the
 * order; and the view does not carry the channel (the caller's).
 */
export function orderResponseOf(view: OrderView, channel: string): OrderResponse {
  const order: OrderView = { ...view };
  delete order.shortages;
  return { ...order, channel };
}

export function toProductResponse(product: Product): ProductResponse {
  const { sku, name, priceCents, available, reserved, sold, maxPerCustomer } = product;
  return { sku, name, priceCents, available, reserved, sold, ...(maxPerCustomer !== null && { maxPerCustomer }) };
}
