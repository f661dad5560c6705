/** `npm run bench` as a child process, for the tests that keep it working: its exit code and everything it printed. */
import { spawn } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');

export interface BenchRun {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `scripts/bench/index.ts` with `args` from the repository root and waits for it to exit.
 * The workers of the stacks it starts load the workflow bundle jest's global setup built, as the
 * image's workers load theirs (WORKER_WORKFLOW_BUNDLE_PATH), instead of each running webpack at
 * start: seconds of CPU per worker, and the approaches smoke starts four. Bundling at start stays
 * covered by tests/api-operability.test.ts, whose worker runs `src/worker.ts` without it.
 */
export function runBench(args: string[]): Promise<BenchRun> {
  const bundle = process.env.CHECKOUT_TEST_WORKFLOW_BUNDLE;
  if (!bundle) throw new Error('CHECKOUT_TEST_WORKFLOW_BUNDLE is not set: the jest global setup provides it');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/bench/index.ts', ...args], {
      cwd: ROOT,
      env: { ...process.env, WORKER_WORKFLOW_BUNDLE_PATH: bundle },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (exitCode) => resolve({ exitCode, stdout, stderr }));
  });
}
