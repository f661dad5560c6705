/**
 * `npm start`: the whole system on local defaults. Temporal dev server (SQLite file under
 * .data/, Web UI on :8233, search attributes registered), database created, migrated and
 * seeded, then the worker and the API. Logs are prefixed by part; Ctrl-C stops everything.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { loadConfig } from '../src/config';
import { applyMigrations, ensureDatabase } from '../src/db/migrate';
import { seed } from '../prisma/seed';
import { SEARCH_ATTRIBUTES } from '../workflows/messages';
import { ensureTemporalCli } from './temporal-cli';

const ROOT = path.resolve(__dirname, '..');
const DATA_DIR = path.join(ROOT, '.data');
const UI_PORT = Number(process.env.TEMPORAL_UI_PORT ?? 8233);

const children: { name: string; child: ChildProcess }[] = [];
let stopping = false;

function log(name: string, line: string): void {
  process.stdout.write(`[${name.padEnd(8)}] ${line}\n`);
}

function run(name: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  for (const stream of [child.stdout, child.stderr]) {
    if (stream) readline.createInterface({ input: stream }).on('line', (line) => log(name, line));
  }
  child.on('exit', (code, signal) => {
    log(name, `exited (${signal ?? code})`);
    if (!stopping) void stopAll(1);
  });
  children.push({ name, child });
  return child;
}

async function waitForPort(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host, port }, () => {
        socket.end();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function stopAll(exitCode: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  log('start', 'stopping: API and worker first, then Temporal');
  const stop = async (names: string[]) =>
    Promise.all(
      children
        .filter((c) => names.includes(c.name) && c.child.exitCode === null && c.child.signalCode === null)
        .map(({ child }) => new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
          setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
        })),
    );
  await stop(['api', 'worker']);
  await stop(['temporal']);
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
  run('temporal', cli.path, [
    'server', 'start-dev',
    '--db-filename', path.join(DATA_DIR, 'temporal.db'),
    '--ip', host === 'localhost' ? '127.0.0.1' : host,
    '--port', portText,
    '--ui-port', String(UI_PORT),
    '--namespace', config.temporal.namespace,
    '--log-level', 'error',
    ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]),
  ]);

  log('start', `database: ${redact(config.databaseUrl)}`);
  await ensureDatabase(config.databaseUrl);
  const applied = await applyMigrations(config.databaseUrl);
  log('start', applied.length ? `migrations applied: ${applied.join(', ')}` : 'migrations: up to date');
  const seeded = await seed(config.databaseUrl);
  log('start', seeded.length ? `sample products added: ${seeded.join(', ')}` : 'sample products: present');

  await waitForPort(host, Number(portText), 60_000);
  await waitForPort(host, UI_PORT, 60_000);
  log('start', `Temporal at ${config.temporal.address}, Web UI at http://localhost:${UI_PORT}`);

  const tsx = require.resolve('tsx/cli');
  run('worker', process.execPath, [tsx, 'src/worker.ts']);
  run('api', process.execPath, [tsx, 'src/api/server.ts']);
  await waitForPort('127.0.0.1', config.port, 60_000);
  log('start', `ready: API at http://localhost:${config.port}, Web UI at http://localhost:${UI_PORT} (Ctrl-C stops everything)`);
}

function redact(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

main().catch((error: unknown) => {
  log('start', `failed: ${(error as Error).stack ?? String(error)}`);
  void stopAll(1);
});
