/**
 * Keeps `npm run bench -- --scenario approaches` working (docs/approaches.md): a tiny run of each
 * approach, each with its consumer or worker SIGKILLed and restarted, must return every expired
 * order's stock exactly once. An approach whose broker cannot be reached is skipped by the bench
 * with a message, and so here. No speed is asserted: figures belong to the bench.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ApproachFigures } from '../scripts/bench/approaches';
import { runBench } from './support/bench-run';

test('each approach returns every expired order\'s stock exactly once, through a SIGKILL of its consumer or worker', async () => {
  const json = path.join(mkdtempSync(path.join(os.tmpdir(), 'bench-approaches-')), 'figures.json');

  const run = await runBench(['--scenario', 'approaches', '--smoke', '--json', json]);

  expect({ exitCode: run.exitCode, stderr: run.exitCode === 0 ? '' : run.stderr }).toEqual({ exitCode: 0, stderr: '' });
  expect(run.stdout).toContain('| approach | released | lag p50 / p99 / max (bench) |');
  expect(run.stdout).toContain('approaches: no release lost or doubled');
  const { approaches } = JSON.parse(readFileSync(json, 'utf8')) as { approaches: { figures: ApproachFigures[]; problems: string[] } };
  expect(approaches.problems).toEqual([]);
  expect(approaches.figures.map((f) => f.approach)).toEqual(['rabbitmq', 'redis', 'cron', 'poll', 'timer', 'service']);
  // Without a broker only its own row is skipped, with the reason; the database approaches and the service always run.
  for (const f of approaches.figures.filter((f) => f.skipped)) {
    expect(['rabbitmq', 'redis']).toContain(f.approach);
    expect(run.stderr).toContain(`SKIPPED ${f.label}: ${f.skipped}`);
  }
  for (const f of approaches.figures.filter((f) => !f.skipped)) {
    expect({ approach: f.approach, placed: f.orders, failures: f.placeFailures }).toEqual({ approach: f.approach, placed: 40, failures: 0 });
    // Every order ended PAID or EXPIRED; each EXPIRED one has its stock back, none twice.
    expect({ approach: f.approach, settled: (f.paid ?? 0) + (f.expired ?? 0), released: f.released }).toEqual({ approach: f.approach, settled: 40, released: f.expired });
    expect({ approach: f.approach, stillHeld: f.stillHeld, lost: f.lost, doubled: f.doubled }).toEqual({ approach: f.approach, stillHeld: 0, lost: 0, doubled: 0 });
    expect(f.expired).toBeGreaterThan(0);
    expect(f.paid).toBeGreaterThan(0);
    // The kill happened mid-run.
    expect(f.downSeconds).toBeGreaterThan(0);
    expect(f.transactionsPerOrder).toBeGreaterThan(0);
    expect(f.operatorView).not.toBe('');
  }
}, 600_000);
