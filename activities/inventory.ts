/**
 * Operator changes to stock: creating products, setting the count on sale, restocking.
 * Each change writes the counters and its ledger row in one transaction, so conservation
 * (available + reserved + sold = stock received) holds at every commit.
 */
import type { Product, PrismaClient } from '../prisma/generated/client';

export interface PutProductInput {
  sku: string;
  name: string;
  priceCents: number;
  /** Sets the count on sale; the difference is recorded as an ADJUSTMENT (or INITIAL for a new product). */
  available?: number;
}

export async function putProduct(
  prisma: PrismaClient,
  { sku, name, priceCents, available }: PutProductInput,
): Promise<{ product: Product; created: boolean }> {
  return prisma.$transaction(async (tx) => {
    const inserted = await tx.$executeRaw`
      INSERT INTO products (sku, name, price_cents, available) VALUES (${sku}, ${name}, ${priceCents}, ${available ?? 0})
      ON CONFLICT (sku) DO NOTHING`;
    if (inserted === 1) {
      if (available) await tx.stockMovement.create({ data: { sku, kind: 'INITIAL', quantity: available } });
      return { product: await tx.product.findUniqueOrThrow({ where: { sku } }), created: true };
    }
    const [current] = await tx.$queryRaw<{ available: number }[]>`SELECT available FROM products WHERE sku = ${sku} FOR UPDATE`;
    const delta = available === undefined || !current ? 0 : available - current.available;
    if (delta !== 0) await tx.stockMovement.create({ data: { sku, kind: 'ADJUSTMENT', quantity: delta } });
    const product = await tx.product.update({
      where: { sku },
      data: { name, priceCents, ...(delta !== 0 && { available: { increment: delta } }) },
    });
    return { product, created: false };
  });
}

export async function restockProduct(prisma: PrismaClient, sku: string, quantity: number): Promise<Product | undefined> {
  return prisma.$transaction(async (tx) => {
    const updated = await tx.$executeRaw`UPDATE products SET available = available + ${quantity}, updated_at = now() WHERE sku = ${sku}`;
    if (updated === 0) return undefined;
    await tx.stockMovement.create({ data: { sku, kind: 'RESTOCK', quantity } });
    return tx.product.findUniqueOrThrow({ where: { sku } });
  });
}
