/**
 * The only code that changes stock. Every activity is idempotent: a retry after a crash
 * finds its own earlier work (order row, ledger rows keyed by order + sku + kind, payment
 * rows keyed by order + payment) and does nothing twice.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { Prisma, type PrismaClient } from '../prisma/generated/client';
import { recordOrderEvent, type OrderEventType } from './order-events';
import type { PaymentProvider } from './payment-provider';
import {
  FailureType,
  paymentOutcomeOf,
  type CommitStockInput,
  type ExtendPaymentWindowInput,
  type ExtensionAnswer,
  type LatePaymentInput,
  type OrderLine,
  type PaymentOutcome,
  type PaymentRefusal,
  type RefundPaymentInput,
  type RefundResult,
  type ReleaseStockInput,
  type ReservedOrder,
  type ReserveStockInput,
  type SettledOrder,
  type Shortage,
  type StillHeld,
} from './types';

export interface ActivityDependencies {
  prisma: PrismaClient;
  payments: PaymentProvider;
  /** MAX_PAYMENT_WINDOW_SECONDS: no extension moves expiresAt further than this from createdAt. */
  maxPaymentWindowSeconds?: number;
  /** ORDER_EVENTS_URL: each event written with a change gets a delivery to each of these. */
  eventEndpoints?: readonly string[];
}

/** The contract's default MAX_PAYMENT_WINDOW_SECONDS: a week. */
export const DEFAULT_MAX_PAYMENT_WINDOW_SECONDS = 604_800;

type Tx = Prisma.TransactionClient;

/** What hold_order (prisma/migrations/20261205000000_hold_order) answers; for a retry, the earlier decision. */
type HoldAnswer =
  | { outcome: 'HELD'; lines: OrderLine[]; totalCents: number }
  | { outcome: 'REJECTED'; shortages: Shortage[] }
  | { outcome: 'UNKNOWN_SKU'; sku: string };

/**
 * Prisma's defaults (2 s to get a connection, 5 s to finish) fail transactions spuriously
 * when the machine is busy; these stay inside the activities' 10 s start-to-close timeout.
 */
const TRANSACTION_OPTIONS = { maxWait: 5_000, timeout: 8_000 } as const;

export function createActivities({
  prisma,
  payments,
  maxPaymentWindowSeconds = DEFAULT_MAX_PAYMENT_WINDOW_SECONDS,
  eventEndpoints = [],
}: ActivityDependencies) {
  return {
    /**
     * Holds every item of the order or none, in one statement (hold_order): the products
     * locked in sku order so concurrent orders never deadlock. Out of stock is a business
     * outcome: the order is recorded as REJECTED and a non-retryable failure is raised.
     * The API records the order as PENDING before starting its workflow; this moves that row
     * on (PENDING → AWAITING_PAYMENT / REJECTED), or creates the row when there is none. A
     * retry (or a concurrent attempt) gets the decision already made.
     */
    async reserveStock(input: ReserveStockInput): Promise<ReservedOrder> {
      const items = JSON.stringify(input.items.map(({ sku, quantity }) => ({ sku, quantity })));
      const [row] = await prisma.$queryRaw<{ answer: HoldAnswer }[]>`
        SELECT hold_order(${input.orderId}::uuid, ${input.customerId}, ${items}::jsonb,
                          ${input.createdAt}::timestamptz, ${input.expiresAt}::timestamptz, ${input.deadlineMovable ?? false},
                          ${input.idempotencyKey ?? null}, ${input.requestHash ?? null}, ${[...eventEndpoints]}::text[]) AS answer`;
      const answer = row?.answer;
      switch (answer?.outcome) {
        case 'HELD':
          // BIGINT in the database; every total the contract allows (at most 5e11) is a safe number.
          return { lines: answer.lines, totalCents: Number(answer.totalCents) };
        case 'REJECTED':
          throw outOfStock(answer.shortages);
        case 'UNKNOWN_SKU':
          throw ApplicationFailure.nonRetryable(`unknown sku ${answer.sku}`, FailureType.UnknownSku, [answer.sku]);
        default:
          throw new Error(`hold_order answered ${JSON.stringify(answer)}`);
      }
    },

    /**
     * Proposes the payment's commit to the database, which decides (see decideOrder): the
     * answer is the order's outcome, PAID by this payment or whatever won instead. Never
     * throws for a lost race, so nothing retries forever.
     */
    async commitStock({ orderId, paymentId, amountCents }: CommitStockInput): Promise<SettledOrder> {
      return decideOrder(prisma, eventEndpoints, orderId, { kind: 'COMMIT', paymentId, amountCents });
    },

    /**
     * Proposes putting the order's held stock back on sale (timer or cancel); the answer is the
     * outcome the database holds, which may be another party's (the reclaim, the deadline).
     * `closedAt` is when the stock was back, with `expiresAt` beside it to measure lateness.
     * An expiry for a deadline the database has since moved later is refused: StillHeld.
     */
    async releaseStock({ orderId, reason, deadline }: ReleaseStockInput): Promise<SettledOrder | StillHeld> {
      return decideOrder(prisma, eventEndpoints, orderId, { kind: 'RELEASE', reason, ...(deadline && { deadline }) });
    },

    /**
     * Moves the order's expiresAt later by `seconds`, decided against its deadline under the
     * order's row lock: before the (effective) deadline it is extended, up to
     * MAX_PAYMENT_WINDOW_SECONDS from createdAt; at or after it the deadline has won and the
     * order must expire. Recorded per extensionId, so a retry answers the same.
     */
    async extendPaymentWindow({ orderId, extensionId, seconds }: ExtendPaymentWindowInput): Promise<ExtensionAnswer> {
      return prisma.$transaction(async (tx) => {
        const [order] = await tx.$queryRaw<{ status: string; expires_at: Date; created_at: Date; movable: boolean; due: boolean }[]>`
          SELECT status::text AS status, expires_at, created_at, deadline_movable AS movable,
                 GREATEST(expires_at, payment_pending_until) <= now() AS due
            FROM orders WHERE id = ${orderId}::uuid FOR UPDATE`;
        if (!order) throw new Error(`order ${orderId} does not exist`);
        const earlier = await tx.orderExtension.findUnique({ where: { orderId_extensionId: { orderId, extensionId } } });
        if (earlier) return { outcome: earlier.outcome, expiresAt: earlier.expiresAt.toISOString() };
        if (isSettledStatus(order.status) || order.status === 'REJECTED') return { outcome: 'DECIDED', status: order.status };
        // PENDING: the workflow asks only once the order is held.
        if (order.status !== 'AWAITING_PAYMENT') throw new Error(`order ${orderId} is ${order.status}: it cannot be extended yet`);
        // Only workflows that re-arm their timer ask; an older one would expire the order regardless.
        if (!order.movable) throw new Error(`order ${orderId} is held by a workflow that does not follow its deadline`);
        if (order.due) return { outcome: 'DEADLINE_PASSED' };
        const extended = new Date(order.expires_at.getTime() + seconds * 1000);
        const tooLong = extended.getTime() > order.created_at.getTime() + maxPaymentWindowSeconds * 1000;
        const outcome = tooLong ? 'EXTENSION_TOO_LONG' : 'EXTENDED';
        const expiresAt = tooLong ? order.expires_at : extended;
        if (!tooLong) {
          await tx.order.update({ where: { id: orderId }, data: { expiresAt }, select: { id: true } });
          await recordOrderEvent(tx, orderId, 'order.extended', eventEndpoints);
        }
        await tx.orderExtension.create({ data: { orderId, extensionId, seconds, outcome, expiresAt } });
        return { outcome, expiresAt: expiresAt.toISOString() };
      }, TRANSACTION_OPTIONS);
    },

    /**
     * Records a payment that was not applied and refunds it, once per (order, payment). The
     * refund is of the payment as first recorded, whatever a redelivery says. Once the provider
     * confirms, the refund row and its `payment.refunded` event are written together, once.
     */
    async refundPayment({ orderId, paymentId, amountCents, reason }: RefundPaymentInput): Promise<RefundResult> {
      await prisma.payment.createMany({
        data: [{ orderId, paymentId, amountCents, outcome: reason }],
        skipDuplicates: true,
      });
      const recorded = await prisma.payment.findUniqueOrThrow({ where: { orderId_paymentId: { orderId, paymentId } } });
      const refunded = Number(recorded.amountCents);
      const result = await payments.refund({ orderId, paymentId, amountCents: refunded });
      await prisma.$transaction(async (tx) => {
        // The order's row lock orders this event after the decision that refused the payment.
        await tx.$queryRaw`SELECT 1 FROM orders WHERE id = ${orderId}::uuid FOR UPDATE`;
        const { count } = await tx.refund.createMany({
          data: [{ orderId, paymentId, amountCents: refunded, status: result.status }],
          skipDuplicates: true,
        });
        if (count > 0) {
          const refund = { paymentId, status: result.status, amountCents: refunded, reason: recorded.outcome as PaymentRefusal };
          await recordOrderEvent(tx, orderId, 'payment.refunded', eventEndpoints, refund);
        }
      }, TRANSACTION_OPTIONS);
      return result;
    },

    /**
     * Decides a payment whose order's workflow is gone (closed, or terminated while the order
     * still awaited payment): the outcome recorded earlier for the same payment, else the
     * refusal that matches the order's final state, else the payment is proposed for commit
     * through the same compare-and-set as the workflow's (so before the deadline it pays, after
     * it the order is released and the payment refused as ORDER_EXPIRED).
     */
    async decideLatePayment({ orderId, paymentId, amountCents }: LatePaymentInput): Promise<PaymentOutcome> {
      const recorded = await prisma.payment.findUnique({ where: { orderId_paymentId: { orderId, paymentId } } });
      if (recorded) return recorded.outcome;
      const order = await prisma.order.findUnique({
        where: { id: orderId },
        select: { status: true, paymentId: true, totalCents: true },
      });
      if (order?.status === 'AWAITING_PAYMENT') {
        // An older late-payment workflow may not pass the amount; then the order's total is assumed.
        const totalCents = Number(order.totalCents);
        if (amountCents !== undefined && amountCents !== totalCents) return 'AMOUNT_MISMATCH';
        const settled = await decideOrder(prisma, eventEndpoints, orderId, { kind: 'COMMIT', paymentId, amountCents: amountCents ?? totalCents });
        return paymentOutcomeOf(settled, paymentId);
      }
      if (order?.status === 'PAID' || order?.status === 'EXPIRED' || order?.status === 'CANCELLED') {
        return paymentOutcomeOf({ status: order.status, paymentId: order.paymentId ?? undefined }, paymentId);
      }
      if (order?.status === 'REJECTED') return 'ORDER_REJECTED';
      // Not yet held (PENDING) or unknown: its own workflow must decide; try again later.
      throw new Error(`order ${orderId} is not held; its payment cannot be decided here`);
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;

type Proposal =
  | { kind: 'COMMIT'; paymentId: string; amountCents: number }
  | { kind: 'RELEASE'; reason: ReleaseStockInput['reason']; deadline?: ReleaseStockInput['deadline'] };

/**
 * An order's effective deadline: its expiresAt, or later while a payment.processing delivery
 * holds it (GREATEST skips the NULL of an order without a hold).
 */
const DEADLINE = Prisma.sql`GREATEST(o.expires_at, o.payment_pending_until)`;

/**
 * The one way an order leaves AWAITING_PAYMENT from the workflow's side: a compare-and-set on
 * its status and deadline, and the stock moved in the same transaction (the reclaim in
 * ./reclaim.ts is the bulk twin of the EXPIRED case). The deadline is the effective one
 * (DEADLINE: expiresAt, or a processing hold's end). The rule:
 * - a commit wins while the order awaits payment and either the deadline has not passed
 *   (database clock) or this payment has a receipt that succeeded by the deadline; a commit
 *   that comes too late releases the order as EXPIRED instead (the deadline won);
 * - a release for the timer wins while the order awaits payment, unless it names the deadline
 *   it waited for and the database holds a later one (then: StillHeld, nothing changes);
 * - a cancel wins while the order awaits payment before its deadline; after it the order
 *   is released as EXPIRED (the cancel lost to the deadline).
 * Whoever loses reads the outcome that won and gets it as its answer.
 */
async function decideOrder(
  prisma: PrismaClient,
  eventEndpoints: readonly string[],
  orderId: string,
  proposal: Proposal & { kind: 'COMMIT' },
): Promise<SettledOrder>;
async function decideOrder(prisma: PrismaClient, eventEndpoints: readonly string[], orderId: string, proposal: Proposal): Promise<SettledOrder | StillHeld>;
async function decideOrder(prisma: PrismaClient, eventEndpoints: readonly string[], orderId: string, proposal: Proposal): Promise<SettledOrder | StillHeld> {
  return prisma.$transaction(async (tx) => {
    const [decided] =
      proposal.kind === 'COMMIT'
        ? await proposeCommit(tx, orderId, proposal.paymentId)
        : await proposeRelease(tx, orderId, proposal.reason, proposal.deadline);
    if (!decided) return readOutcome(tx, orderId, proposal.kind === 'RELEASE' && proposal.deadline !== undefined);
    if (proposal.kind === 'COMMIT' && decided.status === 'PAID') {
      const { paymentId, amountCents } = proposal;
      await tx.payment.createMany({ data: [{ orderId, paymentId, amountCents, outcome: 'APPLIED' }], skipDuplicates: true });
    }
    await moveHeldStock(tx, orderId, decided.status === 'PAID' ? 'COMMIT' : 'RELEASE');
    const settled = settledOrderOf(decided);
    await recordOrderEvent(tx, orderId, SETTLED_EVENT[settled.status], eventEndpoints);
    return { ...settled, decidedNow: true };
  }, TRANSACTION_OPTIONS);
}

const SETTLED_EVENT: Record<SettledOrder['status'], OrderEventType> = {
  PAID: 'order.paid',
  EXPIRED: 'order.expired',
  CANCELLED: 'order.cancelled',
};

interface DecidedRow {
  status: string;
  closed_at: Date | null;
  expires_at: Date;
  paid_at: Date | null;
  payment_id: string | null;
  payment_pending_until?: Date | null;
}

function proposeCommit(tx: Tx, orderId: string, paymentId: string): Promise<DecidedRow[]> {
  const inTime = Prisma.sql`(${DEADLINE} > now() OR EXISTS (
      SELECT 1 FROM payment_receipts r
       WHERE r.payment_id = ${paymentId} AND r.order_id = o.id AND r.succeeded_at <= ${DEADLINE}))`;
  return tx.$queryRaw<DecidedRow[]>`
    UPDATE orders o
       SET status = CASE WHEN ${inTime} THEN 'PAID' ELSE 'EXPIRED' END::"OrderStatus",
           payment_id = CASE WHEN ${inTime} THEN ${paymentId} END,
           paid_at = CASE WHEN ${inTime} THEN now() END,
           closed_at = now()
     WHERE o.id = ${orderId}::uuid AND o.status = 'AWAITING_PAYMENT'
    RETURNING o.status::text AS status, o.closed_at, o.expires_at, o.paid_at, o.payment_id`;
}

function proposeRelease(
  tx: Tx,
  orderId: string,
  reason: ReleaseStockInput['reason'],
  deadline: ReleaseStockInput['deadline'],
): Promise<DecidedRow[]> {
  const status =
    reason === 'EXPIRED'
      ? Prisma.sql`'EXPIRED'::"OrderStatus"`
      : Prisma.sql`CASE WHEN ${DEADLINE} > now() THEN 'CANCELLED' ELSE 'EXPIRED' END::"OrderStatus"`;
  // The timer's deadline still stands when the database knows of none later.
  const stillDue =
    reason === 'EXPIRED' && deadline
      ? Prisma.sql`AND o.expires_at <= ${new Date(deadline.expiresAt)}
           AND (o.payment_pending_until IS NULL OR o.payment_pending_until <= ${new Date(deadline.paymentPendingUntil ?? deadline.expiresAt)})`
      : Prisma.empty;
  return tx.$queryRaw<DecidedRow[]>`
    UPDATE orders o SET status = ${status}, closed_at = now()
     WHERE o.id = ${orderId}::uuid AND o.status = 'AWAITING_PAYMENT' ${stillDue}
    RETURNING o.status::text AS status, o.closed_at, o.expires_at, o.paid_at, o.payment_id`;
}

/**
 * The outcome another party (or an earlier attempt) decided; or, for an expiry that named its
 * deadline (`mayStillHold`), the later deadline the order is held until.
 */
async function readOutcome(tx: Tx, orderId: string, mayStillHold = false): Promise<SettledOrder | StillHeld> {
  const [row] = await tx.$queryRaw<DecidedRow[]>`
    SELECT status::text AS status, closed_at, expires_at, paid_at, payment_id, payment_pending_until
      FROM orders WHERE id = ${orderId}::uuid`;
  if (!row) throw new Error(`order ${orderId} does not exist`);
  if (mayStillHold && row.status === 'AWAITING_PAYMENT') {
    return {
      status: 'AWAITING_PAYMENT',
      expiresAt: row.expires_at.toISOString(),
      ...(row.payment_pending_until && { paymentPendingUntil: row.payment_pending_until.toISOString() }),
    };
  }
  // PENDING or REJECTED here would be a bug elsewhere; retrying lets an operator see and mend it.
  if (!isSettledStatus(row.status)) throw new Error(`order ${orderId} is ${row.status}: there is no held stock to settle`);
  return { ...settledOrderOf(row), decidedNow: false };
}

function settledOrderOf(row: DecidedRow): Omit<SettledOrder, 'decidedNow'> {
  if (!isSettledStatus(row.status)) throw new Error(`unexpected order status ${row.status}`);
  const closedAt = (row.closed_at ?? row.paid_at ?? row.expires_at).toISOString();
  return {
    status: row.status,
    closedAt,
    expiresAt: row.expires_at.toISOString(),
    ...(row.paid_at && { paidAt: row.paid_at.toISOString() }),
    ...(row.payment_id !== null && { paymentId: row.payment_id }),
  };
}

function isSettledStatus(status: string): status is SettledOrder['status'] {
  return status === 'PAID' || status === 'EXPIRED' || status === 'CANCELLED';
}

/**
 * Applies RELEASE (reserved → available) or COMMIT (reserved → sold) for every item of the
 * order. The ledger row is inserted first; only when it is new do the counters move, so a
 * retry never moves stock twice.
 */
async function moveHeldStock(tx: Tx, orderId: string, kind: 'RELEASE' | 'COMMIT'): Promise<void> {
  const items = await tx.orderItem.findMany({ where: { orderId } });
  // The same sku order as reserveStock, so concurrent transactions never deadlock.
  items.sort((a, b) => compareSku(a.sku, b.sku));
  for (const { sku, quantity } of items) {
    const inserted = await tx.$executeRaw`
      INSERT INTO stock_movements (sku, order_id, kind, quantity)
      VALUES (${sku}, ${orderId}::uuid, ${kind}::"StockMovementKind", ${quantity})
      ON CONFLICT (order_id, sku, kind) DO NOTHING`;
    if (inserted === 0) continue;
    if (kind === 'RELEASE') {
      await tx.$executeRaw`
        UPDATE products SET reserved = reserved - ${quantity}, available = available + ${quantity}, updated_at = now()
         WHERE sku = ${sku}`;
    } else {
      await tx.$executeRaw`
        UPDATE products SET reserved = reserved - ${quantity}, sold = sold + ${quantity}, updated_at = now()
         WHERE sku = ${sku}`;
    }
  }
}

function outOfStock(shortages: Shortage[]): ApplicationFailure {
  return ApplicationFailure.nonRetryable('not enough stock for the order', FailureType.OutOfStock, shortages);
}

function compareSku(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

