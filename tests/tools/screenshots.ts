/**
 * `npm run screenshots`: regenerates the pictures of the Temporal Web UI in docs/lifecycle.md from a real
 * run. It starts the same stack as the tests (own dev server with its UI, own database, real
 * worker), places the orders of tests/support/order-states.ts, and photographs the UI with
 * headless Chromium (installed by tests/tools/ensure-chromium.sh where missing).
 */
import '../support/quiet-runtime';
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { orderWorkflowId } from '../../workflows/messages';
import globalSetup from '../support/global-setup';
import { placeOrdersInEveryState } from '../support/order-states';
import { startStack, type TestStack } from '../support/stack';
import { freePort } from '../../scripts/processes';
import { launchChromium, TemporalWebUi } from '../support/webui';

const OUT_DIR = path.resolve(__dirname, '../..', 'docs', 'screenshots');
const WIDTH = 1360;
/** Long enough for the timer to show as a bar next to the activities on the timeline. */
const EXPIRING_WINDOW_SECONDS = 5;

async function main(): Promise<void> {
  mkdirSync(OUT_DIR, { recursive: true });
  await globalSetup();
  const uiPort = await freePort();
  let stack: TestStack | undefined;
  const browser = await launchChromium();
  try {
    stack = await startStack({ uiPort });
    const orders = await placeOrdersInEveryState(stack, { expiringWindowSeconds: EXPIRING_WINDOW_SECONDS });
    const ui = await TemporalWebUi.open(browser, `http://127.0.0.1:${uiPort}`);
    const save = async (name: string, shoot: (file: string) => Promise<unknown>) => {
      const file = path.join(OUT_DIR, name);
      await shoot(file);
      console.log(`${path.relative(process.cwd(), file)} (${Math.round(statSync(file).size / 1024)} KB)`);
    };

    // The list, filtered the way an operator does it: Add Filter → OrderStatus → value.
    await ui.page.setViewportSize({ width: WIDTH, height: 420 });
    await ui.openWorkflowList();
    await ui.page.getByRole('button', { name: 'Collapse saved views' }).click();
    await ui.filterBy('OrderStatus', 'AWAITING_PAYMENT');
    await ui.waitForListedWorkflowIds(orders.byState.AWAITING_PAYMENT.map((o) => orderWorkflowId(o.orderId)));
    await save('orders-awaiting-payment.png', (file) => ui.page.screenshot({ path: file }));

    // One order's story on its History tab: the timeline with activity and timer summaries.
    // A tall window holds the whole page, so the picture is a clip of it from "Event History".
    await ui.page.setViewportSize({ width: WIDTH, height: 1600 });
    await ui.openWorkflow(orderWorkflowId(orders.expired.orderId), 'history');
    await ui.timelineLabels('releaseStock');
    const top = (await ui.page.getByRole('heading', { name: 'Event History' }).boundingBox())?.y ?? 0;
    await save('order-timeline.png', (file) =>
      ui.page.screenshot({ path: file, clip: { x: 0, y: Math.max(0, top - 16), width: WIDTH, height: 370 } }),
    );

    // The same kind of story in words: summary, static details, current details.
    await ui.page.setViewportSize({ width: WIDTH, height: 920 });
    await ui.openWorkflow(orderWorkflowId(orders.awaitingLong.orderId), 'user-metadata');
    await ui.metadataPanel('Current Details');
    await ui.eventsWithMetadata();
    await save('order-details.png', (file) => ui.page.screenshot({ path: file }));
  } finally {
    await browser.close();
    await stack?.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
