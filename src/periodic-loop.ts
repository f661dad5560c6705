/**
 * The loop the worker's background jobs share (the reclaim, the order-event dispatcher): run one
 * batch, at once again when it was full, else after a pause; `stop` wakes the pause, lets the
 * batch in flight finish and ends the loop. A batch handles its own errors.
 */
export interface PeriodicLoop {
  /** Finishes the batch in flight, then stops. */
  stop(): Promise<void>;
}

/** `runBatch` resolves true when more work may be due at once (its batch was full). */
export function startPeriodicLoop(runBatch: () => Promise<boolean>, intervalMs: number): PeriodicLoop {
  let stopping = false;
  let wake: (() => void) | undefined;

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const loop = (async () => {
    while (!stopping) {
      const full = await runBatch();
      if (!full && !stopping) await pause(intervalMs);
    }
  })();

  return {
    async stop() {
      stopping = true;
      wake?.();
      await loop;
    },
  };
}
