/**
 * What the operator endpoints ask of the system. Changes to stock run as short workflows
 * (the activities are the only writers of stock); the inventory check reads the database.
 */
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { PrismaClient } from '../../prisma/generated/client';
import {
  PUT_PRODUCT_WORKFLOW_TYPE,
  putProductWorkflowId,
  RESTOCK_PRODUCT_WORKFLOW_TYPE,
  restockOperationId,
  restockProductWorkflowId,
  type PutProductCommand,
  type PutProductResult,
  type RestockProductCommand,
  type RestockResult,
} from '../../workflows/inventory-messages';
import { checkInventory, type InventoryReport } from '../db/inventory-check';
import { ApiError } from './errors';
import type { ProductResponse, PutProductBody } from './schemas';

export interface OperatorDependencies {
  prisma: PrismaClient;
  temporal: Client;
  taskQueue: string;
  /** RECLAIM_BOUND_SECONDS: the inventory check flags holds kept longer than this past their deadline. */
  reclaimBoundSeconds?: number;
}

export class OperatorService {
  constructor(private readonly deps: OperatorDependencies) {}

  async putProduct(sku: string, body: PutProductBody): Promise<{ created: boolean; product: ProductResponse }> {
    const command: PutProductCommand = { sku, ...body };
    const result = await this.deps.temporal.workflow.execute<(c: PutProductCommand) => Promise<PutProductResult>>(
      PUT_PRODUCT_WORKFLOW_TYPE,
      { workflowId: putProductWorkflowId(sku, randomUUID()), taskQueue: this.deps.taskQueue, args: [command] },
    );
    return { created: result.outcome === 'CREATED', product: result.product };
  }

  /** With an idempotency key, repeats (also concurrent ones) restock once and answer the product as it is now. */
  async restock(sku: string, quantity: number, idempotencyKey?: string): Promise<ProductResponse> {
    const command: RestockProductCommand = { sku, quantity, ...(idempotencyKey !== undefined && { operationId: restockOperationId(idempotencyKey) }) };
    const result = await this.deps.temporal.workflow.execute<(c: RestockProductCommand) => Promise<RestockResult>>(
      RESTOCK_PRODUCT_WORKFLOW_TYPE,
      { workflowId: restockProductWorkflowId(sku, randomUUID()), taskQueue: this.deps.taskQueue, args: [command] },
    );
    switch (result.outcome) {
      case 'RESTOCKED':
        return result.product;
      case 'PRODUCT_NOT_FOUND':
        throw new ApiError('PRODUCT_NOT_FOUND', `no product ${sku}`);
      case 'IDEMPOTENCY_KEY_REUSED':
        throw new ApiError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used for a restock of another sku or quantity');
      case 'STOCK_LIMIT_EXCEEDED':
        throw new ApiError('STOCK_LIMIT_EXCEEDED', `the count on sale would exceed ${result.limit}`, {
          details: { available: result.available, limit: result.limit },
        });
    }
  }

  /** `full`: also the pass over the whole ledger and the checkpoint's own verification (inventory-check.ts). */
  checkInventory(full: boolean): Promise<InventoryReport> {
    return checkInventory(this.deps.prisma, this.deps.reclaimBoundSeconds, { full });
  }
}
