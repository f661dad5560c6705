/**
 * The ledger checkpoint's SQL: moving it forward (advance_ledger_checkpoint, each tick of every
 * worker's retention loop) and, for tests and the benchmark, bringing it up to the newest ledger row.
 * What it is and why it is exact: sql/advance_ledger_checkpoint.sql.
 */
import type { PrismaClient } from '../../prisma/generated/client';
import { PRUNE_LOCK_TIMEOUT_MS } from './retention';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Ledger ids counted per call at most: one range of the primary key, well inside a worker's
 * statement timeout, so the first count of a long ledger (after the migration) is many short steps.
 */
export const LEDGER_CHECKPOINT_SPAN = 250_000;
const ADVANCE_TRANSACTION_OPTIONS = { maxWait: 2_000, timeout: 10_000 } as const;

export interface LedgerCheckpointStep {
  /** The last ledger id the checkpoint counts; null before its first step (or when another caller was at it). */
  throughId: bigint | null;
  /** Where it is heading: the newest id committed when the candidate was recorded. */
  candidateId: bigint | null;
  /** Whether this call counted rows (or started the checkpoint); false while older transactions run. */
  advanced: boolean;
}

/**
 * One step: counts up to LEDGER_CHECKPOINT_SPAN ids towards the recorded candidate if every
 * transaction that could still write at or below it has ended, and records a new candidate once
 * it is reached. Another caller at it already: nothing done.
 */
export async function advanceLedgerCheckpoint(prisma: PrismaClient): Promise<LedgerCheckpointStep> {
  const [row] = await prisma.$transaction(async (tx) => {
    // Its one possible wait: a product row a restock holds, when a sku is counted for the first time.
    await tx.$executeRaw`SELECT set_config('lock_timeout', ${`${PRUNE_LOCK_TIMEOUT_MS}ms`}, true)`;
    return tx.$queryRaw<{ through_id: bigint | null; candidate_id: bigint | null; advanced: boolean }[]>`
      SELECT through_id, candidate_id, advanced FROM advance_ledger_checkpoint(${LEDGER_CHECKPOINT_SPAN}::bigint)`;
  }, ADVANCE_TRANSACTION_OPTIONS);
  return { throughId: row?.through_id ?? null, candidateId: row?.candidate_id ?? null, advanced: row?.advanced ?? false };
}

/** More to count at once: the step advanced and has not reached its candidate yet. */
export function checkpointBehind(step: LedgerCheckpointStep): boolean {
  return step.advanced && step.throughId !== null && step.candidateId !== null && step.throughId < step.candidateId;
}

/**
 * Advances the checkpoint until it counts every ledger row committed when called (the first time,
 * from the start of the ledger). For tests and the benchmark, where no worker's loop runs or its
 * ticks are far apart; throws if a transaction stays open past `timeoutMs`.
 */
export async function catchUpLedgerCheckpoint(prisma: PrismaClient, timeoutMs = 30_000): Promise<bigint> {
  const [newest] = await prisma.$queryRaw<{ id: bigint }[]>`SELECT COALESCE(max(id), 0)::bigint AS id FROM stock_movements`;
  const target = newest?.id ?? 0n;
  const giveUpAt = Date.now() + timeoutMs;
  for (;;) {
    const step = await advanceLedgerCheckpoint(prisma);
    if (step.throughId !== null && step.throughId >= target) return step.throughId;
    if (Date.now() >= giveUpAt) throw new Error(`the ledger checkpoint did not reach id ${target} within ${timeoutMs} ms (at ${String(step.throughId)})`);
    if (!checkpointBehind(step)) await sleep(20);
  }
}
