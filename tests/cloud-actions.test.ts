/**
 * Temporal Cloud actions per order: the counting rules on histories and calls made for the
 * purpose, and BENCHMARKS.md holding the tables that the saved measurements give
 * (`npm run cloud-actions` drives the real API and saves them; too slow and racy for a test).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  actionsTable,
  BEFORE_MEASUREMENT,
  comparisonTable,
  countActions,
  CURRENT_MEASUREMENT,
  loadMeasurement,
  measuredOn,
  orderCost,
  type ActionCount,
  type OrderRecord,
} from './tools/cloud-actions';
import { PATHS } from './tools/measure-cloud-actions';
import type { TemporalCall } from './tools/temporal-calls';

const taskCompleted = (id: string) => ({ eventType: 'EVENT_TYPE_WORKFLOW_TASK_COMPLETED', eventId: id });
const localActivity = (taskId: string) => ({
  eventType: 'EVENT_TYPE_MARKER_RECORDED',
  markerRecordedEventAttributes: { markerName: 'core_local_activity', workflowTaskCompletedEventId: taskId },
});
const upsert = (...names: string[]) => ({
  eventType: 'EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES',
  upsertWorkflowSearchAttributesEventAttributes: { searchAttributes: { indexedFields: Object.fromEntries(names.map((n) => [n, {}])) } },
});

const NONE: ActionCount = { start: 0, timers: 0, upserts: 0, signals: 0, updates: 0, rejectedUpdates: 0, queries: 0, activities: 0, localActivityTasks: 0, total: 0 };
const run = (workflowId: string, actions: Partial<ActionCount>, acceptedUpdateIds: string[] = []) => ({
  workflowId,
  runId: `run-of-${workflowId}`,
  workflowType: 'orderWorkflow',
  actions: { ...NONE, ...actions },
  acceptedUpdateIds,
});
const update = (workflowId: string, updateId: string, outcome: TemporalCall['outcome']): TemporalCall => ({
  kind: 'update',
  workflowId,
  runId: `run-of-${workflowId}`,
  name: 'awaitPaymentDecision',
  updateId,
  outcome,
});

describe('Temporal Cloud actions counted from a history', () => {
  it('counts a start, timers, upserts but not the versioning one, signals, updates, every activity attempt and one per task with local activities', () => {
    const counted = countActions([
      { eventType: 'EVENT_TYPE_WORKFLOW_EXECUTION_STARTED' },
      taskCompleted('4'),
      { eventType: 'EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED' },
      { eventType: 'EVENT_TYPE_MARKER_RECORDED', markerRecordedEventAttributes: { markerName: 'core_patch', workflowTaskCompletedEventId: '4' } },
      upsert('TemporalChangeVersion'),
      localActivity('4'),
      localActivity('4'),
      upsert('OrderStatus', 'CustomerId', 'PaymentDeadline'),
      { eventType: 'EVENT_TYPE_TIMER_STARTED' },
      { eventType: 'EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED' },
      taskCompleted('15'),
      localActivity('15'),
      { eventType: 'EVENT_TYPE_ACTIVITY_TASK_SCHEDULED' },
      { eventType: 'EVENT_TYPE_ACTIVITY_TASK_STARTED', activityTaskStartedEventAttributes: { attempt: 3 } },
      { eventType: 'EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED' },
    ]);
    expect(counted).toEqual({ ...NONE, start: 1, timers: 1, upserts: 1, signals: 1, updates: 1, activities: 3, localActivityTasks: 2, total: 10 });
  });
});

describe('what an order costs', () => {
  it('is the sum over every workflow run it caused', () => {
    const order: OrderRecord = {
      orderId: 'o',
      workflows: [run('order-o', { start: 1, timers: 1, total: 2 }), run('late-payment-o-p', { start: 1, activities: 2, total: 3 })],
      calls: [],
    };
    expect(orderCost(order)).toEqual({ workflows: 2, actions: { ...NONE, start: 2, timers: 1, activities: 2, total: 5 }, refusedCalls: 0 });
  });

  it('adds each rejected update (failed, and accepted by no history) and each query, which no history shows', () => {
    const order: OrderRecord = {
      orderId: 'o',
      workflows: [run('order-o', { start: 1, updates: 1, total: 2 }, ['accepted-then-failed'])],
      calls: [
        update('order-o', 'rejected', 'failed'),
        update('order-o', 'rejected', 'failed'),
        update('order-o', 'accepted-then-failed', 'failed'),
        { kind: 'query', workflowId: 'order-o', name: 'getOrder', outcome: 'ok' },
      ],
    };
    expect(orderCost(order).actions).toEqual({ ...NONE, start: 1, updates: 1, rejectedUpdates: 2, queries: 1, total: 5 });
  });

  it('counts no action for a call the server refused before a worker saw it (a closed workflow), but counts the call', () => {
    const order: OrderRecord = {
      orderId: 'o',
      workflows: [run('order-o', { start: 1, total: 1 })],
      calls: [
        { kind: 'signal', workflowId: 'order-o', name: 'paymentReceived', outcome: 'notFound' },
        update('order-o', 'u', 'notFound'),
      ],
    };
    expect(orderCost(order)).toEqual({ workflows: 1, actions: { ...NONE, start: 1, total: 1 }, refusedCalls: 2 });
  });
});

describe('BENCHMARKS.md, "Temporal Cloud cost per order"', () => {
  const benchmarks = readFileSync(path.join(__dirname, '..', 'BENCHMARKS.md'), 'utf8');
  const current = loadMeasurement(CURRENT_MEASUREMENT);
  const before = loadMeasurement(BEFORE_MEASUREMENT);

  it('holds the table of actions per path that the saved measurement gives, and says when and on which code it ran', () => {
    expect(benchmarks).toContain(actionsTable(current));
    expect(benchmarks).toContain(measuredOn(current));
  });

  it('holds the comparison with the code before (a9ba3c3) that the two measurements give', () => {
    expect(benchmarks).toContain(comparisonTable(before, current));
    expect(benchmarks).toContain(measuredOn(before));
  });

  it('rests on a measurement of every path the tool drives', () => {
    expect(current.paths.map((p) => p.path)).toEqual(PATHS.map((p) => p.path));
    expect(current.paths.every((p) => p.orders.length === current.runsPerPath)).toBe(true);
  });
});
