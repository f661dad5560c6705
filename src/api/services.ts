/** The API's services over one Prisma client and one Temporal client (server.ts and tests build them alike). */
import type { Logger } from '../logger';
import { ApiKeyStore } from './api-keys';
import { Authenticator, type BootstrapKeys } from './authentication';
import { CheckoutService, type CheckoutDependencies } from './checkout';
import { OperatorService } from './operator';
import { OrderEventsReader } from './order-events';
import { Readiness } from './readiness';

export interface ApiServices {
  checkout: CheckoutService;
  operator: OperatorService;
  events: OrderEventsReader;
  readiness: Readiness;
  apiKeys: ApiKeyStore;
  authenticator: Authenticator;
}

export interface ApiServiceDependencies extends CheckoutDependencies {
  /** ADMIN_TOKEN and STOREFRONT_KEY. */
  bootstrapKeys: BootstrapKeys;
  logger: Logger;
  /** WORKER_HEARTBEAT_STALE_SECONDS, read by /readyz; the default when not given. */
  workerHeartbeatStaleSeconds?: number;
}

export function createApiServices(deps: ApiServiceDependencies): ApiServices {
  const apiKeys = new ApiKeyStore(deps.prisma);
  return {
    checkout: new CheckoutService(deps),
    operator: new OperatorService(deps),
    events: new OrderEventsReader(deps),
    readiness: new Readiness(deps),
    apiKeys,
    authenticator: new Authenticator({ store: apiKeys, bootstrap: deps.bootstrapKeys, logger: deps.logger }),
  };
}
