/**
 * Collects every run's figures and prints them as one table (Markdown, so it pastes into BENCHMARKS.md).
 *
 * Over 400 lines: the definition of every figure the bench reports, in the order of its table;
 * one list, so a figure cannot be printed without its definition.
 */
import type { BenchOptions, Scenario } from './options';
import type { ThreadUsage, WindowUsage } from './proc-stats';
import { spread, type Spread } from './stats';

interface FigureDefinition {
  scenario: Scenario;
  label: (o: BenchOptions) => string;
  goal: string;
  format: (value: number) => string;
  /** Whether a median meets the goal; absent when the figure has no goal. */
  meets?: (median: number, o: BenchOptions) => boolean;
}

const perSecond = (v: number) => `${v.toFixed(1)}/s`;
const ms = (v: number) => `${Math.round(v)} ms`;
const mib = (v: number) => `${Math.round(v)} MiB`;
const whole = (v: number) => Math.round(v).toLocaleString('en-US');
const GIB = 1024;

const ratio = (v: number) => `× ${v.toFixed(2)}`;
const fractionMs = (v: number) => (v < 10 ? `${v.toFixed(2)} ms` : `${Math.round(v).toLocaleString('en-US')} ms`);

/** A hot-path operation's cost on the empty database or with the history kept (history scenario). */
function historyCost(operation: string, database: 'empty' | 'history'): FigureDefinition {
  return {
    scenario: 'history',
    label: (o) => `history: ${operation}, median, ${database === 'empty' ? 'empty database' : `${o.historyOrders.toLocaleString('en-US')} closed orders kept`}`,
    goal: database === 'empty' ? '' : 'report',
    format: fractionMs,
  };
}

function historyRatio(operation: string, goalMet = true): FigureDefinition {
  return {
    scenario: 'history',
    label: () => `history: ${operation}, with history ÷ empty (same run)`,
    goal: goalMet ? '≤ × 1.20' : 'report',
    format: ratio,
    ...(goalMet && { meets: (v: number) => v <= 1.2 }),
  };
}

export const FIGURES = {
  heldPerSecond: {
    scenario: 'throughput',
    label: (o) =>
      `orders held per second, end to end (HTTP → workflow → stock held), ${o.connections} clients, ${o.duration} s` +
      (o.paidShare > 0 ? `, ${Math.round(o.paidShare * 100)} % of them then paid` : ''),
    goal: '≥ 150/s',
    format: perSecond,
    meets: (v) => v >= 150,
  },
  latencyP50: {
    scenario: 'throughput',
    label: (o) => `POST /orders latency p50, ${o.connections} clients (closed loop: saturation)`,
    goal: '',
    format: ms,
  },
  latencyP99: {
    scenario: 'throughput',
    label: (o) => `POST /orders latency p99, ${o.connections} clients (closed loop: saturation)`,
    goal: '≤ 150 ms',
    format: ms,
    meets: (v) => v <= 150,
  },
  paidPerSecond: {
    scenario: 'throughput',
    label: () => 'orders paid per second, end to end (signed webhook → workflow → stock sold; same run)',
    goal: 'report',
    format: perSecond,
  },
  payLatencyP50: {
    scenario: 'throughput',
    label: () => 'POST /webhooks/payments latency p50 (answered with the decided outcome)',
    goal: '',
    format: ms,
  },
  payLatencyP99: {
    scenario: 'throughput',
    label: () => 'POST /webhooks/payments latency p99',
    goal: '',
    format: ms,
  },
  failed: {
    scenario: 'throughput',
    label: () => 'POST /orders answered other than 201, payments other than APPLIED, or failed (errors, timeouts; not those in flight at the end)',
    goal: '0',
    format: whole,
    meets: (v) => v === 0,
  },
  floorPerSecond: {
    scenario: 'throughput',
    label: (o) => `engine floor: the order's shape with no-op activities, bare worker + client, ${o.connections} callers (same run, same engine)`,
    goal: '',
    format: perSecond,
  },
  floorRatio: {
    scenario: 'throughput',
    label: () => 'end to end ÷ engine floor (orders held; same run)',
    goal: '≥ 90 %',
    format: (v) => `${(v * 100).toFixed(1)} %`,
    meets: (v) => v >= 0.9,
  },
  paidFloorRatio: {
    scenario: 'throughput',
    label: () => 'orders paid ÷ engine floor (same run; the floor pays nothing)',
    goal: 'report',
    format: (v) => `${(v * 100).toFixed(1)} %`,
  },
  ceilingPerSecond: {
    scenario: 'throughput',
    label: (o) => `ceiling: the same hold step as bare SQL (pg, ${o.connections} callers, pool ${o.sqlPool})`,
    goal: '',
    format: perSecond,
  },
  ceilingRatio: {
    scenario: 'throughput',
    label: () => 'end to end ÷ bare-SQL ceiling (same run)',
    goal: 'report',
    format: (v) => `${(v * 100).toFixed(1)} %`,
  },
  openLoopMaximum: {
    scenario: 'latency',
    label: (o) => `closed-loop maximum before the open loop (saturation, ${o.connections} clients)`,
    goal: '',
    format: perSecond,
  },
  openLoopRate: {
    scenario: 'latency',
    label: () => 'open loop: offered rate (half the maximum)',
    goal: '',
    format: perSecond,
  },
  openLoopP50: {
    scenario: 'latency',
    label: () => 'open loop: POST /orders latency p50',
    goal: '',
    format: ms,
  },
  openLoopP99: {
    scenario: 'latency',
    label: () => 'open loop: POST /orders latency p99',
    goal: '≤ 150 ms',
    format: ms,
    meets: (v) => v <= 150,
  },
  openLoopMax: {
    scenario: 'latency',
    label: () => 'open loop: POST /orders latency max',
    goal: '',
    format: ms,
  },
  openLoopFailed: {
    scenario: 'latency',
    label: () => 'open loop: answered other than 201 or failed',
    goal: '0',
    format: whole,
    meets: (v) => v === 0,
  },
  expiryLagP50: {
    scenario: 'expiry',
    label: (o) => `expiry lag p50 (expiresAt → stock available), ${whole(o.expiryOrders)} orders due within ${o.expiryWindow} s`,
    goal: '',
    format: ms,
  },
  expiryLagP99: {
    scenario: 'expiry',
    label: () => 'expiry lag p99',
    goal: '≤ 1000 ms',
    format: ms,
    meets: (v) => v <= 1000,
  },
  expiryLagMax: {
    scenario: 'expiry',
    label: () => 'expiry lag max',
    goal: '',
    format: ms,
  },
  expiryNotReleased: {
    scenario: 'expiry',
    label: () => 'expired orders whose stock was not back by the end of the wait',
    goal: '0',
    format: whole,
    meets: (v) => v === 0,
  },
  floorOnlyPerSecond: {
    scenario: 'floor',
    label: (o) => `engine floor: orders held per second, bare worker + client, ${o.connections} callers, ${o.duration} s`,
    goal: 'report',
    format: perSecond,
  },
  floorOnlyLatencyP99: {
    scenario: 'floor',
    label: () => 'engine floor: update-with-start latency p99',
    goal: '',
    format: ms,
  },
  floorReleasedPerSecond: {
    scenario: 'floor',
    label: (o) => `engine floor: releases per second, ${whole(o.expiryOrders)} due within ${o.expiryWindow} s (timer → local no-op)`,
    goal: 'report',
    format: perSecond,
  },
  floorReleaseLagP99: {
    scenario: 'floor',
    label: () => 'engine floor: release lag p99 (deadline → release ran)',
    goal: '',
    format: ms,
  },
  expiryFreedBought: {
    scenario: 'expiry',
    label: () => 'a buyer asking for the whole freed quantity of the flash sku 1 s after the last deadline got it (1 = yes)',
    goal: '1',
    format: whole,
    meets: (v) => v === 1,
  },
  expiryFreedHeldAfterMs: {
    scenario: 'expiry',
    label: () => "that buyer's order held, after (201, or a 202 then held behind the timers' backlog)",
    goal: 'report',
    format: ms,
  },
  workflowCloseLagP50: {
    scenario: 'expiry',
    label: () => 'workflow close lag p50 (expiresAt → its workflow closed as EXPIRED)',
    goal: '',
    format: ms,
  },
  workflowCloseLagP99: {
    scenario: 'expiry',
    label: () => 'workflow close lag p99',
    goal: 'report',
    format: ms,
  },
  workflowCloseLagMax: {
    scenario: 'expiry',
    label: () => 'workflow close lag max',
    goal: '',
    format: ms,
  },
  workflowsNotExpired: {
    scenario: 'expiry',
    label: () => 'workflows of the run not closed as EXPIRED at the end of the wait',
    goal: '0',
    format: whole,
    meets: (v) => v === 0,
  },
  awaiting: {
    scenario: 'scale',
    label: () => 'orders awaiting payment at once (open workflows with a pending timer)',
    goal: '100,000',
    format: whole,
    meets: (v) => v >= 100_000,
  },
  workerRssPeak: {
    scenario: 'scale',
    label: () => 'worker RSS, peak while they were created',
    goal: '≤ 1 GiB',
    format: mib,
    meets: (v) => v <= GIB,
  },
  workerRssEnd: {
    scenario: 'scale',
    label: () => 'worker RSS at the end',
    goal: '≤ 1 GiB',
    format: mib,
    meets: (v) => v <= GIB,
  },
  temporalRssEnd: {
    scenario: 'scale',
    label: () => 'Temporal dev server RSS at the end (in-memory store)',
    goal: '',
    format: mib,
  },
  apiRssPeak: {
    scenario: 'scale',
    label: () => 'API RSS, peak',
    goal: '',
    format: mib,
  },
  flashAnswersPerSecond: {
    scenario: 'flash',
    label: (o) => `flash: buyers answered per second, ${whole(o.units)} units, ${whole(o.buyers)} one-unit buyers, ${o.connections} clients`,
    goal: 'report',
    format: perSecond,
  },
  flashHeldP50: {
    scenario: 'flash',
    label: () => 'flash: latency of held answers (201) p50',
    goal: '',
    format: ms,
  },
  flashHeldP99: {
    scenario: 'flash',
    label: () => 'flash: latency of held answers (201) p99',
    goal: 'report',
    format: ms,
  },
  flashSoldOutP50: {
    scenario: 'flash',
    label: () => 'flash: latency of sold-out answers (409) p50',
    goal: '',
    format: ms,
  },
  flashSoldOutP99: {
    scenario: 'flash',
    label: () => 'flash: latency of sold-out answers (409) p99',
    goal: '≤ 100 ms',
    format: ms,
    meets: (v) => v <= 100,
  },
  flashSoldOutRate: {
    scenario: 'flash',
    label: () => 'flash: answers per second once sold out (from the first 409 to the last answer)',
    goal: '≥ 500/s',
    format: perSecond,
    meets: (v) => v >= 500,
  },
  flashHoldRate: {
    scenario: 'flash',
    label: () => 'flash: holds per second (units held ÷ time from the start to the last hold)',
    goal: '',
    format: perSecond,
  },
  flashBaselineRate: {
    scenario: 'flash',
    label: (o) => `flash: baseline, ordinary one-unit orders held per second just before the drop (${o.flashBaseline} s, same clients)`,
    goal: '',
    format: perSecond,
  },
  flashHoldRatio: {
    scenario: 'flash',
    label: () => 'flash: holds per second ÷ baseline (same run)',
    goal: '≥ 90 %',
    format: (v) => `${(v * 100).toFixed(1)} %`,
    meets: (v) => v >= 0.9,
  },
  flashWorkflows: {
    scenario: 'flash',
    label: () => 'flash: order workflows started by the drop',
    goal: '≤ units + clients',
    format: whole,
    meets: (v, o) => v <= o.units + o.connections,
  },
  flashHeld: {
    scenario: 'flash',
    label: () => 'flash: units held at the end (never more, never fewer than on sale)',
    goal: '= units',
    format: whole,
    meets: (v, o) => v === o.units,
  },
  historyOrders: {
    scenario: 'history',
    label: () => 'history: closed orders loaded (spread over a year; lines, ledger, payments, events, deliveries)',
    goal: '',
    format: whole,
  },
  historyLedgerRows: { scenario: 'history', label: () => 'history: ledger rows (stock_movements) then', goal: '', format: whole },
  historyEvents: { scenario: 'history', label: () => 'history: order events then', goal: '', format: whole },
  historyLoadSeconds: {
    scenario: 'history',
    label: () => 'history: time to generate it in SQL (and VACUUM ANALYZE)',
    goal: 'minutes',
    format: (v) => `${Math.round(v)} s`,
  },
  historyHoldEmpty: historyCost('a hold (admission + hold_order)', 'empty'),
  historyHoldFull: historyCost('a hold (admission + hold_order)', 'history'),
  historyHoldRatio: historyRatio('a hold'),
  historyPaymentEmpty: historyCost('a payment (receipt + decide_order COMMIT)', 'empty'),
  historyPaymentFull: historyCost('a payment (receipt + decide_order COMMIT)', 'history'),
  historyPaymentRatio: historyRatio('a payment'),
  historyReclaimEmpty: historyCost('the reclaim\'s batch of 50 due orders', 'empty'),
  historyReclaimFull: historyCost('the reclaim\'s batch of 50 due orders', 'history'),
  historyReclaimRatio: historyRatio('the reclaim\'s batch'),
  historyClaimEmpty: historyCost('the dispatcher\'s claim of 50 deliveries', 'empty'),
  historyClaimFull: historyCost('the dispatcher\'s claim of 50 deliveries', 'history'),
  historyClaimRatio: historyRatio('the dispatcher\'s claim'),
  historyFeedEmpty: historyCost('the admin feed, a page of 100 at the tail', 'empty'),
  historyFeedFull: historyCost('the admin feed, a page of 100 at the tail', 'history'),
  historyFeedRatio: historyRatio('the admin feed'),
  historyCheckEmpty: historyCost('the inventory check', 'empty'),
  historyCheckFull: historyCost('the inventory check', 'history'),
  historyCheckRatio: historyRatio('the inventory check', false),
  historyPruneOrdersPerSecond: {
    scenario: 'history',
    label: (o) => `history: closed orders pruned per second (${o.pruners} pruners, holds running)`,
    goal: 'report',
    format: perSecond,
  },
  historyPruneRowsPerSecond: { scenario: 'history', label: () => 'history: rows pruned per second (all tables)', goal: 'report', format: perSecond },
  historyPruneHoldP50Ratio: { scenario: 'history', label: () => 'history: hold latency p50 while pruning ÷ before', goal: 'report', format: ratio },
  historyPruneHoldP99Ratio: { scenario: 'history', label: () => 'history: hold latency p99 while pruning ÷ before', goal: 'report', format: ratio },
  historyPruneHoldsPerSecondRatio: { scenario: 'history', label: () => 'history: holds per second while pruning ÷ before', goal: 'report', format: ratio },
  historyCheckAfterPrune: { scenario: 'history', label: () => 'history: the inventory check after pruning', goal: 'report', format: fractionMs },
} satisfies Record<string, FigureDefinition>;

export type FigureId = keyof typeof FIGURES;

/** Below this share of one core a process counts as idle in a phase (its timers and pollers). */
const IDLE_PERCENT = 5;

export class Results {
  readonly runs: Partial<Record<FigureId, number[]>> = {};
  /** perSecond: orders (or releases) the window's work was for, when the phase counts them. */
  readonly usage: { phase: string; usage: WindowUsage; perSecond?: number }[] = [];
  readonly loads: Partial<Record<Scenario, number[]>> = {};
  readonly problems: string[] = [];
  readonly notes: string[] = [];

  record(id: FigureId, value: number): void {
    (this.runs[id] ??= []).push(value);
  }

  recordUsage(scenario: Scenario, phase: string, usage: WindowUsage, perSecond?: number): void {
    this.usage.push({ phase, usage, ...(perSecond !== undefined && { perSecond }) });
    (this.loads[scenario] ??= []).push(usage.loadAverage);
  }

  median(id: FigureId): number | undefined {
    const values = this.runs[id];
    return values?.length ? spread(values).median : undefined;
  }

  fail(problem: string): void {
    this.problems.push(problem);
  }

  note(note: string): void {
    this.notes.push(note);
  }

  figuresTable(o: BenchOptions): string {
    const rows: string[][] = [];
    for (const [id, figure] of Object.entries(FIGURES) as [FigureId, FigureDefinition][]) {
      const values = this.runs[id];
      if (!values?.length) continue;
      const s: Spread = spread(values);
      const shown = (v: number) => (Number.isFinite(v) ? figure.format(v) : 'n/a');
      const loads = spread(this.loads[figure.scenario] ?? []);
      rows.push([
        figure.label(o),
        figure.goal,
        shown(s.median),
        shown(s.min),
        shown(s.max),
        `${s.runs}/${values.length}`,
        figure.meets ? (s.runs > 0 && figure.meets(s.median, o) ? 'yes' : 'NO') : '',
        loads.runs ? `${loads.min.toFixed(1)}–${loads.max.toFixed(1)}` : '',
      ]);
    }
    return markdownTable(['figure', 'goal', 'median', 'min', 'max', 'runs', 'goal met', 'load avg (1 min)'], rows);
  }

  /** CPU (% of one core, median over runs) and peak RSS of each part, per phase. */
  profileTable(): string {
    const phases = [...new Set(this.usage.map((u) => u.phase))];
    const partNames = [...new Set(this.usage.flatMap((u) => Object.keys(u.usage.parts)))];
    const rows = phases.map((phase) => {
      const windows = this.usage.filter((u) => u.phase === phase).map((u) => u.usage);
      const cells = partNames.map((name) => {
        const cpu = spread(windows.map((w) => w.parts[name]?.cpuPercent ?? Number.NaN)).median;
        const rss = Math.max(...windows.map((w) => w.parts[name]?.rssPeakMiB ?? Number.NaN));
        if (!Number.isFinite(cpu)) return '';
        return Number.isFinite(rss) ? `${Math.round(cpu)} % / ${Math.round(rss)} MiB` : `${Math.round(cpu)} %`;
      });
      const busy = spread(windows.map((w) => w.machineBusyPercent)).median;
      const load = spread(windows.map((w) => w.loadAverage)).median;
      return [phase, String(windows.length), ...cells, `${Math.round(busy)} %`, load.toFixed(1)];
    });
    return markdownTable(
      ['phase', 'runs', ...partNames.map((n) => `${n} CPU / RSS peak`), 'machine busy (all cores)', 'load avg'],
      rows,
    );
  }

  /**
   * CPU per order by thread of each Node process, for the phases that count their orders: ms of
   * CPU per order held (% of a core × 10 ÷ orders per second), median over runs.
   */
  threadsTable(): string | undefined {
    const rows: string[][] = [];
    for (const phase of [...new Set(this.usage.map((u) => u.phase))]) {
      const windows = this.usage.filter((u) => u.phase === phase && u.perSecond !== undefined && u.perSecond > 0);
      const partNames = [...new Set(windows.flatMap((w) => Object.keys(w.usage.parts).filter((n) => w.usage.parts[n]?.threads)))];
      for (const name of partNames) {
        // A process idle in this phase (the service's while the floor runs, and the other way round).
        if (spread(windows.map((w) => w.usage.parts[name]?.cpuPercent ?? 0)).median < IDLE_PERCENT) continue;
        const perOrder = (pick: (t: ThreadUsage) => number) =>
          spread(windows.map((w) => {
            const threads = w.usage.parts[name]?.threads;
            return threads ? (pick(threads) * 10) / (w.perSecond ?? Number.NaN) : Number.NaN;
          })).median;
        const cells = [
          perOrder((t) => t.eventLoop),
          perOrder((t) => t.busiestOther),
          perOrder((t) => t.otherNode),
          perOrder((t) => t.native),
          perOrder((t) => t.eventLoop + t.busiestOther + t.otherNode + t.native),
        ];
        rows.push([phase, name, String(windows.length), ...cells.map((v) => (Number.isFinite(v) ? `${v.toFixed(1)} ms` : ''))]);
      }
    }
    if (rows.length === 0) return undefined;
    return markdownTable(
      ['phase', 'process', 'runs', 'event loop', 'busiest other thread', 'other node threads', 'SDK core (Rust)', 'all threads'],
      rows,
    );
  }
}

export function markdownTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}
