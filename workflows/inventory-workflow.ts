/**
 * Operator changes to stock (create or update a product, restock) as short workflows, so that
 * they take the same path as every other stock change: API → Temporal → activity → PostgreSQL.
 * The workflow id is the operation id the activity records, which makes its retries harmless;
 * a restock sent with an Idempotency-Key carries the key's operation id instead.
 */
import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { InventoryActivities } from '../activities/inventory';
import type { PutProductCommand, PutProductResult, RestockProductCommand, RestockResult } from './inventory-messages';

const { putProduct, restockProduct } = proxyActivities<InventoryActivities>({
  startToCloseTimeout: '10 seconds',
  // Transient faults (a database blip) are retried until the change is made; outcomes are answers.
  retry: { initialInterval: '200 ms', backoffCoefficient: 2, maximumInterval: '5 seconds' },
});

export async function putProductWorkflow(command: PutProductCommand): Promise<PutProductResult> {
  return putProduct({ ...command, operationId: workflowInfo().workflowId });
}

export async function restockProductWorkflow(command: RestockProductCommand): Promise<RestockResult> {
  return restockProduct({ ...command, operationId: command.operationId ?? workflowInfo().workflowId });
}
