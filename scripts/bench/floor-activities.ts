/**
 * The floor's activities do nothing but note when a release ran: the floor measures the
 * engine, not our I/O. They run in the bench's own process, beside its worker.
 */
export interface ReleaseSink {
  /** Milliseconds from each workflow's deadline to its release. */
  lagsMs: number[];
}

export function createFloorActivities(sink: ReleaseSink) {
  return {
    async hold(): Promise<void> {},
    async release(dueAtMs: number): Promise<void> {
      sink.lagsMs.push(Date.now() - dueAtMs);
    },
  };
}

export type FloorActivities = ReturnType<typeof createFloorActivities>;
