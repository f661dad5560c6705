/**
 * One workflow per order. It holds the stock, races the payment window against payments and
 * cancellation, and proposes each event to the database through activities that retry until
 * they get an answer. The database decides by one rule (docs/expiry.md, "The rule"): a commit
 * may find the order already released or paid, a timer may find it paid in time or held longer;
 * the workflow then follows what the database decided. No time is compared here: the database
 * says how long until the order is due, and the timer waits that long.
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
import { ACTIVITY_ATTEMPT_MS } from '../activities/timeouts';
import {
  FailureType,
  type PaymentRefusal,
  type RefundResult,
  type SettledOrder,
  type SettledStatus,
  type Shortage,
  type StillHeld,
} from '../activities/types';
import {
  awaitClosedUpdate,
  awaitExtensionUpdate,
  awaitPaymentDecisionUpdate,
  awaitReservationUpdate,
  cancelOrderSignal,
  closedOrderRefusal,
  customerIdKey,
  extendPaymentWindowSignal,
  getOrderQuery,
  orderStatusKey,
  paymentDeadlineKey,
  paymentFailedSignal,
  paymentReceivedSignal,
  UpdateFailureType,
  type ExtensionDecision,
  type ExtensionOutcome,
  type ExtensionRequest,
  type OrderStatus,
  type OrderView,
  type OrderWorkflowInput,
  type PaymentDecision,
  type PaymentOutcome,
  type PaymentReceived,
} from './messages';
import { describeItems, describeOrder, formatDuration, formatTime } from './summaries';

/**
 * Every activity here retries transient faults, backing off to a cap; commit, release and refund
 * must eventually happen, so they retry forever. Running out of stock is an answer, not a fault.
 */
const settleOptions: ActivityOptions = {
  startToCloseTimeout: ACTIVITY_ATTEMPT_MS,
  retry: { initialInterval: '200 ms', backoffCoefficient: 2, maximumInterval: '5 seconds' },
};
const reserveOptions: ActivityOptions = {
  ...settleOptions,
  retry: {
    ...settleOptions.retry,
    nonRetryableErrorTypes: [
      FailureType.OutOfStock,
      FailureType.UnknownSku,
      FailureType.PurchaseLimitExceeded,
      FailureType.TooManyOpenOrders,
      FailureType.ExpiredBeforeHold,
    ],
  },
};

const activitiesWith = (options: ActivityOptions, summary: string) =>
  proxyActivities<Activities>({ ...options, summary });

const localActivitiesWith = (options: LocalActivityOptions, summary: string) =>
  proxyLocalActivities<Activities>({ ...options, summary });

interface PaymentRecord {
  paymentId: string;
  amountCents: number;
  outcome?: PaymentOutcome;
  refund?: RefundResult;
  /** Delivered again while its first proposal was in flight: propose again if that one was unverified. */
  deliveredAgain?: boolean;
}

interface ExtensionRecord extends ExtensionRequest {
  outcome?: ExtensionOutcome;
}

export async function orderWorkflow(input: OrderWorkflowInput): Promise<OrderView> {
  // One non-cancellable scope for the main path and every handler, not one per call: nothing
  // ever cancels it, and each new scope costs promises that the SDK's stack-trace hook records.
  const shield = new CancellationScope({ cancellable: false });
  const order = new OrderProcess(input, shield);
  order.registerHandlers();
  void CancellationScope.current().cancelRequested.catch(() => order.requestCancel());
  return shield.run(() => order.run());
}

class OrderProcess {
  private status: OrderStatus = 'PENDING';
  /** The outcome the database decided, once a proposal was answered with it. */
  private outcome: SettledStatus | undefined;
  /** How long the timer waits: until expiresAt at first, then as long as the database last said. */
  private remainingMs: number;
  /** The end of the processing hold the database last answered with, while one runs. */
  private processingHoldUntil: string | undefined;
  /** Bumped whenever the database moves the deadline, so the waiting timer is set again. */
  private deadlineMoves = 0;
  private cancelWanted = false;
  /** Ask the database now whether the order is due (a hold ended, or an extension lost the race). */
  private expireWanted = false;
  /** One proposal to the database at a time. */
  private proposing = false;
  private settled = false;
  private readonly view: OrderView;
  // A list, not a Map (state stays JSON) nor an object keyed by paymentId (which would mistake
  // ids such as "constructor" or "__proto__" for payments already received).
  private readonly payments: PaymentRecord[] = [];
  private readonly extensions: ExtensionRecord[] = [];

  constructor(
    private readonly input: OrderWorkflowInput,
    private readonly shield: CancellationScope,
  ) {
    const createdAt = workflowInfo().startTime;
    this.remainingMs = input.paymentTimeoutSeconds * 1000;
    this.view = {
      orderId: input.orderId,
      customerId: input.customerId,
      status: 'PENDING',
      items: input.items.map((i) => ({ ...i, unitPriceCents: 0 })),
      totalCents: 0,
      createdAt: createdAt.toISOString(),
      expiresAt: new Date(createdAt.getTime() + this.remainingMs).toISOString(),
    };
  }

  /** Runs a handler shielded from workflow cancellation, which would otherwise fail it half-way. */
  private shielded<A extends unknown[], R>(handler: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
    return (...args) => this.shield.run(() => handler(...args));
  }

  registerHandlers(): void {
    setHandler(getOrderQuery, () => this.snapshot());
    setHandler(paymentReceivedSignal, this.shielded((payment) => this.receivePayment(payment)));
    setHandler(cancelOrderSignal, () => this.requestCancel());
    setHandler(
      awaitReservationUpdate,
      this.shielded(async () => {
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
      this.shielded(async ({ paymentId }) => {
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
      this.shielded(async () => {
        await condition(() => this.settled);
        return this.snapshot();
      }),
    );
    setHandler(paymentFailedSignal, () => this.paymentFailed());
    setHandler(extendPaymentWindowSignal, this.shielded((request) => this.extend(request)));
    setHandler(
      awaitExtensionUpdate,
      this.shielded(async ({ extensionId }) => {
        await condition(() => this.findExtension(extensionId)?.outcome !== undefined);
        return this.extensionDecision(extensionId);
      }),
      {
        validator: ({ extensionId, seconds }) => {
          const record = this.findExtension(extensionId);
          if (!record) {
            throw ApplicationFailure.nonRetryable(`no extension ${extensionId} was requested`, UpdateFailureType.UnknownExtension);
          }
          if (record.seconds !== seconds) {
            throw ApplicationFailure.nonRetryable(
              'the Idempotency-Key was used before with a different request',
              UpdateFailureType.IdempotencyKeyReused,
            );
          }
        },
      },
    );
  }

  /** reserve → wait for a payment, a cancel or the deadline → settle → let handlers finish → close. */
  async run(): Promise<OrderView> {
    // The API sets OrderStatus PENDING and CustomerId when it starts the order: no upsert needed.
    if (await this.reserve()) await this.waitForTheOutcome();
    this.settled = true;
    // Refunds and update callers still running finish before the workflow closes.
    await condition(allHandlersFinished);
    return this.snapshot();
  }

  /** Holds the stock (a local activity: its answer is the database's, so a re-run finds the same); false when rejected. */
  private async reserve(): Promise<boolean> {
    const { reserveStock } = localActivitiesWith(reserveOptions, `reserve ${describeItems(this.input.items)}`);
    try {
      const reserved = await reserveStock({
        orderId: this.input.orderId,
        ...(this.input.channel !== undefined && { channel: this.input.channel }),
        customerId: this.input.customerId,
        items: this.input.items,
        createdAt: this.view.createdAt,
        expiresAt: this.view.expiresAt,
        currency: this.input.currency,
        ...(this.input.idempotencyKey !== undefined && { idempotencyKey: this.input.idempotencyKey }),
        ...(this.input.requestHash !== undefined && { requestHash: this.input.requestHash }),
      });
      this.view.items = reserved.lines;
      this.view.totalCents = reserved.totalCents;
      this.remainingMs = Date.parse(this.view.expiresAt) - Date.now();
      this.transition('AWAITING_PAYMENT');
      return true;
    } catch (error) {
      const refusal = holdRefusal(error);
      if (!refusal) throw error;
      this.view.closedAt = new Date().toISOString();
      if (refusal.type === FailureType.ExpiredBeforeHold) {
        this.outcome = 'EXPIRED';
        this.transition('EXPIRED');
        return false;
      }
      this.view.shortages = refusal.shortages;
      this.transition('REJECTED');
      return false;
    }
  }

  /**
   * Waits for the deadline (as long as the database last said), a cancel, or a payment whose
   * commit decided the order, and proposes the expiry or the cancel until the database decides.
   * An expiry the database finds not due (the deadline moved) re-arms the timer.
   */
  private async waitForTheOutcome(): Promise<void> {
    for (let round = 0; this.outcome === undefined; round++) {
      const moves = this.deadlineMoves;
      const woke = await condition(
        () => this.outcome !== undefined || this.cancelWanted || this.expireWanted || this.deadlineMoves !== moves,
        // At least 1 ms: a zero timeout would wait forever rather than expire at once.
        Math.max(1, this.remainingMs),
        { summary: round === 0 ? `payment window ${formatDuration(this.input.paymentTimeoutSeconds)}` : this.timerSummary() },
      );
      if (this.outcome !== undefined) return;
      const reason = this.cancelWanted ? 'CANCELLED' : !woke || this.expireWanted ? 'EXPIRED' : undefined;
      this.expireWanted = false;
      if (reason === undefined) continue; // the deadline moved: wait for the new one
      await this.exclusively(async () => {
        if (this.outcome !== undefined) return; // a payment's commit decided it meanwhile
        const { releaseStock } = localActivitiesWith(settleOptions, `release ${describeItems(this.view.items)} (${reason.toLowerCase()})`);
        this.learn(await releaseStock({ orderId: this.input.orderId, reason }));
      });
    }
  }

  /** Takes in what the database answered: a decided order is followed, a held one waited out. */
  private learn(answer: SettledOrder | StillHeld): void {
    if (answer.status === 'AWAITING_PAYMENT') this.holdOn(answer);
    else this.follow(answer);
  }

  /** The database holds the order still: wait as long as it says. */
  private holdOn(held: StillHeld): void {
    this.moveDeadline(held.expiresAt, held.dueInMs, held.paymentPendingUntil);
  }

  /**
   * Takes in the deadline the database answered. The waiting timer is set again only when the
   * deadline moved; after the timer's own proposal the loop sets it again anyway.
   */
  private moveDeadline(expiresAt: string, dueInMs: number, processingHoldUntil = this.processingHoldUntil): void {
    this.remainingMs = dueInMs;
    const moved = expiresAt !== this.view.expiresAt || processingHoldUntil !== this.processingHoldUntil;
    if (!moved) return;
    if (expiresAt !== this.view.expiresAt) {
      this.view.expiresAt = expiresAt;
      upsertSearchAttributes([{ key: paymentDeadlineKey, value: new Date(expiresAt) }]);
    }
    this.processingHoldUntil = processingHoldUntil;
    this.deadlineMoves++;
    this.updateDetails();
  }

  /** Records the outcome the database decided, whoever proposed it. */
  private follow(settled: SettledOrder): void {
    this.outcome = settled.status;
    this.processingHoldUntil = undefined;
    if (settled.status === 'PAID') {
      this.view.paidAt = settled.paidAt;
      this.view.paymentId = settled.paymentId;
    }
    this.view.closedAt = settled.closedAt;
    if (this.status !== settled.status) this.transition(settled.status);
  }

  /** Runs one proposal to the database at a time. */
  private async exclusively<T>(propose: () => Promise<T>): Promise<T> {
    // Several waiters may be woken at once: each checks again before it takes its turn.
    while (this.proposing) await condition(() => !this.proposing);
    this.proposing = true;
    try {
      return await propose();
    } finally {
      this.proposing = false;
    }
  }

  /**
   * A payment.failed ended a processing hold: the window runs on from where it was, so ask the
   * database whether the order is due now (it answers with any other hold still running).
   */
  private paymentFailed(): void {
    if (this.status === 'AWAITING_PAYMENT' && this.outcome === undefined) this.expireWanted = true;
  }

  private async extend(request: ExtensionRequest): Promise<void> {
    if (!isExtensionRequest(request)) {
      log.warn('ignoring malformed extendPaymentWindow signal', { request });
      return;
    }
    if (this.findExtension(request.extensionId)) return; // repeated: the first answer stands
    const record: ExtensionRecord = { extensionId: request.extensionId, seconds: request.seconds };
    this.extensions.push(record);
    await condition(() => this.status !== 'PENDING');
    record.outcome = await this.exclusively(async () => {
      const refusal = closedOrderRefusal(this.outcome ?? this.status);
      if (refusal) return refusal;
      const { extendPaymentWindow } = localActivitiesWith(settleOptions, `extend the payment window by ${formatDuration(record.seconds)}`);
      const answer = await extendPaymentWindow({ orderId: this.input.orderId, extensionId: record.extensionId, seconds: record.seconds });
      if (answer.outcome === 'DECIDED') {
        // The deadline (or a payment in time) won the race: the extension decided the order.
        this.follow(answer.order);
        return closedOrderRefusal(answer.order.status) ?? 'ORDER_EXPIRED';
      }
      if (answer.outcome === 'EXTENDED') this.moveDeadline(answer.expiresAt, answer.dueInMs);
      return answer.outcome;
    });
  }

  private findExtension(extensionId: string): ExtensionRecord | undefined {
    return this.extensions.find((e) => e.extensionId === extensionId);
  }

  private extensionDecision(extensionId: string): ExtensionDecision {
    const record = this.findExtension(extensionId);
    if (!record?.outcome) throw new Error(`extension ${extensionId} is not decided`);
    return { extensionId, outcome: record.outcome, order: this.snapshot() };
  }

  /**
   * A payment: proposed to the database, which verifies it against the receipt the API recorded
   * and decides by the rule. A payment that lost (or cannot pay) is refunded here, once. One
   * that no verified receipt of this order backs changes nothing and gets nothing.
   */
  private async receivePayment(payment: PaymentReceived): Promise<void> {
    if (!isPaymentReceived(payment)) {
      // A malformed signal must not fail the order; it is ignored and logged.
      log.warn('ignoring malformed paymentReceived signal', { payment });
      return;
    }
    const earlier = this.findPayment(payment.paymentId);
    if (earlier) {
      earlier.deliveredAgain = true; // redelivery: the first decision stands
      return;
    }
    const record: PaymentRecord = { paymentId: payment.paymentId, amountCents: payment.amountCents };
    this.payments.push(record);
    await condition(() => this.status !== 'PENDING');
    for (;;) {
      record.deliveredAgain = false;
      const answer = await this.exclusively(async () => {
        const { commitStock } = localActivitiesWith(settleOptions, `commit ${describeItems(this.view.items)} (payment ${payment.paymentId})`);
        const decided = await commitStock({ orderId: this.input.orderId, paymentId: payment.paymentId });
        if (decided.order) this.learn(decided.order);
        return decided.payment;
      });
      if (answer === 'UNVERIFIED' || answer === 'PAYMENT_ALREADY_USED') {
        // A signal that no verified delivery backs (sent straight to Temporal): nothing moved.
        log.warn('security: paymentReceived without a verified payment of this order; ignored', { paymentId: payment.paymentId, reason: answer });
        if (record.deliveredAgain) continue; // its genuine delivery may have been recorded since
        this.payments.splice(this.payments.indexOf(record), 1);
        return;
      }
      record.outcome = answer;
      if (answer !== 'APPLIED') record.refund = await this.refund(payment.paymentId, answer);
      return;
    }
  }

  private refund(paymentId: string, reason: PaymentRefusal): Promise<RefundResult> {
    return activitiesWith(settleOptions, `refund payment ${paymentId} (${reason})`).refundPayment({
      orderId: this.input.orderId,
      paymentId,
      reason,
    });
  }

  /** cancelOrder, or a Temporal cancellation request: only an order not yet decided is cancelled. */
  requestCancel(): void {
    if (this.status !== 'PENDING' && this.status !== 'AWAITING_PAYMENT') return;
    this.cancelWanted = true;
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

  private timerSummary(): string {
    return this.processingHoldUntil !== undefined
      ? `payment processing, held until ${formatTime(this.processingHoldUntil)} at most`
      : `payment window, until ${formatTime(this.view.expiresAt)}`;
  }

  private updateDetails(): void {
    setCurrentDetails(describeOrder(this.view, this.processingHoldUntil));
  }

  private snapshot(): OrderView {
    return { ...this.view, items: this.view.items.map((i) => ({ ...i })) };
  }
}

/** Why the hold refused the order (non-retryable; the database recorded it): no stock, an unknown sku, a purchase limit, or expired unheld. */
function holdRefusal(error: unknown): { type: string; shortages: Shortage[] } | undefined {
  // An activity's failure comes wrapped in an ActivityFailure; a local activity's non-retryable
  // ApplicationFailure reaches the workflow as it was thrown.
  const failure = error instanceof ActivityFailure ? error.cause : error;
  if (!(failure instanceof ApplicationFailure) || !failure.type) return undefined;
  const { type, details } = failure;
  // The activity passes the shortages as the failure's single detail.
  if (type === FailureType.OutOfStock) return { type, shortages: (details?.[0] ?? []) as Shortage[] };
  if (HOLD_REFUSALS.has(type)) return { type, shortages: [] };
  return undefined;
}

/** The hold's other refusals: the order is closed without stock. */
const HOLD_REFUSALS: ReadonlySet<string> = new Set([
  FailureType.UnknownSku,
  FailureType.PurchaseLimitExceeded,
  FailureType.TooManyOpenOrders,
  FailureType.ExpiredBeforeHold,
]);

function isExtensionRequest(value: unknown): value is ExtensionRequest {
  if (typeof value !== 'object' || value === null) return false;
  const { extensionId, seconds } = value as Record<string, unknown>;
  return typeof extensionId === 'string' && extensionId.length > 0 && Number.isSafeInteger(seconds) && (seconds as number) > 0;
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
