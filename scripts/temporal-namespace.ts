/**
 * The namespace keeps closed workflows as long as the database keeps closed orders
 * (RETENTION_DAYS, `config.retention.retentionSeconds`): no order's history outlives its row. The
 * dev server registers its namespaces with a retention of its own, so `npm start` and the test
 * stacks set it once the server answers; the compose stack's namespace job does the same with the
 * CLI (deploy/temporal/setup-namespace.sh).
 */
import { Connection, type ConnectionLike } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { setTimeout as sleep } from 'node:timers/promises';

export async function setNamespaceRetention(connection: Pick<ConnectionLike, 'workflowService'>, namespace: string, retentionSeconds: number): Promise<void> {
  await connection.workflowService.updateNamespace({
    namespace,
    config: { workflowExecutionRetentionTtl: msToTs(retentionSeconds * 1000) },
  });
}

/** The namespace's retention in seconds, as the server reports it. */
export async function namespaceRetentionSeconds(connection: Pick<ConnectionLike, 'workflowService'>, namespace: string): Promise<number> {
  const { config } = await connection.workflowService.describeNamespace({ namespace });
  return Number(config?.workflowExecutionRetentionTtl?.seconds ?? 0);
}

/**
 * Sets the retention as soon as a server that just started serves: its frontend listens a moment
 * before it is healthy ("Frontend is not healthy yet"), so the call is repeated until `timeoutMs`.
 */
export async function setNamespaceRetentionOnceServing(address: string, namespace: string, retentionSeconds: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const connection = await Connection.connect({ address });
      try {
        await setNamespaceRetention(connection, namespace, retentionSeconds);
        return;
      } finally {
        await connection.close();
      }
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(500);
    }
  }
}
