import { PrismaPg } from '@prisma/adapter-pg';
import { CONNECTION_WAIT_MS, TRANSACTION_TIMEOUT_MS } from '../../activities/timeouts';
import { PrismaClient } from '../../prisma/generated/client';

/** How long a caller waits for PostgreSQL (docs/failure-modes.md says what each one means). */
export interface DatabaseTimeouts {
  /** Waiting for a pooled connection, or for a new one to be established (pg's default: forever). */
  connectionTimeoutMs: number;
  /** Any one statement, enforced by the server (`statement_timeout`; default: none). */
  statementTimeoutMs: number;
}

/** The worker's: a statement ends with its transaction, inside one activity attempt (activities/timeouts.ts). */
export const WORKER_DATABASE_TIMEOUTS: DatabaseTimeouts = { connectionTimeoutMs: CONNECTION_WAIT_MS, statementTimeoutMs: TRANSACTION_TIMEOUT_MS };

/** The API's: a request that cannot reach the database answers 503 within a few seconds. */
export const API_DATABASE_TIMEOUTS: DatabaseTimeouts = { connectionTimeoutMs: 2_000, statementTimeoutMs: 5_000 };

export function createPrismaClient(
  databaseUrl: string,
  poolSize = 10,
  timeouts: DatabaseTimeouts = WORKER_DATABASE_TIMEOUTS,
): PrismaClient {
  const adapter = new PrismaPg({
    connectionString: databaseUrl,
    max: poolSize,
    connectionTimeoutMillis: timeouts.connectionTimeoutMs,
    statement_timeout: timeouts.statementTimeoutMs,
  });
  return new PrismaClient({ adapter });
}
