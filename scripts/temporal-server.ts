/**
 * The production engine on this machine: the real `temporal-server` v1.29.1 (the release the
 * compose file runs) on the machine's PostgreSQL, with several history shards, set up by the
 * same schema and namespace scripts the compose jobs run (deploy/temporal). Used by
 * `npm run bench -- --temporal server` and the lifecycle test against it.
 * Built once with `go install` of the pinned version into the project's cache, beside the CLI.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client as TemporalClient, Connection } from '@temporalio/client';
import { Client } from 'pg';
import { DEFAULTS } from '../src/config';
import { customerIdKey, orderStatusKey, paymentDeadlineKey } from '../workflows/messages';
import { ROOT, type ProcessGroup, waitForPort } from './processes';
import { ensureTemporalCli, goInstall, isExecutable, temporalCliCacheDir } from './temporal-cli';

/** The one place the server version is pinned; the compose file runs temporalio/server:1.29.1. */
export const TEMPORAL_SERVER_VERSION = 'v1.29.1';
const SERVER_MODULE = 'go.temporal.io/server/cmd/server';
const SQL_TOOL_MODULE = 'go.temporal.io/server/cmd/tools/sql';

export interface TemporalServerBinaries {
  server: string;
  /** A directory holding `temporal-sql-tool`, as deploy/temporal/setup-schema.sh calls it. */
  sqlToolDir: string;
}

function cacheDir(): string {
  return path.join(path.dirname(temporalCliCacheDir()), `temporal-server-${TEMPORAL_SERVER_VERSION}`);
}

/** The server and the SQL tool, built with the Go toolchain the first time (minutes; the CLI's module cache makes it shorter). */
export function ensureTemporalServer(log: (line: string) => void): TemporalServerBinaries {
  const dir = cacheDir();
  const server = path.join(dir, 'server');
  const sqlTool = path.join(dir, 'sql');
  if (!isExecutable(server) || !isExecutable(sqlTool)) {
    const go = process.env.GO ?? (isExecutable('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : 'go');
    mkdirSync(dir, { recursive: true });
    log(`building temporal-server ${TEMPORAL_SERVER_VERSION} and its SQL tool with go install into ${dir} (first time only, minutes)`);
    if (!goInstall(go, [`${SERVER_MODULE}@${TEMPORAL_SERVER_VERSION}`, `${SQL_TOOL_MODULE}@${TEMPORAL_SERVER_VERSION}`], dir)) throw new Error(`go install of temporal-server ${TEMPORAL_SERVER_VERSION} failed`);
  }
  return { server, sqlToolDir: linkSqlTool(sqlTool, dir) };
}

/** setup-schema.sh calls the tool by its image name, `temporal-sql-tool`; `go install` names it `sql`. */
function linkSqlTool(sqlTool: string, dir: string): string {
  const link = path.join(dir, 'temporal-sql-tool');
  if (!isExecutable(link)) {
    rmSync(link, { force: true });
    symlinkSync(sqlTool, link);
  }
  return dir;
}

export interface RealTemporalServer {
  address: string;
  namespace: string;
  shards: number;
  /** Its persistence and visibility databases on the machine's PostgreSQL. */
  databases: { main: string; visibility: string };
  stop(): Promise<void>;
}

export interface RealTemporalServerOptions {
  /** A PostgreSQL URL with the right to create databases (the server's two databases are made and dropped). */
  databaseAdminUrl: string;
  shards: number;
  namespace?: string;
  /** The process group the server runs in, under the part name `temporal`. */
  group: ProcessGroup;
  log: (line: string) => void;
}

/**
 * Two fresh databases on the given PostgreSQL, their schemas from the release's SQL tool, a
 * server on free ports, then the namespace and the search attributes. Stopping drops both
 * databases.
 */
export async function startRealTemporalServer(o: RealTemporalServerOptions): Promise<RealTemporalServer> {
  const binaries = ensureTemporalServer(o.log);
  const cli = ensureTemporalCli(o.log).path;
  const namespace = o.namespace ?? 'default';
  const tag = randomBytes(4).toString('hex');
  const databases = { main: `temporal_${tag}`, visibility: `temporal_visibility_${tag}` };
  const admin = new URL(o.databaseAdminUrl);
  const sqlEnv = {
    ...process.env,
    PATH: `${binaries.sqlToolDir}${path.delimiter}${process.env.PATH ?? ''}`,
    SQL_PLUGIN: 'postgres12',
    SQL_HOST: admin.hostname,
    SQL_PORT: admin.port || '5432',
    SQL_USER: decodeURIComponent(admin.username) || 'postgres',
    SQL_PASSWORD: decodeURIComponent(admin.password),
    TEMPORAL_DB: databases.main,
    TEMPORAL_VISIBILITY_DB: databases.visibility,
  };
  const root = mkdtempSync(path.join(os.tmpdir(), 'temporal-server-'));
  const dropDatabases = async () => {
    const client = new Client({ connectionString: o.databaseAdminUrl });
    await client.connect();
    try {
      for (const name of Object.values(databases)) await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    } finally {
      await client.end();
    }
    rmSync(root, { recursive: true, force: true });
  };
  try {
    o.log(`temporal-server: schemas for ${databases.main} and ${databases.visibility} (deploy/temporal/setup-schema.sh)`);
    execFileSync('sh', [path.join(ROOT, 'deploy/temporal/setup-schema.sh')], { env: sqlEnv, stdio: ['ignore', 'pipe', 'pipe'] });

    const ports = await reservePorts(SERVER_PORTS);
    mkdirSync(path.join(root, 'config'));
    writeFileSync(path.join(root, 'config', 'development.yaml'), serverConfig({ ...sqlEnv, databases, ports, shards: o.shards }));
    const server = o.group.start('temporal', binaries.server, ['--root', root, '--config', 'config', '--env', 'development', '--allow-no-auth', 'start'], process.env);
    let exited = false;
    server.once('exit', () => {
      exited = true;
    });
    await waitForPort('127.0.0.1', ports.frontend, 120_000, () => exited);
    const address = `127.0.0.1:${ports.frontend}`;
    o.log(`temporal-server: frontend on ${address}, ${o.shards} history shards; namespace ${namespace} (deploy/temporal/setup-namespace.sh)`);
    execFileSync('sh', [path.join(ROOT, 'deploy/temporal/setup-namespace.sh')], {
      env: { ...process.env, TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: namespace, TEMPORAL_CLI: cli, RETENTION_DAYS: process.env.RETENTION_DAYS || String(DEFAULTS.retentionDays) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await untilSearchAttributesServe(address, namespace);
    return {
      address,
      namespace,
      shards: o.shards,
      databases,
      stop: async () => {
        await o.group.stop(['temporal']);
        await dropDatabases();
      },
    };
  } catch (error) {
    await o.group.stop(['temporal']);
    await dropDatabases();
    throw error;
  }
}

/**
 * A new namespace's search attributes reach the frontend's cache a little after they are
 * registered (the production default does not refresh it on every read, unlike the dev
 * server), and a start that sets them fails until then: start (and terminate) a probe
 * workflow with them until one is accepted.
 */
async function untilSearchAttributesServe(address: string, namespace: string): Promise<void> {
  const connection = await Connection.connect({ address });
  try {
    const client = new TemporalClient({ connection, namespace });
    const deadline = Date.now() + 120_000;
    for (;;) {
      try {
        const handle = await client.workflow.start('searchAttributeProbe', {
          workflowId: `search-attribute-probe-${randomBytes(4).toString('hex')}`,
          taskQueue: 'search-attribute-probe',
          typedSearchAttributes: [
            { key: orderStatusKey, value: 'PENDING' },
            { key: customerIdKey, value: 'probe' },
            { key: paymentDeadlineKey, value: new Date() },
          ],
        });
        await handle.terminate('probe');
        return;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await sleep(500);
      }
    }
  } finally {
    await connection.close();
  }
}

const SERVER_PORTS = [
  'frontend',
  'frontendHttp',
  'frontendMembership',
  'history',
  'historyMembership',
  'matching',
  'matchingMembership',
  'worker',
  'workerMembership',
  'metrics',
] as const;

/**
 * Distinct free ports for the server's listeners, from 20000–32767: the server records
 * membership ports in a smallint column, so they must stay below 32768, and below the OS's
 * ephemeral range (32768 and up) no outgoing connection can take a port between this check and
 * the server's bind. Each is held until all are chosen, so none is handed out twice.
 */
async function reservePorts<Name extends string>(names: readonly Name[]): Promise<Record<Name, number>> {
  const held: net.Server[] = [];
  try {
    const ports = {} as Record<Name, number>;
    for (const name of names) {
      let server: net.Server | undefined;
      while (!server) server = await listenOn(20_000 + Math.floor(Math.random() * 12_768));
      held.push(server);
      ports[name] = (server.address() as net.AddressInfo).port;
    }
    return ports;
  } finally {
    await Promise.all(held.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

/** A server listening on the port, or undefined when the port is taken. */
function listenOn(port: number): Promise<net.Server | undefined> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

interface ConfigInput {
  SQL_HOST: string;
  SQL_PORT: string;
  SQL_USER: string;
  SQL_PASSWORD: string;
  databases: { main: string; visibility: string };
  ports: Record<(typeof SERVER_PORTS)[number], number>;
  shards: number;
}

/** The server's static config: all four services in one process, as the temporalio/server image runs them. */
function serverConfig(c: ConfigInput): string {
  const store = (database: string, maxConns: number) => `
      sql:
        pluginName: postgres12
        databaseName: ${database}
        connectAddr: "${c.SQL_HOST}:${c.SQL_PORT}"
        connectProtocol: tcp
        user: ${JSON.stringify(c.SQL_USER)}
        password: ${JSON.stringify(c.SQL_PASSWORD)}
        maxConns: ${maxConns}
        maxIdleConns: ${maxConns}
        maxConnLifetime: 1h`;
  const service = (grpcPort: number, membershipPort: number, extra = '') => `
    rpc:
      grpcPort: ${grpcPort}
      membershipPort: ${membershipPort}
      bindOnLocalHost: true${extra}`;
  return `log:
  stdout: true
  level: error
persistence:
  defaultStore: default
  visibilityStore: visibility
  numHistoryShards: ${c.shards}
  datastores:
    default:${store(c.databases.main, 10)}
    visibility:${store(c.databases.visibility, 2)}
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
  metrics:
    prometheus:
      framework: tally
      timerType: histogram
      listenAddress: 127.0.0.1:${c.ports.metrics}
services:
  frontend:${service(c.ports.frontend, c.ports.frontendMembership, `\n      httpPort: ${c.ports.frontendHttp}`)}
  history:${service(c.ports.history, c.ports.historyMembership)}
  matching:${service(c.ports.matching, c.ports.matchingMembership)}
  worker:${service(c.ports.worker, c.ports.workerMembership)}
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: 127.0.0.1:${c.ports.frontend}
dcRedirectionPolicy:
  policy: noop
dynamicConfigClient:
  filepath: ${path.join(ROOT, 'deploy/temporal/dynamicconfig.yaml')}
  pollInterval: 60s
`;
}
