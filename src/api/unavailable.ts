/**
 * Which failures mean "a part behind the API cannot be reached", answered 503 SERVICE_UNAVAILABLE
 * with Retry-After rather than 500: the request can be sent again, unchanged, once it is back.
 */
import { isGrpcServiceError, ServiceError, WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import { Prisma } from '../../prisma/generated/client';

/** What a 503 tells a client to wait before trying again. */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;

const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_UNAVAILABLE = 14;

// Prisma's codes for "cannot reach / timed out reaching the database" and "pool wait timed out".
const PRISMA_UNREACHABLE = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024']);
// The pg driver adapter's error kinds for the same.
const ADAPTER_UNREACHABLE = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections']);
// PostgreSQL: query_canceled (statement_timeout), admin_shutdown, crash_shutdown, cannot_connect_now,
// and lock_not_available (an admission gave up waiting for a row lock: busy, worth a retry).
const POSTGRES_UNAVAILABLE = new Set(['57014', '57P01', '57P02', '57P03', '55P03']);

export type UnreachablePart = 'temporal' | 'postgres';

export function unreachablePart(error: unknown): UnreachablePart | undefined {
  if (isTemporalUnreachable(error)) return 'temporal';
  if (isPostgresUnreachable(error)) return 'postgres';
  return undefined;
}

export function isTemporalUnreachable(error: unknown): boolean {
  if (error instanceof WorkflowUpdateRPCTimeoutOrCancelledError) return true;
  const cause = error instanceof ServiceError ? error.cause : error;
  return isGrpcServiceError(cause) && (cause.code === GRPC_UNAVAILABLE || cause.code === GRPC_DEADLINE_EXCEEDED);
}

export function isPostgresUnreachable(error: unknown): boolean {
  if (error instanceof Prisma.PrismaClientInitializationError) return true;
  if (error instanceof Prisma.PrismaClientKnownRequestError) {
    if (PRISMA_UNREACHABLE.has(error.code)) return true;
    const cause = (error.meta?.driverAdapterError as { cause?: { kind?: unknown; originalCode?: unknown } } | undefined)?.cause;
    if (typeof cause?.kind === 'string' && ADAPTER_UNREACHABLE.has(cause.kind)) return true;
    if (typeof cause?.originalCode === 'string' && POSTGRES_UNAVAILABLE.has(cause.originalCode)) return true;
  }
  // pg-pool's own timeout when no connection could be had in time.
  return error instanceof Error && /timeout exceeded when trying to connect|Connection terminated/i.test(error.message);
}

export function unavailableMessage(part: UnreachablePart): string {
  const name = part === 'temporal' ? 'Temporal' : 'PostgreSQL';
  return `${name} cannot be reached; send the request again later`;
}
