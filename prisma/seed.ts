/** Sample products for local use. Products that already exist are left as they are. */
import { putProduct } from '../activities/inventory';
import { loadDatabaseConfig } from '../src/config';
import { createPrismaClient } from '../src/db/client';

export const SAMPLE_PRODUCTS = [
  { sku: 'SKU-1', name: 'Espresso beans 1 kg', priceCents: 2450, available: 100 },
  { sku: 'SKU-2', name: 'Ceramic pour-over dripper', priceCents: 3200, available: 40 },
  { sku: 'SKU-3', name: 'Paper filters (100)', priceCents: 650, available: 500 },
  { sku: 'SKU-4', name: 'Burr grinder', priceCents: 12900, available: 10 },
  { sku: 'SKU-5', name: 'Limited edition mug', priceCents: 1800, available: 3 },
];

export async function seed(databaseUrl: string): Promise<string[]> {
  const prisma = createPrismaClient(databaseUrl, 2);
  try {
    const existing = new Set((await prisma.product.findMany({ select: { sku: true } })).map((p) => p.sku));
    const added: string[] = [];
    for (const product of SAMPLE_PRODUCTS.filter((p) => !existing.has(p.sku))) {
      await putProduct(prisma, product);
      added.push(product.sku);
    }
    return added;
  } finally {
    await prisma.$disconnect();
  }
}

if (require.main === module) {
  seed(loadDatabaseConfig().databaseUrl)
    .then((added) => console.log(added.length ? `seeded ${added.join(', ')}` : 'sample products already present'))
    .catch((error: unknown) => {
      console.error(error);
      process.exit(1);
    });
}
