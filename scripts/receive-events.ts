/**
 * A storefront's order-event endpoint, for trying events out locally and as the example handler
 * of docs/events.md: verifies every delivery with the `standardwebhooks` library (the secret is
 * ORDER_EVENTS_SECRET, else the development default), handles each event id once, prints it,
 * and answers 204.
 *
 *   npm run events:listen -- [--port 4000]
 *   ORDER_EVENTS_URL=http://localhost:4000/order-events npm start
 */
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { loadConfig } from '../src/config';

interface OrderEvent {
  id: string;
  type: string;
  timestamp: string;
  data: { order: { orderId: string; status: string; expiresAt: string }; refund?: { paymentId: string; amountCents: number } };
}

const { values } = parseArgs({ options: { port: { type: 'string', default: '4000' } } });
const webhook = new Webhook(loadConfig().orderEvents.secret);
// A real storefront keeps these in its database, in the transaction that acts on the event.
const handled = new Set<string>();

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    let event: OrderEvent;
    try {
      // Checks the signature over the exact bytes and that webhook-timestamp is within 5 minutes.
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
      event = webhook.verify(Buffer.concat(chunks), headers) as OrderEvent;
    } catch (error) {
      res.writeHead(error instanceof WebhookVerificationError ? 401 : 400).end();
      return;
    }
    // Retries carry the same id: acting twice would email the customer twice.
    if (!handled.has(event.id)) {
      handled.add(event.id);
      const { order } = event.data;
      console.log(`${event.timestamp} ${event.type.padEnd(16)} order ${order.orderId} ${order.status}`);
      if (event.type === 'order.expired') console.log(`  → release the cart, tell the customer their items are back on sale`);
    }
    res.writeHead(204).end();
  });
});

server.listen(Number(values.port), () => {
  console.log(`listening for order events on http://localhost:${values.port}/order-events`);
});
