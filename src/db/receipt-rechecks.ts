/**
 * The receipts' recheck: one step of draining receipt_rechecks (drain_receipt_rechecks, each tick
 * of every worker's retention loop) and, for tests and the benchmark, draining it until only the
 * orders that disagree are left. What it is and why no disagreement escapes it:
 * sql/drain_receipt_rechecks.sql; what the inventory check reads of it: src/db/inventory-check.ts.
 */
import type { PrismaClient } from '../../prisma/generated/client';

/** Rows read per step at most: a tick of changes is far fewer, a backlog is many short steps. */
export const RECEIPT_RECHECK_BATCH = 10_000;
/** Orders evaluated per step while the table is seeded (a database that had orders when migrated). */
export const RECEIPT_RECHECK_SEED_ORDERS = 50_000;

export interface ReceiptRecheckStep {
  /** False when another caller was at it: nothing was done. */
  ran: boolean;
  /** Rows read and deleted. */
  drained: number;
  /** Orders among them that disagree, each written again as one new row (so later checks name it). */
  kept: number;
  /** Whether every order the migration found has been evaluated once (until then the check joins every receipt). */
  seeded: boolean;
  /** The rows this step read at most. */
  batch: number;
}

export interface ReceiptRecheckLimits {
  /** Rows read at most (RECEIPT_RECHECK_BATCH). */
  batch?: number;
  /** Orders evaluated at most while seeding (RECEIPT_RECHECK_SEED_ORDERS). */
  seedOrders?: number;
}

/** One step: seeds the next orders if not seeded yet, then drains up to `batch` of the oldest rows. */
export async function drainReceiptRechecks(
  prisma: PrismaClient,
  { batch = RECEIPT_RECHECK_BATCH, seedOrders = RECEIPT_RECHECK_SEED_ORDERS }: ReceiptRecheckLimits = {},
): Promise<ReceiptRecheckStep> {
  // A statement of its own (READ COMMITTED): it waits on no lock (rows a prune holds are skipped).
  const [row] = await prisma.$queryRaw<{ drained: bigint; kept: bigint; seeded: boolean }[]>`
    SELECT drained, kept, seeded FROM drain_receipt_rechecks(${batch}::int, ${seedOrders}::int)`;
  if (row === undefined) return { ran: false, drained: 0, kept: 0, seeded: false, batch };
  return { ran: true, drained: Number(row.drained), kept: Number(row.kept), seeded: row.seeded, batch };
}

/**
 * More to do at once: still seeding, or the step read a full batch and deleted some of it (a full
 * batch of orders that all disagree is not a backlog: they were written again behind the others).
 */
export function receiptRechecksBehind(step: ReceiptRecheckStep): boolean {
  return step.ran && (!step.seeded || (step.drained >= step.batch && step.drained > step.kept));
}

/**
 * Drains until a step has read every row, or a whole batch of orders that disagree, with the table
 * seeded: what is left names only orders that disagree. For tests and the benchmark, where no
 * worker's loop runs or its ticks are far apart; throws past `timeoutMs`.
 */
export async function catchUpReceiptRechecks(prisma: PrismaClient, timeoutMs = 30_000, limits: ReceiptRecheckLimits = {}): Promise<void> {
  const giveUpAt = Date.now() + timeoutMs;
  for (;;) {
    const step = await drainReceiptRechecks(prisma, limits);
    if (step.ran && step.seeded && (step.drained < step.batch || step.drained === step.kept)) return;
    if (Date.now() >= giveUpAt) throw new Error(`receipt_rechecks was not drained within ${timeoutMs} ms`);
    if (!step.ran) await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
