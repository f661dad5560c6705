-- Issue 30: the event dispatcher claims a delivery with a lease instead of holding a row lock
-- across its POST, and every worker writes a heartbeat that /readyz reads.

-- A claimed delivery's next_attempt_at is pushed past its POST's timeout (the lease): the claim
-- commits at once, no other dispatcher picks the delivery up while the POST runs, and if the
-- dispatcher dies the delivery falls due again when the lease ends. Each dispatcher claims per
-- endpoint, so the claim reads this index: one endpoint's backlog is never scanned for another's.
DROP INDEX "order_event_deliveries_due_idx";
CREATE INDEX "order_event_deliveries_endpoint_due_idx" ON "order_event_deliveries" ("endpoint", "next_attempt_at") WHERE "state" = 'PENDING';

-- One row per running worker process, beaten every WORKER_HEARTBEAT_INTERVAL_MS from its own
-- connection; a worker that freezes or dies stops beating, and /readyz sees it within
-- WORKER_HEARTBEAT_STALE_SECONDS. Times are the database's clock on both sides.
CREATE TABLE "worker_heartbeats" (
    "worker_id" UUID NOT NULL,
    "namespace" TEXT NOT NULL,
    "task_queue" TEXT NOT NULL,
    -- The Temporal worker identity (pid@host), for an operator reading the table.
    "identity" TEXT NOT NULL,
    "started_at" TIMESTAMPTZ(3) NOT NULL DEFAULT clock_timestamp(),
    "beat_at" TIMESTAMPTZ(3) NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT "worker_heartbeats_pkey" PRIMARY KEY ("worker_id")
);
CREATE INDEX "worker_heartbeats_queue_beat_idx" ON "worker_heartbeats" ("namespace", "task_queue", "beat_at");
