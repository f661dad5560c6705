/**
 * What `--scenario approaches` reads from each approach's database: when each order's stock came
 * back (the RELEASE ledger row, written in the transaction that put it back, against the order's
 * effective deadline), whether any release was lost or doubled (the service's own inventory check
 * over the ledger), and the database's own counters of transactions and rows read.
 */
import { createPrismaClient } from '../../../src/db/client';
import { checkInventory } from '../../../src/db/inventory-check';
import { withDatabase } from '../../processes';
import { CUSTOMER_PREFIX } from './systems';

export interface DatabaseCounters {
  /** xact_commit + xact_rollback of pg_stat_database: every transaction, from every client. */
  transactions: number;
  /** tup_returned + tup_fetched: rows the database read for them. */
  rowsRead: number;
}

export async function databaseCounters(databaseUrl: string): Promise<DatabaseCounters> {
  return withDatabase(databaseUrl, async (db) => {
    const { rows } = await db.query<{ transactions: string; rows_read: string }>(
      `SELECT (xact_commit + xact_rollback)::text AS transactions, (tup_returned + tup_fetched)::text AS rows_read
         FROM pg_stat_database WHERE datname = current_database()`,
    );
    return { transactions: Number(rows[0]?.transactions ?? 0), rowsRead: Number(rows[0]?.rows_read ?? 0) };
  });
}

/** Orders of the workload still awaiting payment (the drain waits until none is). */
export async function awaitingPayment(databaseUrl: string): Promise<number> {
  return withDatabase(databaseUrl, async (db) => {
    const { rows } = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM orders WHERE customer_id LIKE $1 AND status IN ('PENDING', 'AWAITING_PAYMENT')`,
      [`${CUSTOMER_PREFIX}%`],
    );
    return rows[0]?.n ?? 0;
  });
}

export interface Release {
  orderId: string;
  /** Ledger RELEASE row − effective deadline. */
  lagMs: number;
  /** Its deadline fell while the consumer or worker was down. */
  dueWhileDown: boolean;
}

export interface Outcome {
  placed: number;
  paid: number;
  expired: number;
  releases: Release[];
  /** Due and still holding its stock at the end of the wait. */
  stillHeld: number;
  /** The inventory check's findings that mean a release was lost (stock held by a closed or overdue order). */
  lost: number;
  /** …that mean stock moved twice or the counters disagree with the ledger. */
  doubled: number;
  violations: string[];
}

export async function readOutcome(databaseUrl: string, downFromMs: number, downUntilMs: number): Promise<Outcome> {
  const base = await withDatabase(databaseUrl, async (db) => {
    const statuses = await db.query<{ status: string; n: number }>(
      `SELECT status::text, count(*)::int AS n FROM orders WHERE customer_id LIKE $1 GROUP BY status`,
      [`${CUSTOMER_PREFIX}%`],
    );
    const releases = await db.query<{ id: string; lag_ms: number; due_while_down: boolean }>(
      `SELECT o.id::text, EXTRACT(EPOCH FROM max(m.created_at) - order_deadline(o.expires_at, o.payment_pending_until))::float8 * 1000 AS lag_ms,
              order_deadline(o.expires_at, o.payment_pending_until) BETWEEN to_timestamp($2::float8 / 1000) AND to_timestamp($3::float8 / 1000) AS due_while_down
         FROM orders o JOIN stock_movements m ON m.order_id = o.id AND m.kind = 'RELEASE'
        WHERE o.customer_id LIKE $1 AND o.status = 'EXPIRED'
        GROUP BY o.id`,
      [`${CUSTOMER_PREFIX}%`, downFromMs, downUntilMs],
    );
    const held = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM orders o WHERE customer_id LIKE $1 AND status = 'AWAITING_PAYMENT' AND order_is_due(o)`,
      [`${CUSTOMER_PREFIX}%`],
    );
    const by = new Map(statuses.rows.map((r) => [r.status, r.n]));
    return {
      placed: statuses.rows.reduce((total, r) => total + r.n, 0),
      paid: by.get('PAID') ?? 0,
      expired: by.get('EXPIRED') ?? 0,
      releases: releases.rows.map((r) => ({ orderId: r.id, lagMs: r.lag_ms, dueWhileDown: r.due_while_down })),
      stillHeld: held.rows[0]?.n ?? 0,
    };
  });
  const prisma = createPrismaClient(databaseUrl, 2);
  try {
    // A hold 1 s past its deadline at the end of the wait counts: every deadline is long past by then.
    const report = await checkInventory(prisma, 1);
    const lostKinds = new Set(['HOLD_PAST_DEADLINE', 'CLOSED_ORDER_HOLDS_STOCK']);
    const doubledKinds = new Set(['ORDER_MOVED_TWICE', 'CONSERVATION', 'NEGATIVE_STOCK']);
    return {
      ...base,
      lost: report.violations.filter((v) => lostKinds.has(v.kind)).length,
      doubled: report.violations.filter((v) => doubledKinds.has(v.kind)).length,
      violations: report.violations.slice(0, 5).map((v) => JSON.stringify(v)),
    };
  } finally {
    await prisma.$disconnect();
  }
}
