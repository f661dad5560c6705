/**
 * What the HTTP routes ask of the system, one service over the parts that do each job:
 * placement (placement.ts), payments (payments.ts), cancel and extend (order-commands.ts) and the
 * read model (order-records.ts). Decisions go to the order's workflow, reads come from the
 * database. Every answer is a decided outcome, or says it is not decided yet (UNDECIDED: 202).
 */
import { DEFAULTS } from '../config';
import { OrderCommands, type CancelledOrder, type ExtendedOrder, type OrderCommandsDependencies } from './order-commands';
import { OrderRecords, type ChannelScope } from './order-records';
import { Payments, type PaymentAnswer, type PaymentsDependencies } from './payments';
import { Placement, type PlacedOrder, type PlacementDependencies } from './placement';
import type { CreateOrderBody, OrderResponse, ProductResponse } from './schemas';
import type { PaymentEvent } from './webhooks';

/** What the service's parts take, and the settings only the service reads. */
export interface CheckoutDependencies extends PlacementDependencies, PaymentsDependencies, OrderCommandsDependencies {
  /** ORDER_DECISION_WAIT_SECONDS: how long a request waits for a decision before answering that it is not decided yet. */
  decisionWaitSeconds?: number;
  /** PAYMENT_PROCESSING_HOLD_SECONDS: how long payment.processing may hold an order past its deadline. */
  paymentProcessingHoldSeconds?: number;
  /** RECLAIM_BOUND_SECONDS: the inventory check flags holds kept longer than this past their deadline. */
  reclaimBoundSeconds?: number;
}

/** The Retry-After of a 202: when asking again (GET /orders/:orderId, or the same request) is worth it. */
export const UNDECIDED_RETRY_AFTER_SECONDS = 2;

export class CheckoutService {
  private readonly records: OrderRecords;
  private readonly placement: Placement;
  private readonly payments: Payments;
  private readonly commands: OrderCommands;

  constructor(deps: CheckoutDependencies) {
    const decisionWaitMs = (deps.decisionWaitSeconds ?? DEFAULTS.orderDecisionWaitSeconds) * 1000;
    this.records = new OrderRecords(deps.prisma);
    this.placement = new Placement(deps, this.records, decisionWaitMs);
    this.payments = new Payments(deps, this.records, decisionWaitMs, deps.paymentProcessingHoldSeconds ?? DEFAULTS.paymentProcessingHoldSeconds);
    this.commands = new OrderCommands(deps, this.records, decisionWaitMs);
  }

  placeOrder(body: CreateOrderBody, idempotencyKey: string | undefined, channel: string): Promise<PlacedOrder> {
    return this.placement.placeOrder(body, idempotencyKey, channel);
  }

  /** The order, if `channel` may see it; another channel's order is ORDER_NOT_FOUND, as an unknown id. */
  getOrder(orderId: string, channel: ChannelScope): Promise<OrderResponse> {
    return this.records.getOrder(orderId, channel);
  }

  /** A verified delivery of the payment webhooks. */
  receivePayment(event: PaymentEvent): Promise<PaymentAnswer> {
    return this.payments.receivePayment(event);
  }

  /** A verified payment.succeeded for the order (the fault tests and scripts pay through here). */
  pay(orderId: string, payment: { paymentId: string; amountCents: number; currency?: string }): Promise<PaymentAnswer> {
    return this.payments.receivePayment({ type: 'payment.succeeded', orderId, ...payment });
  }

  cancel(orderId: string, channel: ChannelScope): Promise<CancelledOrder> {
    return this.commands.cancel(orderId, channel);
  }

  extend(orderId: string, seconds: number, idempotencyKey?: string): Promise<ExtendedOrder> {
    return this.commands.extend(orderId, seconds, idempotencyKey);
  }

  listProducts(): Promise<ProductResponse[]> {
    return this.records.listProducts();
  }

  getProduct(sku: string): Promise<ProductResponse> {
    return this.records.getProduct(sku);
  }
}
