-- Holds that follow the payment (docs/expiry.md, "When an order expires").

-- The end of the processing hold of an order: the latest hold of its receipts that neither
-- failed nor ran out. Its effective deadline is GREATEST(expires_at, payment_pending_until).
ALTER TABLE "orders" ADD COLUMN "payment_pending_until" TIMESTAMPTZ(3);
-- Set by the hold of workflows that follow the database's deadline; only those orders take
-- processing holds and extensions (an older workflow's timer would ignore them).
ALTER TABLE "orders" ADD COLUMN "deadline_movable" BOOLEAN NOT NULL DEFAULT false;

-- A payment.processing delivery that arrived in time holds the order until held_until.
ALTER TABLE "payment_receipts" ADD COLUMN "held_until" TIMESTAMPTZ(3);
-- When a payment.failed delivery ended it.
ALTER TABLE "payment_receipts" ADD COLUMN "failed_at" TIMESTAMPTZ(3);

-- One row per extension request: a retried activity (or a repeated request with the same
-- Idempotency-Key) finds its answer here instead of moving the deadline twice.
CREATE TYPE "ExtensionOutcome" AS ENUM ('EXTENDED', 'EXTENSION_TOO_LONG');

CREATE TABLE "order_extensions" (
    "order_id" UUID NOT NULL,
    "extension_id" TEXT NOT NULL,
    "seconds" INTEGER NOT NULL,
    "outcome" "ExtensionOutcome" NOT NULL,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "order_extensions_pkey" PRIMARY KEY ("order_id", "extension_id"),
    CONSTRAINT "order_extensions_order_id_fkey" FOREIGN KEY ("order_id") REFERENCES "orders"("id") ON DELETE RESTRICT ON UPDATE CASCADE
);
