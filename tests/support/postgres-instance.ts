/**
 * A PostgreSQL server owned by one test: its own data directory and port, so the test can
 * crash it (`pg_ctl stop -m immediate`) and start it again without touching the machine's
 * shared server, which other tests use at the same time.
 *
 * The binaries come from PG_BIN_DIR, else `pg_config --bindir`. initdb refuses to run as root,
 * so when the tests run as root the server runs as the `postgres` OS user.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { freePort } from '../../scripts/processes';

const run = promisify(execFile);
const SERVER_OS_USER = 'postgres';

export interface PostgresInstance {
  port: number;
  /** A URL for `database` on this server (user postgres, trust auth). */
  urlFor(database: string): string;
  createDatabase(name: string): Promise<string>;
  /** The fault: kills the server without a clean shutdown, as a crash or power loss would. */
  crash(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and deletes its data directory. */
  destroy(): Promise<void>;
}

export async function startPostgresInstance(): Promise<PostgresInstance> {
  const bin = await binDir();
  const asRoot = process.getuid?.() === 0;
  const pg = (program: string, args: string[]) =>
    asRoot
      ? run('runuser', ['-u', SERVER_OS_USER, '--', path.join(bin, program), ...args])
      : run(path.join(bin, program), args);

  const dir = await mkdtemp(path.join(os.tmpdir(), 'checkout-pg-'));
  if (asRoot) await run('chown', [SERVER_OS_USER, dir]);
  const dataDir = path.join(dir, 'data');
  const port = await freePort();
  // fsync only matters for an operating-system crash; the fault here is the server process dying.
  const serverOptions = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  const start = () => pg('pg_ctl', ['-D', dataDir, '-l', path.join(dir, 'server.log'), '-o', serverOptions, '-w', '-t', '60', 'start']);
  const stop = (mode: 'immediate' | 'fast') => pg('pg_ctl', ['-D', dataDir, '-m', mode, '-w', 'stop']);

  try {
    await pg('initdb', ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
    await start();
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }

  const urlFor = (database: string) => `postgresql://postgres@127.0.0.1:${port}/${database}`;
  return {
    port,
    urlFor,
    async createDatabase(name) {
      const client = new Client({ connectionString: urlFor('postgres') });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${name}"`);
      } finally {
        await client.end();
      }
      return urlFor(name);
    },
    async crash() {
      await stop('immediate');
    },
    async start() {
      await start();
    },
    async destroy() {
      await stop('fast').catch(() => undefined); // already stopped is fine
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function binDir(): Promise<string> {
  if (process.env.PG_BIN_DIR) return process.env.PG_BIN_DIR;
  try {
    return (await run('pg_config', ['--bindir'])).stdout.trim();
  } catch {
    throw new Error('PostgreSQL server binaries not found: set PG_BIN_DIR to the folder holding initdb and pg_ctl');
  }
}
