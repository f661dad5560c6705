-- An operator's change to stock (create, adjust, restock) is keyed by the Temporal
-- operation that made it, so a retried activity finds its own earlier movement.
ALTER TABLE "stock_movements" ADD COLUMN "operation_id" TEXT;

-- CreateIndex
CREATE UNIQUE INDEX "stock_movements_operation_id_key" ON "stock_movements"("operation_id");
