/**
 * Checks the contract's stock invariants against the database: no negative stock,
 * conservation per sku from the ledger (the ledger checkpoint plus the rows written since), no
 * stock held by closed orders, no order whose stock moved twice, no hold kept past its effective
 * deadline by more than the reclaim's bound, no payment receipt whose outcome disagrees with its
 * order, and admissions counted right. Its normal cost is bounded by the open orders, the skus, the
 * ledger rows written since the checkpoint and the orders receipt_rechecks names (those whose
 * receipts or payment changed since the last drain, and those that disagree), not by the history
 * kept; the pass over the whole ledger runs only when a sum says an order is to be named, and the
 * join of every receipt with its order only until receipt_rechecks is first seeded, or when asked
 * for (`full`). The deadline rules themselves are the database's (sql/overdue_holds.sql,
 * sql/receipt_disagreements.sql, sql/admission_disagreements.sql); the checkpoint's,
 * sql/advance_ledger_checkpoint.sql; the rechecks', sql/drain_receipt_rechecks.sql.
 */
import { OrderStatus, Prisma, type PrismaClient } from '../../prisma/generated/client';
import { FINAL_STATUSES } from '../../workflows/messages';
import { DEFAULTS } from '../config';

export type InventoryViolation =
  | { kind: 'NEGATIVE_STOCK'; sku: string; available: number; reserved: number; sold: number }
  | {
      kind: 'CONSERVATION';
      sku: string;
      counters: { available: number; reserved: number; sold: number };
      fromLedger: { received: number; available: number; reserved: number; sold: number };
    }
  | { kind: 'CLOSED_ORDER_HOLDS_STOCK'; orderId: string; status: string; sku: string; held: number }
  | { kind: 'ORDER_MOVED_TWICE'; orderId: string; sku: string; movements: string[] }
  | { kind: 'HOLD_PAST_DEADLINE'; orderId: string; deadline: string; overdueSeconds: number }
  | {
      kind: 'RECEIPT_DISAGREES_WITH_ORDER';
      orderId: string;
      paymentId: string | null;
      receiptOutcome: string | null;
      orderStatus: string;
      orderPaymentId: string | null;
    }
  /**
   * The product's count of units admitted to orders in flight disagrees with its admitted lines,
   * or lines of orders no longer PENDING are still admitted (an admission not given back).
   */
  | { kind: 'ADMISSION_MISCOUNTED'; sku: string; admitted: number; admittedLines: number; admittedOfDecidedOrders: number }
  /**
   * (`full` only) The ledger checkpoint plus the rows written since disagrees, for one sku and kind of
   * movement, with the opening balances plus every ledger row: the sums a fast check relies on are off.
   */
  | {
      kind: 'LEDGER_CHECKPOINT_DRIFT';
      sku: string;
      movementKind: string;
      fromCheckpoint: { quantity: number; movements: number };
      fromLedger: { quantity: number; movements: number };
    };

export interface InventoryReport {
  ok: boolean;
  violations: InventoryViolation[];
}

export interface InventoryCheckOptions {
  /**
   * Also run the pass over the whole ledger that names orders (whatever the sums say), verify the
   * checkpoint against the opening balances and every row, and join every receipt and every paid
   * order instead of reading receipt_rechecks: linear in the history kept.
   */
  full?: boolean;
}

/** An order is closed in FINAL_STATUSES (the one list); the others may hold stock. */
const CLOSED_STATUSES: OrderStatus[] = [...FINAL_STATUSES];
const OPEN_STATUSES: OrderStatus[] = Object.values(OrderStatus).filter((status) => !FINAL_STATUSES.includes(status));

/**
 * One snapshot for every statement (the checkpoint, the rows past it and the counters must agree);
 * it only reads, so repeatable read never fails it. Each statement is bounded by the connection's
 * statement_timeout; the transaction's own limit only has to let a full check finish.
 */
const CHECK_TRANSACTION_OPTIONS = { isolationLevel: Prisma.TransactionIsolationLevel.RepeatableRead, maxWait: 10_000, timeout: 600_000 } as const;

/** `reclaimBoundSeconds`: how long past its deadline a hold may still be held before it is a violation. */
export async function checkInventory(
  prisma: PrismaClient,
  reclaimBoundSeconds: number = DEFAULTS.reclaimBoundSeconds,
  { full = false }: InventoryCheckOptions = {},
): Promise<InventoryReport> {
  return prisma.$transaction(async (tx) => {
    // JIT off: the passes are plain scans that the planner prices high enough to compile, and
    // compiling costs more than it saves here (0.6 s of a 2.6 s pass at 200,000 orders).
    await tx.$executeRaw`SET LOCAL jit = off`;
    const [position] = await tx.$queryRaw<{ through_id: bigint | null }[]>`SELECT through_id FROM stock_ledger_checkpoint_position`;
    // Not built yet: the opening balances and every row, as before there was a checkpoint.
    const built = position !== undefined && position.through_id !== null;
    const throughId = position?.through_id ?? 0n;

    // The ledger per sku: the checkpoint plus the rows past it (a range of the primary key), beside
    // what the open orders hold (found through the orders' status index, their rows through the
    // ledger's (order_id, sku, kind) key). If no closed order holds stock, the ledger's reserved
    // (reserves - releases - commits) is exactly what the open orders hold.
    const products = await tx.$queryRaw<
      {
        sku: string;
        available: number;
        reserved: number;
        sold: number;
        received: bigint;
        reserves: bigint;
        releases: bigint;
        commits: bigint;
        held_by_open_orders: bigint;
      }[]
    >`
      WITH ledger AS (
        SELECT sku, kind, quantity FROM stock_ledger_checkpoints WHERE ${built}::boolean
        UNION ALL
        SELECT sku, kind, quantity FROM stock_opening_balances WHERE NOT ${built}::boolean
        UNION ALL
        SELECT sku, kind, quantity::bigint FROM stock_movements WHERE id > ${throughId}::bigint
      ), sums AS (
        SELECT sku,
               COALESCE(SUM(quantity) FILTER (WHERE kind IN ('INITIAL', 'RESTOCK', 'ADJUSTMENT')), 0)::bigint AS received,
               COALESCE(SUM(quantity) FILTER (WHERE kind = 'RESERVE'), 0)::bigint AS reserves,
               COALESCE(SUM(quantity) FILTER (WHERE kind = 'RELEASE'), 0)::bigint AS releases,
               COALESCE(SUM(quantity) FILTER (WHERE kind = 'COMMIT'), 0)::bigint AS commits
          FROM ledger GROUP BY sku
      ), held AS (
        SELECT m.sku, SUM(CASE m.kind WHEN 'RESERVE' THEN m.quantity ELSE -m.quantity END)::bigint AS held
          FROM orders o JOIN stock_movements m ON m.order_id = o.id
         WHERE o.status = ANY(${OPEN_STATUSES}::"OrderStatus"[]) AND m.kind IN ('RESERVE', 'RELEASE', 'COMMIT')
         GROUP BY m.sku
      )
      SELECT p.sku, p.available, p.reserved, p.sold,
             COALESCE(s.received, 0)::bigint AS received, COALESCE(s.reserves, 0)::bigint AS reserves,
             COALESCE(s.releases, 0)::bigint AS releases, COALESCE(s.commits, 0)::bigint AS commits,
             COALESCE(h.held, 0)::bigint AS held_by_open_orders
        FROM products p LEFT JOIN sums s ON s.sku = p.sku LEFT JOIN held h ON h.sku = p.sku
       ORDER BY p.sku`;

    const violations: InventoryViolation[] = [];
    let sumsDisagree = false;
    for (const p of products) {
      if (p.available < 0 || p.reserved < 0 || p.sold < 0) {
        violations.push({ kind: 'NEGATIVE_STOCK', sku: p.sku, available: p.available, reserved: p.reserved, sold: p.sold });
      }
      // Sums over a long history may pass 2^31; the differences are stock counts again.
      const [received, reserves, releases, commits] = [p.received, p.reserves, p.releases, p.commits].map(Number) as [number, number, number, number];
      const fromLedger = {
        received,
        available: received - reserves + releases,
        reserved: reserves - releases - commits,
        sold: commits,
      };
      if (
        p.available + p.reserved + p.sold !== received ||
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
      // Some closed order holds stock (or moved twice): only then is the whole ledger read to name it.
      if (fromLedger.reserved !== Number(p.held_by_open_orders)) sumsDisagree = true;
    }

    if (full || sumsDisagree) {
      violations.push(...(await everyOrderThatHoldsOrMovedTwice(tx)));
    } else {
      violations.push(...(await recentOrOpenOrdersMovedTwice(tx, throughId)));
    }

    const overdue = await tx.$queryRaw<{ order_id: string; deadline: Date; overdue_seconds: number }[]>`
      SELECT order_id::text AS order_id, deadline, overdue_seconds FROM overdue_holds(${reclaimBoundSeconds}::int)`;
    for (const row of overdue) {
      violations.push({ kind: 'HOLD_PAST_DEADLINE', orderId: row.order_id, deadline: row.deadline.toISOString(), overdueSeconds: row.overdue_seconds });
    }

    // Receipts against their orders: the orders receipt_rechecks names, which, once it is seeded,
    // include every order that disagrees (sql/drain_receipt_rechecks.sql says why); before that, and
    // in a full check, every receipt and every paid order.
    const [rechecks] = await tx.$queryRaw<{ seeded: boolean }[]>`SELECT seeded_at IS NOT NULL AS seeded FROM receipt_recheck_seeding`;
    const receiptsRead = full || rechecks?.seeded !== true ? Prisma.sql`receipt_disagreements()` : Prisma.sql`rechecked_receipt_disagreements()`;
    const disagreeing = await tx.$queryRaw<
      { order_id: string; payment_id: string | null; receipt_outcome: string | null; order_status: string; order_payment_id: string | null }[]
    >`SELECT order_id::text AS order_id, payment_id, receipt_outcome, order_status, order_payment_id FROM ${receiptsRead} ORDER BY 1, 2, 3, 4, 5`;
    for (const row of disagreeing) {
      violations.push({
        kind: 'RECEIPT_DISAGREES_WITH_ORDER',
        orderId: row.order_id,
        paymentId: row.payment_id,
        receiptOutcome: row.receipt_outcome,
        orderStatus: row.order_status,
        orderPaymentId: row.order_payment_id,
      });
    }

    const miscounted = await tx.$queryRaw<{ sku: string; admitted: number; admitted_lines: number; admitted_of_decided_orders: number }[]>`
      SELECT sku, admitted, admitted_lines, admitted_of_decided_orders FROM admission_disagreements() ORDER BY sku`;
    for (const row of miscounted) {
      violations.push({
        kind: 'ADMISSION_MISCOUNTED',
        sku: row.sku,
        admitted: row.admitted,
        admittedLines: row.admitted_lines,
        admittedOfDecidedOrders: row.admitted_of_decided_orders,
      });
    }

    if (full && built) violations.push(...(await checkpointDrift(tx, throughId)));

    return { ok: violations.length === 0, violations };
  }, CHECK_TRANSACTION_OPTIONS);
}

/**
 * The pass over the whole ledger grouped by (order, sku), naming every closed order that still
 * holds stock and every order whose stock moved twice (released and committed). Only the groups
 * that hold stock or moved twice (few) are joined with their order, never every ledger row. The
 * unique (order_id, sku, kind) key bounds a group to one row per kind, so "moved twice" is a group
 * with more than one RELEASE/COMMIT row; its kinds are read back through that key.
 */
async function everyOrderThatHoldsOrMovedTwice(tx: Prisma.TransactionClient): Promise<InventoryViolation[]> {
  const perOrder = await tx.$queryRaw<{ order_id: string; status: string; closed: boolean; sku: string; held: number; moves: number; movements: string[] | null }[]>`
    WITH groups AS (
      SELECT order_id, sku,
             SUM(CASE kind WHEN 'RESERVE' THEN quantity ELSE -quantity END)::bigint AS held,
             COUNT(*) FILTER (WHERE kind IN ('RELEASE', 'COMMIT'))::int AS moves
        FROM stock_movements
       WHERE order_id IS NOT NULL AND kind IN ('RESERVE', 'RELEASE', 'COMMIT')
       GROUP BY order_id, sku
      HAVING SUM(CASE kind WHEN 'RESERVE' THEN quantity ELSE -quantity END) <> 0
          OR COUNT(*) FILTER (WHERE kind IN ('RELEASE', 'COMMIT')) > 1
    ), kept AS (
      -- The order read by key for each group kept (a subquery, not a join: the planner cannot know
      -- how few groups survive HAVING, and would otherwise join every order).
      SELECT groups.*, (SELECT o.status FROM orders o WHERE o.id = groups.order_id) AS status FROM groups
    )
    SELECT g.order_id::text AS order_id, g.status::text AS status,
           g.status = ANY(${CLOSED_STATUSES}::"OrderStatus"[]) AS closed, g.sku, g.held::int AS held, g.moves,
           CASE WHEN g.moves > 1 THEN (
             SELECT array_agg(m.kind::text ORDER BY m.kind) FROM stock_movements m
              WHERE m.order_id = g.order_id AND m.sku = g.sku AND m.kind IN ('RELEASE', 'COMMIT')
           ) END AS movements
      FROM kept g
     ORDER BY g.order_id, g.sku`;

  const violations: InventoryViolation[] = [];
  for (const row of perOrder) {
    if (row.closed && row.held !== 0) {
      violations.push({ kind: 'CLOSED_ORDER_HOLDS_STOCK', orderId: row.order_id, status: row.status, sku: row.sku, held: row.held });
    }
  }
  for (const row of perOrder) {
    if (row.moves > 1 && row.movements !== null) {
      violations.push({ kind: 'ORDER_MOVED_TWICE', orderId: row.order_id, sku: row.sku, movements: row.movements });
    }
  }
  return violations;
}

/**
 * Stock moved twice where that is cheap to see without the whole ledger: among the rows written
 * since the checkpoint (a range of the primary key), and in the open orders. So a RELEASE and a
 * COMMIT of one reserve are named while recent even when another order's error cancels them out
 * in the sums; older ones show in the sums, or in a full check.
 */
async function recentOrOpenOrdersMovedTwice(tx: Prisma.TransactionClient, throughId: bigint): Promise<InventoryViolation[]> {
  const rows = await tx.$queryRaw<{ order_id: string; sku: string; movements: string[] }[]>`
    WITH moved AS (
      SELECT m.order_id, m.sku FROM stock_movements m
       WHERE m.id > ${throughId}::bigint AND m.order_id IS NOT NULL AND m.kind IN ('RELEASE', 'COMMIT')
      UNION
      SELECT m.order_id, m.sku FROM orders o JOIN stock_movements m ON m.order_id = o.id
       WHERE o.status = ANY(${OPEN_STATUSES}::"OrderStatus"[]) AND m.kind IN ('RELEASE', 'COMMIT')
    )
    SELECT g.order_id::text AS order_id, g.sku, k.movements
      FROM moved g
     CROSS JOIN LATERAL (
       SELECT array_agg(m.kind::text ORDER BY m.kind) AS movements FROM stock_movements m
        WHERE m.order_id = g.order_id AND m.sku = g.sku AND m.kind IN ('RELEASE', 'COMMIT')
     ) k
     WHERE cardinality(k.movements) > 1
     ORDER BY g.order_id, g.sku`;
  return rows.map((row) => ({ kind: 'ORDER_MOVED_TWICE', orderId: row.order_id, sku: row.sku, movements: row.movements }));
}

/** The checkpoint plus the rows past it against the opening balances plus every row, per sku and kind. */
async function checkpointDrift(tx: Prisma.TransactionClient, throughId: bigint): Promise<InventoryViolation[]> {
  const rows = await tx.$queryRaw<{ sku: string; kind: string; counted_quantity: bigint; counted_movements: bigint; whole_quantity: bigint; whole_movements: bigint }[]>`
    WITH whole AS (
      SELECT sku, kind, SUM(quantity)::bigint AS quantity, SUM(movements)::bigint AS movements FROM (
        SELECT sku, kind, quantity, movements FROM stock_opening_balances
        UNION ALL
        SELECT sku, kind, quantity::bigint, 1::bigint FROM stock_movements) l
       GROUP BY sku, kind
    ), counted AS (
      SELECT sku, kind, SUM(quantity)::bigint AS quantity, SUM(movements)::bigint AS movements FROM (
        SELECT sku, kind, quantity, movements FROM stock_ledger_checkpoints
        UNION ALL
        SELECT sku, kind, quantity::bigint, 1::bigint FROM stock_movements WHERE id > ${throughId}::bigint) l
       GROUP BY sku, kind
    )
    SELECT COALESCE(w.sku, c.sku) AS sku, COALESCE(w.kind, c.kind)::text AS kind,
           COALESCE(c.quantity, 0)::bigint AS counted_quantity, COALESCE(c.movements, 0)::bigint AS counted_movements,
           COALESCE(w.quantity, 0)::bigint AS whole_quantity, COALESCE(w.movements, 0)::bigint AS whole_movements
      FROM whole w FULL JOIN counted c ON c.sku = w.sku AND c.kind = w.kind
     WHERE COALESCE(c.quantity, 0) <> COALESCE(w.quantity, 0) OR COALESCE(c.movements, 0) <> COALESCE(w.movements, 0)
     ORDER BY 1, 2`;
  return rows.map((row) => ({
    kind: 'LEDGER_CHECKPOINT_DRIFT',
    sku: row.sku,
    movementKind: row.kind,
    fromCheckpoint: { quantity: Number(row.counted_quantity), movements: Number(row.counted_movements) },
    fromLedger: { quantity: Number(row.whole_quantity), movements: Number(row.whole_movements) },
  }));
}
