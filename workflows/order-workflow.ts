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
  type StillHeld,
} from '../activities/types';
import {
  awaitClosedUpdate,
  awaitExtensionUpdate,
  awaitPaymentDecisionUpdate,
  awaitReservationUpdate,
  cancelOrderSignal,
  customerIdKey,
  extendPaymentWindowSignal,
  getOrderQuery,
  orderStatusKey,
  paymentDeadlineKey,
  closedOrderRefusal,
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

/**
 * Orders started since this patch follow the deadline the database holds: their timer's expiry
 * names the deadline it waited for and the database may answer that the order is held longer
 * (a payment.processing hold, or an extension), and then the timer is set again. They take
 * extensions (extendPaymentWindow) and payment.failed nudges (paymentFailed). Their reservation
 * marks the order deadline_movable, which is what lets the API grant processing holds.
 * Histories from before the patch keep one timer and an expiry that wins while the order awaits payment.
 */
const FOLLOW_DEADLINE_PATCH = 'deadline-follows-database';

/**
 * Orders started since this patch take all three behaviours above on one marker: each patch
 * costs the first workflow task a marker and a TemporalChangeVersion search-attribute upsert
 * (a visibility write), and every new order is on the current code anyway. Histories from
 * before it still ask for each of the three on its own.
 */
const CURRENT_ORDER_PATCH = 'reserve-settle-and-deadline';

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

interface ExtensionRecord extends ExtensionRequest {
  outcome?: ExtensionOutcome;
}

/** The deadline a timer waits for: expiresAt, or later while a processing hold the database told of lasts. */
interface Deadline {
  expiresAt: string;
  paymentPendingUntil?: string;
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
  private decision: Decision | undefined;
  /** The outcome the database decided, once the proposal was answered. */
  private outcome: SettledStatus | undefined;
  private settleLocally = false;
  private followsDeadline = false;
  /** The processing hold the database answered an expiry with; undefined when none is known. */
  private paymentPendingUntil: string | undefined;
  /** Bumped whenever the deadline moves, so the waiting timer is set again. */
  private deadlineMoves = 0;
  /** A cancel is kept until decided: an expiry in flight may be refused (still held), and then it counts. */
  private cancelWanted = false;
  /** Set when the database said the deadline passed (an extension lost the race): expire now. */
  private expireWanted = false;
  /** One proposal to the database at a time (the outcome, or an extension). */
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
    setHandler(paymentFailedSignal, (failed) => this.paymentFailed(failed));
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

  async run(): Promise<OrderView> {
    // Short-circuits: a new order records only CURRENT_ORDER_PATCH's marker.
    const current = patched(CURRENT_ORDER_PATCH);
    const reserveLocally = current || patched(RESERVE_LOCALLY_PATCH);
    this.settleLocally = current || patched(SETTLE_LOCALLY_PATCH);
    this.followsDeadline = current || patched(FOLLOW_DEADLINE_PATCH);
    // The API sets OrderStatus PENDING and CustomerId when it starts the order: no upsert needed.
    if (!reserveLocally) this.transition('PENDING');
    const held = await this.reserve(reserveLocally);
    if (held && this.followsDeadline) {
      await this.decideFollowingDeadline();
    } else if (held) {
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
        ...(this.followsDeadline && { deadlineMovable: true }),
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
   * Waits for a payment, a cancel or the deadline, and proposes that to the database until it
   * decides. The timer's expiry names the deadline waited for; when the database holds the
   * order longer (a processing hold, an extension) the proposal is withdrawn and the timer set
   * again for the later deadline.
   */
  private async decideFollowingDeadline(): Promise<void> {
    for (let round = 0; ; round++) {
      const moves = this.deadlineMoves;
      const waitedFor = this.deadline();
      const woke = await condition(
        () => this.decision !== undefined || this.cancelWanted || this.expireWanted || this.deadlineMoves !== moves,
        this.msUntil(waitedFor),
        { summary: round === 0 ? `payment window ${formatDuration(this.input.paymentTimeoutSeconds)}` : timerSummary(waitedFor) },
      );
      if (this.decision === undefined && this.cancelWanted) this.decision = { kind: 'CANCELLED' };
      // The timer, or the database saying the deadline passed (then the deadline as now known).
      const expiring = this.decision === undefined && (!woke || this.expireWanted);
      const proposed = woke ? this.deadline() : waitedFor;
      if (expiring) this.decision = { kind: 'EXPIRED' };
      this.expireWanted = false;
      if (this.decision === undefined) continue; // the deadline moved: wait for the new one
      await this.exclusively(() => this.settle(proposed));
      if (this.outcome !== undefined) return;
    }
  }

  /**
   * Proposes the decision to the database and follows its answer (in the non-cancellable scope
   * `run` is called in). A payment whose commit lost is refunded here, once. An expiry the
   * database refuses (still held) withdraws the decision and moves the deadline instead.
   */
  private async settle(deadline?: Deadline): Promise<void> {
    const decision = this.decision;
    if (!decision) throw new Error('settle called before a decision');
    if (!this.settleLocally) this.transition(decision.kind);
    const settled = decision.kind === 'PAID' ? await this.commit(decision.payment) : await this.release(decision.kind, deadline);
    if (settled.status === 'AWAITING_PAYMENT') {
      this.holdOn(settled);
      return;
    }
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

  private async release(reason: 'EXPIRED' | 'CANCELLED', deadline?: Deadline): Promise<OutcomeOfProposal | StillHeld> {
    const { releaseStock } = this.settleActivities(`release ${describeItems(this.view.items)} (${reason.toLowerCase()})`);
    const named = reason === 'EXPIRED' && deadline !== undefined;
    const result: Partial<SettledOrder> | StillHeld = await releaseStock({ orderId: this.input.orderId, reason, ...(named && { deadline }) });
    if (result.status === 'AWAITING_PAYMENT') return result;
    // Before the database decided, a release answered { closedAt, expiresAt } only: it had won.
    return outcomeOf(result, { status: reason });
  }

  /** The database holds the order past the deadline the timer waited for: wait for the later one. */
  private holdOn(held: StillHeld): void {
    this.decision = undefined;
    this.paymentPendingUntil = held.paymentPendingUntil;
    if (held.expiresAt !== this.view.expiresAt) {
      this.view.expiresAt = held.expiresAt;
      upsertSearchAttributes([{ key: paymentDeadlineKey, value: new Date(held.expiresAt) }]);
    }
    this.deadlineMoves++;
    this.updateDetails();
  }

  /** Runs one proposal to the database at a time: the outcome, or an extension. */
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

  /** Waits while a decision is proposed; afterwards it is decided, or withdrawn (still held). */
  private async decisionAnswered(): Promise<void> {
    while (this.decision !== undefined && this.outcome === undefined) {
      await condition(() => this.decision === undefined || this.outcome !== undefined);
    }
  }

  private paymentFailed(failed: unknown): void {
    if (!this.followsDeadline || !isPaymentFailed(failed)) return;
    // The hold may have been that payment's: the window runs on from where it was (the
    // database answers with any other hold still running).
    if (this.paymentPendingUntil !== undefined) {
      this.paymentPendingUntil = undefined;
      this.deadlineMoves++;
      this.updateDetails();
    }
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
    if (!this.followsDeadline) {
      record.outcome = 'EXTENSION_NOT_SUPPORTED';
      return;
    }
    for (;;) {
      await this.decisionAnswered();
      const refusal = this.extensionRefusal();
      if (refusal) {
        record.outcome = refusal;
        return;
      }
      const answer = await this.exclusively(async () => {
        if (this.decision !== undefined || this.outcome !== undefined) return undefined; // a decision got in first
        const { extendPaymentWindow } = localActivitiesWith(settleOptions, `extend the payment window by ${formatDuration(record.seconds)}`);
        return extendPaymentWindow({ orderId: this.input.orderId, extensionId: record.extensionId, seconds: record.seconds });
      });
      if (answer === undefined) continue;
      if (answer.outcome === 'EXTENDED' || answer.outcome === 'EXTENSION_TOO_LONG') {
        if (answer.outcome === 'EXTENDED') this.moveDeadline(answer.expiresAt);
        record.outcome = answer.outcome;
        return;
      }
      // The deadline won the race (or the reclaim already released the order): expire it, then
      // answer with what the database decided.
      this.expireWanted = true;
      await condition(() => this.outcome !== undefined || (!this.expireWanted && this.decision === undefined));
    }
  }

  private extensionRefusal(): ExtensionOutcome | undefined {
    return closedOrderRefusal(this.status === 'REJECTED' ? 'REJECTED' : this.outcome);
  }

  private moveDeadline(expiresAt: string): void {
    this.view.expiresAt = expiresAt;
    upsertSearchAttributes([{ key: paymentDeadlineKey, value: new Date(expiresAt) }]);
    this.deadlineMoves++;
    this.updateDetails();
  }

  private findExtension(extensionId: string): ExtensionRecord | undefined {
    return this.extensions.find((e) => e.extensionId === extensionId);
  }

  private extensionDecision(extensionId: string): ExtensionDecision {
    const record = this.findExtension(extensionId);
    if (!record?.outcome) throw new Error(`extension ${extensionId} is not decided`);
    return { extensionId, outcome: record.outcome, order: this.snapshot() };
  }

  private deadline(): Deadline {
    return {
      expiresAt: this.view.expiresAt,
      ...(this.paymentPendingUntil !== undefined && { paymentPendingUntil: this.paymentPendingUntil }),
    };
  }

  private msUntil(deadline: Deadline): number {
    const ends = Math.max(Date.parse(deadline.expiresAt), deadline.paymentPendingUntil ? Date.parse(deadline.paymentPendingUntil) : 0);
    return Math.max(1, ends - Date.now());
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
    // While another decision is proposed, its answer tells this one why it is refused (or, for an
    // expiry the database refused, that it may still win).
    if (this.followsDeadline) await this.decisionAnswered();
    else if (this.settleLocally && this.decision?.kind === 'PAID') await condition(() => this.outcome !== undefined);
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
    if (this.status !== 'PENDING' && this.status !== 'AWAITING_PAYMENT') return;
    this.cancelWanted = true;
    if (this.decision === undefined) this.decision = { kind: 'CANCELLED' };
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
    setCurrentDetails(describeOrder(this.view, this.paymentPendingUntil));
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

function timerSummary(deadline: Deadline): string {
  return deadline.paymentPendingUntil !== undefined && Date.parse(deadline.paymentPendingUntil) > Date.parse(deadline.expiresAt)
    ? `payment processing, held until ${formatTime(deadline.paymentPendingUntil)}`
    : `payment window, until ${formatTime(deadline.expiresAt)}`;
}

function isPaymentFailed(value: unknown): value is { paymentId: string } {
  return typeof value === 'object' && value !== null && typeof (value as Record<string, unknown>).paymentId === 'string';
}

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

/**
 * Histories from before currencies were carried have neither side, and are decided as they
 * were; a payment that names no currency is taken to be in the order's.
 */
function isOtherCurrency(paid: string | undefined, priced: string | undefined): boolean {
  return paid !== undefined && priced !== undefined && paid.toLowerCase() !== priced.toLowerCase();
}

