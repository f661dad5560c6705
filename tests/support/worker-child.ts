/**
 * Entry point of a worker in a child process, so that fault tests can kill it for real
 * (SIGKILL) without taking jest down. It runs the real `runWorker` with settings read
 * from the environment by the real `loadConfig` (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
 * TEMPORAL_TASK_QUEUE, DATABASE_URL, ...) and the workflow bundle jest's global setup built
 * (CHECKOUT_TEST_WORKFLOW_BUNDLE), so it starts in a second rather than bundling again.
 * It tells its parent `ready` over the IPC channel once it is connected and polling.
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { runWorker } from '../../src/worker';

export type WorkerChildMessage = { kind: 'ready'; pid: number };

async function main(): Promise<void> {
  const codePath = process.env.CHECKOUT_TEST_WORKFLOW_BUNDLE;
  if (!codePath) throw new Error('CHECKOUT_TEST_WORKFLOW_BUNDLE is not set');
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const config = loadConfig();
  const ready: WorkerChildMessage = { kind: 'ready', pid: process.pid };
  await runWorker(config, {
    logger: createLogger('worker', 'warn'),
    workflowBundle: { codePath },
    onRunning: () => process.send?.(ready),
  });
}

// If the test that started this worker goes away, so does the worker (no orphans left polling).
process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error('worker process failed:', error);
    process.exit(1);
  },
);
