/**
 * Readiness: the API is ready when PostgreSQL and Temporal both answer and a worker of the task
 * queue is alive: its heartbeat in PostgreSQL is fresh (a frozen or dead worker is noticed within
 * WORKER_HEARTBEAT_STALE_SECONDS) and Temporal has seen it poll. It stops being ready as soon as
 * it starts draining for shutdown, so a load balancer sends it nothing new.
 */
import { Connection, type Client } from '@temporalio/client';
import { tsToMs } from '@temporalio/common/lib/time';
import type { PrismaClient } from '../../prisma/generated/client';
import { DEFAULTS } from '../config';
import { queueLiveness } from '../db/worker-heartbeats';

export type CheckResult = 'ok' | `unavailable: ${string}`;

export interface ReadinessReport {
  ready: boolean;
  checks: { postgres: CheckResult; temporal: CheckResult; worker: CheckResult; draining?: true };
}

/**
 * A worker counts as polling when Temporal saw a poll from it this recently. A healthy idle
 * worker re-polls at least every long-poll interval (the server answers an empty poll after
 * about 60 s), so the window must be longer than that. Too slow to notice a worker that froze or
 * died (the heartbeat does that); it catches a live worker that cannot reach Temporal.
 */
export const WORKER_POLL_WINDOW_MS = 90_000;

/** The poll check asks Temporal at most this often; /readyz stays cheap when probed a lot. */
export const WORKER_CHECK_CACHE_MS = 5_000;

// temporal.api.enums.v1.TaskQueueType
const TASK_QUEUE_TYPES = [
  { type: 1, name: 'workflow' },
  { type: 2, name: 'activity' },
] as const;

export interface ReadinessDependencies {
  prisma: PrismaClient;
  temporal: Client;
  taskQueue: string;
  timeoutMs?: number;
  workerPollWindowMs?: number;
  workerCheckCacheMs?: number;
  /** WORKER_HEARTBEAT_STALE_SECONDS: a worker whose last heartbeat is older is not alive. */
  workerHeartbeatStaleSeconds?: number;
}

export class Readiness {
  private draining = false;
  private probeConnection: Connection | undefined;
  private workerCheck: { at: number; result: Promise<CheckResult> } | undefined;

  constructor(private readonly deps: ReadinessDependencies) {}

  markDraining(): void {
    this.draining = true;
  }

  async close(): Promise<void> {
    await this.probeConnection?.close();
  }

  async check(): Promise<ReadinessReport> {
    const timeoutMs = this.deps.timeoutMs ?? 2_000;
    const [postgres, temporal, heartbeat, polling] = await Promise.all([
      probe(() => this.deps.prisma.$queryRaw`SELECT 1`, timeoutMs),
      probe(() => this.pingTemporal(timeoutMs), timeoutMs),
      probe(() => this.findLiveWorker(), timeoutMs),
      this.checkPolling(timeoutMs),
    ]);
    // The heartbeat speaks first: it is the fresher of the two signs of a worker.
    const worker = heartbeat === 'ok' ? polling : heartbeat;
    const checks: ReadinessReport['checks'] = { postgres, temporal, worker, ...(this.draining && { draining: true as const }) };
    return { ready: !this.draining && postgres === 'ok' && temporal === 'ok' && worker === 'ok', checks };
  }

  /** A worker of the task queue whose heartbeat is fresh; one query, on the database's clock. */
  private async findLiveWorker(): Promise<void> {
    const staleSeconds = this.deps.workerHeartbeatStaleSeconds ?? DEFAULTS.workerHeartbeatStaleSeconds;
    const { taskQueue } = this.deps;
    const namespace = this.deps.temporal.options.namespace;
    const { alive, silentSeconds } = await queueLiveness(this.deps.prisma, { namespace, taskQueue }, staleSeconds);
    if (alive > 0) return;
    const last = silentSeconds === null ? 'none running' : `the last ${Math.round(silentSeconds)} s ago`;
    throw new Error(`no worker of task queue ${taskQueue} wrote its heartbeat in the last ${staleSeconds} s (${last})`);
  }

  /** Cached briefly (also while it runs, so concurrent probes share one question to Temporal). */
  private checkPolling(timeoutMs: number): Promise<CheckResult> {
    const now = Date.now();
    const cacheMs = this.deps.workerCheckCacheMs ?? WORKER_CHECK_CACHE_MS;
    if (this.workerCheck && now - this.workerCheck.at < cacheMs) return this.workerCheck.result;
    const result = probe(() => this.findPollingWorker(timeoutMs), timeoutMs);
    this.workerCheck = { at: now, result };
    return result;
  }

  /** Both task queue types need a recent poller: a workflow without activities holds nothing. */
  private async findPollingWorker(timeoutMs: number): Promise<void> {
    const connection = this.connection();
    const windowMs = this.deps.workerPollWindowMs ?? WORKER_POLL_WINDOW_MS;
    const { taskQueue } = this.deps;
    const namespace = this.deps.temporal.options.namespace;
    const idle = await Promise.all(
      TASK_QUEUE_TYPES.map(async ({ type, name }) => {
        const { pollers } = await connection.withDeadline(Date.now() + timeoutMs, () =>
          connection.workflowService.describeTaskQueue({ namespace, taskQueue: { name: taskQueue }, taskQueueType: type }),
        );
        const latest = Math.max(0, ...(pollers ?? []).map((p) => tsToMs(p.lastAccessTime)));
        return Date.now() - latest <= windowMs ? undefined : name;
      }),
    );
    const missing = idle.filter((name) => name !== undefined);
    if (missing.length > 0) {
      throw new Error(`no worker polled task queue ${taskQueue} (${missing.join(', ')} tasks) in the last ${Math.round(windowMs / 1000)} s`);
    }
  }

  /**
   * One plain call on a connection of its own, without the client's retry interceptor: a probe
   * answers now, and leaves no retries behind that could outlive the connection.
   */
  private async pingTemporal(timeoutMs: number): Promise<void> {
    const connection = this.connection();
    await connection.withDeadline(Date.now() + timeoutMs, () => connection.workflowService.getSystemInfo({}));
  }

  private connection(): Connection {
    const client = this.deps.temporal.connection;
    if (!(client instanceof Connection)) throw new Error('the Temporal client has no gRPC connection to probe');
    this.probeConnection ??= Connection.lazy({ ...client.options, interceptors: [] });
    return this.probeConnection;
  }
}

async function probe(call: () => Promise<unknown>, timeoutMs: number): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([call(), timeout]);
    return 'ok';
  } catch (error) {
    return `unavailable: ${firstLine(error)}`;
  } finally {
    clearTimeout(timer);
  }
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return (message.split('\n')[0] ?? '').slice(0, 200);
}
