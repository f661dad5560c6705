/**
 * The system under test. By default the bench starts its own: a Temporal dev server (pinned
 * CLI, in memory, own ports, search attributes registered), a fresh database created, migrated
 * and dropped at the end, and the worker and the API as separate processes, exactly as
 * `npm start` runs them. Or it targets a stack that is already running.
 */
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { applyMigrations, ensureDatabase } from '../../src/db/migrate';
import { devServerArgs, freePort, ProcessGroup, typescriptEntry, waitForPort } from '../processes';
import { ensureTemporalCli } from '../temporal-cli';
import { startRealTemporalServer } from '../temporal-server';
import type { ProcessSelector } from './proc-stats';
import type { Engine, TargetStack } from './options';

export interface Stack {
  /** What the stack runs on: the dev server or the real server (with its shards), for the report. */
  engine: string;
  apiUrl: string;
  /** The storefront key every POST /orders carries. */
  apiKey: string;
  databaseUrl: string;
  databaseName: string;
  temporalAddress?: string;
  /** The processes to measure, by part. */
  parts: Record<string, ProcessSelector>;
  /** The environment the bench gave the worker and API, for the report. */
  settings: Record<string, string>;
  /** A PAYMENT_WEBHOOK_SECRET the API accepts, when the bench knows one: it pays orders with it. */
  webhookSecret?: string;
  /** On a stack the bench started: SIGKILLs the (first) worker process, as a crash would. */
  killWorker?(): Promise<void>;
  /** Starts that worker again, as before, and answers its pid; its processes are found by `workerSelector`. */
  restartWorker?(): number | undefined;
  /**
   * On a stack the bench started: stops the API and the workers (SIGTERM), leaving Temporal and
   * the database up. Their PostgreSQL backends exit with them, and a backend that exits writes
   * its statistics at once (an idle one, only within PGSTAT_IDLE_INTERVAL, 10 s).
   */
  stopApiAndWorkers?(): Promise<void>;
  stop(): Promise<void>;
}

/** The worker processes of a stack the bench started, whichever run now (one may have been killed and restarted). */
export const workerSelector: ProcessSelector = { kind: 'children', of: process.pid, command: 'src/worker.ts' };

export interface OwnStackOptions {
  engine: Engine;
  /** History shards of the real server. */
  shards: number;
  workers: number;
  databaseAdminUrl: string;
  env: Record<string, string>;
  log: (line: string) => void;
  /** Called when a part dies while the bench runs; the bench cannot go on. */
  onPartDied: (name: string, lastLines: string[]) => void;
}

const KEPT_LINES = 40;

export async function startOwnStack(o: OwnStackOptions): Promise<Stack> {
  const lines = new Map<string, string[]>();
  /** Parts the bench killed on purpose: their exit is no failure. */
  const killed = new Set<string>();
  const parts = new ProcessGroup({
    onLine: (name, line) => {
      const kept = lines.get(name) ?? [];
      kept.push(line);
      if (kept.length > KEPT_LINES) kept.shift();
      lines.set(name, kept);
    },
    onUnexpectedExit: (name) => {
      if (!killed.delete(name)) o.onPartDied(name, lines.get(name) ?? []);
    },
  });

  const databaseName = `checkout_bench_${randomBytes(5).toString('hex')}`;
  const databaseUrl = withDatabase(o.databaseAdminUrl, databaseName);
  let databaseCreated = false;
  let stopTemporal = () => parts.stop(['temporal']);
  const workerNames = Array.from({ length: o.workers }, (_, i) => (i === 0 ? 'worker' : `worker-${i + 1}`));
  const stopApiAndWorkers = () => parts.stop(['api', ...workerNames]);
  const stop = async () => {
    await stopApiAndWorkers();
    await stopTemporal();
    if (databaseCreated) await dropDatabase(o.databaseAdminUrl, databaseName);
  };

  try {
    const apiPort = await freePort();
    let temporalAddress: string;
    let engine: string;
    // The real server's own PostgreSQL backends, measured as parts of their own (the dev server keeps its store in memory).
    let temporalDatabases: Record<string, ProcessSelector> = {};
    if (o.engine === 'server') {
      const server = await startRealTemporalServer({ databaseAdminUrl: o.databaseAdminUrl, shards: o.shards, group: parts, log: o.log });
      stopTemporal = server.stop;
      temporalAddress = server.address;
      engine = `temporal-server v1.29.1 on PostgreSQL, ${server.shards} history shards`;
      temporalDatabases = {
        'temporal-db': { kind: 'postgresBackends', database: server.databases.main },
        'temporal-visibility-db': { kind: 'postgresBackends', database: server.databases.visibility },
      };
    } else {
      const [temporalPort, httpPort, metricsPort] = await Promise.all([freePort(), freePort(), freePort()]);
      parts.start('temporal', ensureTemporalCli(o.log).path, devServerArgs({ ip: '127.0.0.1', port: temporalPort, httpPort, metricsPort, namespace: 'default' }));
      await waitForPort('127.0.0.1', temporalPort, 60_000);
      temporalAddress = `127.0.0.1:${temporalPort}`;
      engine = 'Temporal CLI dev server (in memory)';
    }

    await ensureDatabase(databaseUrl);
    databaseCreated = true;
    await applyMigrations(databaseUrl);

    // Request logs off (warn); the rest is the bench's tuning (--env), reported with the figures.
    const settings = { LOG_LEVEL: 'warn', ...o.env };
    // The API's bootstrap storefront key: checked like any key, and kept out of the report.
    const apiKey = `bench-${randomBytes(24).toString('hex')}`;
    // The bench signs its payments with a secret of its own (not printed with the settings).
    const webhookSecret = `whsec_${randomBytes(32).toString('base64')}`;
    const env = {
      ...process.env,
      STOREFRONT_KEY: apiKey,
      DATABASE_URL: databaseUrl,
      TEMPORAL_ADDRESS: temporalAddress,
      TEMPORAL_NAMESPACE: 'default',
      PORT: String(apiPort),
      // Any free port, so the bench's worker never collides with one already running here.
      WORKER_METRICS_PORT: '0',
      ...settings,
      PAYMENT_WEBHOOK_SECRET: webhookSecret,
    };
    const workers = workerNames.map((name) => ({ name, child: parts.start(name, ...typescriptEntry('src/worker.ts'), env) }));
    let firstWorker = workers[0]?.child;
    const api = parts.start('api', ...typescriptEntry('src/api/server.ts'), env);
    await waitForPort('127.0.0.1', apiPort, 120_000);
    o.log(`stack up: API :${apiPort}, ${workers.length} worker(s), ${engine} at ${temporalAddress}, database ${databaseName}`);
    const temporalPid = parts.pid('temporal');

    return {
      engine,
      apiUrl: `http://127.0.0.1:${apiPort}`,
      apiKey,
      databaseUrl,
      databaseName,
      temporalAddress,
      parts: {
        api: { kind: 'tree', pid: pidOf(api.pid) },
        ...Object.fromEntries(workers.map(({ name, child }) => [name, { kind: 'tree', pid: pidOf(child.pid) } as const])),
        temporal: { kind: 'tree', pid: pidOf(temporalPid) },
        ...temporalDatabases,
        postgres: { kind: 'postgresBackends', database: databaseName },
        bench: { kind: 'self' },
      },
      settings,
      webhookSecret,
      killWorker: async () => {
        const child = firstWorker;
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        killed.add('worker');
        await new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        });
      },
      restartWorker: () => {
        firstWorker = parts.start('worker', ...typescriptEntry('src/worker.ts'), env);
        return firstWorker.pid;
      },
      stopApiAndWorkers,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

export function targetStack(target: TargetStack): Stack {
  const databaseName = decodeURIComponent(new URL(target.databaseUrl).pathname.replace(/^\//, ''));
  const parts: Record<string, ProcessSelector> = {
    ...Object.fromEntries(Object.entries(target.pids).map(([name, pid]) => [name, { kind: 'tree', pid } as const])),
    postgres: { kind: 'postgresBackends', database: databaseName },
    bench: { kind: 'self' },
  };
  return {
    engine: 'a running stack',
    apiUrl: target.apiUrl,
    apiKey: target.apiKey,
    databaseUrl: target.databaseUrl,
    databaseName,
    ...(target.temporalAddress && { temporalAddress: target.temporalAddress }),
    parts,
    settings: {},
    ...(target.webhookSecret && { webhookSecret: target.webhookSecret }),
    stop: async () => undefined,
  };
}

function pidOf(pid: number | undefined): number {
  if (pid === undefined) throw new Error('a stack process failed to start');
  return pid;
}

export function withDatabase(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}
