-- A verified provider delivery is recorded here before the order's workflow hears of it.
-- The primary key makes a payment id pay one order only (the first order a delivery names
-- claims it), and `succeeded_at` tells the reclaim that a payment arrived before the
-- deadline, so that order is left for its workflow to decide.
CREATE TABLE "payment_receipts" (
    "payment_id" TEXT NOT NULL,
    "order_id" UUID NOT NULL,
    "amount_cents" BIGINT NOT NULL,
    "currency" TEXT NOT NULL,
    "received_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "succeeded_at" TIMESTAMPTZ(3),

    CONSTRAINT "payment_receipts_pkey" PRIMARY KEY ("payment_id")
);

CREATE INDEX "payment_receipts_order_id_idx" ON "payment_receipts"("order_id");

ALTER TABLE "payment_receipts" ADD CONSTRAINT "payment_receipts_order_id_fkey" FOREIGN KEY ("order_id") REFERENCES "orders"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
