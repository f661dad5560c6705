/** What fault tests look at after the fault: the ledger and the workflow's own history. */
import type { Client } from '@temporalio/client';
import type { PrismaClient, StockMovementKind } from '../../prisma/generated/client';
import type { OrderResponse } from '../../src/api/schemas';
import { orderWorkflowId } from '../../workflows/messages';
import type { LockHolder } from './lock-holder';
import { eventually, sleep } from './wait';
import type { WorkerProcess } from './worker-process';

const SETTLEMENTS = ['RELEASE', 'COMMIT'] as const satisfies readonly StockMovementKind[];
export type Settlement = (typeof SETTLEMENTS)[number];

/**
 * The ledger rows of the given orders (of `kinds` only, when given), as `orderId sku → kinds`, e.g.
 * { "<orderId> SKU": ["RESERVE", "COMMIT"] }: each kind at most once.
 */
export async function movementsOf(prisma: PrismaClient, orderIds: string[], kinds?: readonly StockMovementKind[]): Promise<Record<string, string[]>> {
  const rows = await prisma.stockMovement.findMany({
    where: { orderId: { in: orderIds }, ...(kinds && { kind: { in: [...kinds] } }) },
    orderBy: [{ orderId: 'asc' }, { sku: 'asc' }, { kind: 'asc' }],
  });
  const moved: Record<string, string[]> = {};
  for (const row of rows) (moved[`${row.orderId} ${row.sku}`] ??= []).push(row.kind);
  return moved;
}

/**
 * The settling ledger rows (RELEASE, COMMIT) of the given orders, as `orderId sku → kinds`.
 * Every order item of a closed, once-held order must have exactly one.
 */
export async function settlementsOf(prisma: PrismaClient, orderIds: string[]): Promise<Record<string, Settlement[]>> {
  return (await movementsOf(prisma, orderIds, SETTLEMENTS)) as Record<string, Settlement[]>;
}

/** One settlement of `kind` for every item of every order: what `settlementsOf` must equal. */
export function oneSettlementPerItem(orders: OrderResponse[], kind: Settlement): Record<string, Settlement[]> {
  return Object.fromEntries(orders.flatMap((o) => o.items.map((i) => [`${o.orderId} ${i.sku}`, [kind]])));
}

/**
 * Waits until the orders' workflows have completed, so their histories are whole. On timeout
 * the error shows each workflow's state and the last failure of its pending activity.
 */
export async function workflowsCompleted(client: Client, orders: OrderResponse[], timeoutMs = 60_000): Promise<void> {
  const states = () =>
    Promise.all(
      orders.map(async (o) => {
        const { status, raw } = await client.workflow.getHandle(orderWorkflowId(o.orderId)).describe();
        const lastFailure = raw.pendingActivities?.[0]?.lastFailure?.message;
        return { orderId: o.orderId, status: status.name, ...(lastFailure && { lastFailure }) };
      }),
    );
  await eventually(states, (all) => all.every((s) => s.status === 'COMPLETED'), timeoutMs);
}

/**
 * The attempt numbers of the started attempts of an activity in an order's workflow history.
 * A retried activity records only the attempt that finished, so `[3]` means two failed first.
 */
export async function activityAttempts(client: Client, orderId: string, activityType: string): Promise<number[]> {
  const history = await client.workflow.getHandle(orderWorkflowId(orderId)).fetchHistory();
  const scheduled = new Map<string, string>();
  const attempts: number[] = [];
  for (const event of history.events ?? []) {
    const type = event.activityTaskScheduledEventAttributes?.activityType?.name;
    if (type && event.eventId != null) scheduled.set(event.eventId.toString(), type);
    const started = event.activityTaskStartedEventAttributes;
    if (started?.scheduledEventId != null && scheduled.get(started.scheduledEventId.toString()) === activityType) {
      attempts.push(started.attempt ?? 1);
    }
  }
  return attempts;
}

/** The attempt the order's running activity is on, from describe(); 0 when none is pending. */
export async function pendingActivityAttempt(client: Client, orderId: string, activityType: string): Promise<number> {
  const description = await client.workflow.getHandle(orderWorkflowId(orderId)).describe();
  const pending = description.raw.pendingActivities?.find((a) => a.activityType?.name === activityType);
  return pending?.attempt ?? 0;
}

/** Waits until the wall clock is past `epochMs` by `marginMs`. */
export async function waitPast(epochMs: number, marginMs: number): Promise<void> {
  const wait = epochMs + marginMs - Date.now();
  if (wait > 0) await sleep(wait);
}

/** The earliest and the latest payment deadline of the given orders, in epoch ms. */
export function deadlines(orders: OrderResponse[]): { first: number; last: number } {
  const times = orders.map((o) => Date.parse(o.expiresAt));
  return { first: Math.min(...times), last: Math.max(...times) };
}

export interface SettlementAnswer {
  /** Whether it ran as a local activity (recorded as a marker) or as an activity task. */
  local: boolean;
  /** The attempt that completed. */
  attempt: number;
  /** What the database answered (commitStock / releaseStock return the order's outcome). */
  result: { status?: string; decidedNow?: boolean } & Record<string, unknown>;
}

/**
 * The completed runs of an activity in an order's workflow history, local or not, with the
 * answer each recorded. Nothing here means Temporal has no record of it ever finishing.
 */
/** Whether a release's or commit's answer says that very call decided (a commit nests the order). */
export function decidedNowOf(result: Record<string, unknown> | undefined): boolean | undefined {
  const order = result?.order as { decidedNow?: boolean } | undefined;
  return (result?.decidedNow as boolean | undefined) ?? order?.decidedNow;
}

export async function settlementAnswers(client: Client, orderId: string, activityType: string): Promise<SettlementAnswer[]> {
  const history = await client.workflow.getHandle(orderWorkflowId(orderId)).fetchHistory();
  const decode = (payload: { data?: Uint8Array | null } | undefined) =>
    payload?.data ? (JSON.parse(Buffer.from(payload.data).toString('utf8')) as Record<string, unknown>) : {};
  const scheduled = new Map<string, string>();
  const started = new Map<string, number>();
  const answers: SettlementAnswer[] = [];
  for (const event of history.events ?? []) {
    const id = event.eventId?.toString() ?? '';
    const type = event.activityTaskScheduledEventAttributes?.activityType?.name;
    if (type) scheduled.set(id, type);
    const start = event.activityTaskStartedEventAttributes;
    if (start?.scheduledEventId != null) started.set(start.scheduledEventId.toString(), start.attempt ?? 1);
    const done = event.activityTaskCompletedEventAttributes;
    const scheduledId = done?.scheduledEventId?.toString();
    if (done && scheduledId && scheduled.get(scheduledId) === activityType) {
      answers.push({ local: false, attempt: started.get(scheduledId) ?? 1, result: decode(done.result?.payloads?.[0]) });
    }
    const marker = event.markerRecordedEventAttributes;
    if (marker?.markerName === 'core_local_activity') {
      const data = decode(marker.details?.data?.payloads?.[0]) as { activity_type?: string; attempt?: number };
      if (data.activity_type === activityType) {
        answers.push({ local: true, attempt: data.attempt ?? 1, result: decode(marker.details?.result?.payloads?.[0]) });
      }
    }
  }
  return answers;
}

/**
 * SIGKILLs the worker whose transactions wait behind `locks`, lets go of the locks, and waits
 * until PostgreSQL has ended (rolled back) every one of the dead worker's transactions.
 */
export async function killInsideItsTransactions(locks: LockHolder, worker: WorkerProcess, applicationName: string): Promise<void> {
  await worker.kill();
  await locks.release();
  await eventually(() => locks.backendsOf(applicationName), (n) => n === 0, 30_000);
}
