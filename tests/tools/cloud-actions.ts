/**
 * Temporal Cloud actions per order, by the rules Temporal publishes for billing. From a
 * workflow's history: its start, each timer, each search-attribute upsert (not
 * TemporalChangeVersion), each signal, each accepted update, each activity attempt, and one per
 * workflow task that ran local activities. From the API's own calls: each rejected update and
 * each query, which leave no event. An order costs the sum over every workflow run it caused.
 * `npm run cloud-actions` measures it (tests/tools/measure-cloud-actions.ts); this file holds
 * the rules and the tables BENCHMARKS.md shows, computed from the measurements it saved.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { TemporalCall } from './temporal-calls';

export interface ActionCount {
  start: number;
  timers: number;
  upserts: number;
  signals: number;
  updates: number;
  rejectedUpdates: number;
  queries: number;
  activities: number;
  localActivityTasks: number;
  total: number;
}

interface HistoryEvent {
  eventType: string;
  [attributes: string]: unknown;
}

/** Price of the first 5M actions a month, pay-as-you-go (USD per million). */
export const FIRST_TIER_USD_PER_MILLION = 50;

const VERSIONING_ATTRIBUTE = 'TemporalChangeVersion';

type Counted = Omit<ActionCount, 'total'>;

const NONE: Counted = { start: 0, timers: 0, upserts: 0, signals: 0, updates: 0, rejectedUpdates: 0, queries: 0, activities: 0, localActivityTasks: 0 };

function withTotal(count: Counted): ActionCount {
  return { ...count, total: Object.values(count).reduce((a, b) => a + b, 0) };
}

/** The actions one workflow run's history shows (JSON form, as historyToJSON writes it). */
export function countActions(events: HistoryEvent[]): ActionCount {
  const count = { ...NONE };
  const tasksWithLocalActivities = new Set<string>();
  for (const event of events) {
    switch (event.eventType) {
      case 'EVENT_TYPE_WORKFLOW_EXECUTION_STARTED':
        count.start++;
        break;
      case 'EVENT_TYPE_TIMER_STARTED':
        count.timers++;
        break;
      case 'EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES': {
        const fields = attributes(event, 'upsertWorkflowSearchAttributesEventAttributes') as
          | { searchAttributes?: { indexedFields?: Record<string, unknown> } }
          | undefined;
        const names = Object.keys(fields?.searchAttributes?.indexedFields ?? {});
        if (names.some((name) => name !== VERSIONING_ATTRIBUTE)) count.upserts++;
        break;
      }
      case 'EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED':
        count.signals++;
        break;
      case 'EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED':
        count.updates++;
        break;
      case 'EVENT_TYPE_ACTIVITY_TASK_STARTED': {
        // Written once, when the last attempt started; `attempt` says how many there were.
        const started = attributes(event, 'activityTaskStartedEventAttributes') as { attempt?: number } | undefined;
        count.activities += Math.max(1, started?.attempt ?? 1);
        break;
      }
      case 'EVENT_TYPE_MARKER_RECORDED': {
        const marker = attributes(event, 'markerRecordedEventAttributes') as
          | { markerName?: string; workflowTaskCompletedEventId?: string }
          | undefined;
        if (marker?.markerName === 'core_local_activity') tasksWithLocalActivities.add(String(marker.workflowTaskCompletedEventId));
        break;
      }
    }
  }
  count.localActivityTasks = tasksWithLocalActivities.size;
  return withTotal(count);
}

/** The ids of the updates this history accepted: a failed update call not among them was rejected. */
export function acceptedUpdateIds(events: HistoryEvent[]): string[] {
  return events
    .filter((event) => event.eventType === 'EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED')
    .map((event) => {
      const accepted = attributes(event, 'workflowExecutionUpdateAcceptedEventAttributes') as
        | { acceptedRequest?: { meta?: { updateId?: string } } }
        | undefined;
      return accepted?.acceptedRequest?.meta?.updateId ?? '';
    });
}

function attributes(event: HistoryEvent, key: string): unknown {
  return event[key];
}

/** One workflow run an order caused, as the server recorded it. */
export interface WorkflowRunRecord {
  workflowId: string;
  runId: string;
  workflowType: string;
  actions: ActionCount;
  acceptedUpdateIds: string[];
}

/** Everything recorded for one order: the workflow runs it caused and the API's calls about it. */
export interface OrderRecord {
  orderId: string;
  workflows: WorkflowRunRecord[];
  calls: TemporalCall[];
}

export interface OrderCost {
  workflows: number;
  actions: ActionCount;
  /** Calls the server answered with an error before a worker saw them (a closed workflow): no action. */
  refusedCalls: number;
}

/**
 * What an order costs: the actions of every run it caused, plus the API's rejected updates
 * (a failed update that no history accepted) and queries, which no history shows.
 */
export function orderCost(order: OrderRecord): OrderCost {
  const count = { ...NONE };
  for (const run of order.workflows) {
    for (const key of Object.keys(NONE) as (keyof Counted)[]) count[key] += run.actions[key];
  }
  const accepted = new Set(order.workflows.flatMap((run) => run.acceptedUpdateIds.map((id) => `${run.workflowId}/${run.runId}/${id}`)));
  const isUpdate = (call: TemporalCall) => call.kind === 'update' || call.kind === 'updateWithStart';
  count.rejectedUpdates = order.calls.filter(
    (call) => isUpdate(call) && call.outcome === 'failed' && !accepted.has(`${call.workflowId}/${call.runId}/${call.updateId}`),
  ).length;
  count.queries = order.calls.filter((call) => call.kind === 'query' && call.outcome === 'ok').length;
  return {
    workflows: order.workflows.length,
    actions: withTotal(count),
    refusedCalls: order.calls.filter((call) => call.outcome !== 'ok' && call.outcome !== 'failed').length,
  };
}

/** What `npm run cloud-actions` saves: every path, each driven `runsPerPath` times. */
export interface CloudActionsMeasurement {
  measuredAt: string;
  /** The code measured: a commit, and whether the work tree differed from it. */
  code: string;
  runsPerPath: number;
  paths: { path: string; description: string; orders: OrderRecord[] }[];
}

export const MEASUREMENTS_DIR = path.resolve(__dirname, '../measurements');
/** The measurement of the code as it is (re-measure after changing what the API or a workflow sends). */
export const CURRENT_MEASUREMENT = path.join(MEASUREMENTS_DIR, 'cloud-actions.json');
/** main at a9ba3c3: a late-payment workflow for every paid order. */
export const BEFORE_MEASUREMENT = path.join(MEASUREMENTS_DIR, 'cloud-actions-a9ba3c3.json');

export function loadMeasurement(file: string): CloudActionsMeasurement {
  return JSON.parse(readFileSync(file, 'utf8')) as CloudActionsMeasurement;
}

/**
 * A path's cost over its runs: the typical run (the most frequent cost, for the split by kind),
 * and each run's workflows and actions (their mean is what the path costs on average).
 */
export function pathCost(orders: OrderRecord[]): { typical: OrderCost; workflows: number[]; totals: number[] } {
  const costs = orders.map(orderCost);
  const seen = new Map<string, { cost: OrderCost; times: number }>();
  for (const cost of costs) {
    const key = JSON.stringify(cost);
    const entry = seen.get(key) ?? { cost, times: 0 };
    entry.times++;
    seen.set(key, entry);
  }
  const [typical] = [...seen.values()].sort((a, b) => b.times - a.times);
  if (!typical) throw new Error('a path with no runs');
  return { typical: typical.cost, workflows: costs.map((c) => c.workflows), totals: costs.map((c) => c.actions.total) };
}

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
const oneDecimal = (value: number) => String(Math.round(value * 10) / 10);

/** The mean over the runs, with their range when they differed (a race between the API's wait and the workflow's close). */
function meanCell(values: number[]): string {
  const [low, high] = [Math.min(...values), Math.max(...values)];
  return low === high ? String(low) : `${oneDecimal(mean(values))} (${low}–${high})`;
}

const usd = (actions: number) => `$${Math.round(actions * FIRST_TIER_USD_PER_MILLION).toLocaleString('en-US')}`;

function markdown(header: string[], rows: string[][]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** Actions per path: the typical run split by kind, and the mean over all runs, as BENCHMARKS.md holds it. */
export function actionsTable(m: CloudActionsMeasurement): string {
  const header = [
    'path', 'workflows', 'start', 'timers', 'upserts', 'signals', 'updates', 'rejected updates',
    'activities', 'local-activity tasks', 'total', 'mean over the runs', 'USD per 1M orders', 'calls refused (no action)',
  ];
  const rows = m.paths.map(({ path: name, orders }) => {
    const cost = pathCost(orders);
    const a = cost.typical.actions;
    return [
      name, cost.typical.workflows, a.start, a.timers, a.upserts, a.signals, a.updates, a.rejectedUpdates,
      a.activities, a.localActivityTasks, a.total, meanCell(cost.totals), usd(mean(cost.totals)), cost.typical.refusedCalls,
    ].map(String);
  });
  return markdown(header, rows);
}

/** Workflows and actions per path (means over the runs), before and after, for the paths both measured. */
export function comparisonTable(before: CloudActionsMeasurement, after: CloudActionsMeasurement): string {
  const rows = after.paths.flatMap(({ path: name, orders }) => {
    const earlier = before.paths.find((p) => p.path === name);
    if (!earlier) return [];
    const was = pathCost(earlier.orders);
    const now = pathCost(orders);
    const change = Math.round((mean(now.totals) - mean(was.totals)) * 10) / 10;
    return [[name, meanCell(was.workflows), meanCell(was.totals), meanCell(now.workflows), meanCell(now.totals), change > 0 ? `+${change}` : String(change)]];
  });
  return markdown(['path', 'workflows before', 'actions before', 'workflows after', 'actions after', 'change (mean)'], rows);
}

/** When and on which code a measurement ran, as BENCHMARKS.md cites it. */
export function measuredOn(m: CloudActionsMeasurement): string {
  return `${m.measuredAt.slice(0, 10)}, code ${m.code}, ${m.runsPerPath} orders per path`;
}
