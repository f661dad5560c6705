/**
 * What the API needs to run an operator's change to stock through Temporal: workflow types,
 * ids and the shapes they take and answer. The API imports this module, never the workflows.
 */
export type {
  ProductSnapshot,
  PutProductResult,
  RestockResult,
} from '../activities/inventory';

export const PUT_PRODUCT_WORKFLOW_TYPE = 'putProductWorkflow';
export const RESTOCK_PRODUCT_WORKFLOW_TYPE = 'restockProductWorkflow';

/** One workflow per operator request; its id is also the request's operation id in the ledger. */
export const putProductWorkflowId = (sku: string, requestId: string): string => `product-${sku}-put-${requestId}`;
export const restockProductWorkflowId = (sku: string, requestId: string): string => `product-${sku}-restock-${requestId}`;

export interface PutProductCommand {
  sku: string;
  name: string;
  priceCents: number;
  available?: number;
  /** A number sets the purchase limit, null removes it, absent leaves it as it is. */
  maxPerCustomer?: number | null;
}

export interface RestockProductCommand {
  sku: string;
  quantity: number;
  /** Set for a request with an Idempotency-Key: every request with that key shares it, so it restocks once. */
  operationId?: string;
}

/** An operator's Idempotency-Key names one restock, whichever sku it was sent for. */
export const restockOperationId = (idempotencyKey: string): string => `restock-key:${idempotencyKey}`;
