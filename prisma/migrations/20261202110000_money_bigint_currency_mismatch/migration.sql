-- Money is 64-bit: 50 lines x 1000 units x 10,000,000 cents reaches 5e11, past a 32-bit integer.
ALTER TABLE "orders" ALTER COLUMN "total_cents" SET DATA TYPE BIGINT;
ALTER TABLE "payments" ALTER COLUMN "amount_cents" SET DATA TYPE BIGINT;
ALTER TABLE "refunds" ALTER COLUMN "amount_cents" SET DATA TYPE BIGINT;

-- A payment in another currency than the checkout's is refused and refunded like a wrong amount.
ALTER TYPE "PaymentOutcome" ADD VALUE 'CURRENCY_MISMATCH';
