// The worker's workflow bundle entry: every workflow type the task queue serves.
export { orderWorkflow } from './order-workflow';
export { latePaymentWorkflow } from './late-payment-workflow';
export { putProductWorkflow, restockProductWorkflow } from './inventory-workflow';
