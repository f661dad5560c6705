/**
 * `npm run bench`: throughput, latency, expiry precision and scale of the checkout service,
 * measured over real HTTP against a real stack, with the bare-SQL ceiling beside them. Prints
 * one table of figures (median, min, max of repeated runs) and a profile of where the CPU and
 * memory went. Exits non-zero when a stock invariant is violated or a run goes wrong.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { createPrismaClient } from '../../src/db/client';
import { checkInventory } from '../../src/db/inventory-check';
import { ensureTemporalCli, temporalCliVersion } from '../temporal-cli';
import { parseOptions, type BenchOptions, type Engine, type Scenario } from './options';
import { addBenchProducts, benchSkus, orderBody } from './orders';
import { runApproaches, type ApproachesReport } from './approaches';
import { flashScenario } from './flash';
import { historyScenario } from './history';
import { floorScenario } from './floor';
import { latencyScenario } from './latency';
import { ProcessMonitor } from './proc-stats';
import { Results } from './report';
import type { ScenarioContext } from './context';
import { expiry, scale, throughput, warmUp } from './scenarios';
import { startOwnStack, targetStack, type Stack } from './stack';

const started = Date.now();

function log(line: string): void {
  const seconds = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[bench ${seconds} s] ${line}\n`);
}

let current: Stack | undefined;

async function stopCurrent(): Promise<void> {
  const stack = current;
  current = undefined;
  await stack?.stop();
}

async function openStack(o: BenchOptions, engine: Engine): Promise<Stack> {
  if (o.target) return targetStack(o.target);
  const workers = o.workers ?? (engine === 'server' ? 2 : 1);
  log(`starting a stack: ${engine === 'server' ? 'the real temporal-server on PostgreSQL' : 'Temporal dev server'}, database, ${workers} worker(s), API`);
  return startOwnStack({
    engine,
    shards: o.temporalShards,
    workers,
    databaseAdminUrl: o.databaseAdminUrl,
    env: o.stackEnv,
    log,
    onPartDied: (name, lastLines) => {
      log(`the ${name} process died; its last lines:\n${lastLines.map((l) => `  ${l}`).join('\n')}`);
      void stopCurrent().finally(() => process.exit(1));
    },
  });
}

/** One order through the whole path before anything is measured (the worker may still be starting). */
async function waitForFirstOrder(stack: Stack, skus: string[]): Promise<void> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      const response = await fetch(`${stack.apiUrl}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${stack.apiKey}` },
        body: orderBody('bench-first-order', skus, 86_400),
        signal: AbortSignal.timeout(60_000),
      });
      if (response.status === 201) return;
      throw new Error(`POST /orders answered ${response.status}: ${await response.text()}`);
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`the stack never held a first order: ${(error as Error).message}`, { cause: error });
      await sleep(1000);
    }
  }
}

async function checkInvariants(stack: Stack, after: Scenario, results: Results): Promise<void> {
  const prisma = createPrismaClient(stack.databaseUrl, 2);
  try {
    const report = await checkInventory(prisma);
    if (report.ok) {
      log(`inventory invariants after ${after}: ok`);
      return;
    }
    const shown = report.violations.slice(0, 5).map((v) => JSON.stringify(v));
    results.fail(`inventory invariants violated after ${after}: ${report.violations.length} violations, e.g.\n  ${shown.join('\n  ')}`);
  } finally {
    await prisma.$disconnect();
  }
}

async function describeMachine(databaseUrl: string): Promise<string[]> {
  const db = new Client({ connectionString: databaseUrl });
  await db.connect();
  const { rows } = await db.query<{ version: string }>('SELECT version()').finally(() => db.end());
  const cpu = os.cpus();
  return [
    `machine: ${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.type()} ${os.release()}`,
    `software: Node ${process.version}, ${rows[0]?.version.split(',')[0] ?? 'PostgreSQL'}, ${temporalCliVersion(ensureTemporalCli().path)}`,
  ];
}

/** Every scenario on stacks of one engine; the stack is left open in `current` for the caller to stop. */
async function runScenarios(o: BenchOptions, engine: Engine, results: Results, header: string[], runTag: string, skus: string[]): Promise<Stack | undefined> {
  let last: Stack | undefined;
  for (const scenario of o.scenarios) {
    if (scenario === 'history') {
      // PostgreSQL alone: a database of its own, no stack.
      if (header.length === 0) header.push(...(await describeMachine(o.databaseAdminUrl)));
      await historyScenario({ options: o, results, skus, log });
      continue;
    }
    if (!current || o.stackPerScenario) {
      await stopCurrent();
      current = await openStack(o, engine);
      await addBenchProducts(current.databaseUrl, skus);
      await waitForFirstOrder(current, skus);
      if (header.length === 0) header.push(...(await describeMachine(current.databaseUrl)));
    }
    last = current;
    const c: ScenarioContext = {
      stack: current,
      options: o,
      results,
      monitor: new ProcessMonitor(current.parts),
      skus,
      runTag,
      log,
    };
    if (scenario === 'floor') {
      for (let run = 1; run <= o.repeat; run++) await floorScenario(c, run);
    } else if (scenario === 'throughput') {
      await warmUp(c);
      for (let run = 1; run <= o.repeat; run++) await throughput(c, run);
    } else if (scenario === 'latency') {
      for (let run = 1; run <= o.repeat; run++) await latencyScenario(c, run);
    } else if (scenario === 'expiry') {
      for (let run = 1; run <= o.repeat; run++) await expiry(c, run);
    } else if (scenario === 'flash') {
      for (let run = 1; run <= o.repeat; run++) await flashScenario(c, run);
    } else {
      await scale(c);
    }
    await checkInvariants(current, scenario, results);
  }
  return last;
}

function report(o: BenchOptions, stack: Stack | undefined, results: Results): string[] {
  const settings = Object.entries(stack?.settings ?? o.stackEnv).map(([k, v]) => `${k}=${v}`);
  return [
    `## on ${stack?.engine ?? 'no stack'}`,
    `stack: ${o.target ? `targeted at ${o.target.apiUrl}` : `started by the bench (${o.stackPerScenario ? 'fresh per scenario' : 'shared'}), ${Object.keys(stack?.parts ?? {}).filter((p) => p.startsWith('worker')).length} worker process(es)`}` +
      (settings.length ? `; worker/API env: ${settings.join(' ')}` : ''),
    '',
    results.figuresTable(o),
    '',
    'Where the CPU and memory went (CPU in % of one core, median over runs; RSS peak):',
    '',
    results.profileTable(),
    '',
    ...threadsSection(results),
    ...results.notes.map((n) => `note: ${n}`),
    results.problems.length ? `FAILED:\n${results.problems.map((p) => `- ${p}`).join('\n')}` : 'inventory invariants: ok after every scenario',
    '',
  ];
}

/** The Node processes' CPU per order by thread, where a phase counted its orders. */
function threadsSection(results: Results): string[] {
  const table = results.threadsTable();
  if (!table) return [];
  return [
    'CPU per order by thread of the Node processes (ms per order held, median over runs; in a worker and in the floor the busiest other thread is the workflow sandbox):',
    '',
    table,
    '',
  ];
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const runTag = randomBytes(3).toString('hex');
  const skus = benchSkus(o.skus);
  const header: string[] = [];
  let stopping = false;
  const stop = () => {
    // Ctrl-C reaches the bench more than once (from the terminal, and relayed by npm and tsx);
    // a second signal must not end it before its stack is stopped, or the stack is orphaned.
    if (stopping) return;
    stopping = true;
    log('interrupted: stopping the stack');
    void stopCurrent().finally(() => process.exit(130));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  const byEngine: { engine: Engine; stack: Stack | undefined; results: Results }[] = [];
  // The approaches scenario brings its own stacks, brokers and databases: it runs apart, after the others.
  const stackScenarios = { ...o, scenarios: o.scenarios.filter((s) => s !== 'approaches') };
  let approaches: ApproachesReport | undefined;
  try {
    if (stackScenarios.scenarios.length > 0) {
      for (const engine of o.engines) {
        const results = new Results();
        byEngine.push({ engine, results, stack: await runScenarios(stackScenarios, engine, results, header, runTag, skus) });
        await stopCurrent();
      }
    }
    if (o.scenarios.includes('approaches')) {
      if (o.target) throw new Error('--scenario approaches starts its own stacks and consumers: it cannot target a running stack (--api-url)');
      if (header.length === 0) header.push(...(await describeMachine(o.databaseAdminUrl)));
      approaches = await runApproaches(o, skus, log);
    }
  } finally {
    await stopCurrent();
  }

  const out = [
    '',
    `# checkout-service bench (${o.smoke ? 'smoke' : 'full'}), ${new Date().toISOString()}`,
    ...header,
    `load: ${o.connections} clients, ${o.skus} skus, orders of 1–3 items; ${o.repeat} run(s) per scenario (scale: 1)`,
    '',
    ...byEngine.flatMap(({ stack, results }) => report(o, stack, results)),
    ...(approaches?.lines ?? []),
    ...(approaches ? [approaches.problems.length ? `FAILED:\n${approaches.problems.map((p) => `- ${p}`).join('\n')}` : 'approaches: no release lost or doubled', ''] : []),
  ];
  process.stdout.write(out.join('\n'));
  const problems = [...byEngine.flatMap(({ results }) => results.problems), ...(approaches?.problems ?? [])];
  if (o.json) {
    const [first] = byEngine;
    const figures = (r: Results) => ({ runs: r.runs, usage: r.usage, problems: r.problems });
    writeFileSync(
      o.json,
      JSON.stringify(
        {
          options: o,
          header,
          // The first engine's figures at the top (one engine is the usual run), every engine's below.
          ...(first && figures(first.results)),
          engines: byEngine.map(({ engine, stack, results }) => ({ engine, describedAs: stack?.engine, ...figures(results) })),
          ...(approaches && { approaches: { figures: approaches.figures, problems: approaches.problems } }),
        },
        null,
        2,
      ),
    );
    log(`raw figures written to ${o.json}`);
  }
  process.exitCode = problems.length ? 1 : 0;
}

main().catch(async (error: unknown) => {
  log(`failed: ${(error as Error).stack ?? String(error)}`);
  await stopCurrent().catch(() => undefined);
  process.exit(1);
});
