/**
 * A small shop with orders in every state, placed through the real API service on a real
 * stack: what the Web UI test inspects and what the screenshots in docs/lifecycle.md show.
 */
import { randomUUID } from 'node:crypto';
import { putProduct } from '../../activities/inventory';
import type { OrderResponse } from '../../src/api/schemas';
import { SAMPLE_PRODUCTS } from '../../prisma/seed';
import {
  customerIdKey,
  ORDER_WORKFLOW_TYPE,
  orderStatusKey,
  orderWorkflowId,
  type OrderStatus,
  type OrderWorkflowInput,
} from '../../workflows/messages';
import { orderDetails, orderSummary } from '../../workflows/summaries';
import { type TestStack } from './stack';
import { eventually } from './wait';
import { EVERY_CHANNEL } from '../../src/api/order-records';
import { DEFAULT_CHANNEL } from '../../activities/types';

export type SettledOrAwaiting = Exclude<OrderStatus, 'PENDING'>;
export const ORDER_STATES: readonly SettledOrAwaiting[] = ['AWAITING_PAYMENT', 'PAID', 'EXPIRED', 'CANCELLED', 'REJECTED'];

export interface PlacedOrders {
  byState: Record<SettledOrAwaiting, OrderResponse[]>;
  /** Awaiting payment, 15 minute window: the order the docs' story follows. */
  awaitingLong: OrderResponse;
  /** Awaiting payment, 5 minute window: closes before `awaitingLong`. */
  awaitingShort: OrderResponse;
  expired: OrderResponse;
}

/** Customer `ada` has two orders (one awaiting payment, one paid); everyone else has one. */
export async function placeOrdersInEveryState(stack: TestStack, options: { expiringWindowSeconds?: number } = {}): Promise<PlacedOrders> {
  for (const product of SAMPLE_PRODUCTS) await putProduct(stack.db.prisma, product);
  const { checkout } = stack;
  const place = async (customerId: string, items: { sku: string; quantity: number }[], paymentTimeoutSeconds?: number) =>
    (await checkout.placeOrder({ customerId, items, ...(paymentTimeoutSeconds && { paymentTimeoutSeconds }) }, undefined, DEFAULT_CHANNEL)).order;

  const awaitingLong = await place('ada', [{ sku: 'SKU-1', quantity: 2 }, { sku: 'SKU-3', quantity: 1 }], 900);
  const awaitingShort = await place('ben', [{ sku: 'SKU-2', quantity: 1 }], 300);
  const expired = await place('cleo', [{ sku: 'SKU-3', quantity: 3 }], options.expiringWindowSeconds ?? 2);

  const paid = await place('ada', [{ sku: 'SKU-4', quantity: 1 }]);
  const paidNow = (await checkout.pay(paid.orderId, { paymentId: 'pay-7001', amountCents: paid.totalCents })).order;

  const cancelled = await place('dan', [{ sku: 'SKU-1', quantity: 1 }, { sku: 'SKU-2', quantity: 2 }]);
  const { order: cancelledNow } = await checkout.cancel(cancelled.orderId, DEFAULT_CHANNEL);

  // SKU-5 has 3 in stock. The API refuses that without a workflow; the rejected order the Web UI
  // shows is one whose hold found the stock gone after the order was admitted, started here as
  // the API starts an admitted order.
  const rejected = await rejectedByItsHold(stack, 'eve', [{ sku: 'SKU-5', quantity: 5 }]);

  const expiredNow = await eventually(() => checkout.getOrder(expired.orderId, EVERY_CHANNEL), (o) => o.status === 'EXPIRED');

  const byState: PlacedOrders['byState'] = {
    AWAITING_PAYMENT: [awaitingLong, awaitingShort],
    PAID: [paidNow],
    EXPIRED: [expiredNow],
    CANCELLED: [cancelledNow],
    REJECTED: [rejected],
  };
  for (const state of ORDER_STATES) {
    for (const order of byState[state]) {
      if (order.status !== state) throw new Error(`order ${order.orderId} is ${order.status}, expected ${state}`);
    }
  }
  await waitForVisibility(stack, byState);
  return { byState, awaitingLong, awaitingShort, expired: expiredNow };
}

/** An order whose workflow's hold rejected it, as the API would have started it. */
async function rejectedByItsHold(stack: TestStack, customerId: string, items: { sku: string; quantity: number }[]): Promise<OrderResponse> {
  const input: OrderWorkflowInput = { orderId: randomUUID(), customerId, items, paymentTimeoutSeconds: 900, currency: 'eur' };
  await stack.client.workflow.execute(ORDER_WORKFLOW_TYPE, {
    workflowId: orderWorkflowId(input.orderId),
    taskQueue: stack.taskQueue,
    args: [input],
    staticSummary: orderSummary(input.orderId, customerId, items),
    staticDetails: orderDetails(input),
    typedSearchAttributes: [
      { key: customerIdKey, value: customerId },
      { key: orderStatusKey, value: 'PENDING' },
    ],
  });
  return stack.checkout.getOrder(input.orderId, EVERY_CHANNEL);
}

/**
 * Visibility (what the list and its filters read) trails the workflows by a moment: wait
 * until the server's search attributes agree with every order's state.
 */
async function waitForVisibility(stack: TestStack, byState: PlacedOrders['byState']): Promise<void> {
  const expected = Object.fromEntries(
    ORDER_STATES.map((state) => [state, byState[state].map((o) => orderWorkflowId(o.orderId)).sort()]),
  );
  const listed = async () => {
    const seen: Record<string, string[]> = {};
    for (const state of ORDER_STATES) {
      const ids: string[] = [];
      for await (const wf of stack.client.workflow.list({ query: `OrderStatus = "${state}"` })) ids.push(wf.workflowId);
      seen[state] = ids.sort();
    }
    return seen;
  };
  await eventually(listed, (seen) => JSON.stringify(seen) === JSON.stringify(expected));
}
