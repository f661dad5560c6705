/**
 * Checks the contract's stock invariants against the database: no negative stock,
 * conservation per sku from the ledger, and no stock held by closed orders.
 */
import type { PrismaClient } from '../../prisma/generated/client';

export type InventoryViolation =
  | { kind: 'NEGATIVE_STOCK'; sku: string; available: number; reserved: number; sold: number }
  | {
      kind: 'CONSERVATION';
      sku: string;
      counters: { available: number; reserved: number; sold: number };
      fromLedger: { received: number; available: number; reserved: number; sold: number };
    }
  | { kind: 'CLOSED_ORDER_HOLDS_STOCK'; orderId: string; status: string; sku: string; held: number }
  | { kind: 'ORDER_MOVED_TWICE'; orderId: string; sku: string; movements: string[] };

export interface InventoryReport {
  ok: boolean;
  violations: InventoryViolation[];
}

export async function checkInventory(prisma: PrismaClient): Promise<InventoryReport> {
  const products = await prisma.$queryRaw<
    { sku: string; available: number; reserved: number; sold: number; received: number; reserves: number; releases: number; commits: number }[]
  >`
    SELECT p.sku, p.available, p.reserved, p.sold,
           COALESCE(SUM(m.quantity) FILTER (WHERE m.kind IN ('INITIAL', 'RESTOCK', 'ADJUSTMENT')), 0)::int AS received,
           COALESCE(SUM(m.quantity) FILTER (WHERE m.kind = 'RESERVE'), 0)::int AS reserves,
           COALESCE(SUM(m.quantity) FILTER (WHERE m.kind = 'RELEASE'), 0)::int AS releases,
           COALESCE(SUM(m.quantity) FILTER (WHERE m.kind = 'COMMIT'), 0)::int AS commits
      FROM products p LEFT JOIN stock_movements m ON m.sku = p.sku
     GROUP BY p.sku
     ORDER BY p.sku`;

  const violations: InventoryViolation[] = [];
  for (const p of products) {
    if (p.available < 0 || p.reserved < 0 || p.sold < 0) {
      violations.push({ kind: 'NEGATIVE_STOCK', sku: p.sku, available: p.available, reserved: p.reserved, sold: p.sold });
    }
    const fromLedger = {
      received: p.received,
      available: p.received - p.reserves + p.releases,
      reserved: p.reserves - p.releases - p.commits,
      sold: p.commits,
    };
    if (
      p.available + p.reserved + p.sold !== p.received ||
      p.available !== fromLedger.available ||
      p.reserved !== fromLedger.reserved ||
      p.sold !== fromLedger.sold
    ) {
      violations.push({
        kind: 'CONSERVATION',
        sku: p.sku,
        counters: { available: p.available, reserved: p.reserved, sold: p.sold },
        fromLedger,
      });
    }
  }

  const heldByClosed = await prisma.$queryRaw<{ order_id: string; status: string; sku: string; held: number }[]>`
    SELECT o.id::text AS order_id, o.status::text AS status, m.sku,
           SUM(CASE m.kind WHEN 'RESERVE' THEN m.quantity ELSE -m.quantity END)::int AS held
      FROM orders o JOIN stock_movements m ON m.order_id = o.id
     WHERE o.status IN ('PAID', 'EXPIRED', 'CANCELLED', 'REJECTED')
       AND m.kind IN ('RESERVE', 'RELEASE', 'COMMIT')
     GROUP BY o.id, o.status, m.sku
    HAVING SUM(CASE m.kind WHEN 'RESERVE' THEN m.quantity ELSE -m.quantity END) <> 0`;
  for (const row of heldByClosed) {
    violations.push({ kind: 'CLOSED_ORDER_HOLDS_STOCK', orderId: row.order_id, status: row.status, sku: row.sku, held: row.held });
  }

  const movedTwice = await prisma.$queryRaw<{ order_id: string; sku: string; movements: string[] }[]>`
    SELECT order_id::text AS order_id, sku, array_agg(kind::text ORDER BY kind) AS movements
      FROM stock_movements
     WHERE kind IN ('RELEASE', 'COMMIT') AND order_id IS NOT NULL
     GROUP BY order_id, sku
    HAVING COUNT(*) > 1`;
  for (const row of movedTwice) {
    violations.push({ kind: 'ORDER_MOVED_TWICE', orderId: row.order_id, sku: row.sku, movements: row.movements });
  }

  return { ok: violations.length === 0, violations };
}
