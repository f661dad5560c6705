/** The API process: HTTP in front, Temporal and PostgreSQL behind, and a graceful way out. */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type express from 'express';
import { loadConfig } from '../config';
import { API_DATABASE_TIMEOUTS, createPrismaClient } from '../db/client';
import { createLogger, type Logger } from '../logger';
import { createApiMetrics } from '../metrics';
import { connectTemporalClient } from '../temporal';
import { createApp } from './app';
import type { Readiness } from './readiness';
import { createApiServices } from './services';

export interface RunningApi {
  server: Server;
  port: number;
  /**
   * Stops taking requests (readiness turns 503, the listener closes), lets requests in
   * flight finish (up to `drainTimeoutMs`, then their connections are cut), then closes
   * the clients. Calling it again returns the same promise.
   */
  shutdown(reason: string): Promise<void>;
}

export interface ApiRuntime {
  app: express.Express;
  readiness: Readiness;
  logger: Logger;
  port: number;
  closeClients: () => Promise<void>;
  drainTimeoutMs?: number;
}

export async function startApi({ app, readiness, logger, port, closeClients, drainTimeoutMs = 10_000 }: ApiRuntime): Promise<RunningApi> {
  const server = await new Promise<Server>((resolve, reject) => {
    const listening = app.listen(port, (error?: Error) => (error ? reject(error) : resolve(listening)));
  });
  const actualPort = (server.address() as AddressInfo).port;
  logger.info({ port: actualPort }, 'API listening');

  let stopped: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> => {
    stopped ??= (async () => {
      logger.info({ reason }, 'API shutting down: no new requests, finishing those in flight');
      readiness.markDraining();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Keep-alive connections are closed as soon as their current request is answered.
      server.closeIdleConnections();
      const sweep = setInterval(() => server.closeIdleConnections(), 100);
      const deadline = setTimeout(() => {
        logger.warn({ drainTimeoutMs }, 'requests still in flight at the drain deadline; closing their connections');
        server.closeAllConnections();
      }, drainTimeoutMs);
      await closed;
      clearInterval(sweep);
      clearTimeout(deadline);
      await closeClients();
      logger.info('API stopped');
    })();
    return stopped;
  };
  return { server, port: actualPort, shutdown };
}

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger('api', config.logLevel);
  const prisma = createPrismaClient(config.databaseUrl, config.databasePoolSize, API_DATABASE_TIMEOUTS);
  const temporal = await connectTemporalClient(config.temporal);
  const services = createApiServices({
    prisma,
    temporal,
    taskQueue: config.temporal.taskQueue,
    defaultPaymentTimeoutSeconds: config.paymentTimeoutSeconds,
    checkoutCurrency: config.checkoutCurrency,
    decisionWaitSeconds: config.orderDecisionWaitSeconds,
    paymentProcessingHoldSeconds: config.paymentProcessingHoldSeconds,
    reclaimBoundSeconds: config.reclaim.boundSeconds,
    orderIdSecret: config.orderIdSecret,
    bootstrapKeys: { adminToken: config.adminToken, ...(config.storefrontKey !== undefined && { storefrontKey: config.storefrontKey }) },
    logger,
    maxOpenOrdersPerCustomer: config.maxOpenOrdersPerCustomer,
    admissionSeconds: config.orderAdmissionSeconds,
    eventEndpoints: config.orderEvents.endpoints,
    workerHeartbeatStaleSeconds: config.workerHeartbeat.staleSeconds,
  });
  const app = createApp({
    ...services,
    logger,
    metrics: createApiMetrics(),
    paymentWebhookSecrets: config.paymentWebhookSecrets,
    ...(config.stripeWebhookSecret !== undefined && { stripeWebhookSecret: config.stripeWebhookSecret }),
  });
  const api = await startApi({
    app,
    readiness: services.readiness,
    logger,
    port: config.port,
    closeClients: async () => {
      // The keys' last uses are written before the database client closes.
      await services.authenticator.close();
      await Promise.all([services.readiness.close(), temporal.connection.close(), prisma.$disconnect()]);
    },
  });
  const stop = (signal: NodeJS.Signals) => {
    api.shutdown(signal).then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'API shutdown failed');
        process.exit(1);
      },
    );
  };
  // `on`, not `once`: a second signal while draining (Ctrl-C reaches every process of `npm start`,
  // which then sends SIGTERM too) must not kill the process mid-drain.
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    createLogger('api', 'error').fatal({ err: error }, 'API failed to start');
    process.exit(1);
  });
}
