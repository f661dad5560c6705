/** HTTP load on `POST /orders` with autocannon: fixed duration or a fixed number of orders. */
import autocannon from 'autocannon';

export interface OrderLoad {
  apiUrl: string;
  connections: number;
  /** Seconds of load, or… */
  durationSeconds?: number;
  /** …a number of requests to send. */
  amount?: number;
  /** The body of the n-th request (from 0). */
  body: (n: number) => string;
  progressSeconds: number;
  onProgress?: (progress: { seconds: number; responses: number; held: number }) => void;
  /** Each answer as it arrives: its status and the client-side latency. */
  onAnswer?: (statusCode: number, latencyMs: number) => void;
}

export interface LoadResult {
  seconds: number;
  sent: number;
  /** 201: the stock is held. */
  held: number;
  /** Answered other than 201, or failed (connection errors, 30 s timeouts). */
  failed: number;
  /** Sent and still unanswered when a fixed-duration run ended (at most one per client): not failures. */
  inFlightAtEnd: number;
  /** Responses of any status. */
  answered: number;
  statuses: Record<string, number>;
  errors: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
}

export async function driveOrders(load: OrderLoad): Promise<LoadResult> {
  let n = 0;
  let responses = 0;
  let held = 0;
  const started = Date.now();
  let finish: (error: Error | null, result: autocannon.Result) => void = () => undefined;
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    finish = (error, result) => (error ? reject(error) : resolve(result));
  });
  // The callback form returns the running instance, whose events give progress.
  const instance = autocannon({
    url: load.apiUrl,
    connections: load.connections,
    ...(load.amount === undefined ? { duration: load.durationSeconds ?? 10 } : { amount: load.amount }),
    timeout: 30,
    requests: [
      {
        method: 'POST',
        path: '/orders',
        headers: { 'content-type': 'application/json' },
        setupRequest: (request) => ({ ...request, body: load.body(n++) }),
      },
    ],
  }, (error, result) => finish(error, result));
  instance.on('response', (_client, statusCode, _bytes, latencyMs) => {
    responses++;
    if (statusCode === 201) held++;
    load.onAnswer?.(statusCode, latencyMs);
  });
  const progress = setInterval(
    () => load.onProgress?.({ seconds: (Date.now() - started) / 1000, responses, held }),
    load.progressSeconds * 1000,
  );
  try {
    const result = await done;
    const statuses = Object.fromEntries(
      Object.entries(result.statusCodeStats ?? {}).map(([code, stats]) => [code, stats.count ?? 0]),
    );
    const created = statuses['201'] ?? 0;
    const answered = Object.values(statuses).reduce((a, b) => a + b, 0);
    return {
      seconds: result.duration,
      sent: result.requests.sent,
      held: created,
      answered,
      failed: answered - created + result.errors,
      inFlightAtEnd: Math.max(0, result.requests.sent - answered - result.errors),
      statuses,
      errors: result.errors,
      latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
    };
  } finally {
    clearInterval(progress);
  }
}
