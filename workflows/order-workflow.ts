/**
 * One workflow per order. It holds the stock, races the payment window against payments
 * and cancellation, and settles the outcome through activities that retry until they
 * succeed. Decisions are made here, once; the database follows them.
 *
 * Nothing here may be cut short by a Temporal cancellation request (Web UI, CLI): the main
 * path and every handler run in non-cancellable scopes, and such a request is taken as a
 * cancelOrder, so the order still ends in a final state holding no stock.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
  type LocalActivityOptions,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { FailureType, type PaymentRefusal, type RefundResult, type Shortage } from '../activities/types';
import {
  awaitClosedUpdate,
  awaitPaymentDecisionUpdate,
  awaitReservationUpdate,
  cancelOrderSignal,
  customerIdKey,
  getOrderQuery,
  orderStatusKey,
  paymentDeadlineKey,
  paymentReceivedSignal,
  UpdateFailureType,
  type OrderStatus,
  type OrderView,
  type OrderWorkflowInput,
  type PaymentDecision,
  type PaymentOutcome,
  type PaymentReceived,
} from './messages';
import { describeItems, describeOrder, formatDuration } from './summaries';

/** Reservation retries transient faults; running out of stock is an answer, not a fault. */
const reserveOptions: ActivityOptions = {
  startToCloseTimeout: '10 seconds',
  retry: {
    initialInterval: '200 ms',
    backoffCoefficient: 2,
    maximumInterval: '5 seconds',
    nonRetryableErrorTypes: [FailureType.OutOfStock, FailureType.UnknownSku],
  },
};

/**
 * Orders started since this patch hold their stock in a local activity: it runs inside the
 * workflow task that starts the order, which saves an activity task, a second workflow task and
 * their history events on the path every order takes (the dev server's work per order was the
 * bottleneck). That is safe for the hold because reserveStock's answer is the database's
 * (a re-run after a lost task finds the same hold or rejection). Commit and release stay
 * (remote) activities: a local activity's effect lands before the task that records the
 * decision, and if that task is lost the decision could be re-made differently.
 * Histories from before the patch keep the activity.
 */
const RESERVE_LOCALLY_PATCH = 'reserve-as-local-activity';

/** Commit, release and refund must eventually happen: retry forever, backing off to a cap. */
const settleOptions: ActivityOptions = {
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '200 ms', backoffCoefficient: 2, maximumInterval: '5 seconds' },
};

const activitiesWith = (options: ActivityOptions, summary: string) =>
  proxyActivities<Activities>({ ...options, summary });

const localActivitiesWith = (options: LocalActivityOptions, summary: string) =>
  proxyLocalActivities<Activities>({ ...options, summary });

type Decision = { kind: 'PAID'; payment: PaymentReceived } | { kind: 'EXPIRED' } | { kind: 'CANCELLED' };

interface PaymentRecord {
  paymentId: string;
  amountCents: number;
  outcome?: PaymentOutcome;
  refund?: RefundResult;
}

export async function orderWorkflow(input: OrderWorkflowInput): Promise<OrderView> {
  const order = new OrderProcess(input);
  order.registerHandlers();
  void CancellationScope.current().cancelRequested.catch(() => order.requestCancel());
  return CancellationScope.nonCancellable(() => order.run());
}

/** Runs a handler shielded from workflow cancellation, which would otherwise fail it half-way. */
function shielded<A extends unknown[], R>(handler: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return (...args) => CancellationScope.nonCancellable(() => handler(...args));
}

class OrderProcess {
  private status: OrderStatus = 'PENDING';
  private decision: Decision | undefined;
  private settled = false;
  private readonly view: OrderView;
  // A list, not a Map (state stays JSON) nor an object keyed by paymentId (which would mistake
  // ids such as "constructor" or "__proto__" for payments already received).
  private readonly payments: PaymentRecord[] = [];

  constructor(private readonly input: OrderWorkflowInput) {
    const createdAt = workflowInfo().startTime;
    this.view = {
      orderId: input.orderId,
      customerId: input.customerId,
      status: 'PENDING',
      items: input.items.map((i) => ({ ...i, unitPriceCents: 0 })),
      totalCents: 0,
      createdAt: createdAt.toISOString(),
      expiresAt: new Date(createdAt.getTime() + input.paymentTimeoutSeconds * 1000).toISOString(),
    };
  }

  registerHandlers(): void {
    setHandler(getOrderQuery, () => this.snapshot());
    setHandler(paymentReceivedSignal, shielded((payment) => this.receivePayment(payment)));
    setHandler(cancelOrderSignal, () => this.requestCancel());
    setHandler(
      awaitReservationUpdate,
      shielded(async () => {
        await condition(() => this.status !== 'PENDING');
        return this.snapshot();
      }),
      {
        validator: ({ requestHash }) => {
          if (requestHash !== this.input.requestHash) {
            throw ApplicationFailure.nonRetryable(
              'the Idempotency-Key was used before with a different request',
              UpdateFailureType.IdempotencyKeyReused,
            );
          }
        },
      },
    );
    setHandler(
      awaitPaymentDecisionUpdate,
      shielded(async ({ paymentId }) => {
        await condition(() => this.isPaymentSettled(paymentId));
        return this.paymentDecision(paymentId);
      }),
      {
        validator: ({ paymentId }) => {
          if (!this.findPayment(paymentId)) {
            throw ApplicationFailure.nonRetryable(`no payment ${paymentId} was received`, UpdateFailureType.UnknownPayment);
          }
        },
      },
    );
    setHandler(
      awaitClosedUpdate,
      shielded(async () => {
        await condition(() => this.settled);
        return this.snapshot();
      }),
    );
  }

  async run(): Promise<OrderView> {
    const reserveLocally = patched(RESERVE_LOCALLY_PATCH);
    // The API sets OrderStatus PENDING and CustomerId when it starts the order: no upsert needed.
    if (!reserveLocally) this.transition('PENDING');
    const held = await this.reserve(reserveLocally);
    if (held) {
      const paidInTime = await condition(() => this.decision !== undefined, this.msUntilDeadline(), {
        summary: `payment window ${formatDuration(this.input.paymentTimeoutSeconds)}`,
      });
      if (!paidInTime) this.decision ??= { kind: 'EXPIRED' };
      await this.settle();
    }
    this.settled = true;
    // Refunds and update callers still running finish before the workflow closes.
    await condition(allHandlersFinished);
    return this.snapshot();
  }

  /** Holds the stock; false when the order was rejected. */
  private async reserve(locally: boolean): Promise<boolean> {
    const summary = `reserve ${describeItems(this.input.items)}`;
    const { reserveStock } = locally ? localActivitiesWith(reserveOptions, summary) : activitiesWith(reserveOptions, summary);
    try {
      const reserved = await reserveStock({
        orderId: this.input.orderId,
        customerId: this.input.customerId,
        items: this.input.items,
        createdAt: this.view.createdAt,
        expiresAt: this.view.expiresAt,
        ...(this.input.idempotencyKey !== undefined && { idempotencyKey: this.input.idempotencyKey }),
        ...(this.input.requestHash !== undefined && { requestHash: this.input.requestHash }),
      });
      this.view.items = reserved.lines;
      this.view.totalCents = reserved.totalCents;
      this.transition('AWAITING_PAYMENT');
      return true;
    } catch (error) {
      const shortages = outOfStockDetails(error);
      if (!shortages) throw error;
      this.view.shortages = shortages;
      this.view.closedAt = new Date().toISOString();
      this.transition('REJECTED');
      return false;
    }
  }

  /** Carries out the decision (in the non-cancellable scope `run` is called in). */
  private async settle(): Promise<void> {
    const decision = this.decision;
    if (!decision) throw new Error('settle called before a decision');
    this.transition(decision.kind);
    const items = describeItems(this.view.items);
    if (decision.kind === 'PAID') {
      const { paymentId, amountCents } = decision.payment;
      const { commitStock } = activitiesWith(settleOptions, `commit ${items} (payment ${paymentId})`);
      const { paidAt } = await commitStock({ orderId: this.input.orderId, paymentId, amountCents });
      this.view.paidAt = paidAt;
      this.view.paymentId = paymentId;
      this.view.closedAt = paidAt;
    } else {
      const reason = decision.kind;
      const { releaseStock } = activitiesWith(settleOptions, `release ${items} (${reason.toLowerCase()})`);
      const { closedAt } = await releaseStock({ orderId: this.input.orderId, reason });
      this.view.closedAt = closedAt;
    }
    this.updateDetails();
  }

  private async receivePayment(payment: PaymentReceived): Promise<void> {
    if (!isPaymentReceived(payment)) {
      // A malformed signal must not fail the order; it is ignored and logged.
      log.warn('ignoring malformed paymentReceived signal', { payment });
      return;
    }
    if (this.findPayment(payment.paymentId)) return; // redelivery: the first decision stands
    const record: PaymentRecord = { paymentId: payment.paymentId, amountCents: payment.amountCents };
    this.payments.push(record);
    await condition(() => this.status !== 'PENDING');
    const refusal = this.refusalFor(payment);
    if (!refusal) {
      record.outcome = 'APPLIED';
      this.decision = { kind: 'PAID', payment };
      return;
    }
    record.outcome = refusal;
    record.refund = await activitiesWith(settleOptions, `refund payment ${payment.paymentId} (${refusal})`).refundPayment({
      orderId: this.input.orderId,
      paymentId: payment.paymentId,
      amountCents: payment.amountCents,
      reason: refusal,
    });
  }

  private refusalFor(payment: PaymentReceived): PaymentRefusal | undefined {
    if (this.status === 'REJECTED') return 'ORDER_REJECTED';
    switch (this.decision?.kind) {
      case 'PAID':
        return 'ORDER_ALREADY_PAID';
      case 'EXPIRED':
        return 'ORDER_EXPIRED';
      case 'CANCELLED':
        return 'ORDER_CANCELLED';
      case undefined:
        if (isOtherCurrency(payment.currency, this.input.currency)) return 'CURRENCY_MISMATCH';
        return payment.amountCents === this.view.totalCents ? undefined : 'AMOUNT_MISMATCH';
    }
  }

  /** cancelOrder, or a Temporal cancellation request: only an order not yet decided is cancelled. */
  requestCancel(): void {
    if (this.decision === undefined && (this.status === 'PENDING' || this.status === 'AWAITING_PAYMENT')) {
      this.decision = { kind: 'CANCELLED' };
    }
  }

  private findPayment(paymentId: string): PaymentRecord | undefined {
    return this.payments.find((p) => p.paymentId === paymentId);
  }

  private isPaymentSettled(paymentId: string): boolean {
    const record = this.findPayment(paymentId);
    if (!record?.outcome) return false;
    return record.outcome === 'APPLIED' ? this.settled : record.refund !== undefined;
  }

  private paymentDecision(paymentId: string): PaymentDecision {
    const record = this.findPayment(paymentId);
    if (!record?.outcome) throw new Error(`payment ${paymentId} is not decided`);
    return {
      paymentId,
      outcome: record.outcome,
      ...(record.refund && { refund: record.refund }),
      order: this.snapshot(),
    };
  }

  private msUntilDeadline(): number {
    // At least 1 ms: a zero timeout would wait forever rather than expire at once.
    return Math.max(1, Date.parse(this.view.expiresAt) - Date.now());
  }

  private transition(status: OrderStatus): void {
    this.status = status;
    this.view.status = status;
    upsertSearchAttributes([
      { key: orderStatusKey, value: status },
      { key: customerIdKey, value: this.input.customerId },
      { key: paymentDeadlineKey, value: new Date(this.view.expiresAt) },
    ]);
    this.updateDetails();
  }

  private updateDetails(): void {
    setCurrentDetails(describeOrder(this.view));
  }

  private snapshot(): OrderView {
    return { ...this.view, items: this.view.items.map((i) => ({ ...i })) };
  }
}

function outOfStockDetails(error: unknown): Shortage[] | undefined {
  // An activity's failure comes wrapped in an ActivityFailure; a local activity's non-retryable
  // ApplicationFailure reaches the workflow as it was thrown.
  const failure = error instanceof ActivityFailure ? error.cause : error;
  if (!(failure instanceof ApplicationFailure)) return undefined;
  const { type, details } = failure;
  if (type !== FailureType.OutOfStock && type !== FailureType.UnknownSku) return undefined;
  // The activity passes the shortages as the failure's single detail.
  return type === FailureType.OutOfStock ? ((details?.[0] ?? []) as Shortage[]) : [];
}

function isPaymentReceived(value: unknown): value is PaymentReceived {
  if (typeof value !== 'object' || value === null) return false;
  const { paymentId, amountCents, currency } = value as Record<string, unknown>;
  return (
    typeof paymentId === 'string' &&
    paymentId.length > 0 &&
    Number.isSafeInteger(amountCents) &&
    (currency === undefined || typeof currency === 'string')
  );
}

/**
 * Histories from before currencies were carried have neither side, and are decided as they
 * were; a payment that names no currency is taken to be in the order's.
 */
function isOtherCurrency(paid: string | undefined, priced: string | undefined): boolean {
  return paid !== undefined && priced !== undefined && paid.toLowerCase() !== priced.toLowerCase();
}

