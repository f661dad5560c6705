/** The API's services over one Prisma client and one Temporal client (server.ts and tests build them alike). */
import { CheckoutService, type CheckoutDependencies } from './checkout';
import { OperatorService } from './operator';
import { OrderEventsReader } from './order-events';
import { Readiness } from './readiness';

export interface ApiServices {
  checkout: CheckoutService;
  operator: OperatorService;
  events: OrderEventsReader;
  readiness: Readiness;
}

export function createApiServices(deps: CheckoutDependencies): ApiServices {
  return {
    checkout: new CheckoutService(deps),
    operator: new OperatorService(deps),
    events: new OrderEventsReader(deps),
    readiness: new Readiness(deps),
  };
}
