/**
 * One workflow per order. It holds the stock, races the payment window against payments
 * and cancellation, and proposes the outcome to the database through activities that retry
 * until they get an answer. The database decides once (a compare-and-set on the order row):
 * a commit may find the order already released (by the reclaim or the deadline), a release may
 * find it released already; the workflow then follows what the database decided.
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
import {
  FailureType,
  paymentOutcomeOf,
  type PaymentRefusal,
  type RefundResult,
  type SettledOrder,
  type SettledStatus,
  type Shortage,
} from '../activities/types';
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

/**
 * Orders started since this patch commit and release in local activities (inside the workflow
 * task that fires the timer or takes the payment: no activity task, no second workflow task).
 * That is safe now that the database decides: a lost task retried with its messages in another
 * order can only propose again, and gets the outcome already decided. They also record the
 * order's status (search attribute) after the database's answer rather than before it.
 * Histories from before the patch keep the (remote) activities and that order of commands.
 */
const SETTLE_LOCALLY_PATCH = 'settle-as-local-activity';

const activitiesWith = (options: ActivityOptions, summary: string) =>
  proxyActivities<Activities>({ ...options, summary });

const localActivitiesWith = (options: LocalActivityOptions, summary: string) =>
  proxyLocalActivities<Activities>({ ...options, summary });

/** What the workflow proposes; the database's answer (SettledOrder) may differ. */
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
  /** The outcome the database decided, once the proposal was answered. */
  private outcome: SettledStatus | undefined;
  private settleLocally = false;
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
    this.settleLocally = patched(SETTLE_LOCALLY_PATCH);
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

  /**
   * Proposes the decision to the database and follows its answer (in the non-cancellable scope
   * `run` is called in). A payment whose commit lost is refunded here, once.
   */
  private async settle(): Promise<void> {
    const decision = this.decision;
    if (!decision) throw new Error('settle called before a decision');
    if (!this.settleLocally) this.transition(decision.kind);
    const settled = decision.kind === 'PAID' ? await this.commit(decision.payment) : await this.release(decision.kind);
    this.follow(settled);
    if (decision.kind === 'PAID') await this.refundUnlessApplied(decision.payment, settled);
    this.updateDetails();
  }

  private async commit(payment: PaymentReceived): Promise<OutcomeOfProposal> {
    const { paymentId, amountCents } = payment;
    const { commitStock } = this.settleActivities(`commit ${describeItems(this.view.items)} (payment ${paymentId})`);
    const result: Partial<SettledOrder> = await commitStock({ orderId: this.input.orderId, paymentId, amountCents });
    // Before the database decided, a commit answered { paidAt } only: it had won.
    return outcomeOf(result, { status: 'PAID', paymentId, closedAt: result.paidAt });
  }

  private async release(reason: 'EXPIRED' | 'CANCELLED'): Promise<OutcomeOfProposal> {
    const { releaseStock } = this.settleActivities(`release ${describeItems(this.view.items)} (${reason.toLowerCase()})`);
    const result: Partial<SettledOrder> = await releaseStock({ orderId: this.input.orderId, reason });
    // Before the database decided, a release answered { closedAt, expiresAt } only: it had won.
    return outcomeOf(result, { status: reason });
  }

  private settleActivities(summary: string) {
    return this.settleLocally ? localActivitiesWith(settleOptions, summary) : activitiesWith(settleOptions, summary);
  }

  /** Records the outcome the database decided, whoever proposed it. */
  private follow(settled: OutcomeOfProposal): void {
    this.outcome = settled.status;
    if (settled.status === 'PAID') {
      this.view.paidAt = settled.paidAt;
      this.view.paymentId = settled.paymentId;
    }
    this.view.closedAt = settled.closedAt;
    if (this.status !== settled.status) this.transition(settled.status);
  }

  private async refundUnlessApplied(payment: PaymentReceived, settled: OutcomeOfProposal): Promise<void> {
    const record = this.findPayment(payment.paymentId);
    const outcome = paymentOutcomeOf(settled, payment.paymentId);
    if (!record || outcome === 'APPLIED') return;
    record.outcome = outcome;
    record.refund = await this.refund(payment, outcome);
  }

  private refund(payment: PaymentReceived, reason: PaymentRefusal): Promise<RefundResult> {
    return activitiesWith(settleOptions, `refund payment ${payment.paymentId} (${reason})`).refundPayment({
      orderId: this.input.orderId,
      paymentId: payment.paymentId,
      amountCents: payment.amountCents,
      reason,
    });
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
    // While another payment's commit is proposed, its answer tells this one why it is refused.
    if (this.settleLocally && this.decision?.kind === 'PAID') await condition(() => this.outcome !== undefined);
    const refusal = this.refusalFor(payment);
    if (!refusal) {
      // Provisional: settle() replaces it with the refusal if the commit loses.
      record.outcome = 'APPLIED';
      this.decision = { kind: 'PAID', payment };
      return;
    }
    record.outcome = refusal;
    record.refund = await this.refund(payment, refusal);
  }

  private refusalFor(payment: PaymentReceived): PaymentRefusal | undefined {
    if (this.status === 'REJECTED') return 'ORDER_REJECTED';
    switch (this.outcome ?? this.decision?.kind) {
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

/** A commit's or release's answer, with the fields older activity results lacked filled in. */
type OutcomeOfProposal = Pick<SettledOrder, 'status' | 'closedAt'> & Partial<Pick<SettledOrder, 'paidAt' | 'paymentId'>>;

function outcomeOf(result: Partial<SettledOrder>, older: Partial<SettledOrder>): OutcomeOfProposal {
  const merged = { ...older, ...dropUndefined(result) };
  const { status, closedAt } = merged;
  if (status === undefined || closedAt === undefined) throw new Error(`unexpected answer to a proposal: ${JSON.stringify(result)}`);
  return {
    status,
    closedAt,
    ...(merged.paidAt !== undefined && { paidAt: merged.paidAt }),
    ...(merged.paymentId !== undefined && { paymentId: merged.paymentId }),
  };
}

function dropUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
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

