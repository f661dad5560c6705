/** Waiting in tests: polling for an outcome that happens on its own, and plain pauses. */

/** Polls until `read` returns a value `done` accepts; for outcomes that happen on their own (expiry). */
export async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(value)}`);
    await sleep(100);
  }
}

/** Resolves after `ms` (at once for zero or less). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}
