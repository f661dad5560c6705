/** The bench's products and orders: many skus with ample stock, orders of 1–3 random items. */
import { putProduct } from '../../activities/inventory';
import type { RequestedItem } from '../../activities/types';
import { createPrismaClient } from '../../src/db/client';

/** Enough that no order is ever rejected: the bench measures holds, not shortages. */
const STOCK_PER_SKU = 1_000_000_000;

export function benchSkus(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `BENCH-${String(i + 1).padStart(4, '0')}`);
}

/** Creates the bench products (or tops them up) through the same code the admin API uses. */
export async function addBenchProducts(databaseUrl: string, skus: string[]): Promise<void> {
  const prisma = createPrismaClient(databaseUrl, 2);
  try {
    for (const sku of skus) {
      await putProduct(prisma, { sku, name: `Bench product ${sku}`, priceCents: 1000, available: STOCK_PER_SKU });
    }
  } finally {
    await prisma.$disconnect();
  }
}

/** 1 to 3 distinct skus, 1 or 2 of each; `random` may be seeded, so a workload can be drawn again. */
export function randomItems(skus: string[], random: () => number = Math.random): RequestedItem[] {
  const wanted = 1 + Math.floor(random() * 3);
  const chosen = new Set<string>();
  while (chosen.size < Math.min(wanted, skus.length)) chosen.add(skus[Math.floor(random() * skus.length)] ?? '');
  return [...chosen].map((sku) => ({ sku, quantity: 1 + Math.floor(random() * 2) }));
}

export function orderBody(customerId: string, skus: string[], paymentTimeoutSeconds: number): string {
  return JSON.stringify({ customerId, items: randomItems(skus), paymentTimeoutSeconds });
}
