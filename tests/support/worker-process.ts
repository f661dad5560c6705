/**
 * Starts a real worker in its own OS process (the child runs tests/support/worker-child.ts), for
 * fault tests that kill it with SIGKILL: no shutdown hook runs, in-flight activities and open
 * database transactions are simply cut off, as when a machine dies.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { WorkerChildMessage } from './worker-child';

export interface WorkerProcessOptions {
  temporalAddress: string;
  namespace?: string;
  taskQueue: string;
  databaseUrl: string;
  databasePoolSize?: number;
  /** More environment for the worker's loadConfig (e.g. RECLAIM_ENABLED). */
  env?: Record<string, string>;
}

export interface WorkerProcess {
  pid: number;
  /** Resolves with the exit code or signal once the process has gone. */
  exited: Promise<string>;
  /** True until the process has exited. */
  alive(): boolean;
  /** The fault: SIGKILL, then waits until the process is gone. */
  kill(): Promise<void>;
  /** The other fault: SIGSTOP, the process freezes with its connections open (a hung machine). */
  pause(): void;
  /** SIGCONT after `pause`. */
  resume(): void;
  /** Cleanup: asks for a graceful shutdown, and kills it if that takes too long. */
  stop(): Promise<void>;
  /** The last lines it wrote, for failure messages. */
  output(): string;
}

const ENTRY = path.join(__dirname, 'worker-child.ts');
const READY_TIMEOUT_MS = 30_000;
const GRACEFUL_STOP_MS = 10_000;
const KEPT_OUTPUT_LINES = 40;

export async function startWorkerProcess(options: WorkerProcessOptions): Promise<WorkerProcess> {
  const child = fork(ENTRY, [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: {
      ...process.env,
      NODE_ENV: 'test',
      TEMPORAL_ADDRESS: options.temporalAddress,
      TEMPORAL_NAMESPACE: options.namespace ?? 'default',
      TEMPORAL_TASK_QUEUE: options.taskQueue,
      DATABASE_URL: options.databaseUrl,
      DATABASE_POOL_SIZE: String(options.databasePoolSize ?? 20),
      ...options.env,
    },
  });
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString().split('\n').filter((l) => l.trim() !== ''));
    lines.splice(0, Math.max(0, lines.length - KEPT_OUTPUT_LINES));
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const output = () => lines.join('\n');
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ?? `exit code ${code}`));
  });

  await waitUntilReady(child, exited, output);
  const pid = child.pid;
  if (pid === undefined) throw new Error('worker process has no pid');
  return {
    pid,
    exited,
    output,
    alive: () => child.exitCode === null && child.signalCode === null,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    pause() {
      child.kill('SIGSTOP');
    },
    resume() {
      child.kill('SIGCONT');
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // A paused process would only take the SIGTERM once continued.
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), GRACEFUL_STOP_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}

function waitUntilReady(child: ChildProcess, exited: Promise<string>, output: () => string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`worker process not ready within ${READY_TIMEOUT_MS} ms:\n${output()}`));
    }, READY_TIMEOUT_MS);
    child.on('message', (message: WorkerChildMessage) => {
      if (message.kind !== 'ready') return;
      clearTimeout(timer);
      resolve();
    });
    void exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(`worker process ended (${how}) before it was ready:\n${output()}`));
    });
  });
}
