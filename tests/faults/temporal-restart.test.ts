/**
 * Fault: the Temporal service goes down while orders wait, stays down past their deadlines,
 * and comes back on its persisted state (the dev server's SQLite file, same port). The held
 * stock comes back at the deadlines anyway (the worker's reclaim needs only PostgreSQL); the
 * durable timers must still fire once the server is back, so every workflow closes EXPIRED; the
 * worker process and the API's client, which keep running throughout, must reconnect on their own.
 */
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import type { OrderResponse } from '../../src/api/schemas';
import { checkInventory } from '../../src/db/inventory-check';
import { customerIdKey, orderStatusKey, orderWorkflowId, paymentDeadlineKey } from '../../workflows/messages';
import { addProduct, stockOf } from '../support/database';
import { deadlines, oneSettlementPerItem, settlementsOf, waitPast, workflowsCompleted } from '../support/fault-checks';
import { useRestartableTemporalStack } from '../support/fault-stack';
import { eventually } from '../support/wait';
import { EVERY_CHANNEL } from '../../src/api/order-records';

const CUSTOMER = `restart-${randomUUID()}`;

// The API's client and the worker process connect to the fixed address and keep running
// through the restart.
let connection: Connection;
const stack = useRestartableTemporalStack(CUSTOMER, {
  async connect(address) {
    connection = await Connection.connect({ address });
    return new Client({ connection });
  },
});

test('orders waiting while the Temporal server restarts on its persisted state still expire, and their stock comes back', async () => {
  const { db, client, scenario, stopTemporal, startTemporal } = stack;
  const { checkout, place, statusesOf } = scenario;
  const worker = await scenario.startWorker('checkout-worker');
  await addProduct(db.prisma, 'RS-A', 10, 300);
  await addProduct(db.prisma, 'RS-B', 10, 800);
  const paidBefore = await place([{ sku: 'RS-A', quantity: 1 }], 120);
  const paidAfter = await place([{ sku: 'RS-B', quantity: 2 }], 120);
  expect((await checkout.pay(paidBefore.orderId, { paymentId: 'pay-before-restart', amountCents: 300 })).order.status).toBe('PAID');
  const expiring = await Promise.all([
    place([{ sku: 'RS-A', quantity: 2 }, { sku: 'RS-B', quantity: 1 }], 4),
    place([{ sku: 'RS-A', quantity: 4 }], 5),
  ]);

  await stopTemporal();
  await waitPast(deadlines(expiring).last, 1_000);
  // With the server down no timer fired, but the worker's reclaim (it needs only PostgreSQL)
  // put the stock back on sale at the deadlines all the same.
  await eventually(() => statusesOf(expiring), (s) => s.every((status) => status === 'EXPIRED'), 30_000);
  expect(await stockOf(db.prisma, 'RS-A')).toEqual({ available: 9, reserved: 0, sold: 1 });

  await startTemporal();

  await eventually(() => statusesOf(expiring), (s) => s.every((status) => status === 'EXPIRED'), 60_000);
  for (const order of expiring) {
    expect(Date.parse((await checkout.getOrder(order.orderId, EVERY_CHANNEL)).closedAt ?? '')).toBeGreaterThanOrEqual(Date.parse(order.expiresAt));
  }
  // The restarted server takes new messages for orders it held before.
  const paid = await checkout.pay(paidAfter.orderId, { paymentId: 'pay-after-restart', amountCents: 2 * 800 });
  expect(paid.order).toMatchObject({ status: 'PAID', paymentId: 'pay-after-restart' });
  expect(await stockOf(db.prisma, 'RS-A')).toEqual({ available: 9, reserved: 0, sold: 1 });
  expect(await stockOf(db.prisma, 'RS-B')).toEqual({ available: 8, reserved: 0, sold: 2 });
  expect(await settlementsOf(db.prisma, [...expiring, paidBefore, paidAfter].map((o) => o.orderId))).toEqual({
    ...oneSettlementPerItem(expiring, 'RELEASE'),
    ...oneSettlementPerItem([paidBefore, paidAfter], 'COMMIT'),
  });
  expect(await checkInventory(db.prisma)).toEqual({ ok: true, violations: [] });
  // Neither the worker process nor the API's connection was replaced.
  expect(worker.alive()).toBe(true);

  // The search attributes are registered on the restarted server and kept current.
  const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
  expect(Object.keys(customAttributes ?? {})).toEqual(expect.arrayContaining(['OrderStatus', 'CustomerId', 'PaymentDeadline']));
  // The timers fire on the restarted server: each workflow finds its order reclaimed and closes.
  await workflowsCompleted(client, expiring);
  for (const order of expiring) {
    const { typedSearchAttributes } = await client.workflow.getHandle(orderWorkflowId(order.orderId)).describe();
    expect(typedSearchAttributes.get(orderStatusKey)).toBe('EXPIRED');
    expect(typedSearchAttributes.get(customerIdKey)).toBe(CUSTOMER);
    expect(typedSearchAttributes.get(paymentDeadlineKey)).toEqual(new Date(order.expiresAt));
  }
  const listed = async (status: string) => {
    const ids: string[] = [];
    for await (const execution of client.workflow.list({ query: `CustomerId = "${CUSTOMER}" AND OrderStatus = "${status}"` })) {
      ids.push(execution.workflowId);
    }
    return ids.sort();
  };
  const idsOf = (orders: OrderResponse[]) => orders.map((o) => orderWorkflowId(o.orderId)).sort();
  await eventually(() => listed('EXPIRED'), (ids) => JSON.stringify(ids) === JSON.stringify(idsOf(expiring)));
  await eventually(() => listed('PAID'), (ids) => JSON.stringify(ids) === JSON.stringify(idsOf([paidBefore, paidAfter])));
}, 120_000);
