/** An admission as the API asks for one (src/api/admission.ts), for tests that admit orders without HTTP. */
import { DEFAULT_CHANNEL } from '../../activities/types';
import type { AdmissionRequest } from '../../src/api/admission';
import { DEFAULTS } from '../../src/config';

export function admissionRequest(orderId: string, customerId: string, items: { sku: string; quantity: number }[]): AdmissionRequest {
  return {
    orderId,
    channel: DEFAULT_CHANNEL,
    body: { customerId, items },
    paymentTimeoutSeconds: 60,
    currency: 'eur',
    idempotencyKey: null,
    requestHash: null,
    maxOpenOrders: 0,
    admissionSeconds: DEFAULTS.orderAdmissionSeconds,
    eventEndpoints: [],
  };
}
