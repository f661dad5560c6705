/**
 * The order's moving deadline, as its workflow waits for it: expiresAt, the processing hold the
 * order is under, and how long until the database finds the order due. Only the database moves
 * it (an extension, a processing hold, an answer that the order is not due yet), and a wait in
 * progress ends when it moves, so the caller waits again for the new one. It compares no times:
 * it waits as long as the database last said.
 */
import { condition } from '@temporalio/workflow';
import type { IsoTime } from './messages';
import { deadlineChange, type Deadline } from './order-steps';
import { formatDuration, formatTime } from './summaries';

export class PaymentDeadline implements Deadline {
  processingHoldUntil: IsoTime | undefined;
  /** Bumped whenever the deadline moves, which ends a wait in progress. */
  private moves = 0;
  private waits = 0;

  constructor(
    public expiresAt: IsoTime,
    /** How long the next wait lasts: the payment window at first, then as long as the database last said. */
    private remainingMs: number,
    private readonly windowSeconds: number,
  ) {}

  /**
   * Waits for the deadline, until `wake` holds or the deadline moves: resolves false when the
   * deadline came first, true when woken. The condition's own promise, not one chained to it: the
   * main path's wake-up keeps its place among the handlers' (the recorded histories depend on it).
   */
  wait(wake: () => boolean): Promise<boolean> {
    const moves = this.moves;
    const summary = this.waits++ === 0 ? `payment window ${formatDuration(this.windowSeconds)}` : this.summary();
    // At least 1 ms: a zero timeout would wait forever rather than expire at once.
    return condition(() => wake() || this.moves !== moves, Math.max(1, this.remainingMs), { summary });
  }

  /** Counts from the hold: the database set expiresAt, and the window runs `remainingMs` from now. */
  startAt(remainingMs: number): void {
    this.remainingMs = remainingMs;
  }

  /**
   * Takes in the deadline the database answered, and how long until it finds the order due. An
   * answer without a hold leaves the hold as it was. Says what moved; the timer is set again
   * only when something did (after the timer's own proposal the main path sets it again anyway).
   */
  answer(expiresAt: IsoTime, dueInMs: number, processingHoldUntil = this.processingHoldUntil): { moved: boolean; expiresAtMoved: boolean } {
    this.remainingMs = dueInMs;
    const change = deadlineChange(this, { expiresAt, processingHoldUntil });
    if (!change.moved) return change;
    this.expiresAt = expiresAt;
    this.processingHoldUntil = processingHoldUntil;
    this.moves++;
    return change;
  }

  /** The order was decided: no hold keeps it any more. */
  end(): void {
    this.processingHoldUntil = undefined;
  }

  private summary(): string {
    return this.processingHoldUntil !== undefined
      ? `payment processing, held until ${formatTime(this.processingHoldUntil)} at most`
      : `payment window, until ${formatTime(this.expiresAt)}`;
  }
}
