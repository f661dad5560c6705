/**
 * Readiness: the API is ready when PostgreSQL and Temporal both answer, and it stops being
 * ready as soon as it starts draining for shutdown, so a load balancer sends it nothing new.
 */
import { Connection, type Client } from '@temporalio/client';
import type { PrismaClient } from '../../prisma/generated/client';

export type CheckResult = 'ok' | `unavailable: ${string}`;

export interface ReadinessReport {
  ready: boolean;
  checks: { postgres: CheckResult; temporal: CheckResult; draining?: true };
}

export class Readiness {
  private draining = false;
  private probeConnection: Connection | undefined;

  constructor(
    private readonly deps: { prisma: PrismaClient; temporal: Client; timeoutMs?: number },
  ) {}

  markDraining(): void {
    this.draining = true;
  }

  async close(): Promise<void> {
    await this.probeConnection?.close();
  }

  async check(): Promise<ReadinessReport> {
    const timeoutMs = this.deps.timeoutMs ?? 2_000;
    const [postgres, temporal] = await Promise.all([
      probe(() => this.deps.prisma.$queryRaw`SELECT 1`, timeoutMs),
      probe(() => this.pingTemporal(timeoutMs), timeoutMs),
    ]);
    const checks: ReadinessReport['checks'] = { postgres, temporal, ...(this.draining && { draining: true as const }) };
    return { ready: !this.draining && postgres === 'ok' && temporal === 'ok', checks };
  }

  /**
   * One plain call on a connection of its own, without the client's retry interceptor: a probe
   * answers now, and leaves no retries behind that could outlive the connection.
   */
  private async pingTemporal(timeoutMs: number): Promise<void> {
    const client = this.deps.temporal.connection;
    if (!(client instanceof Connection)) throw new Error('the Temporal client has no gRPC connection to probe');
    this.probeConnection ??= Connection.lazy({ ...client.options, interceptors: [] });
    const connection = this.probeConnection;
    await connection.withDeadline(Date.now() + timeoutMs, () => connection.workflowService.getSystemInfo({}));
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
