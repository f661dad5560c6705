/**
 * Child processes for the local stack, shared by `npm start` and `npm run bench`: each part
 * (Temporal, worker, API) is its own process, so it can be stopped in order and measured.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { SEARCH_ATTRIBUTES } from '../workflows/messages';

export const ROOT = path.resolve(__dirname, '..');

export interface ProcessGroupOptions {
  /** Every line a part prints, and a line when it exits. */
  onLine: (name: string, line: string) => void;
  /** A part exited while the group was not stopping: the stack is broken. */
  onUnexpectedExit: (name: string) => void;
}

interface Part {
  name: string;
  child: ChildProcess;
}

export class ProcessGroup {
  private readonly parts: Part[] = [];
  private stopping = false;

  constructor(private readonly options: ProcessGroupOptions) {}

  start(name: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [child.stdout, child.stderr]) {
      if (stream) readline.createInterface({ input: stream }).on('line', (line) => this.options.onLine(name, line));
    }
    child.on('exit', (code, signal) => {
      this.options.onLine(name, `exited (${signal ?? code})`);
      if (!this.stopping) this.options.onUnexpectedExit(name);
    });
    this.parts.push({ name, child });
    return child;
  }

  pid(name: string): number | undefined {
    return this.parts.find((p) => p.name === name)?.child.pid;
  }

  /** From now on an exit is expected; returns false when the group was already stopping. */
  beginStopping(): boolean {
    if (this.stopping) return false;
    this.stopping = true;
    return true;
  }

  /** SIGTERM to the named parts (SIGKILL after the grace period); resolves when they have exited. */
  async stop(names: string[], graceMs = 15_000): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.parts
        .filter((p) => names.includes(p.name) && p.child.exitCode === null && p.child.signalCode === null)
        .map(
          ({ child }) =>
            new Promise<void>((resolve) => {
              child.once('exit', () => resolve());
              child.kill('SIGTERM');
              setTimeout(() => child.kill('SIGKILL'), graceMs).unref();
            }),
        ),
    );
  }
}

/** `node --import tsx <file>`: one process per part (no wrapper), so its pid is the part's own. */
export function typescriptEntry(file: string): [command: string, args: string[]] {
  return [process.execPath, ['--import', 'tsx', file]];
}

export interface DevServerOptions {
  ip: string;
  port: number;
  namespace: string;
  /** Persist to this SQLite file; in memory when absent. */
  dbFilename?: string;
  /** Web UI port; no UI when absent. */
  uiPort?: number;
  httpPort?: number;
  metricsPort?: number;
  extraArgs?: string[];
}

/** Arguments for `temporal server start-dev` with the order search attributes registered. */
export function devServerArgs(o: DevServerOptions): string[] {
  return [
    'server', 'start-dev',
    ...(o.dbFilename ? ['--db-filename', o.dbFilename] : []),
    '--ip', o.ip,
    '--port', String(o.port),
    ...(o.uiPort === undefined ? ['--headless'] : ['--ui-port', String(o.uiPort)]),
    ...(o.httpPort === undefined ? [] : ['--http-port', String(o.httpPort)]),
    ...(o.metricsPort === undefined ? [] : ['--metrics-port', String(o.metricsPort)]),
    '--namespace', o.namespace,
    '--log-level', 'error',
    // One partition per task queue: with one worker on one box, four (the default) split its
    // pollers, so fewer tasks meet a waiting poller and more take the slower stored path.
    '--dynamic-config-value', 'matching.numTaskqueueReadPartitions=1',
    '--dynamic-config-value', 'matching.numTaskqueueWritePartitions=1',
    ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]),
    ...(o.extraArgs ?? []),
  ];
}

/** Resolves once `host:port` accepts a connection; rejects after the timeout, or at once when `gaveUp()` says so. */
export async function waitForPort(host: string, port: number, timeoutMs: number, gaveUp = () => false): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (gaveUp()) throw new Error(`the process meant to listen on ${host}:${port} exited`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host, port }, () => {
        socket.end();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await sleep(250);
  }
}

/** A port that was free a moment ago (the OS picks it). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export function redactUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

/** Runs `fn` on a pg connection of its own to `databaseUrl`, closed afterwards. */
export async function withDatabase<T>(databaseUrl: string, fn: (db: Client) => Promise<T>): Promise<T> {
  const db = new Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    return await fn(db);
  } finally {
    await db.end();
  }
}
