/** The API's services over one Prisma client and one Temporal client (server.ts and tests build them alike). */
import type { Client } from '@temporalio/client';
import type { PrismaClient } from '../../prisma/generated/client';
import { CheckoutService } from './checkout';
import { OperatorService } from './operator';
import { Readiness } from './readiness';

export interface ApiServices {
  checkout: CheckoutService;
  operator: OperatorService;
  readiness: Readiness;
}

export function createApiServices(deps: {
  prisma: PrismaClient;
  temporal: Client;
  taskQueue: string;
  defaultPaymentTimeoutSeconds: number;
  checkoutCurrency: string;
  decisionWaitSeconds?: number;
}): ApiServices {
  return {
    checkout: new CheckoutService(deps),
    operator: new OperatorService(deps),
    readiness: new Readiness(deps),
  };
}
