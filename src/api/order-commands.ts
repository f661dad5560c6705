/**
 * Commands on an order that exists: cancel (POST /orders/:orderId/cancel) and extend (POST
 * /admin/orders/:orderId/extend). Each goes to the order's workflow as a signal, then waits for
 * its outcome through an update within the decision wait; the order as recorded is the answer.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import type { PrismaClient } from '../../prisma/generated/client';
import {
  awaitClosedUpdate,
  awaitExtensionUpdate,
  cancelOrderSignal,
  closedOrderRefusal,
  extendPaymentWindowSignal,
  orderWorkflowId,
  UpdateFailureType,
  type ExtensionOutcome,
} from '../../workflows/messages';
import { EVERY_CHANNEL, type ChannelScope, type OrderRecords } from './order-records';
import { idempotencyKeyReused } from './errors';
import type { OrderResponse } from './schemas';
import {
  AWAIT_CLOSED_ID,
  awaitExtensionId,
  resendingUpdate,
  signalWithinDeadline,
  updateFailureType,
  withinDecisionWait,
  type Waited,
} from './temporal-calls';

/**
 * What an extension got: EXTENDED (expiresAt moved), UNDECIDED (not decided within the decision
 * wait; it will be), or why it was refused.
 */
export interface ExtendedOrder {
  outcome: 'EXTENDED' | 'UNDECIDED' | ExtensionRefusal;
  order: OrderResponse;
}

export type ExtensionRefusal = Exclude<ExtensionOutcome, 'EXTENDED'>;

/**
 * What a cancel got: CANCELLED once the stock is back, UNDECIDED while that is not done yet, or
 * the final state that refuses it (paid, expired, rejected).
 */
export interface CancelledOrder {
  outcome: 'CANCELLED' | 'UNDECIDED' | CancelRefusal;
  order: OrderResponse;
}

export type CancelRefusal = 'ORDER_ALREADY_PAID' | 'ORDER_EXPIRED' | 'ORDER_REJECTED';

export interface OrderCommandsDependencies {
  prisma: PrismaClient;
  temporal: Client;
}

export class OrderCommands {
  constructor(
    private readonly deps: OrderCommandsDependencies,
    private readonly records: OrderRecords,
    private readonly decisionWaitMs: number,
  ) {}

  /**
   * Moves the order's expiresAt later by `seconds` (POST /admin/orders/:orderId/extend). The
   * order's workflow proposes it to the database, which decides it against the deadline, and
   * then sets its timer for the new one. The same Idempotency-Key extends once.
   */
  async extend(orderId: string, seconds: number, idempotencyKey?: string): Promise<ExtendedOrder> {
    const decideBy = Date.now() + this.decisionWaitMs;
    const record = await this.records.findOrder(orderId, EVERY_CHANNEL);
    const extensionId = idempotencyKey === undefined ? randomUUID() : `key-${createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 32)}`;
    if (idempotencyKey !== undefined) {
      const earlier = await this.deps.prisma.orderExtension.findUnique({ where: { orderId_extensionId: { orderId, extensionId } } });
      if (earlier && earlier.seconds !== seconds) throw idempotencyKeyReused();
      if (earlier) return { outcome: earlier.outcome, order: record.order };
    }
    const refusal = closedOrderRefusal(record.order.status);
    if (refusal) return { outcome: refusal, order: record.order };
    const handle = this.deps.temporal.workflow.getHandle(orderWorkflowId(orderId));
    const request = { extensionId, seconds };
    let waited: Waited<ExtensionOutcome>;
    try {
      await signalWithinDeadline(this.deps.temporal, handle, extendPaymentWindowSignal, request);
      waited = await withinDecisionWait(this.deps.temporal, decideBy - Date.now(), async () => {
        const decision = await resendingUpdate(() =>
          handle.executeUpdate(awaitExtensionUpdate, { args: [request], updateId: awaitExtensionId(extensionId) }),
        );
        return decision.outcome;
      });
    } catch (error) {
      if (updateFailureType(error) === UpdateFailureType.IdempotencyKeyReused) throw idempotencyKeyReused();
      if (!(error instanceof WorkflowNotFoundError)) throw error;
      // No workflow follows this order's deadline any more (it closed, or was terminated).
      const order = await this.records.getOrder(orderId, EVERY_CHANNEL);
      return { outcome: closedOrderRefusal(order.status) ?? 'EXTENSION_NOT_SUPPORTED', order };
    }
    const order = await this.records.getOrder(orderId, EVERY_CHANNEL);
    if (!waited.decided) return { outcome: 'UNDECIDED', order };
    return { outcome: waited.value, order };
  }

  async cancel(orderId: string, channel: ChannelScope): Promise<CancelledOrder> {
    const decideBy = Date.now() + this.decisionWaitMs;
    await this.records.findOrder(orderId, channel);
    const handle = this.deps.temporal.workflow.getHandle(orderWorkflowId(orderId));
    try {
      await signalWithinDeadline(this.deps.temporal, handle, cancelOrderSignal);
      await withinDecisionWait(this.deps.temporal, decideBy - Date.now(), () =>
        resendingUpdate(() => handle.executeUpdate(awaitClosedUpdate, { updateId: AWAIT_CLOSED_ID })),
      );
    } catch (error) {
      if (!(error instanceof WorkflowNotFoundError)) throw error;
    }
    // The record decides the answer: a final state, or still open (the release not done yet).
    const order = await this.records.getOrder(orderId, channel);
    return { outcome: cancelOutcome(order.status), order };
  }
}

function cancelOutcome(status: OrderResponse['status']): CancelledOrder['outcome'] {
  if (status === 'CANCELLED') return 'CANCELLED';
  const refusal = closedOrderRefusal(status);
  return refusal === undefined || refusal === 'ORDER_CANCELLED' ? 'UNDECIDED' : refusal;
}
