/**
 * What the fault tests stand on: a dev server and a database of the test file's own and a
 * fault scenario on them, started before the file's tests and stopped after them; variants
 * with a PostgreSQL server to crash, or a dev server to stop and start again.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { PrismaClient } from '../../prisma/generated/client';
import { freePort } from '../../scripts/processes';
import { createPrismaClient, type DatabaseTimeouts } from '../../src/db/client';
import { applyMigrations } from '../../src/db/migrate';
import { createTestDatabase, type TestDatabase } from './database';
import { faultScenario, type FaultScenario } from './fault-scenario';
import { startPostgresInstance, type PostgresInstance } from './postgres-instance';
import { startDevServer, useStarted } from './stack';

export interface FaultStack {
  env: TestWorkflowEnvironment;
  db: TestDatabase;
  scenario: FaultScenario;
}

export function useFaultStack(customerId: string): FaultStack {
  return useStarted(
    async () => {
      const [env, db] = await Promise.all([startDevServer(), createTestDatabase()]);
      const scenario = faultScenario({ temporalAddress: env.address, client: env.client, databaseUrl: db.url, prisma: db.prisma, customerId });
      return { env, db, scenario };
    },
    async ({ scenario, env, db }) => {
      await scenario?.stopWorkers();
      await env?.teardown();
      await db?.drop();
    },
  );
}

export interface OwnPostgresStack {
  /** The test file's own PostgreSQL server, for the tests that crash it. */
  postgres: PostgresInstance;
  env: TestWorkflowEnvironment;
  databaseUrl: string;
  prisma: PrismaClient;
  scenario: FaultScenario;
}

/**
 * Like `useFaultStack`, on a PostgreSQL server of the file's own. `databaseTimeouts` gives the
 * test's client the API's timeouts; `beforeStop` runs first in afterAll (while the database is up).
 */
export function useOwnPostgresStack(
  customerId: string,
  options: { databaseTimeouts?: DatabaseTimeouts; beforeStop?: () => Promise<void> } = {},
): OwnPostgresStack {
  return useStarted(
    async () => {
      const [postgres, env] = await Promise.all([startPostgresInstance(), startDevServer()]);
      const databaseUrl = await postgres.createDatabase('checkout');
      await applyMigrations(databaseUrl);
      const prisma = createPrismaClient(databaseUrl, 5, options.databaseTimeouts);
      const scenario = faultScenario({ temporalAddress: env.address, client: env.client, databaseUrl, prisma, customerId });
      return { postgres, env, databaseUrl, prisma, scenario };
    },
    async ({ scenario, prisma, env, postgres }) => {
      await options.beforeStop?.();
      await scenario?.stopWorkers();
      await prisma?.$disconnect();
      await env?.teardown();
      await postgres?.destroy();
    },
  );
}

export interface RestartableTemporalStack {
  db: TestDatabase;
  /** The client `connect` made; it keeps running through a restart. */
  client: Client;
  scenario: FaultScenario;
  /** Stops the dev server; its state stays on disk. */
  stopTemporal(): Promise<void>;
  /** Starts the dev server again on the same state file and port. */
  startTemporal(): Promise<void>;
}

/**
 * Like `useFaultStack`, with a dev server that can stop and start again on its persisted state
 * (its SQLite file, the same port), for the tests that take Temporal down.
 */
export function useRestartableTemporalStack(
  customerId: string,
  options: { connect(address: string): Promise<Client>; beforeStop?: () => Promise<void> },
): RestartableTemporalStack {
  let stateDir: string | undefined;
  let server: TestWorkflowEnvironment | undefined;
  return useStarted(
    async () => {
      stateDir = await mkdtemp(path.join(os.tmpdir(), 'checkout-temporal-'));
      const serverOptions = { dbFilename: path.join(stateDir, 'temporal.db'), port: await freePort() };
      let db: TestDatabase;
      [server, db] = await Promise.all([startDevServer(serverOptions), createTestDatabase()]);
      const address = `127.0.0.1:${serverOptions.port}`;
      const client = await options.connect(address);
      const scenario = faultScenario({ temporalAddress: address, client, databaseUrl: db.url, prisma: db.prisma, customerId });
      const stopTemporal = async () => {
        await server?.teardown();
        server = undefined;
      };
      const startTemporal = async () => {
        server = await startDevServer(serverOptions);
      };
      return { db, client, scenario, stopTemporal, startTemporal };
    },
    async ({ scenario, client, db }) => {
      await scenario?.stopWorkers();
      await options.beforeStop?.();
      await client?.connection.close();
      await server?.teardown();
      await db?.drop();
      if (stateDir) await rm(stateDir, { recursive: true, force: true });
    },
  );
}
