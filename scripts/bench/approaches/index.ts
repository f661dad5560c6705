/**
 * `npm run bench -- --scenario approaches`: how should the stock of unpaid orders come back?
 * Six approaches run the same workload (plan.ts) one after another, each on a database of its
 * own, with its consumer or worker SIGKILLed mid-run and started again; then each is read from
 * its database: stock-back lag, releases lost or doubled, transactions and rows read per order,
 * CPU per order, and what an operator could see of the pending releases (docs/approaches.md).
 */
import { ProcessMonitor, type WindowUsage } from '../proc-stats';
import type { BenchOptions } from '../options';
import { percentile } from '../stats';
import { awaitingPayment, databaseCounters, readOutcome, type Outcome } from './measure';
import { MIN_PERIOD_MS, paymentTime, planOrders, REAL_SECONDS, scaledDurations, type PlannedOrder, type ScaledDurations } from './plan';
import { APPROACH_LABELS, type Approach } from './names';
import { CUSTOMER_PREFIX, startSystem, unreachable, type ApproachSystem, type Placed } from './systems';
import type { ConsumerCounters } from './consumer';

export interface ApproachFigures {
  approach: Approach;
  label: string;
  description: string;
  skipped?: string;
  orders?: number;
  placingSeconds?: number;
  placeFailures?: number;
  payments?: Record<string, number>;
  paid?: number;
  expired?: number;
  released?: number;
  lagMs?: { p50: number; p99: number; max: number };
  shortWindowLagMs?: { p50: number; p99: number; max: number };
  longWindowLagMs?: { p50: number; p99: number; max: number };
  dueWhileDown?: { count: number; maxLagMs: number };
  /** The lag of the orders that fell due while the consumer or worker ran: the mechanism without the crash. */
  dueWhileUpLagMs?: { p50: number; p99: number; max: number };
  /** Seconds the consumer or worker was down (from the kill to its restart). */
  downSeconds?: number;
  /** Seconds from the kill until the restarted consumer consumed again, or the restarted worker polled. */
  backAfterSeconds?: number;
  stillHeld?: number;
  lost?: number;
  doubled?: number;
  violations?: string[];
  consumer?: ConsumerCounters;
  transactionsPerOrder?: number;
  rowsReadPerOrder?: number;
  cpuMsPerOrder?: number;
  cpuMsPerOrderByPart?: Record<string, number>;
  loadAverage?: number;
  operatorView?: string;
  /** Bench lag × time scale for the mechanisms whose periods and windows were scaled. */
  realScale: boolean;
}

export interface ApproachesReport {
  lines: string[];
  problems: string[];
  figures: ApproachFigures[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function lagsOf(values: number[]): { p50: number; p99: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted.at(-1) ?? Number.NaN };
}

/** Runs `tasks` as they come, at most `limit` at once. */
class Limiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly limit: number) {}
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
    try {
      return await task();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}

export async function runApproaches(o: BenchOptions, skus: string[], log: (line: string) => void): Promise<ApproachesReport> {
  const durations = scaledDurations(o.timeScale);
  const plan = planOrders(
    { orders: o.approachOrders, ratePerSecond: o.approachRate, timeScale: o.timeScale, earlyPaidShare: 0.65, racingShare: 0.05, racingSpreadMs: 200, seed: 31 },
    skus,
  );
  const figures: ApproachFigures[] = [];
  const problems: string[] = [];
  for (const approach of o.approaches) {
    const label = APPROACH_LABELS[approach];
    const realScale = approach !== 'timer' && approach !== 'service';
    const reason = await unreachable({ approach, amqpUrl: o.amqpUrl, redisUrl: o.redisUrl });
    if (reason) {
      log(`approaches: SKIPPED ${label}: ${reason}`);
      figures.push({ approach, label, description: '', skipped: reason, realScale });
      continue;
    }
    log(`approaches: ${label}: starting`);
    const system = await startSystem({ approach, databaseAdminUrl: o.databaseAdminUrl, amqpUrl: o.amqpUrl, redisUrl: o.redisUrl, skus, durations, log });
    try {
      const figure = await runOne(o, approach, system, plan, durations, (line) => log(`approaches: ${label}: ${line}`));
      figures.push({ ...figure, label, realScale });
      const lossOrDouble = (figure.lost ?? 0) + (figure.doubled ?? 0) + (figure.stillHeld ?? 0);
      if (lossOrDouble > 0) {
        problems.push(`${label}: ${figure.stillHeld} orders still held past their deadline, ${figure.lost} lost and ${figure.doubled} doubled releases in the ledger: ${(figure.violations ?? []).join('; ')}`);
      }
      if ((figure.placeFailures ?? 0) > 0) problems.push(`${label}: ${figure.placeFailures} orders could not be placed`);
      const died = system.died();
      if (died) problems.push(`${label}: ${died}`);
    } finally {
      await system.stop();
    }
  }
  return { lines: reportLines(o, durations, figures), problems, figures };
}

async function runOne(
  o: BenchOptions,
  approach: Approach,
  system: ApproachSystem,
  plan: PlannedOrder[],
  durations: ScaledDurations,
  log: (line: string) => void,
): Promise<Omit<ApproachFigures, 'label' | 'realScale'>> {
  const spanMs = (plan.at(-1)?.placeAtMs ?? 0) + 1;
  const killAtMs = spanMs / 2 + durations.shortWindowSeconds * 1000;
  const outageMs = o.outage * 1000;
  // The clock starts once the consumer consumes (a Node process with Prisma takes seconds to start here).
  await system.ready();
  const before = await databaseCounters(system.databaseUrl);
  const monitor = new ProcessMonitor(system.parts);
  monitor.start();
  const started = Date.now();
  let downFrom = Number.POSITIVE_INFINITY;
  let downUntil = Number.POSITIVE_INFINITY;
  /** When the restarted consumer consumed again (1–4); the restart itself for a worker. */
  let backAt = Number.POSITIVE_INFINITY;
  let operatorView = '';
  /** From the kill until the restarted consumer consumed again, or the restarted worker polled its task queue. */
  let backAfterMs: number | undefined;
  const crash = (async () => {
    await sleep(killAtMs);
    operatorView = await system.operatorView().catch((error: unknown) => `(could not be read: ${String(error)})`);
    downFrom = Date.now();
    await system.kill();
    log(`SIGKILLed the ${approach === 'timer' || approach === 'service' ? 'worker' : 'consumer'} at ${((downFrom - started) / 1000).toFixed(1)} s; starting it again in ${o.outage} s`);
    await sleep(outageMs);
    system.restart();
    downUntil = Date.now();
    await system.ready();
    backAt = Date.now();
    backAfterMs = backAt - downFrom;
  })();

  const limiter = new Limiter(64);
  const payments: Promise<void>[] = [];
  const paymentOutcomes: Record<string, number> = {};
  const placedOrders: (Placed & { window: PlannedOrder['window'] })[] = [];
  let placeFailures = 0;
  let lastPlacedAt = started;
  const placing: Promise<void>[] = [];
  const progress = setInterval(() => log(`${placedOrders.length}/${plan.length} placed, ${Object.values(paymentOutcomes).reduce((a, b) => a + b, 0)} payments answered`), o.progressSeconds * 1000);
  try {
    for (const order of plan) {
      const wait = started + order.placeAtMs - Date.now();
      if (wait > 0) await sleep(wait);
      const customerId = `${CUSTOMER_PREFIX}${order.n % 97}`;
      placing.push(
        limiter
          .run(() => system.place(order, customerId))
          .then((placed) => {
            if (!placed) return;
            placedOrders.push({ ...placed, window: order.window });
            lastPlacedAt = Date.now();
            if (!order.payment) return;
            const at = paymentTime(order.payment, placed.placedAtMs, order.windowSeconds, placed.expiresAtMs);
            payments.push(
              sleep(Math.max(0, at - Date.now()))
                .then(() => system.pay(placed, `pay-${placed.orderId}`))
                .then((outcome) => {
                  paymentOutcomes[outcome] = (paymentOutcomes[outcome] ?? 0) + 1;
                })
                .catch((error: unknown) => {
                  const key = `error: ${(error as Error).message.slice(0, 60)}`;
                  paymentOutcomes[key] = (paymentOutcomes[key] ?? 0) + 1;
                }),
            );
          })
          .catch((error: unknown) => {
            placeFailures++;
            if (placeFailures <= 3) log(`an order could not be placed: ${(error as Error).message}`);
          }),
      );
    }
    await Promise.all(placing);
    const placingSeconds = (lastPlacedAt - started) / 1000;
    log(`${placedOrders.length} placed in ${placingSeconds.toFixed(1)} s (planned ${(spanMs / 1000).toFixed(1)} s)`);
    await crash;
    await Promise.all(payments);

    // Drain: every order paid or expired, or the wait is over (what is still held then counts as lost).
    const lastDeadline = Math.max(...placedOrders.map((p) => p.expiresAtMs), Date.now());
    const waitUntil = lastDeadline + Math.max(60_000, 3 * durations.longWindowSeconds * 1000);
    for (;;) {
      const open = await awaitingPayment(system.databaseUrl);
      if (open === 0 || Date.now() > waitUntil) break;
      if (Date.now() > lastDeadline) log(`${open} orders still awaiting payment or their release`);
      await sleep(Date.now() > lastDeadline ? 1000 : Math.min(2000, lastDeadline - Date.now() + 50));
    }
    const usage: WindowUsage = monitor.finish();
    const consumer = system.counters();
    await system.quiesce();
    const after = await databaseCounters(system.databaseUrl);
    const outcome: Outcome = await readOutcome(system.databaseUrl, downFrom, backAt);

    const windowOf = new Map(placedOrders.map((p) => [p.orderId, p.window]));
    const lags = outcome.releases.map((r) => r.lagMs);
    const down = outcome.releases.filter((r) => r.dueWhileDown).map((r) => r.lagMs);
    const orders = Math.max(1, outcome.placed);
    const cpuMsByPart = Object.fromEntries(
      Object.entries(usage.parts).map(([part, u]) => [part, ((u.cpuPercent / 100) * usage.seconds * 1000) / orders]),
    );
    const figure: Omit<ApproachFigures, 'label' | 'realScale'> = {
      approach,
      description: system.description,
      orders: outcome.placed,
      placingSeconds,
      placeFailures,
      payments: paymentOutcomes,
      paid: outcome.paid,
      expired: outcome.expired,
      released: outcome.releases.length,
      lagMs: lagsOf(lags),
      shortWindowLagMs: lagsOf(outcome.releases.filter((r) => windowOf.get(r.orderId) === 'short').map((r) => r.lagMs)),
      longWindowLagMs: lagsOf(outcome.releases.filter((r) => windowOf.get(r.orderId) === 'long').map((r) => r.lagMs)),
      dueWhileDown: { count: down.length, maxLagMs: down.length ? Math.max(...down) : Number.NaN },
      dueWhileUpLagMs: lagsOf(outcome.releases.filter((r) => !r.dueWhileDown).map((r) => r.lagMs)),
      downSeconds: (downUntil - downFrom) / 1000,
      ...(backAfterMs !== undefined && { backAfterSeconds: backAfterMs / 1000 }),
      stillHeld: outcome.stillHeld,
      lost: outcome.lost,
      doubled: outcome.doubled,
      violations: outcome.violations,
      ...(consumer && { consumer }),
      transactionsPerOrder: (after.transactions - before.transactions) / orders,
      rowsReadPerOrder: (after.rowsRead - before.rowsRead) / orders,
      cpuMsPerOrder: Object.values(cpuMsByPart).reduce((a, b) => a + b, 0),
      cpuMsPerOrderByPart: cpuMsByPart,
      loadAverage: usage.loadAverage,
      operatorView,
    };
    log(
      `${outcome.placed} orders: ${outcome.paid} paid, ${outcome.expired} expired; lag p50 ${fmtMs(figure.lagMs?.p50)} p99 ${fmtMs(figure.lagMs?.p99)} max ${fmtMs(figure.lagMs?.max)}; ` +
        `still held ${outcome.stillHeld}, lost ${outcome.lost}, doubled ${outcome.doubled}; payments ${JSON.stringify(paymentOutcomes)}` +
        (consumer ? `; consumer ${JSON.stringify(consumer)}` : '') +
        `; ${figure.transactionsPerOrder?.toFixed(1)} transactions/order; CPU ${figure.cpuMsPerOrder?.toFixed(1)} ms/order; load ${usage.loadAverage.toFixed(1)}`,
    );
    return figure;
  } finally {
    clearInterval(progress);
    monitor.stop();
  }
}

function fmtMs(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return 'n/a';
  return value >= 10_000 ? `${(value / 1000).toFixed(1)} s` : `${Math.round(value)} ms`;
}

/** A duration at real scale: the bench's lag × the time scale for approaches whose periods and windows were scaled. */
function fmtReal(value: number | undefined, f: ApproachFigures, timeScale: number): string {
  if (value === undefined || !Number.isFinite(value)) return 'n/a';
  const real = f.realScale ? value * timeScale : value;
  if (real >= 120_000) return `${(real / 60_000).toFixed(1)} min`;
  return real >= 10_000 ? `${(real / 1000).toFixed(0)} s` : `${(real / 1000).toFixed(2)} s`;
}

function reportLines(o: BenchOptions, d: ScaledDurations, figures: ApproachFigures[]): string[] {
  const n = (v: number | undefined, digits = 1) => (v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(digits));
  const ran = figures.filter((f) => !f.skipped);
  const rows = ran.map((f) =>
    [
      f.label,
      `${f.released ?? 0} of ${f.orders ?? 0}`,
      `${fmtMs(f.lagMs?.p50)} / ${fmtMs(f.lagMs?.p99)} / ${fmtMs(f.lagMs?.max)}`,
      `${fmtReal(f.lagMs?.p50, f, o.timeScale)} / ${fmtReal(f.lagMs?.p99, f, o.timeScale)} / ${fmtReal(f.lagMs?.max, f, o.timeScale)}`,
      `${fmtMs(f.shortWindowLagMs?.p99)} / ${fmtMs(f.longWindowLagMs?.p99)}`,
      `${fmtMs(f.dueWhileUpLagMs?.p99)} / ${fmtMs(f.dueWhileUpLagMs?.max)}`,
      `${f.dueWhileDown?.count ?? 0}: ${fmtMs(f.dueWhileDown?.maxLagMs)}${f.backAfterSeconds === undefined ? '' : ` (back ${f.backAfterSeconds.toFixed(1)} s after the kill)`}`,
      `${f.stillHeld ?? 0} / ${f.doubled ?? 0}`,
      f.consumer ? String(f.consumer.redundant) : 'n/a',
      n(f.transactionsPerOrder),
      n(f.rowsReadPerOrder, 0),
      n(f.cpuMsPerOrder),
      n(f.loadAverage),
    ].join(' | '),
  );
  const lines = [
    `## approaches: how the stock of unpaid orders comes back (same workload, same SQL)`,
    '',
    `workload: ${o.approachOrders} orders placed at ${o.approachRate}/s; payment windows ${d.shortWindowSeconds} s and ${d.longWindowSeconds} s interleaved at random; ` +
      `65 % paid early, 5 % paid within ±200 ms of the deadline, 30 % never paid; the consumer or worker SIGKILLed mid-run and started again ${o.outage} s later`,
    `time scale ${o.timeScale}: a bench second stands for ${o.timeScale} real seconds; cron every ${d.cronPeriodMs} ms (${REAL_SECONDS.cronPeriod} s real), ` +
      `DB polling and the Redis poller every ${d.pollPeriodMs} ms (${REAL_SECONDS.pollPeriod} s real${(REAL_SECONDS.pollPeriod * 1000) / o.timeScale < MIN_PERIOD_MS ? `, clamped to ${MIN_PERIOD_MS} ms` : ''}); ` +
      'the reclaim (every 200 ms) and Temporal\'s timers run at their own speed, unscaled',
    '',
    '| approach | released | lag p50 / p99 / max (bench) | same at real scale (1–4: × time scale; 5–6: as measured) | p99 short / long windows | due while running: p99 / max | due while down: max lag | still held at the end / doubled | redeliveries absorbed | DB transactions per order | rows read per order | CPU per order (ms) | load avg |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r} |`),
    '',
    'What each approach is here, and what an operator could see of its pending releases (read mid-run, just before the kill):',
    '',
    ...ran.flatMap((f) => [`- ${f.label}: ${f.description}.`, `  Seen: ${f.operatorView ?? ''}.`]),
    '',
    'CPU per order by part (ms):',
    '',
    ...ran.map((f) => `- ${f.label}: ${Object.entries(f.cpuMsPerOrderByPart ?? {}).map(([part, v]) => `${part} ${v.toFixed(1)}`).join(', ')}`),
    '',
    'Consumers (1–4, counted in the consumer; the last ≤ 200 ms before the kill may be missing): ',
    '',
    ...ran.filter((f) => f.consumer).map((f) => `- ${f.label}: ${JSON.stringify(f.consumer)}`),
    '',
    ...ran.map((f) => `placing and paying, ${f.label}: placed in ${n(f.placingSeconds)} s, ${f.placeFailures ?? 0} failed; payments ${JSON.stringify(f.payments ?? {})}; ${f.paid ?? 0} PAID, ${f.expired ?? 0} EXPIRED`),
    ...figures.filter((f) => f.skipped).map((f) => `SKIPPED ${f.label}: ${f.skipped}`),
    '',
  ];
  return lines;
}
