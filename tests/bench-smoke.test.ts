/**
 * Keeps `npm run bench` working: its smoke run starts its own stack, drives every scenario for
 * seconds (throughput with most held orders then paid; history on a small history, then pruned), checks the stock invariants and prints the table. No figure is asserted here:
 * speed belongs to the bench, not to tests.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { runBench } from './support/bench-run';

/** Every database the bench said it created (the stacks' and the history scenario's). */
function benchDatabaseNames(log: string): string[] {
  const names = [...new Set([...log.matchAll(/database (checkout_bench_[0-9a-f]+)/g)].map((m) => m[1] ?? ''))];
  if (names.length === 0) throw new Error(`the bench did not say which database it created:\n${log}`);
  return names;
}

async function databaseExists(name: string): Promise<boolean> {
  const admin = new Client({ connectionString: process.env.TEST_DATABASE_ADMIN_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres' });
  await admin.connect();
  try {
    return ((await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount ?? 0) > 0;
  } finally {
    await admin.end();
  }
}

describe('npm run bench -- --smoke', () => {
  it('runs every scenario against a stack of its own, prints the figures table and finds the invariants intact', async () => {
    const json = path.join(mkdtempSync(path.join(os.tmpdir(), 'bench-smoke-')), 'figures.json');

    const run = await runBench(['--smoke', '--json', json]);

    expect({ exitCode: run.exitCode, stderr: run.exitCode === 0 ? '' : run.stderr }).toEqual({ exitCode: 0, stderr: '' });
    expect(run.stdout).toMatch(/\| figure +\| goal +\| median +\| min +\| max +\| runs +\|/);
    for (const figure of [
      'engine floor', 'end to end ÷ engine floor', 'open loop: POST /orders latency p99', 'orders held per second', 'POST /orders latency p99',
      'orders paid per second', 'orders paid ÷ engine floor', 'bare SQL', 'expiry lag p99', 'orders awaiting payment at once', 'worker RSS',
      'history: a hold, with history ÷ empty', 'history: the inventory check', 'history: closed orders pruned per second',
    ]) {
      expect(run.stdout).toContain(figure);
    }
    expect(run.stdout).toContain('inventory invariants: ok after every scenario');
    // The worker's CPU per order held, split by thread, in the service's throughput phase.
    expect(run.stdout).toMatch(/\| throughput: HTTP → workflow → stock +\| worker +\| 1 +\| \d+\.\d ms +\| \d+\.\d ms +\|/);
    expect(run.stderr).toMatch(/inventory invariants after floor: ok/);
    expect(run.stderr).toMatch(/inventory invariants after throughput: ok/);
    expect(run.stderr).toMatch(/inventory invariants after latency: ok/);
    expect(run.stderr).toMatch(/inventory invariants after expiry: ok/);
    expect(run.stderr).toMatch(/inventory invariants after scale: ok/);
    expect(run.stderr).toMatch(/inventory invariants after history: ok/);
    const figures = JSON.parse(readFileSync(json, 'utf8')) as { runs: Record<string, number[]>; problems: string[] };
    expect(figures.problems).toEqual([]);
    expect(figures.runs.expiryNotReleased).toEqual([0]);
    expect(figures.runs.floorOnlyPerSecond?.[0]).toBeGreaterThan(0);
    expect(figures.runs.floorReleasedPerSecond?.[0]).toBeGreaterThan(0);
    expect(figures.runs.floorRatio?.[0]).toBeGreaterThan(0);
    // The throughput clients pay most orders they got held (--paid-share, 0.8 by default).
    expect(figures.runs.paidPerSecond?.[0]).toBeGreaterThan(0);
    expect(figures.runs.paidFloorRatio?.[0]).toBeGreaterThan(0);
    expect(figures.runs.openLoopP99?.[0]).toBeGreaterThan(0);
    expect(figures.runs.awaiting?.[0]).toBeGreaterThan(0);
    // The history scenario: each hot-path operation measured on both databases, then the history pruned.
    for (const op of ['Hold', 'Payment', 'Reclaim', 'Claim', 'Feed', 'Check']) {
      expect({ op, ratio: figures.runs[`history${op}Ratio`]?.[0] }).toEqual({ op, ratio: expect.any(Number) as number });
    }
    expect(figures.runs.historyOrders).toEqual([3_000]);
    expect(figures.runs.historyPruneOrdersPerSecond?.[0]).toBeGreaterThan(0);
    const created = benchDatabaseNames(run.stderr);
    expect(created.length).toBeGreaterThan(1);
    expect(await Promise.all(created.map(async (name) => ({ name, exists: await databaseExists(name) })))).toEqual(created.map((name) => ({ name, exists: false })));
  }, 300_000);
});
