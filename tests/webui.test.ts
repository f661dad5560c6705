/**
 * Orders read in the Temporal Web UI the way an operator reads them: a real stack with its
 * dev server's UI on, orders in every state, and Debian's Chromium driving the UI. Chromium
 * is installed by tests/tools/ensure-chromium.sh where it is missing.
 */
import type { Browser } from 'playwright-core';
import { orderWorkflowId } from '../workflows/messages';
import { describeItems, formatCents, formatDuration, formatTime, orderSummary } from '../workflows/summaries';
import { ORDER_STATES, placeOrdersInEveryState, type PlacedOrders } from './support/order-states';
import { startStack, type TestStack } from './support/stack';
import { freePort } from '../scripts/processes';
import { ensureChromium, launchChromium, TemporalWebUi } from './support/webui';

let stack: TestStack;
let browser: Browser;
let orders: PlacedOrders;
let ui: TemporalWebUi;

const workflowIds = (list: readonly { orderId: string }[]) => list.map((o) => orderWorkflowId(o.orderId)).sort();

beforeAll(async () => {
  // First, so that a machine without Chromium fails here with the installer's own words.
  const chromium = ensureChromium();
  const uiPort = await freePort();
  stack = await startStack({ uiPort });
  orders = await placeOrdersInEveryState(stack);
  browser = await launchChromium(chromium);
  ui = await TemporalWebUi.open(browser, `http://127.0.0.1:${uiPort}`);
}, 600_000);

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

test.each(ORDER_STATES)('filtering the workflow list by OrderStatus = %s shows exactly the orders in that state', async (state) => {
  await ui.openWorkflowList();

  await ui.filterBy('OrderStatus', state);

  const expected = workflowIds(orders.byState[state]);
  expect(await ui.waitForListedWorkflowIds(expected)).toEqual(expected);
});

test('a query on OrderStatus and PaymentDeadline lists the unpaid orders whose window closes first', async () => {
  const between = new Date((Date.parse(orders.awaitingShort.expiresAt) + Date.parse(orders.awaitingLong.expiresAt)) / 2);

  await ui.openWorkflowList();

  await ui.searchByQuery(`OrderStatus = "AWAITING_PAYMENT" AND PaymentDeadline < "${between.toISOString()}"`);

  const expected = workflowIds([orders.awaitingShort]);
  expect(await ui.waitForListedWorkflowIds(expected)).toEqual(expected);
});

test('filtering by CustomerId lists all of one customer’s orders, whatever their state', async () => {
  await ui.openWorkflowList();

  await ui.filterBy('CustomerId', 'ada');

  const expected = workflowIds(ORDER_STATES.flatMap((state) => orders.byState[state]).filter((o) => o.customerId === 'ada'));
  expect(expected).toHaveLength(2);
  expect(await ui.waitForListedWorkflowIds(expected)).toEqual(expected);
});

test('an order awaiting payment shows its summary, what was ordered, and what it waits for now', async () => {
  const order = orders.awaitingLong;

  await ui.openWorkflow(orderWorkflowId(order.orderId), 'user-metadata');

  expect(await ui.metadataPanel('Summary')).toBe(orderSummary(order.orderId, 'ada', order.items));
  const details = await ui.metadataPanel('Details');
  expect(details).toContain('Customer: ada');
  expect(details).toContain('Payment window: 15m');
  expect(details).toMatch(/SKU-1\s+2/);
  const current = await ui.metadataPanel('Current Details');
  expect(current).toContain(`AWAITING_PAYMENT: ${formatCents(order.totalCents)} due by ${formatTime(order.expiresAt)}`);
  expect(current).toMatch(new RegExp(`Total\\s+${formatCents(order.totalCents)}`));
  const events = await ui.eventsWithMetadata();
  // The hold is a local activity (a marker in the history): the UI lists it with its summary.
  expect(events).toMatch(new RegExp(`Local Activity\\W+reserve ${describeItems(order.items)}`));
  expect(events).toMatch(/payment window 15m\s+Started/);
});

test('an expired order’s timeline reads reserveStock, payment window, release', async () => {
  const order = orders.expired;
  const window = formatDuration((Date.parse(order.expiresAt) - Date.parse(order.createdAt)) / 1000);

  await ui.openWorkflow(orderWorkflowId(order.orderId), 'history');

  // UI 2.42 labels a local activity on the timeline by its type only: the hold and, since
  // settle-as-local-activity, the release too.
  const labels = await ui.timelineLabels('releaseStock');
  expect(labels).toEqual(expect.arrayContaining(['reserveStock', `payment window ${window}`, 'releaseStock']));
});

test('a rejected order says what was missing', async () => {
  const [order] = orders.byState.REJECTED;
  if (!order) throw new Error('no rejected order was placed');

  await ui.openWorkflow(orderWorkflowId(order.orderId), 'user-metadata');

  const current = await ui.metadataPanel('Current Details');
  expect(current).toContain('REJECTED: not enough stock; nothing held');
  expect(current).toContain('Missing: SKU-5 (5 asked, 3 available)');
});
