/**
 * Bundles workflows/ once at build time, so a production worker starts from a fixed bundle
 * (WORKER_WORKFLOW_BUNDLE_PATH) instead of running webpack at every start, and every replica
 * of one image runs byte-for-byte the same workflow code.
 * Usage: node dist/scripts/build-workflow-bundle.js <output file>
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

export async function buildWorkflowBundle(outputFile: string): Promise<void> {
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows') });
  await mkdir(path.dirname(outputFile), { recursive: true });
  await writeFile(outputFile, code);
}

if (require.main === module) {
  const outputFile = process.argv[2];
  if (!outputFile) {
    console.error('usage: build-workflow-bundle <output file>');
    process.exit(2);
  }
  buildWorkflowBundle(path.resolve(outputFile))
    .then(() => console.log(`workflow bundle written to ${outputFile}`))
    .catch((error: unknown) => {
      console.error(error);
      process.exit(1);
    });
}
