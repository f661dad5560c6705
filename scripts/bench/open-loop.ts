/**
 * Latency as users feel it: orders sent at a fixed offered rate, each on its own schedule
 * whether or not earlier ones have been answered (open loop), so a slow answer cannot slow the
 * arrivals down and hide itself, as it does in a closed loop of N clients.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { percentile } from './stats';

export interface OpenLoad {
  apiUrl: string;
  /** The storefront key each request carries. */
  apiKey: string;
  ratePerSecond: number;
  durationSeconds: number;
  body: (n: number) => string;
  /** A request still unanswered after this long counts as failed. */
  timeoutMs?: number;
}

export interface OpenLoadResult {
  sent: number;
  held: number;
  failed: number;
  statuses: Record<string, number>;
  latencyMs: { p50: number; p99: number; max: number };
  /** The rate actually achieved (sends can fall behind on a saturated machine). */
  sentPerSecond: number;
}

export async function driveOpenLoop(load: OpenLoad): Promise<OpenLoadResult> {
  const intervalMs = 1000 / load.ratePerSecond;
  const total = Math.max(1, Math.round(load.ratePerSecond * load.durationSeconds));
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let failed = 0;
  const started = performance.now();
  const requests: Promise<void>[] = [];
  for (let n = 0; n < total; n++) {
    const due = started + n * intervalMs;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    requests.push(send(load, n).then(
      ({ status, ms }) => {
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (status === 201) latencies.push(ms);
        else failed++;
      },
      () => {
        failed++;
      },
    ));
  }
  const sentSeconds = (performance.now() - started) / 1000;
  await Promise.all(requests);
  latencies.sort((a, b) => a - b);
  return {
    sent: total,
    held: latencies.length,
    failed,
    statuses,
    latencyMs: { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), max: latencies.at(-1) ?? Number.NaN },
    sentPerSecond: total / sentSeconds,
  };
}

async function send(load: OpenLoad, n: number): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  const response = await fetch(`${load.apiUrl}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${load.apiKey}` },
    body: load.body(n),
    signal: AbortSignal.timeout(load.timeoutMs ?? 30_000),
  });
  await response.arrayBuffer();
  return { status: response.status, ms: performance.now() - t0 };
}
