/**
 * From what the database and the workflow hold to what the contract's answers say: the DTO
 * mappers. The order as the API answers it is not mapped here: it is order_document's output
 * (sql/order_document.sql), the one definition of the contract's order.
 */
import type { Product } from '../../prisma/generated/client';
import type { ProductResponse } from './schemas';

export function toProductResponse(product: Product): ProductResponse {
  const { sku, name, priceCents, available, reserved, sold, maxPerCustomer } = product;
  return { sku, name, priceCents, available, reserved, sold, ...(maxPerCustomer !== null && { maxPerCustomer }) };
}
