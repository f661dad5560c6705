/**
 * Temporal Cloud actions per order: the counting rules on a history made for the purpose, and
 * BENCHMARKS.md holding the table the recorded histories give today.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { actionsTable, countActions } from './tools/cloud-actions';

const taskCompleted = (id: string) => ({ eventType: 'EVENT_TYPE_WORKFLOW_TASK_COMPLETED', eventId: id });
const localActivity = (taskId: string) => ({
  eventType: 'EVENT_TYPE_MARKER_RECORDED',
  markerRecordedEventAttributes: { markerName: 'core_local_activity', workflowTaskCompletedEventId: taskId },
});
const upsert = (...names: string[]) => ({
  eventType: 'EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES',
  upsertWorkflowSearchAttributesEventAttributes: { searchAttributes: { indexedFields: Object.fromEntries(names.map((n) => [n, {}])) } },
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
    expect(counted).toEqual({ start: 1, timers: 1, upserts: 1, signals: 1, updates: 1, activities: 3, localActivityTasks: 2, total: 10 });
  });

  it('BENCHMARKS.md holds the table of actions per scenario that the recorded histories give (npm run cloud-actions)', () => {
    const benchmarks = readFileSync(path.join(__dirname, '..', 'BENCHMARKS.md'), 'utf8');
    expect(benchmarks).toContain(actionsTable());
  });
});
