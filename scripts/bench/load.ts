/**
 * HTTP load on `POST /orders` with autocannon: fixed duration or a fixed number of orders.
 * Optionally each client then pays a share of the orders it got held, through the signed
 * payment webhook, before placing its next one (a shop's customers pay most of their orders).
 */
import autocannon from 'autocannon';
import { signedDelivery } from '../pay';
import { percentile } from './stats';

export interface OrderPayments {
  /** Share of held orders paid (0–1): exactly that share, spread evenly over the run. */
  share: number;
  /** The Standard Webhooks secret the API verifies deliveries with. */
  webhookSecret: string;
  /** Unique per order: a receipt claims its paymentId for one order. */
  paymentId: (orderId: string) => string;
}

export interface OrderLoad {
  apiUrl: string;
  /** The storefront key each request carries. */
  apiKey: string;
  connections: number;
  /** Seconds of load, or… */
  durationSeconds?: number;
  /** …a number of requests to send. */
  amount?: number;
  /** The body of the n-th request (from 0). */
  body: (n: number) => string;
  payments?: OrderPayments;
  progressSeconds: number;
  onProgress?: (progress: { seconds: number; responses: number; held: number; paid: number }) => void;
  /** Each answer to POST /orders as it arrives: its status and the client-side latency. */
  onAnswer?: (statusCode: number, latencyMs: number) => void;
}

type Latency = { p50: number; p90: number; p99: number; max: number };

export interface LoadResult {
  seconds: number;
  sent: number;
  /** 201: the stock is held. */
  held: number;
  /** Answered other than 201 (or a payment other than APPLIED), or failed (connection errors, 30 s timeouts). */
  failed: number;
  /** Sent and still unanswered when a fixed-duration run ended (at most one per client): not failures. */
  inFlightAtEnd: number;
  /** Responses of any status to POST /orders. */
  answered: number;
  /** POST /orders answers by status. */
  statuses: Record<string, number>;
  errors: number;
  /** POST /orders, client-side. */
  latencyMs: Latency;
  /** With `payments`: the deliveries sent and what they got. */
  payments?: { answered: number; paid: number; outcomes: Record<string, number>; latencyMs: Latency };
}

interface PaymentContext {
  payment?: { orderId: string; amountCents: number };
}

export async function driveOrders(load: OrderLoad): Promise<LoadResult> {
  let n = 0;
  let held = 0;
  let paid = 0;
  const placeAnswers = { count: 0, latencies: [] as number[] };
  const payAnswers = { count: 0, latencies: [] as number[] };
  const statuses: Record<string, number> = {};
  const outcomes: Record<string, number> = {};
  // autocannon reports a response to the request's onResponse, then at once to its 'response'
  // event with the latency: the first says which kind it was, the second how long it took.
  let lastKind: 'place' | 'pay' = 'place';
  const started = Date.now();
  let finish: (error: Error | null, result: autocannon.Result) => void = () => undefined;
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    finish = (error, result) => (error ? reject(error) : resolve(result));
  });
  const { payments } = load;
  const place: autocannon.Request = {
    method: 'POST',
    path: '/orders',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${load.apiKey}` },
    setupRequest: (request) => ({ ...request, body: load.body(n++) }),
    onResponse: (status, body, context: PaymentContext) => {
      lastKind = 'place';
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status !== 201) return;
      held++;
      // The held-th order is paid when it carries the running share over a whole number.
      if (payments && Math.floor(held * payments.share) > Math.floor((held - 1) * payments.share)) {
        const order = JSON.parse(body) as { orderId: string; totalCents: number };
        context.payment = { orderId: order.orderId, amountCents: order.totalCents };
      }
    },
  };
  const pay: autocannon.Request = {
    method: 'POST',
    path: '/webhooks/payments',
    // Nothing to pay: a falsy request makes autocannon start over with the next order.
    setupRequest: (request, context: PaymentContext) => {
      if (!payments || !context.payment) return undefined as unknown as autocannon.Request;
      const { orderId, amountCents } = context.payment;
      const delivery = signedDelivery(payments.webhookSecret, 'payment.succeeded', { orderId, paymentId: payments.paymentId(orderId), amountCents });
      return { ...request, headers: delivery.headers, body: delivery.body };
    },
    onResponse: (status, body) => {
      lastKind = 'pay';
      const outcome = status === 200 ? String((JSON.parse(body) as { outcome?: unknown }).outcome) : String(status);
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      if (outcome === 'APPLIED') paid++;
    },
  };
  // The callback form returns the running instance, whose events give progress.
  const instance = autocannon({
    url: load.apiUrl,
    connections: load.connections,
    ...(load.amount === undefined ? { duration: load.durationSeconds ?? 10 } : { amount: load.amount }),
    timeout: 30,
    requests: payments ? [place, pay] : [place],
  }, (error, result) => finish(error, result));
  instance.on('response', (_client, statusCode, _bytes, responseTime) => {
    const kind = lastKind === 'pay' ? payAnswers : placeAnswers;
    kind.count++;
    // As autocannon's own histogram: the latency of 2xx answers only.
    if (statusCode >= 200 && statusCode < 300) kind.latencies.push(responseTime);
    if (lastKind === 'place') load.onAnswer?.(statusCode, responseTime);
  });
  const progress = setInterval(
    () => load.onProgress?.({ seconds: (Date.now() - started) / 1000, responses: placeAnswers.count, held, paid }),
    load.progressSeconds * 1000,
  );
  try {
    const result = await done;
    const answered = placeAnswers.count;
    const payAnswered = payAnswers.count;
    return {
      seconds: result.duration,
      sent: result.requests.sent,
      held,
      answered,
      failed: answered - held + (payAnswered - paid) + result.errors,
      inFlightAtEnd: Math.max(0, result.requests.sent - answered - payAnswered - result.errors),
      statuses,
      errors: result.errors,
      latencyMs: latencyOf(placeAnswers.latencies),
      ...(payments && { payments: { answered: payAnswered, paid, outcomes, latencyMs: latencyOf(payAnswers.latencies) } }),
    };
  } finally {
    clearInterval(progress);
  }
}

/** Whole milliseconds, as autocannon's own histogram reports them. */
function latencyOf(values: number[]): Latency {
  const sorted = values.map(Math.round).sort((a, b) => a - b);
  return { p50: percentile(sorted, 0.5), p90: percentile(sorted, 0.9), p99: percentile(sorted, 0.99), max: sorted.at(-1) ?? Number.NaN };
}
