/**
 * Worker heartbeats in PostgreSQL: each running worker process beats its row (src/worker-heartbeat.ts)
 * and /readyz asks whether any worker of its task queue beat recently (src/api/readiness.ts).
 * Both sides read the database's clock, so the hosts' clocks need not agree.
 */
import type { Prisma } from '../../prisma/generated/client';

export interface WorkerIdentity {
  /** Random per process: a restarted worker is a new row. */
  workerId: string;
  namespace: string;
  taskQueue: string;
  /** The Temporal worker identity (pid@host), for an operator reading the table. */
  identity: string;
}

export async function beat(db: Prisma.TransactionClient, worker: WorkerIdentity): Promise<void> {
  await db.$executeRaw`
    INSERT INTO worker_heartbeats (worker_id, namespace, task_queue, identity)
    VALUES (${worker.workerId}::uuid, ${worker.namespace}, ${worker.taskQueue}, ${worker.identity})
    ON CONFLICT (worker_id) DO UPDATE SET beat_at = clock_timestamp()`;
}

/** A worker that stops on purpose says so at once, rather than leaving readiness to notice. */
export async function forgetWorker(db: Prisma.TransactionClient, workerId: string): Promise<void> {
  await db.$executeRaw`DELETE FROM worker_heartbeats WHERE worker_id = ${workerId}::uuid`;
}

/** Rows of workers gone for a day (killed, never stopped): nothing reads them any more. */
export async function forgetLongGoneWorkers(db: Prisma.TransactionClient): Promise<void> {
  await db.$executeRaw`DELETE FROM worker_heartbeats WHERE beat_at < clock_timestamp() - interval '1 day'`;
}

export interface QueueLiveness {
  /** Workers of the task queue that beat within the bound. */
  alive: number;
  /** Seconds since any worker of the task queue beat; null when none ever did (or all stopped). */
  silentSeconds: number | null;
}

export async function queueLiveness(
  db: Prisma.TransactionClient,
  queue: { namespace: string; taskQueue: string },
  staleAfterSeconds: number,
): Promise<QueueLiveness> {
  const [row] = await db.$queryRaw<{ alive: bigint; silent_seconds: number | null }[]>`
    SELECT count(*) FILTER (WHERE beat_at >= clock_timestamp() - make_interval(secs => ${staleAfterSeconds})) AS alive,
           EXTRACT(EPOCH FROM clock_timestamp() - max(beat_at))::float8 AS silent_seconds
      FROM worker_heartbeats WHERE namespace = ${queue.namespace} AND task_queue = ${queue.taskQueue}`;
  return { alive: Number(row?.alive ?? 0), silentSeconds: row?.silent_seconds ?? null };
}
