/**
 * The heartbeat each worker process writes to PostgreSQL while its Temporal worker runs, from a
 * periodic loop like the reclaim's, over a connection of its own: activities that fill the pool
 * (waiting on a lock, say) leave a slow worker alive and ready, while a frozen or dead process stops
 * beating and /readyz says so within WORKER_HEARTBEAT_STALE_SECONDS.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { PrismaClient } from '../prisma/generated/client';
import { beat, forgetLongGoneWorkers, forgetWorker, type WorkerIdentity } from './db/worker-heartbeats';
import { startPeriodicLoop, type PeriodicLoop } from './periodic-loop';

export interface WorkerHeartbeatDependencies {
  /** A client of its own (pool of one), not the activities' pool. */
  prisma: PrismaClient;
  namespace: string;
  taskQueue: string;
  identity: string;
  intervalMs: number;
  /** Beats only while this holds (the SDK worker is RUNNING: polling, not draining). */
  running: () => boolean;
  logger?: Pick<Logger, 'info' | 'warn'>;
}

/** `stop` ends the beats and deletes the worker's row. */
export type WorkerHeartbeat = PeriodicLoop;

export function startWorkerHeartbeat(deps: WorkerHeartbeatDependencies): WorkerHeartbeat {
  const { prisma, logger } = deps;
  const worker: WorkerIdentity = { workerId: randomUUID(), namespace: deps.namespace, taskQueue: deps.taskQueue, identity: deps.identity };
  let failing = false;
  let firstBeat = true;

  const runOnce = async (): Promise<boolean> => {
    if (!deps.running()) return false;
    try {
      if (firstBeat) await forgetLongGoneWorkers(prisma);
      firstBeat = false;
      await beat(prisma, worker);
      if (failing) logger?.info('worker heartbeat: written again');
      failing = false;
    } catch (error) {
      if (!failing) logger?.warn({ err: error }, 'worker heartbeat: could not be written; /readyz will say not ready');
      failing = true;
    }
    return false;
  };

  const loop = startPeriodicLoop(runOnce, deps.intervalMs);
  return {
    async stop() {
      await loop.stop();
      try {
        await forgetWorker(prisma, worker.workerId);
      } catch (error) {
        logger?.warn({ err: error }, 'worker heartbeat: row not deleted; it goes stale on its own');
      }
    },
  };
}
