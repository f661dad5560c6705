/**
 * `npm start`: the whole system on local defaults. Temporal dev server (SQLite file under
 * .data/, Web UI on :8233, search attributes registered), database created, migrated and
 * seeded, then the worker and the API. Logs are prefixed by part; Ctrl-C stops everything.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { redactEndpoint } from '../activities/order-events';
import { loadConfig } from '../src/config';
import { applyMigrations, ensureDatabase } from '../src/db/migrate';
import { seed } from '../prisma/seed';
import { devServerArgs, ProcessGroup, redactUrl, ROOT, typescriptEntry, waitForPort } from './processes';
import { ensureTemporalCli } from './temporal-cli';
import { setNamespaceRetentionOnceServing } from './temporal-namespace';

const DATA_DIR = path.join(ROOT, '.data');
const UI_PORT = Number(process.env.TEMPORAL_UI_PORT ?? 8233);

function log(name: string, line: string): void {
  process.stdout.write(`[${name.padEnd(8)}] ${line}\n`);
}

const parts = new ProcessGroup({ onLine: log, onUnexpectedExit: () => void stopAll(1) });

async function stopAll(exitCode: number): Promise<void> {
  if (!parts.beginStopping()) return;
  log('start', 'stopping: API and worker first, then Temporal');
  await parts.stop(['api', 'worker']);
  await parts.stop(['temporal']);
  process.exit(exitCode);
}

async function main(): Promise<void> {
  const config = loadConfig();
  process.once('SIGINT', () => void stopAll(0));
  process.once('SIGTERM', () => void stopAll(0));

  const [host = 'localhost', portText = '7233'] = config.temporal.address.split(':');
  const cli = ensureTemporalCli((line) => log('start', line));
  log('start', `Temporal CLI: ${cli.path} (${cli.source})`);
  mkdirSync(DATA_DIR, { recursive: true });
  parts.start(
    'temporal',
    cli.path,
    devServerArgs({
      dbFilename: path.join(DATA_DIR, 'temporal.db'),
      ip: host === 'localhost' ? '127.0.0.1' : host,
      port: Number(portText),
      uiPort: UI_PORT,
      namespace: config.temporal.namespace,
    }),
  );

  log('start', `database: ${redactUrl(config.databaseUrl)}`);
  await ensureDatabase(config.databaseUrl);
  const applied = await applyMigrations(config.databaseUrl);
  log('start', applied.length ? `migrations applied: ${applied.join(', ')}` : 'migrations: up to date');
  const seeded = await seed(config.databaseUrl);
  log('start', seeded.length ? `sample products added: ${seeded.join(', ')}` : 'sample products: present');

  await waitForPort(host, Number(portText), 60_000);
  await waitForPort(host, UI_PORT, 60_000);
  // Closed workflows are kept as long as closed orders (RETENTION_DAYS), not the dev server's default.
  await setNamespaceRetentionOnceServing(config.temporal.address, config.temporal.namespace, config.retention.retentionSeconds);
  log('start', `Temporal at ${config.temporal.address}, Web UI at http://localhost:${UI_PORT}; closed workflows kept ${config.retention.retentionSeconds / 86_400} days`);

  parts.start('worker', ...typescriptEntry('src/worker.ts'));
  parts.start('api', ...typescriptEntry('src/api/server.ts'));
  await waitForPort('127.0.0.1', config.port, 60_000);
  log('start', `ready: API at http://localhost:${config.port}, Web UI at http://localhost:${UI_PORT} (Ctrl-C stops everything)`);
  // Which keys, never the keys themselves: this output is a log too.
  log(
    'start',
    `callers send Authorization: Bearer <key>: ${config.storefrontKey === undefined ? 'a storefront key' : 'STOREFRONT_KEY (channel default)'} on /orders, ` +
      'ADMIN_TOKEN on /admin (development values in the README); more keys: npm run keys -- create',
  );
  log(
    'start',
    config.orderEvents.endpoints.length > 0
      ? `order events go to ${config.orderEvents.endpoints.map(redactEndpoint).join(', ')}`
      : 'order events are written, not sent: run `npm run events:listen` and start with ORDER_EVENTS_URL=http://localhost:4000/order-events to receive them (docs/events.md)',
  );
}

main().catch((error: unknown) => {
  log('start', `failed: ${(error as Error).stack ?? String(error)}`);
  void stopAll(1);
});
