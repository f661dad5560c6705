/**
 * Replays the recorded histories (tests/histories, made by `npm run record-histories`)
 * against the workflow code: any nondeterminism fails the test. Two deliberately changed
 * copies of orderWorkflow show that the check bites, and that patched() is the way out.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { HistoryAndWorkflowId } from '@temporalio/client';
import { bundleWorkflowCode, Worker, type ReplayWorkerOptions } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { HISTORIES_DIR, SCENARIOS } from './tools/record-histories';
import { workflowBundle } from './support/stack';

interface Fixture extends HistoryAndWorkflowId {
  workflowType: string;
}

/** Every history under tests/histories, including older versions kept in subfolders. */
function loadFixtures(dir = HISTORIES_DIR): Fixture[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return loadFixtures(file);
    if (!entry.name.endsWith('.json')) return [];
    const history = JSON.parse(readFileSync(file, 'utf8')) as { events: { workflowExecutionStartedEventAttributes?: { workflowType?: { name?: string } } }[] };
    const workflowType = history.events[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? '';
    return [{ workflowId: path.relative(HISTORIES_DIR, file), workflowType, history }];
  });
}

async function replay(options: ReplayWorkerOptions, fixtures: Fixture[]): Promise<Map<string, Error | undefined>> {
  const results = new Map<string, Error | undefined>();
  for await (const { workflowId, error } of Worker.runReplayHistories(options, fixtures)) results.set(workflowId, error);
  return results;
}

const fixtures = loadFixtures();
const orderFixtures = fixtures.filter((f) => f.workflowType === 'orderWorkflow');

async function bundle(file: string): Promise<ReplayWorkerOptions> {
  const noop = () => undefined;
  const logger = { trace: noop, debug: noop, info: noop, warn: noop, error: console.error, log: noop };
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve(file), logger });
  return { workflowBundle: { code } };
}

test('every scenario has a recorded history', () => {
  const recorded = fixtures.map((f) => f.workflowId);
  for (const scenario of SCENARIOS) expect(recorded).toContain(`${scenario}.json`);
  expect(new Set(fixtures.map((f) => f.workflowType))).toEqual(new Set(['orderWorkflow', 'latePaymentWorkflow']));
});

test('every recorded history replays against the current workflow code without nondeterminism', async () => {
  const results = await replay({ workflowBundle: workflowBundle() }, fixtures);

  expect(results.size).toBe(fixtures.length);
  const failures = [...results].filter(([, error]) => error !== undefined).map(([id, error]) => `${id}: ${error?.message}`);
  expect(failures).toEqual([]);
});

describe('a change to orderWorkflow', () => {
  test('made without patched() fails to replay every recorded order with a DeterminismViolationError', async () => {
    const results = await replay(await bundle('./replay/unpatched-change-workflows'), fixtures);

    for (const { workflowId, workflowType } of fixtures) {
      const error = results.get(workflowId);
      if (workflowType === 'orderWorkflow') expect(error).toBeInstanceOf(DeterminismViolationError);
      else expect(error).toBeUndefined();
    }
    expect(orderFixtures.length).toBeGreaterThan(0);
  }, 120_000);

  test('made behind patched() replays every recorded history', async () => {
    const results = await replay(await bundle('./replay/patched-change-workflows'), fixtures);

    expect([...results.values()]).toEqual(fixtures.map(() => undefined));
  }, 120_000);
});
