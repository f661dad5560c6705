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
  type CommitStockInput,
  type IsoTime,
  type OrderLine,
  type PaymentOutcome,
  type RefundPaymentInput,
  type RefundResult,
  type ReleaseStockInput,
  type RequestedItem,
  type ReservedOrder,
  type ReserveStockInput,
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
     * Moves the order's held stock to sold and records the payment that paid it. The order row
     * is claimed first (checked and locked), so a commit never moves the stock of an order that
     * was closed otherwise or paid by another payment.
     */
    async commitStock({ orderId, paymentId, amountCents }: CommitStockInput): Promise<{ paidAt: IsoTime }> {
      return prisma.$transaction(async (tx) => {
        const [row] = await tx.$queryRaw<{ paid_at: Date }[]>`
          UPDATE orders
             SET status = 'PAID', payment_id = ${paymentId},
                 paid_at = COALESCE(paid_at, now()), closed_at = COALESCE(closed_at, now())
           WHERE id = ${orderId}::uuid
             AND (status = 'AWAITING_PAYMENT' OR (status = 'PAID' AND payment_id = ${paymentId}))
           RETURNING paid_at`;
        if (!row) throw new Error(`order ${orderId} cannot be paid by ${paymentId}: it is no longer awaiting payment`);
        await tx.payment.createMany({
          data: [{ orderId, paymentId, amountCents, outcome: 'APPLIED' }],
          skipDuplicates: true,
        });
        await moveHeldStock(tx, orderId, 'COMMIT');
        return { paidAt: row.paid_at.toISOString() };
      }, TRANSACTION_OPTIONS);
    },

    /**
     * Puts the order's held stock back on sale; `closedAt` is when the stock was back (with
     * `expiresAt` beside it, so the worker can measure how late an expiry ran). Claims the
     * order row first, as commitStock does.
     */
    async releaseStock({ orderId, reason }: ReleaseStockInput): Promise<{ closedAt: IsoTime; expiresAt: IsoTime }> {
      return prisma.$transaction(async (tx) => {
        const [row] = await tx.$queryRaw<{ closed_at: Date; expires_at: Date }[]>`
          UPDATE orders
             SET status = ${reason}::"OrderStatus", closed_at = COALESCE(closed_at, now())
           WHERE id = ${orderId}::uuid AND status IN ('AWAITING_PAYMENT', ${reason}::"OrderStatus")
           RETURNING closed_at, expires_at`;
        if (!row) throw new Error(`order ${orderId} cannot be closed as ${reason}: it is in another final state`);
        await moveHeldStock(tx, orderId, 'RELEASE');
        return { closedAt: row.closed_at.toISOString(), expiresAt: row.expires_at.toISOString() };
      }, TRANSACTION_OPTIONS);
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
     * Decides a payment that arrives after its order's workflow has closed: the outcome
     * recorded earlier for the same payment, else the refusal that matches the order's state.
     */
    async decideLatePayment({ orderId, paymentId }: { orderId: string; paymentId: string }): Promise<PaymentOutcome> {
      const recorded = await prisma.payment.findUnique({ where: { orderId_paymentId: { orderId, paymentId } } });
      if (recorded) return recorded.outcome;
      const order = await prisma.order.findUnique({ where: { id: orderId }, select: { status: true, paymentId: true } });
      switch (order?.status) {
        case 'PAID':
          return order.paymentId === paymentId ? 'APPLIED' : 'ORDER_ALREADY_PAID';
        case 'EXPIRED':
          return 'ORDER_EXPIRED';
        case 'CANCELLED':
          return 'ORDER_CANCELLED';
        case 'REJECTED':
          return 'ORDER_REJECTED';
        default:
          // The order is still open or unknown, so its own workflow must decide; try again later.
          throw new Error(`order ${orderId} is not closed; its payment cannot be decided here`);
      }
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
