/**
 * The order as its workflow holds it, the proposals it makes to the database, and its message
 * handlers (payments, cancels, extensions, and the updates that wait for their outcomes). The
 * main path that drives it is orderWorkflow (order-workflow.ts); which step comes next is
 * decided by the plain functions of order-steps.ts. The database decides the order: every
 * proposal gets the order as decided, or held still with how long until it is due.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  log,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  type CancellationScope,
} from '@temporalio/workflow';
import type { ReleaseReason, SettledOrder, StillHeld } from '../activities/types';
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
  isExtensionRequest,
  isPaymentReceived,
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
  type PaymentRefusal,
  type PaymentReceived,
  type RefundResult,
} from './messages';
import { commitStock, extendPaymentWindow, refundPayment, releaseStock, reserveStock } from './order-activities';
import { afterCommit, extensionOutcome, holdRefusal, isHoldDecided, isOpen, isPaymentSettled, type Wakeup } from './order-steps';
import { PaymentDeadline } from './payment-deadline';
import { describeOrder } from './summaries';

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

/** One proposal to the database at a time, whoever makes it (the main path or a handler). */
class OneProposalAtATime {
  private busy = false;

  async run<T>(propose: () => Promise<T>): Promise<T> {
    // Several waiters may be woken at once: each checks again before it takes its turn.
    while (this.busy) await condition(() => !this.busy);
    this.busy = true;
    try {
      return await propose();
    } finally {
      this.busy = false;
    }
  }
}

export class Order {
  readonly deadline: PaymentDeadline;
  /** Set by cancelOrder (or a Temporal cancellation request) while the order is open; never taken back. */
  private cancelRequested = false;
  /** Set by paymentFailed: ask the database now whether the order is due (a hold ended). */
  private holdEnded = false;
  /** The main path has ended: the order is final; refunds and waiting updates finish. */
  private closing = false;
  private readonly proposals = new OneProposalAtATime();
  private readonly view: Omit<OrderView, 'expiresAt'>;
  // A list, not a Map (state stays JSON) nor an object keyed by paymentId (which would mistake
  // ids such as "constructor" or "__proto__" for payments already received).
  private readonly payments: PaymentRecord[] = [];
  private readonly extensions: ExtensionRecord[] = [];

  constructor(
    private readonly input: OrderWorkflowInput,
    /** Handlers run in it, so that a Temporal cancellation request cannot fail them half-way. */
    private readonly nonCancellable: CancellationScope,
  ) {
    const createdAt = workflowInfo().startTime;
    const windowMs = input.paymentTimeoutSeconds * 1000;
    this.deadline = new PaymentDeadline(new Date(createdAt.getTime() + windowMs).toISOString(), windowMs, input.paymentTimeoutSeconds);
    this.view = {
      orderId: input.orderId,
      customerId: input.customerId,
      status: 'PENDING',
      items: input.items.map((i) => ({ ...i, unitPriceCents: 0 })),
      totalCents: 0,
      createdAt: createdAt.toISOString(),
    };
  }

  /** The order reached a final state (decided by the database, or refused by its hold). */
  get decided(): boolean {
    return !isOpen(this.view.status);
  }

  /** What the main path's wait wakes up for, besides the deadline moving. */
  wantsAWakeup(): boolean {
    return this.decided || this.cancelRequested || this.holdEnded;
  }

  /** What the main path knows after its wait; a hold that ended is taken in once. */
  takeWakeup(timerFired: boolean): Wakeup {
    const wakeup: Wakeup = { decided: this.decided, cancelRequested: this.cancelRequested, holdEnded: this.holdEnded, timerFired };
    if (!wakeup.decided) this.holdEnded = false;
    return wakeup;
  }

  /** Holds the stock (a local activity: its answer is the database's, so a re-run finds the same); false when refused. */
  async reserve(): Promise<boolean> {
    try {
      const reserved = await reserveStock({
        orderId: this.input.orderId,
        ...(this.input.channel !== undefined && { channel: this.input.channel }),
        customerId: this.input.customerId,
        items: this.input.items,
        createdAt: this.view.createdAt,
        expiresAt: this.deadline.expiresAt,
        currency: this.input.currency,
        ...(this.input.idempotencyKey !== undefined && { idempotencyKey: this.input.idempotencyKey }),
        ...(this.input.requestHash !== undefined && { requestHash: this.input.requestHash }),
      });
      this.view.items = reserved.lines;
      this.view.totalCents = reserved.totalCents;
      this.deadline.startAt(Date.parse(this.deadline.expiresAt) - Date.now());
      this.transition('AWAITING_PAYMENT');
      return true;
    } catch (error) {
      // An activity's failure comes wrapped in an ActivityFailure; a local activity's non-retryable
      // ApplicationFailure reaches the workflow as it was thrown.
      const failure = error instanceof ActivityFailure ? error.cause : error;
      const refusal = failure instanceof ApplicationFailure && failure.type ? holdRefusal(failure.type, failure.details) : undefined;
      if (!refusal) throw error;
      this.view.closedAt = new Date().toISOString();
      if (refusal.status === 'REJECTED') this.view.shortages = refusal.shortages;
      this.transition(refusal.status);
      return false;
    }
  }

  /** Proposes the expiry or the cancel, unless a payment's commit decided the order meanwhile. */
  proposeRelease(reason: ReleaseReason): Promise<void> {
    return this.proposals.run(async () => {
      if (this.decided) return;
      this.takeAnswer(await releaseStock({ orderId: this.input.orderId, reason }, this.view.items));
    });
  }

  /** The order is final: from now on, updates waiting for the close get their answer. */
  close(): void {
    this.closing = true;
  }

  /** The order as the workflow knows it, its fields in the contract's order (the API answers it as it is). */
  snapshot(): OrderView {
    const { orderId, customerId, status, items, totalCents, createdAt, ...since } = this.view;
    return { orderId, customerId, status, items: items.map((i) => ({ ...i })), totalCents, createdAt, expiresAt: this.deadline.expiresAt, ...since };
  }

  /** cancelOrder, or a Temporal cancellation request: only an order not yet decided is cancelled. */
  requestCancel(): void {
    if (isOpen(this.view.status)) this.cancelRequested = true;
  }

  registerHandlers(): void {
    setHandler(getOrderQuery, () => this.snapshot());
    setHandler(paymentReceivedSignal, this.nonCancellableHandler((payment) => this.receivePayment(payment)));
    setHandler(cancelOrderSignal, () => this.requestCancel());
    setHandler(
      awaitReservationUpdate,
      this.nonCancellableHandler(async () => {
        await condition(() => isHoldDecided(this.view.status));
        return this.snapshot();
      }),
      {
        validator: ({ requestHash }) => {
          if (requestHash !== this.input.requestHash) throw keyReused();
        },
      },
    );
    setHandler(
      awaitPaymentDecisionUpdate,
      this.nonCancellableHandler(async ({ paymentId }) => {
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
      this.nonCancellableHandler(async () => {
        await condition(() => this.closing);
        return this.snapshot();
      }),
    );
    setHandler(paymentFailedSignal, () => this.paymentFailed());
    setHandler(extendPaymentWindowSignal, this.nonCancellableHandler((request) => this.extend(request)));
    setHandler(
      awaitExtensionUpdate,
      this.nonCancellableHandler(async ({ extensionId }) => {
        await condition(() => this.findExtension(extensionId)?.outcome !== undefined);
        return this.extensionDecision(extensionId);
      }),
      {
        validator: ({ extensionId, seconds }) => {
          const record = this.findExtension(extensionId);
          if (!record) {
            throw ApplicationFailure.nonRetryable(`no extension ${extensionId} was requested`, UpdateFailureType.UnknownExtension);
          }
          if (record.seconds !== seconds) throw keyReused();
        },
      },
    );
  }

  /** Runs a handler in the non-cancellable scope: a Temporal cancellation request would otherwise fail it half-way. */
  private nonCancellableHandler<A extends unknown[], R>(handler: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
    return (...args) => this.nonCancellable.run(() => handler(...args));
  }

  /** Takes in what the database answered: a decided order is recorded, a held one waited out. */
  private takeAnswer(answer: SettledOrder | StillHeld): void {
    if (answer.status === 'AWAITING_PAYMENT') this.moveDeadline(answer.expiresAt, answer.dueInMs, answer.paymentPendingUntil);
    else this.recordDecision(answer);
  }

  /** Takes in the deadline the database answered; the search attribute and details follow a move. */
  private moveDeadline(expiresAt: string, dueInMs: number, processingHoldUntil?: string): void {
    const { moved, expiresAtMoved } = this.deadline.answer(expiresAt, dueInMs, processingHoldUntil);
    if (!moved) return;
    if (expiresAtMoved) upsertSearchAttributes([{ key: paymentDeadlineKey, value: new Date(expiresAt) }]);
    this.updateDetails();
  }

  /** Records the outcome the database decided, whoever proposed it. */
  private recordDecision(settled: SettledOrder): void {
    this.deadline.end();
    if (settled.status === 'PAID') {
      this.view.paidAt = settled.paidAt;
      this.view.paymentId = settled.paymentId;
    }
    this.view.closedAt = settled.closedAt;
    if (this.view.status !== settled.status) this.transition(settled.status);
  }

  /**
   * A payment.failed ended a processing hold: the window runs on from where it was, so ask the
   * database whether the order is due now (it answers with any other hold still running).
   */
  private paymentFailed(): void {
    if (this.view.status === 'AWAITING_PAYMENT') this.holdEnded = true;
  }

  private async extend(request: ExtensionRequest): Promise<void> {
    if (!isExtensionRequest(request)) {
      log.warn('ignoring malformed extendPaymentWindow signal', { request });
      return;
    }
    if (this.findExtension(request.extensionId)) return; // repeated: the first answer stands
    const record: ExtensionRecord = { extensionId: request.extensionId, seconds: request.seconds };
    this.extensions.push(record);
    await condition(() => isHoldDecided(this.view.status));
    record.outcome = await this.proposals.run(async () => {
      const refusal = closedOrderRefusal(this.view.status);
      if (refusal) return refusal;
      const answer = await extendPaymentWindow({ orderId: this.input.orderId, extensionId: record.extensionId, seconds: record.seconds });
      if (answer.outcome === 'DECIDED') this.recordDecision(answer.order);
      if (answer.outcome === 'EXTENDED') this.moveDeadline(answer.expiresAt, answer.dueInMs);
      return extensionOutcome(answer);
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
    await condition(() => isHoldDecided(this.view.status));
    for (;;) {
      record.deliveredAgain = false;
      const answer = await this.proposals.run(async () => {
        const decided = await commitStock({ orderId: this.input.orderId, paymentId: payment.paymentId }, this.view.items);
        if (decided.order) this.takeAnswer(decided.order);
        return decided.payment;
      });
      const next = afterCommit(answer, record.deliveredAgain);
      if (next.step === 'PROPOSE_AGAIN' || next.step === 'FORGET') {
        // A signal that no verified delivery backs (sent straight to Temporal): nothing moved.
        log.warn('security: paymentReceived without a verified payment of this order; ignored', { paymentId: payment.paymentId, reason: answer });
        if (next.step === 'PROPOSE_AGAIN') continue; // its genuine delivery may have been recorded since
        this.payments.splice(this.payments.indexOf(record), 1);
        return;
      }
      record.outcome = next.outcome;
      if (next.step === 'REFUND') record.refund = await this.refund(payment.paymentId, next.outcome);
      return;
    }
  }

  private refund(paymentId: string, reason: PaymentRefusal): Promise<RefundResult> {
    return refundPayment({ orderId: this.input.orderId, paymentId, reason });
  }

  private findPayment(paymentId: string): PaymentRecord | undefined {
    return this.payments.find((p) => p.paymentId === paymentId);
  }

  private isPaymentSettled(paymentId: string): boolean {
    const record = this.findPayment(paymentId);
    return record !== undefined && isPaymentSettled({ ...record, refunded: record.refund !== undefined }, this.closing);
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
    this.view.status = status;
    upsertSearchAttributes([
      { key: orderStatusKey, value: status },
      { key: customerIdKey, value: this.input.customerId },
      { key: paymentDeadlineKey, value: new Date(this.deadline.expiresAt) },
    ]);
    this.updateDetails();
  }

  private updateDetails(): void {
    setCurrentDetails(describeOrder(this.snapshot(), this.deadline.processingHoldUntil));
  }
}

function keyReused(): ApplicationFailure {
  return ApplicationFailure.nonRetryable('the Idempotency-Key was used before with a different request', UpdateFailureType.IdempotencyKeyReused);
}
