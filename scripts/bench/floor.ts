/**
 * The engine's floor, measured in the same run as the service (platform.md): a bare worker and
 * client in the bench's own process, on the stack's own dev server, running the order's shape
 * with no database, no API and no code of ours. The service is reported as a ratio of it.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection, WithStartWorkflowOperation } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker, type WorkflowBundle } from '@temporalio/worker';
import { createFloorActivities, type ReleaseSink } from './floor-activities';
import { floorOrderWorkflow, heldUpdate } from './floor-workflows';
import type { ScenarioContext } from './context';
import { percentile } from './stats';

export interface FloorHolds {
  held: number;
  seconds: number;
  perSecond: number;
  latencyMs: { p50: number; p99: number; max: number };
}

export interface FloorExpiry {
  released: number;
  /** Releases per second while they fell due. */
  perSecond: number;
  lagMs: { p50: number; p99: number; max: number };
}

interface FloorEngine {
  client: Client;
  taskQueue: string;
  sink: ReleaseSink;
  run<T>(fn: () => Promise<T>): Promise<T>;
}

let runtimeInstalled = false;

/** The SDK's worker logs would bury the bench's progress lines: warnings and errors only. */
function quietRuntime(): void {
  if (runtimeInstalled) return;
  Runtime.install({ logger: new DefaultLogger('WARN') });
  runtimeInstalled = true;
}

let floorBundle: Promise<WorkflowBundle> | undefined;

/**
 * The floor's workflows bundled once per bench: every floor engine (two per floor run, one beside
 * each throughput run) would otherwise run webpack again, seconds of CPU inside the measured window.
 */
function floorWorkflowBundle(): Promise<WorkflowBundle> {
  floorBundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('./floor-workflows'), logger: new DefaultLogger('WARN') });
  return floorBundle;
}

/** A worker and a client of the floor's own, on a task queue of its own; closed after `fn`. */
async function withFloorEngine<T>(temporalAddress: string, fn: (engine: FloorEngine) => Promise<T>): Promise<T> {
  const taskQueue = `bench-floor-${randomUUID().slice(0, 8)}`;
  const sink: ReleaseSink = { lagsMs: [] };
  quietRuntime();
  const workflowBundle = await floorWorkflowBundle();
  const nativeConnection = await NativeConnection.connect({ address: temporalAddress });
  const connection = await Connection.connect({ address: temporalAddress });
  try {
    const worker = await Worker.create({
      connection: nativeConnection,
      namespace: 'default',
      taskQueue,
      workflowBundle,
      activities: createFloorActivities(sink),
    });
    const client = new Client({ connection, namespace: 'default' });
    return await fn({ client, taskQueue, sink, run: (work) => worker.runUntil(work) });
  } finally {
    await connection.close();
    await nativeConnection.close();
  }
}

function startOrder(engine: FloorEngine, dueAtMs: number): WithStartWorkflowOperation<typeof floorOrderWorkflow> {
  return new WithStartWorkflowOperation(floorOrderWorkflow, {
    workflowId: `floor-${randomUUID()}`,
    taskQueue: engine.taskQueue,
    args: [dueAtMs],
    workflowIdConflictPolicy: 'FAIL',
  });
}

/** Closed loop: `connections` callers each start an order and wait until it is held, for `durationSeconds`. */
export async function floorHolds(temporalAddress: string, connections: number, durationSeconds: number): Promise<FloorHolds> {
  return withFloorEngine(temporalAddress, (engine) =>
    engine.run(async () => {
      const started = Date.now();
      const latencies = await holdLoop(engine, connections, durationSeconds);
      const seconds = (Date.now() - started) / 1000;
      return {
        held: latencies.length,
        seconds,
        perSecond: latencies.length / seconds,
        latencyMs: { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), max: latencies.at(-1) ?? Number.NaN },
      };
    }),
  );
}

/**
 * `count` orders held, falling due evenly within `windowSeconds` once all are held; waits for
 * their releases and reports how late each ran after its deadline.
 */
export async function floorExpiry(
  temporalAddress: string,
  connections: number,
  count: number,
  windowSeconds: number,
  log: (line: string) => void,
): Promise<FloorExpiry> {
  return withFloorEngine(temporalAddress, (engine) =>
    engine.run(async () => {
      // Deadlines start once every order can be held at the pace just measured, as the service's scenario does.
      const probeSeconds = 2;
      const probe = (await holdLoop(engine, connections, probeSeconds)).length / probeSeconds;
      const leadMs = (count / Math.max(5, probe * 0.7)) * 1000 + 5000;
      const windowStart = Date.now() + leadMs;
      let next = 0;
      const caller = async () => {
        for (let n = next++; n < count; n = next++) {
          const dueAtMs = windowStart + (n / count) * windowSeconds * 1000;
          await engine.client.workflow.executeUpdateWithStart(heldUpdate, { startWorkflowOperation: startOrder(engine, dueAtMs) });
        }
      };
      await Promise.all(Array.from({ length: connections }, caller));
      log(`floor expiry: ${count} held; due from ${Math.max(0, (windowStart - Date.now()) / 1000).toFixed(0)} s from now over ${windowSeconds} s`);
      const deadline = windowStart + windowSeconds * 1000 + Math.max(60_000, windowSeconds * 2000);
      while (engine.sink.lagsMs.length < count && Date.now() < deadline) await sleep(250);
      const lags = [...engine.sink.lagsMs].sort((a, b) => a - b);
      const spanSeconds = Math.max(windowSeconds, ((lags.at(-1) ?? 0) + windowSeconds * 1000) / 1000);
      return {
        released: lags.length,
        perSecond: lags.length / spanSeconds,
        lagMs: { p50: percentile(lags, 0.5), p99: percentile(lags, 0.99), max: lags.at(-1) ?? Number.NaN },
      };
    }),
  );
}

/** Sorted latencies of the holds `connections` closed-loop callers made in `seconds`. */
async function holdLoop(engine: FloorEngine, connections: number, seconds: number): Promise<number[]> {
  const latencies: number[] = [];
  const end = Date.now() + seconds * 1000;
  const farAway = Date.now() + 86_400_000;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (Date.now() < end) {
        const t0 = Date.now();
        await engine.client.workflow.executeUpdateWithStart(heldUpdate, { startWorkflowOperation: startOrder(engine, farAway) });
        latencies.push(Date.now() - t0);
      }
    }),
  );
  return latencies.sort((a, b) => a - b);
}

/** `--scenario floor`: the floor alone, holds then expiry, on the stack's dev server. */
export async function floorScenario(c: ScenarioContext, run: number): Promise<void> {
  const { options: o, results, monitor } = c;
  const address = c.stack.temporalAddress;
  if (!address) {
    results.fail('floor: needs the stack\'s Temporal address (--temporal-address with --api-url)');
    return;
  }
  const label = `floor ${run}/${o.repeat}`;
  monitor.start();
  const holds = await floorHolds(address, o.connections, o.duration);
  results.recordUsage('floor', 'floor: bare worker + client holds', monitor.finish(), holds.perSecond);
  results.record('floorOnlyPerSecond', holds.perSecond);
  results.record('floorOnlyLatencyP99', holds.latencyMs.p99);
  c.log(`${label}: ${holds.held} held in ${holds.seconds.toFixed(1)} s = ${holds.perSecond.toFixed(1)}/s, p50 ${holds.latencyMs.p50} ms, p99 ${holds.latencyMs.p99} ms`);
  monitor.start();
  const expiry = await floorExpiry(address, o.connections, o.expiryOrders, o.expiryWindow, c.log);
  results.recordUsage('floor', 'floor: bare worker timers fire', monitor.finish());
  results.record('floorReleasedPerSecond', expiry.perSecond);
  results.record('floorReleaseLagP99', expiry.lagMs.p99);
  if (expiry.released < o.expiryOrders) results.note(`${label}: only ${expiry.released}/${o.expiryOrders} floor workflows released within the wait`);
  c.log(`${label}: ${expiry.released} released at ${expiry.perSecond.toFixed(1)}/s, lag p50 ${expiry.lagMs.p50} ms p99 ${expiry.lagMs.p99} ms max ${expiry.lagMs.max} ms`);
}

/**
 * The floor for as long as a throughput run, right after it on the same engine; the service's
 * holds (and payments, when it paid orders) as ratios of it. The floor pays nothing: what a
 * payment costs the service is part of the gap.
 */
export async function floorBeside(c: ScenarioContext, label: string, heldPerSecond: number, paidPerSecond?: number): Promise<void> {
  const address = c.stack.temporalAddress;
  if (!address) {
    c.results.note(`${label}: no Temporal address, so no engine floor beside it`);
    return;
  }
  c.monitor.start();
  const floor = await floorHolds(address, c.options.connections, c.options.duration);
  c.results.recordUsage('throughput', 'throughput: engine floor (bare worker + client)', c.monitor.finish(), floor.perSecond);
  c.results.record('floorPerSecond', floor.perSecond);
  c.results.record('floorRatio', heldPerSecond / floor.perSecond);
  if (paidPerSecond !== undefined) c.results.record('paidFloorRatio', paidPerSecond / floor.perSecond);
  const share = (perSecond: number) => `${((perSecond / floor.perSecond) * 100).toFixed(1)} %`;
  c.log(
    `${label}: engine floor ${floor.perSecond.toFixed(1)}/s (p99 ${floor.latencyMs.p99} ms); the service holds ${share(heldPerSecond)} of it` +
      (paidPerSecond === undefined ? '' : `, pays ${share(paidPerSecond)}`),
  );
}
