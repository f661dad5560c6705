/**
 * Operator changes to stock: creating products, setting the count on sale, restocking.
 * Each change writes the counters and its ledger row in one transaction, so conservation
 * (available + reserved + sold = stock received) holds at every commit. A change made for an
 * operator request carries that request's operation id on its ledger row, so a retried
 * activity finds its own earlier work and applies nothing twice.
 */
import type { PrismaClient, Product } from '../prisma/generated/client';

/** The largest count a stock column holds (a PostgreSQL integer). */
export const MAX_STOCK_COUNT = 2_147_483_647;

/** A product as plain JSON, fit to cross the activity boundary. */
export interface ProductSnapshot {
  sku: string;
  name: string;
  priceCents: number;
  available: number;
  reserved: number;
  sold: number;
  /** Present when the product has a purchase limit. */
  maxPerCustomer?: number;
}

export interface PutProductInput {
  sku: string;
  name: string;
  priceCents: number;
  /** Sets the count on sale; the difference is recorded as an ADJUSTMENT (or INITIAL for a new product). */
  available?: number;
  /** The most units one customer may hold (awaiting payment, paid or in flight); null removes it, absent keeps it. */
  maxPerCustomer?: number | null;
  /** Identifies the operator request; a repeat with the same id changes nothing. */
  operationId?: string;
}

export interface PutProductResult {
  outcome: 'CREATED' | 'UPDATED';
  product: ProductSnapshot;
}

export interface RestockInput {
  sku: string;
  quantity: number;
  operationId?: string;
}

export type RestockResult =
  | { outcome: 'RESTOCKED'; product: ProductSnapshot }
  /** The operation id was already used for another sku or quantity (an operator's Idempotency-Key). */
  | { outcome: 'IDEMPOTENCY_KEY_REUSED' }
  | { outcome: 'PRODUCT_NOT_FOUND' }
  | { outcome: 'STOCK_LIMIT_EXCEEDED'; available: number; limit: number };

export async function putProduct(prisma: PrismaClient, input: PutProductInput): Promise<PutProductResult> {
  const { sku, name, priceCents, available, maxPerCustomer } = input;
  const operationId = input.operationId ?? null;
  return prisma.$transaction(async (tx) => {
    if (operationId !== null) {
      const earlier = await tx.stockMovement.findUnique({ where: { operationId }, select: { kind: true } });
      if (earlier) {
        const product = await tx.product.findUniqueOrThrow({ where: { sku } });
        return { outcome: earlier.kind === 'INITIAL' ? 'CREATED' : 'UPDATED', product: toProductSnapshot(product) };
      }
    }
    const inserted = await tx.$executeRaw`
      INSERT INTO products (sku, name, price_cents, available, max_per_customer)
      VALUES (${sku}, ${name}, ${priceCents}, ${available ?? 0}, ${maxPerCustomer ?? null}::int)
      ON CONFLICT (sku) DO NOTHING`;
    if (inserted === 1) {
      // Written even for zero units: the ledger records when the product came to be, and by which request.
      await tx.stockMovement.create({ data: { sku, kind: 'INITIAL', quantity: available ?? 0, operationId } });
      return { outcome: 'CREATED', product: toProductSnapshot(await tx.product.findUniqueOrThrow({ where: { sku } })) };
    }
    const [current] = await tx.$queryRaw<{ available: number }[]>`SELECT available FROM products WHERE sku = ${sku} FOR UPDATE`;
    const delta = available === undefined || !current ? 0 : available - current.available;
    if (delta !== 0) await tx.stockMovement.create({ data: { sku, kind: 'ADJUSTMENT', quantity: delta, operationId } });
    const product = await tx.product.update({
      where: { sku },
      data: {
        name,
        priceCents,
        ...(delta !== 0 && { available: { increment: delta } }),
        ...(maxPerCustomer !== undefined && { maxPerCustomer }),
      },
    });
    return { outcome: 'UPDATED', product: toProductSnapshot(product) };
  });
}

export async function restockProduct(prisma: PrismaClient, input: RestockInput): Promise<RestockResult> {
  const { sku, quantity } = input;
  const operationId = input.operationId ?? null;
  return prisma.$transaction(async (tx) => {
    // Locking the product row serialises attempts of the same operation as well as concurrent restocks.
    const [current] = await tx.$queryRaw<{ available: number }[]>`SELECT available FROM products WHERE sku = ${sku} FOR UPDATE`;
    if (!current) return { outcome: 'PRODUCT_NOT_FOUND' };
    const applied =
      operationId !== null && (await tx.stockMovement.findUnique({ where: { operationId }, select: { kind: true, sku: true, quantity: true } }));
    if (applied && (applied.kind !== 'RESTOCK' || applied.sku !== sku || applied.quantity !== quantity)) {
      return { outcome: 'IDEMPOTENCY_KEY_REUSED' };
    }
    if (!applied) {
      if (current.available + quantity > MAX_STOCK_COUNT) {
        return { outcome: 'STOCK_LIMIT_EXCEEDED', available: current.available, limit: MAX_STOCK_COUNT };
      }
      await tx.stockMovement.create({ data: { sku, kind: 'RESTOCK', quantity, operationId } });
      await tx.$executeRaw`UPDATE products SET available = available + ${quantity}, updated_at = now() WHERE sku = ${sku}`;
    }
    return { outcome: 'RESTOCKED', product: toProductSnapshot(await tx.product.findUniqueOrThrow({ where: { sku } })) };
  });
}

/** The activities the inventory workflows run; the worker registers them beside the order activities. */
export function createInventoryActivities({ prisma }: { prisma: PrismaClient }) {
  return {
    putProduct: (input: PutProductInput): Promise<PutProductResult> => putProduct(prisma, input),
    restockProduct: (input: RestockInput): Promise<RestockResult> => restockProduct(prisma, input),
  };
}

export type InventoryActivities = ReturnType<typeof createInventoryActivities>;

export function toProductSnapshot(product: Product): ProductSnapshot {
  const { sku, name, priceCents, available, reserved, sold, maxPerCustomer } = product;
  return { sku, name, priceCents, available, reserved, sold, ...(maxPerCustomer !== null && { maxPerCustomer }) };
}
