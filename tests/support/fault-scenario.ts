/**
 * What every fault test does around its fault: run real worker processes on a task queue of
 * its own, place orders through the API's CheckoutService, and read the orders back.
 * The Temporal server and the database are the test's to choose (and to break).
 */
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { PrismaClient } from '../../prisma/generated/client';
import { CheckoutService } from '../../src/api/checkout';
import { EVERY_CHANNEL } from '../../src/api/order-records';
import type { OrderResponse } from '../../src/api/schemas';
import { cancelOrderSignal, orderWorkflowId, paymentReceivedSignal, type OrderStatus } from '../../workflows/messages';
import { startWorkerProcess, type WorkerProcess } from './worker-process';
import { DEFAULT_CHANNEL } from '../../activities/types';
import { TEST_ORDER_ID_SECRET } from './stack';

export interface FaultScenarioDependencies {
  temporalAddress: string;
  /** The API's Temporal client. */
  client: Client;
  databaseUrl: string;
  /** The API's (and the test's) database client. */
  prisma: PrismaClient;
  customerId: string;
}

export interface FaultScenario {
  taskQueue: string;
  checkout: CheckoutService;
  /**
   * A worker process; `name` is its PostgreSQL application_name, as pg_stat_activity shows it.
   * It reaches Temporal at `temporalAddress` unless another address (a proxy) is given.
   */
  startWorker(name: string, options?: { temporalAddress?: string; env?: Record<string, string> }): Promise<WorkerProcess>;
  /** Places an order that must be held (HELD, AWAITING_PAYMENT). */
  place(items: { sku: string; quantity: number }[], paymentTimeoutSeconds: number): Promise<OrderResponse>;
  /** The orders' statuses in the database, in the given order. */
  statusesOf(orders: OrderResponse[]): Promise<OrderStatus[]>;
  /** Signals, all at once, a cancel to each of `cancelled` and `payment` to `paid`'s workflow. */
  cancelAndPay(cancelled: OrderResponse[], paid: OrderResponse, payment: { paymentId: string; amountCents: number }): Promise<void>;
  /** Stops every worker process still running (gracefully). */
  stopWorkers(): Promise<void>;
}

export function faultScenario(deps: FaultScenarioDependencies): FaultScenario {
  const taskQueue = `checkout-faults-${randomUUID()}`;
  const checkout = new CheckoutService({
    prisma: deps.prisma,
    temporal: deps.client,
    taskQueue,
    defaultPaymentTimeoutSeconds: 900,
    checkoutCurrency: 'eur',
    orderIdSecret: TEST_ORDER_ID_SECRET,
  });
  const workers: WorkerProcess[] = [];
  return {
    taskQueue,
    checkout,
    async startWorker(name, options = {}) {
      const databaseUrl = new URL(deps.databaseUrl);
      databaseUrl.searchParams.set('application_name', name);
      const worker = await startWorkerProcess({
        temporalAddress: options.temporalAddress ?? deps.temporalAddress,
        taskQueue,
        databaseUrl: databaseUrl.toString(),
        ...(options.env && { env: options.env }),
      });
      workers.push(worker);
      return worker;
    },
    async place(items, paymentTimeoutSeconds) {
      const placed = await checkout.placeOrder({ customerId: deps.customerId, items, paymentTimeoutSeconds }, undefined, DEFAULT_CHANNEL);
      if (placed.outcome !== 'HELD' || placed.order.status !== 'AWAITING_PAYMENT') {
        throw new Error(`order not held: ${JSON.stringify(placed)}`);
      }
      return placed.order;
    },
    async statusesOf(orders) {
      return Promise.all(orders.map(async (o) => (await checkout.getOrder(o.orderId, EVERY_CHANNEL)).status));
    },
    async cancelAndPay(cancelled, paid, payment) {
      const handle = (order: OrderResponse) => deps.client.workflow.getHandle(orderWorkflowId(order.orderId));
      // As the API does for a verified delivery: the receipt first, then the signal (only a verified payment pays).
      await deps.prisma.$executeRaw`
        INSERT INTO payment_receipts (payment_id, order_id, amount_cents, currency, succeeded_at)
        VALUES (${payment.paymentId}, ${paid.orderId}::uuid, ${payment.amountCents}, 'eur', now())`;
      await Promise.all([...cancelled.map((o) => handle(o).signal(cancelOrderSignal)), handle(paid).signal(paymentReceivedSignal, payment)]);
    },
    async stopWorkers() {
      await Promise.all(workers.splice(0).map((w) => w.stop()));
    },
  };
}
