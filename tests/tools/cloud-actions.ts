/**
 * Temporal Cloud actions per order, counted from recorded histories by the rules Temporal
 * publishes for billing: a start, each timer, each search-attribute upsert (not
 * TemporalChangeVersion), each signal, each accepted update, each activity attempt, and one
 * per workflow task that ran local activities. Queries and rejected updates leave no event;
 * this service sends neither on an order's path (the API reads PostgreSQL).
 * `npm run cloud-actions` prints the table BENCHMARKS.md holds.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export interface ActionCount {
  start: number;
  timers: number;
  upserts: number;
  signals: number;
  updates: number;
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

export function countActions(events: HistoryEvent[]): ActionCount {
  const count = { start: 0, timers: 0, upserts: 0, signals: 0, updates: 0, activities: 0, localActivityTasks: 0 };
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
  const total = Object.values(count).reduce((a, b) => a + b, 0);
  return { ...count, total };
}

function attributes(event: HistoryEvent, key: string): unknown {
  return event[key];
}

export function countActionsInFile(file: string): ActionCount {
  const history = JSON.parse(readFileSync(file, 'utf8')) as { events: HistoryEvent[] };
  return countActions(history.events);
}

/** Each recorded scenario of the current workflow code (tests/histories/*.json, not the versioned folders). */
export function actionsPerScenario(dir = path.join(__dirname, '..', 'histories')): { scenario: string; actions: ActionCount }[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ scenario: f.replace(/\.json$/, ''), actions: countActionsInFile(path.join(dir, f)) }));
}

export function actionsTable(rows = actionsPerScenario()): string {
  const header = ['scenario', 'start', 'timers', 'upserts', 'signals', 'updates', 'activities', 'local-activity tasks', 'total', 'USD per 1M orders'];
  const lines = rows.map(({ scenario, actions: a }) => [
    scenario,
    a.start,
    a.timers,
    a.upserts,
    a.signals,
    a.updates,
    a.activities,
    a.localActivityTasks,
    a.total,
    `$${(a.total * FIRST_TIER_USD_PER_MILLION).toLocaleString('en-US')}`,
  ].map(String));
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...lines.map((l) => `| ${l.join(' | ')} |`)].join('\n');
}

if (require.main === module) process.stdout.write(`${actionsTable()}\n`);
