/**
 * A storefront's endpoint for order events, as a real local HTTP server: every delivery is
 * verified with the `standardwebhooks` library (signature, timestamp) before it is recorded,
 * and what it answers can be set per delivery (2xx, 500, after a pause, hang) or the server
 * taken down and brought back on the same port (connection refused meanwhile).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { TEST_ORDER_EVENTS_SECRET } from './stack';
import { eventually } from './wait';

export interface ReceivedEvent {
  id: string;
  type: string;
  timestamp: string;
  data: { order: { orderId: string; status: string } & Record<string, unknown>; refund?: Record<string, unknown> };
}

export interface Delivery {
  /** The webhook-id header. */
  webhookId: string;
  event: ReceivedEvent;
  /** What the receiver answered (0: it never answered). */
  answered: number;
  receivedAt: number;
  /** When the answer was sent (undefined: not yet, or never). */
  answeredAt?: number;
}

/** What to answer a verified delivery: a status, a status after a pause, or 'hang' to keep the request open. */
export type Answer = number | { status: number; afterMs: number } | 'hang';

export interface EventReceiver {
  url: string;
  /** Every verified delivery, in arrival order (retries included). */
  deliveries: Delivery[];
  /** Deliveries whose signature did not verify (should stay empty). */
  rejected: string[];
  /** Requests held open by 'hang' and still open (the sender has not given up on them). */
  hangingNow(): number;
  /** Sets how the following deliveries are answered (default 204). */
  answer(respond: (event: ReceivedEvent) => Answer): void;
  /** Closes the port: deliveries meet connection refused until `up`. */
  down(): Promise<void>;
  up(): Promise<void>;
  /** Events answered 2xx, first delivery of each id only, in arrival order. */
  accepted(): ReceivedEvent[];
  acceptedFor(orderId: string): ReceivedEvent[];
  /** Waits until the order's accepted events have these types, in this order. */
  waitForTypes(orderId: string, types: string[], timeoutMs?: number): Promise<ReceivedEvent[]>;
  close(): Promise<void>;
}

export async function startEventReceiver(secret = TEST_ORDER_EVENTS_SECRET): Promise<EventReceiver> {
  const webhook = new Webhook(secret);
  const deliveries: Delivery[] = [];
  const rejected: string[] = [];
  const hanging = new Set<ServerResponse>();
  let respond: (event: ReceivedEvent) => Answer = () => 204;

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let event: ReceivedEvent;
      try {
        event = webhook.verify(body, headersOf(req)) as ReceivedEvent;
      } catch (error) {
        rejected.push(error instanceof Error ? error.message : String(error));
        res.writeHead(400).end();
        return;
      }
      const answer = respond(event);
      const delivery: Delivery = { webhookId: String(req.headers['webhook-id']), event, answered: 0, receivedAt: Date.now() };
      deliveries.push(delivery);
      if (answer === 'hang') {
        hanging.add(res);
        res.once('close', () => hanging.delete(res));
        return;
      }
      const send = (status: number) => {
        delivery.answered = status;
        delivery.answeredAt = Date.now();
        res.writeHead(status).end();
      };
      if (typeof answer === 'number') send(answer);
      else setTimeout(() => send(answer.status), answer.afterMs);
    });
  };

  let server: Server = createServer(handle);
  await listen(server, 0);
  const port = (server.address() as AddressInfo).port;

  const closeServer = async () => {
    for (const res of hanging) res.destroy();
    hanging.clear();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };

  const accepted = () => {
    const seen = new Set<string>();
    const events: ReceivedEvent[] = [];
    for (const d of deliveries) {
      if (d.answered < 200 || d.answered > 299 || seen.has(d.event.id)) continue;
      seen.add(d.event.id);
      events.push(d.event);
    }
    return events;
  };
  const acceptedFor = (orderId: string) => accepted().filter((e) => e.data.order.orderId === orderId);

  return {
    url: `http://127.0.0.1:${port}/order-events`,
    deliveries,
    rejected,
    hangingNow: () => hanging.size,
    answer(next) {
      respond = next;
    },
    down: closeServer,
    async up() {
      server = createServer(handle);
      await listen(server, port);
    },
    accepted,
    acceptedFor,
    async waitForTypes(orderId, types, timeoutMs = 30_000) {
      await eventually(
        () => Promise.resolve(acceptedFor(orderId).map((e) => e.type)),
        (seen) => seen.length >= types.length,
        timeoutMs,
      );
      return acceptedFor(orderId);
    },
    close: closeServer,
  };
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
}

function headersOf(req: IncomingMessage): Record<string, string> {
  return Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : (v ?? '')]));
}
