import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { ensureTemporalCli } from '../../scripts/temporal-cli';
import { workflowsPath } from '../../src/worker';

export default async function globalSetup(): Promise<void> {
  process.env.TEMPORAL_CLI_PATH = ensureTemporalCli().path;
  const { code } = await bundleWorkflowCode({ workflowsPath: workflowsPath(), logger: quietLogger });
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'checkout-tests-')), 'workflows-bundle.js');
  writeFileSync(file, code);
  process.env.CHECKOUT_TEST_WORKFLOW_BUNDLE = file;
}

const noop = () => undefined;
const quietLogger = { trace: noop, debug: noop, info: noop, warn: console.warn, error: console.error, log: noop };
