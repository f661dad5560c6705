/**
 * The rule that decides an order (docs/expiry.md, "The rule"), crossed in full against real
 * PostgreSQL, without Temporal: every proposal × every time against the effective deadline ×
 * every state of a payment receipt. Each case runs in one transaction, so the database's now() is
 * one instant and "at the deadline" is exact. The expected outcome is written here as the
 * contract states it, independently of the SQL; each case checks the order, its stock and ledger,
 * the receipt's outcome and the events.
 */
import { randomUUID } from 'node:crypto';
import type { Prisma } from '../prisma/generated/client';
import { LOCK_TIMEOUT_MS } from '../activities/timeouts';
import { holdOrders } from './support/due-orders';
import { addProduct, createTestDatabase, type TestDatabase } from './support/database';
import { checkInventory } from '../src/db/inventory-check';

const PROPOSALS = ['COMMIT', 'LATE_PAYMENT', 'EXPIRE', 'CANCEL', 'EXTEND', 'RECLAIM'] as const;
const TIMES = ['before', 'at', 'after'] as const;
const RECEIPTS = [
  'none',
  'in time',
  'wrong amount',
  'wrong currency',
  'paid elsewhere',
  'late',
  'processing running',
  'processing ended',
  'processing failed',
] as const;
type Proposal = (typeof PROPOSALS)[number];
type Time = (typeof TIMES)[number];
type ReceiptState = (typeof RECEIPTS)[number];

/** The order's total (two units at 100 cents, as holdOrders holds them). */
const TOTAL = 200;
/** Seconds between now() and the effective deadline D for each time. */
const OFFSET: Record<Time, number> = { before: 30, at: 0, after: -30 };

interface Expected {
  status: 'AWAITING_PAYMENT' | 'PAID' | 'EXPIRED' | 'CANCELLED';
  /** For COMMIT and LATE_PAYMENT: what the proposed payment got. */
  payment?: string;
  receiptOutcome: 'APPLIED' | 'REFUSED' | null;
  extended?: boolean;
}

/** The contract, case by case: invariant 7 first, then the deadline, then the proposal. */
function expected(proposal: Proposal, time: Time, receipt: ReceiptState): Expected {
  const due = time !== 'before';
  const proposesPayment = proposal === 'COMMIT' || proposal === 'LATE_PAYMENT';
  const notThisOrders = receipt === 'none' || receipt === 'paid elsewhere' || receipt.startsWith('processing');
  const succeededHere = receipt === 'in time' || receipt === 'wrong amount' || receipt === 'wrong currency' || receipt === 'late';
  // The reclaim takes only due orders: before the deadline it proposes nothing.
  if (proposal === 'RECLAIM' && !due) return { status: 'AWAITING_PAYMENT', receiptOutcome: null };
  if (receipt === 'in time') return { status: 'PAID', receiptOutcome: 'APPLIED', ...(proposesPayment && { payment: 'APPLIED' }) };
  // A payment that no verified receipt of this order backs moves nothing, whatever the time.
  if (proposesPayment && notThisOrders) {
    return { status: 'AWAITING_PAYMENT', payment: receipt === 'paid elsewhere' ? 'PAYMENT_ALREADY_USED' : 'UNVERIFIED', receiptOutcome: null };
  }
  if (due) {
    const status = 'EXPIRED';
    return { status, receiptOutcome: succeededHere ? 'REFUSED' : null, ...(proposesPayment && { payment: 'ORDER_EXPIRED' }) };
  }
  const mismatch = receipt === 'wrong amount' ? 'AMOUNT_MISMATCH' : receipt === 'wrong currency' ? 'CURRENCY_MISMATCH' : undefined;
  if (proposal === 'CANCEL') return { status: 'CANCELLED', receiptOutcome: succeededHere ? 'REFUSED' : null };
  if (proposesPayment) return { status: 'AWAITING_PAYMENT', payment: mismatch ?? 'UNEXPECTED', receiptOutcome: 'REFUSED' };
  return { status: 'AWAITING_PAYMENT', receiptOutcome: null, ...(proposal === 'EXTEND' && { extended: true }) };
}

const cases = PROPOSALS.flatMap((proposal) =>
  TIMES.flatMap((time) =>
    RECEIPTS.filter((receipt) => !(receipt === 'late' && time === 'before')) // received after D, yet before it: impossible
      .map((receipt) => ({ proposal, time, receipt })),
  ),
);

let db: TestDatabase;
let otherOrder: string;

beforeAll(async () => {
  db = await createTestDatabase();
  await addProduct(db.prisma, 'RULE-OTHER', 10);
  await addProduct(db.prisma, 'RULE-OTHER-B', 10);
  [otherOrder] = (await holdOrders(db.prisma, { count: 1, skus: ['RULE-OTHER', 'RULE-OTHER-B'], expiresAt: new Date(Date.now() + 3_600_000) })) as [string];
});

afterAll(async () => {
  await db?.drop();
});

/**
 * Sets the order's deadline and receipt relative to the transaction's now(), all in `tx`. Times
 * are stored to the millisecond, so "now" here is now() truncated to it: "at" is then exact.
 */
async function arrange(tx: Prisma.TransactionClient, orderId: string, time: Time, receipt: ReceiptState): Promise<string> {
  const d = OFFSET[time];
  const paymentId = receipt === 'paid elsewhere' ? `elsewhere-${orderId}` : `pay-${orderId}`;
  const holdSetsDeadline = receipt === 'processing running';
  // D = GREATEST(expires_at, payment_pending_until): a running processing hold is what sets it.
  await tx.$executeRaw`
    UPDATE orders SET
      expires_at = date_trunc('milliseconds', now()) + make_interval(secs => ${holdSetsDeadline ? d - 60 : d}),
      payment_pending_until = CASE ${receipt}::text
        WHEN 'processing running' THEN date_trunc('milliseconds', now()) + make_interval(secs => ${d})
        WHEN 'processing ended' THEN date_trunc('milliseconds', now()) + make_interval(secs => ${d - 30}) END
     WHERE id = ${orderId}::uuid`;
  const insert = (forOrder: string, amount: number, currency: string, succeededSeconds: number | null, heldSeconds: number | null, failed: boolean) =>
    tx.$executeRaw`
      INSERT INTO payment_receipts (payment_id, order_id, amount_cents, currency, succeeded_at, held_until, failed_at)
      VALUES (${paymentId}, ${forOrder}::uuid, ${amount}, ${currency},
              CASE WHEN ${succeededSeconds}::int IS NULL THEN NULL ELSE date_trunc('milliseconds', now()) + make_interval(secs => ${succeededSeconds ?? 0}) END,
              CASE WHEN ${heldSeconds}::int IS NULL THEN NULL ELSE date_trunc('milliseconds', now()) + make_interval(secs => ${heldSeconds ?? 0}) END,
              CASE WHEN ${failed} THEN date_trunc('milliseconds', now()) END)`;
  switch (receipt) {
    case 'none':
      break;
    case 'in time':
      await insert(orderId, TOTAL, 'eur', d - 1, null, false);
      break;
    case 'wrong amount':
      await insert(orderId, TOTAL - 1, 'eur', d - 1, null, false);
      break;
    case 'wrong currency':
      await insert(orderId, TOTAL, 'usd', d - 1, null, false);
      break;
    case 'paid elsewhere':
      await insert(otherOrder, TOTAL, 'eur', d - 1, null, false);
      break;
    case 'late':
      await insert(orderId, TOTAL, 'eur', d, null, false);
      break;
    case 'processing running':
      await insert(orderId, TOTAL, 'eur', null, d, false);
      break;
    case 'processing ended':
      await insert(orderId, TOTAL, 'eur', null, d - 30, false);
      break;
    case 'processing failed':
      await insert(orderId, TOTAL, 'eur', null, d - 10, true);
      break;
  }
  return paymentId;
}

async function propose(tx: Prisma.TransactionClient, orderId: string, proposal: Proposal, paymentId: string): Promise<{ payment?: string }> {
  if (proposal === 'RECLAIM') {
    await tx.$queryRaw`SELECT * FROM reclaim_due_orders(1000, '{}'::text[])`;
    return {};
  }
  const kind = proposal === 'LATE_PAYMENT' ? 'COMMIT' : proposal;
  const commits = kind === 'COMMIT';
  const [row] = await tx.$queryRaw<{ d: { status: string; defect?: string; paymentId?: string } }[]>`
    SELECT decide_order(${orderId}::uuid, ${kind}, ${commits ? paymentId : null}, ${kind === 'EXTEND' ? 'ext-1' : null}, 60, 604800,
                        ${LOCK_TIMEOUT_MS}::int, '{}'::text[]) AS d`;
  if (!commits || !row) return {};
  const { status, defect } = row.d;
  // The activity's mapping (activities/index.ts commitAnswerOf), restated only to read the answer.
  if (defect === 'UNVERIFIED' || defect === 'PAYMENT_ALREADY_USED') return { payment: defect };
  if (status === 'PAID') return { payment: row.d.paymentId === paymentId ? 'APPLIED' : 'ORDER_ALREADY_PAID' };
  if (status === 'EXPIRED') return { payment: 'ORDER_EXPIRED' };
  if (status === 'CANCELLED') return { payment: 'ORDER_CANCELLED' };
  return { payment: defect ?? 'UNEXPECTED' };
}

test.each(cases)('$proposal $time the effective deadline, receipt $receipt', async ({ proposal, time, receipt }) => {
  const sku = `RULE-${randomUUID().slice(0, 8)}`;
  await addProduct(db.prisma, sku, 5);
  await addProduct(db.prisma, `${sku}-B`, 5);
  const [orderId] = (await holdOrders(db.prisma, { count: 1, skus: [sku, `${sku}-B`], expiresAt: new Date(Date.now() + 3_600_000) })) as [string];
  const want = expected(proposal, time, receipt);

  const seen = await db.prisma.$transaction(async (tx) => {
    const paymentId = await arrange(tx, orderId, time, receipt);
    const before = await tx.$queryRaw<{ expires_at: Date }[]>`SELECT expires_at FROM orders WHERE id = ${orderId}::uuid`;
    const answer = await propose(tx, orderId, proposal, paymentId);
    const [order] = await tx.$queryRaw<{ status: string; expires_at: Date; payment_id: string | null }[]>`
      SELECT status::text AS status, expires_at, payment_id FROM orders WHERE id = ${orderId}::uuid`;
    const [own] = await tx.$queryRaw<{ outcome: string | null }[]>`
      SELECT outcome::text AS outcome FROM payment_receipts WHERE payment_id = ${paymentId} AND order_id = ${orderId}::uuid`;
    const [product] = await tx.$queryRaw<{ available: number; reserved: number; sold: number }[]>`
      SELECT available, reserved, sold FROM products WHERE sku = ${sku}`;
    const ledger = await tx.$queryRaw<{ kind: string }[]>`
      SELECT kind::text AS kind FROM stock_movements WHERE order_id = ${orderId}::uuid ORDER BY id`;
    const events = await tx.$queryRaw<{ type: string }[]>`SELECT type FROM order_events WHERE order_id = ${orderId}::uuid ORDER BY seq`;
    return {
      answer,
      status: order?.status,
      extended: (order?.expires_at.getTime() ?? 0) > (before[0]?.expires_at.getTime() ?? 0),
      paidBy: order?.payment_id ?? null,
      receiptOutcome: own?.outcome ?? null,
      stock: product,
      ledger: ledger.map((m) => m.kind),
      events: events.map((e) => e.type),
    };
  });

  expect(seen.status).toBe(want.status);
  if (want.payment !== undefined) expect(seen.answer.payment).toBe(want.payment);
  expect(seen.receiptOutcome).toBe(receipt === 'none' || receipt === 'paid elsewhere' ? null : want.receiptOutcome);
  expect(seen.extended).toBe(want.extended ?? false);
  const settled = { PAID: ['COMMIT', 'order.paid'], EXPIRED: ['RELEASE', 'order.expired'], CANCELLED: ['RELEASE', 'order.cancelled'] } as const;
  if (want.status === 'AWAITING_PAYMENT') {
    expect(seen.stock).toEqual({ available: 4, reserved: 1, sold: 0 });
    expect(seen.ledger).toEqual(['RESERVE', 'RESERVE']);
    expect(seen.events).toEqual(want.extended ? ['order.extended'] : []);
  } else {
    const [movement, event] = settled[want.status];
    expect(seen.ledger).toEqual(['RESERVE', 'RESERVE', movement, movement]);
    expect(seen.events).toEqual([event]);
    expect(seen.stock).toEqual(want.status === 'PAID' ? { available: 4, reserved: 0, sold: 1 } : { available: 5, reserved: 0, sold: 0 });
    expect(seen.paidBy).toBe(want.status === 'PAID' ? `pay-${orderId}` : null);
  }
});

test('after every case, the inventory check finds conservation and every receipt agreeing with its order', async () => {
  const report = await checkInventory(db.prisma, 3600);
  expect(report.violations.filter((v) => v.kind !== 'HOLD_PAST_DEADLINE')).toEqual([]);
});
