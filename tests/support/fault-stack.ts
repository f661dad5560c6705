/**
 * What most fault tests stand on: a dev server and a database of the test file's own and a
 * fault scenario on them, started before the file's tests and stopped after them.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createTestDatabase, type TestDatabase } from './database';
import { faultScenario, type FaultScenario } from './fault-scenario';
import { startDevServer } from './stack';

export interface FaultStack {
  env: TestWorkflowEnvironment;
  db: TestDatabase;
  scenario: FaultScenario;
}

/** Registers the file's beforeAll/afterAll; the returned stack is filled in before its tests run. */
export function useFaultStack(customerId: string): FaultStack {
  const stack: Partial<FaultStack> = {};
  beforeAll(async () => {
    const [env, db] = await Promise.all([startDevServer(), createTestDatabase()]);
    Object.assign(stack, {
      env,
      db,
      scenario: faultScenario({ temporalAddress: env.address, client: env.client, databaseUrl: db.url, prisma: db.prisma, customerId }),
    });
  });
  afterAll(async () => {
    await stack.scenario?.stopWorkers();
    await stack.env?.teardown();
    await stack.db?.drop();
  });
  return stack as FaultStack;
}
