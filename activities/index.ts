/**
 * The only code that changes stock. Every activity is idempotent: a retry after a crash
 * finds its own earlier work (order row, ledger rows keyed by order + sku + kind, payment
 * rows keyed by order + payment) and does nothing twice.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { Prisma, type PrismaClient } from '../prisma/generated/client';
import type { PaymentProvider } from './payment-provider';
import {
  FailureType,
  paymentOutcomeOf,
  type CommitStockInput,
  type LatePaymentInput,
  type OrderLine,
  type PaymentOutcome,
  type RefundPaymentInput,
  type RefundResult,
  type ReleaseStockInput,
  type RequestedItem,
  type ReservedOrder,
  type ReserveStockInput,
  type SettledOrder,
  type Shortage,
} from './types';

export interface ActivityDependencies {
  prisma: PrismaClient;
  payments: PaymentProvider;
}

type Tx = Prisma.TransactionClient;

/**
 * Prisma's defaults (2 s to get a connection, 5 s to finish) fail transactions spuriously
 * when the machine is busy; these stay inside the activities' 10 s start-to-close timeout.
 */
const TRANSACTION_OPTIONS = { maxWait: 5_000, timeout: 8_000 } as const;

/** Thrown inside the reservation transaction to roll it back. */
class ShortfallError extends Error {
  constructor(readonly shortages: Shortage[]) {
    super('insufficient stock');
  }
}

export function createActivities({ prisma, payments }: ActivityDependencies) {
  return {
    /**
     * Holds every item of the order or none: conditional decrements in one transaction,
     * in sku order so concurrent orders never deadlock. Out of stock is a business
     * outcome: the order is recorded as REJECTED and a non-retryable failure is raised.
     * The API records the order as PENDING before starting its workflow; this moves that row
     * on (PENDING → AWAITING_PAYMENT / REJECTED), or creates the row when there is none.
     */
    async reserveStock(input: ReserveStockInput): Promise<ReservedOrder> {
      const earlier = await findReservation(prisma, input.orderId);
      if (earlier) return earlier;
      const items = [...input.items].sort((a, b) => compareSku(a.sku, b.sku));
      try {
        return await prisma.$transaction((tx) => holdItems(tx, input, items), TRANSACTION_OPTIONS);
      } catch (error) {
        if (isUniqueViolation(error)) {
          // A concurrent attempt of this same activity got there first.
          const reservation = await findReservation(prisma, input.orderId);
          if (reservation) return reservation;
        }
        if (!(error instanceof ShortfallError)) throw error;
        await recordRejection(prisma, input, items, error.shortages);
        // Another attempt of this activity may have held the stock meanwhile: the row tells.
        const decided = await findReservation(prisma, input.orderId);
        if (decided) return decided;
        throw outOfStock(error.shortages);
      }
    },

    /**
     * Proposes the payment's commit to the database, which decides (see decideOrder): the
     * answer is the order's outcome, PAID by this payment or whatever won instead. Never
     * throws for a lost race, so nothing retries forever.
     */
    async commitStock({ orderId, paymentId, amountCents }: CommitStockInput): Promise<SettledOrder> {
      return decideOrder(prisma, orderId, { kind: 'COMMIT', paymentId, amountCents });
    },

    /**
     * Proposes putting the order's held stock back on sale (timer or cancel); the answer is the
     * outcome the database holds, which may be another party's (the reclaim, the deadline).
     * `closedAt` is when the stock was back, with `expiresAt` beside it to measure lateness.
     */
    async releaseStock({ orderId, reason }: ReleaseStockInput): Promise<SettledOrder> {
      return decideOrder(prisma, orderId, { kind: 'RELEASE', reason });
    },

    /**
     * Records a payment that was not applied and refunds it, once per (order, payment). The
     * refund is of the payment as first recorded, whatever a redelivery says.
     */
    async refundPayment({ orderId, paymentId, amountCents, reason }: RefundPaymentInput): Promise<RefundResult> {
      await prisma.payment.createMany({
        data: [{ orderId, paymentId, amountCents, outcome: reason }],
        skipDuplicates: true,
      });
      const recorded = await prisma.payment.findUniqueOrThrow({ where: { orderId_paymentId: { orderId, paymentId } } });
      return payments.refund({ orderId, paymentId, amountCents: Number(recorded.amountCents) });
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
        const settled = await decideOrder(prisma, orderId, { kind: 'COMMIT', paymentId, amountCents: amountCents ?? totalCents });
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

async function holdItems(tx: Tx, input: ReserveStockInput, items: RequestedItem[]): Promise<ReservedOrder> {
  // Claims (and locks) the PENDING row first. None: the order was started by an API from before
  // PENDING rows, or its start failed and the API withdrew the row; then it is created below.
  const { count: claimed } = await tx.order.updateMany({
    where: { id: input.orderId, status: 'PENDING' },
    data: { status: 'AWAITING_PAYMENT', createdAt: new Date(input.createdAt), expiresAt: new Date(input.expiresAt) },
  });
  const lines: OrderLine[] = [];
  const shortages: Shortage[] = [];
  for (const { sku, quantity } of items) {
    const [held] = await tx.$queryRaw<{ price_cents: number }[]>`
      UPDATE products
         SET available = available - ${quantity}, reserved = reserved + ${quantity}, updated_at = now()
       WHERE sku = ${sku} AND available >= ${quantity}
       RETURNING price_cents`;
    if (held) {
      lines.push({ sku, quantity, unitPriceCents: held.price_cents });
      continue;
    }
    const product = await tx.product.findUnique({ where: { sku }, select: { available: true } });
    if (!product) throw ApplicationFailure.nonRetryable(`unknown sku ${sku}`, FailureType.UnknownSku, [sku]);
    shortages.push({ sku, requested: quantity, available: product.available });
  }
  if (shortages.length > 0) throw new ShortfallError(shortages);

  const totalCents = lines.reduce((sum, l) => sum + l.quantity * l.unitPriceCents, 0);
  if (claimed > 0) {
    // The PENDING row carried the catalog prices at placement; the held prices replace them.
    await tx.order.update({ where: { id: input.orderId }, data: { totalCents }, select: { id: true } });
    await replaceLines(tx, input.orderId, lines);
  } else {
    await tx.order.create({
      data: {
        id: input.orderId,
        customerId: input.customerId,
        status: 'AWAITING_PAYMENT',
        totalCents,
        createdAt: new Date(input.createdAt),
        expiresAt: new Date(input.expiresAt),
        idempotencyKey: input.idempotencyKey ?? null,
        requestHash: input.requestHash ?? null,
        items: { create: lines },
      },
      select: { id: true },
    });
  }
  await tx.stockMovement.createMany({
    data: lines.map((l) => ({ sku: l.sku, orderId: input.orderId, kind: 'RESERVE' as const, quantity: l.quantity })),
  });
  return { lines, totalCents };
}

/** The reservation an earlier attempt of this activity made, if any (or its rejection). */
async function findReservation(prisma: PrismaClient, orderId: string): Promise<ReservedOrder | undefined> {
  const order = await prisma.order.findUnique({ where: { id: orderId }, include: { items: { orderBy: { sku: 'asc' } } } });
  // PENDING: recorded by the API, not held yet.
  if (!order || order.status === 'PENDING') return undefined;
  if (order.status === 'REJECTED') throw outOfStock((order.rejection ?? []) as unknown as Shortage[]);
  return {
    lines: order.items.map(({ sku, quantity, unitPriceCents }) => ({ sku, quantity, unitPriceCents })),
    // BIGINT in the database; every total the contract allows (at most 5e11) is a safe number.
    totalCents: Number(order.totalCents),
  };
}

async function recordRejection(
  prisma: PrismaClient,
  input: ReserveStockInput,
  items: RequestedItem[],
  shortages: Shortage[],
): Promise<void> {
  const products = await prisma.product.findMany({
    where: { sku: { in: items.map((i) => i.sku) } },
    select: { sku: true, priceCents: true },
  });
  const price = new Map(products.map((p) => [p.sku, p.priceCents]));
  const lines = items.map((i) => ({ ...i, unitPriceCents: price.get(i.sku) ?? 0 }));
  const decided = {
    status: 'REJECTED' as const,
    totalCents: lines.reduce((sum, l) => sum + l.quantity * l.unitPriceCents, 0),
    createdAt: new Date(input.createdAt),
    expiresAt: new Date(input.expiresAt),
    closedAt: new Date(),
    rejection: shortages as unknown as Prisma.InputJsonValue,
  };
  // The API's PENDING row, if there is one and nothing decided it yet.
  const rejectedPending = await prisma.$transaction(async (tx) => {
    const { count } = await tx.order.updateMany({ where: { id: input.orderId, status: 'PENDING' }, data: decided });
    if (count > 0) await replaceLines(tx, input.orderId, lines);
    return count > 0;
  }, TRANSACTION_OPTIONS);
  if (rejectedPending) return;
  try {
    await prisma.order.create({
      data: {
        id: input.orderId,
        customerId: input.customerId,
        ...decided,
        idempotencyKey: input.idempotencyKey ?? null,
        requestHash: input.requestHash ?? null,
        items: { create: lines },
      },
    });
  } catch (error) {
    if (!isUniqueViolation(error)) throw error; // recorded by an earlier attempt
  }
}

async function replaceLines(tx: Tx, orderId: string, lines: OrderLine[]): Promise<void> {
  await tx.orderItem.deleteMany({ where: { orderId } });
  await tx.orderItem.createMany({ data: lines.map((l) => ({ orderId, ...l })) });
}

type Proposal =
  | { kind: 'COMMIT'; paymentId: string; amountCents: number }
  | { kind: 'RELEASE'; reason: ReleaseStockInput['reason'] };

/**
 * The one way an order leaves AWAITING_PAYMENT from the workflow's side: a compare-and-set on
 * its status and deadline, and the stock moved in the same transaction (the reclaim in
 * ./reclaim.ts is the bulk twin of the EXPIRED case). The rule:
 * - a commit wins while the order awaits payment and either the deadline has not passed
 *   (database clock) or this payment has a receipt that succeeded by the deadline; a commit
 *   that comes too late releases the order as EXPIRED instead (the deadline won);
 * - a release for the timer wins while the order awaits payment;
 * - a cancel wins while the order awaits payment before its deadline; after it the order
 *   is released as EXPIRED (the cancel lost to the deadline).
 * Whoever loses reads the outcome that won and gets it as its answer.
 */
async function decideOrder(prisma: PrismaClient, orderId: string, proposal: Proposal): Promise<SettledOrder> {
  return prisma.$transaction(async (tx) => {
    const [decided] =
      proposal.kind === 'COMMIT'
        ? await proposeCommit(tx, orderId, proposal.paymentId)
        : await proposeRelease(tx, orderId, proposal.reason);
    if (!decided) return readOutcome(tx, orderId);
    if (proposal.kind === 'COMMIT' && decided.status === 'PAID') {
      const { paymentId, amountCents } = proposal;
      await tx.payment.createMany({ data: [{ orderId, paymentId, amountCents, outcome: 'APPLIED' }], skipDuplicates: true });
    }
    await moveHeldStock(tx, orderId, decided.status === 'PAID' ? 'COMMIT' : 'RELEASE');
    return { ...settledOrderOf(decided), decidedNow: true };
  }, TRANSACTION_OPTIONS);
}

interface DecidedRow {
  status: string;
  closed_at: Date | null;
  expires_at: Date;
  paid_at: Date | null;
  payment_id: string | null;
}

function proposeCommit(tx: Tx, orderId: string, paymentId: string): Promise<DecidedRow[]> {
  const inTime = Prisma.sql`(o.expires_at > now() OR EXISTS (
      SELECT 1 FROM payment_receipts r
       WHERE r.payment_id = ${paymentId} AND r.order_id = o.id AND r.succeeded_at <= o.expires_at))`;
  return tx.$queryRaw<DecidedRow[]>`
    UPDATE orders o
       SET status = CASE WHEN ${inTime} THEN 'PAID' ELSE 'EXPIRED' END::"OrderStatus",
           payment_id = CASE WHEN ${inTime} THEN ${paymentId} END,
           paid_at = CASE WHEN ${inTime} THEN now() END,
           closed_at = now()
     WHERE o.id = ${orderId}::uuid AND o.status = 'AWAITING_PAYMENT'
    RETURNING o.status::text AS status, o.closed_at, o.expires_at, o.paid_at, o.payment_id`;
}

function proposeRelease(tx: Tx, orderId: string, reason: ReleaseStockInput['reason']): Promise<DecidedRow[]> {
  const status =
    reason === 'EXPIRED'
      ? Prisma.sql`'EXPIRED'::"OrderStatus"`
      : Prisma.sql`CASE WHEN o.expires_at > now() THEN 'CANCELLED' ELSE 'EXPIRED' END::"OrderStatus"`;
  return tx.$queryRaw<DecidedRow[]>`
    UPDATE orders o SET status = ${status}, closed_at = now()
     WHERE o.id = ${orderId}::uuid AND o.status = 'AWAITING_PAYMENT'
    RETURNING o.status::text AS status, o.closed_at, o.expires_at, o.paid_at, o.payment_id`;
}

/** The outcome another party (or an earlier attempt) decided. */
async function readOutcome(tx: Tx, orderId: string): Promise<SettledOrder> {
  const [row] = await tx.$queryRaw<DecidedRow[]>`
    SELECT status::text AS status, closed_at, expires_at, paid_at, payment_id FROM orders WHERE id = ${orderId}::uuid`;
  if (!row) throw new Error(`order ${orderId} does not exist`);
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

function isUniqueViolation(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002';
}
